// Package h2fake is a strict, scriptable HTTP/2 server that speaks raw
// frames, for testing HTTP/2 clients (providers/transport's in the first
// place). It validates everything it can observe about the client's
// behaviour against RFC 9113 (and RFC 7541 for HPACK) and reports each
// violation with t.Errorf, so every test that uses it is also a conformance
// test. It imports nothing of pushd: it checks the protocol, not a
// particular client.
//
// Settings model. The client promises to wait for the server's first
// SETTINGS before it opens a stream, so the fake holds the client to the
// first SETTINGS from the moment it is sent. A later SETTINGS that lowers a
// limit is only binding once the client has ACKed it (RFC 9113 §6.5.3); one
// that raises a limit may be used by the client as soon as it has been sent.
// Every check therefore uses the largest value the client could legitimately
// be using at that point.
//
// Layout: server.go accepts connections and runs their lifecycle; conn.go
// holds a connection's state and the test's controls over it; read.go and
// headers.go read the client's frames and check them; stream.go scripts the
// server's side of a request stream; cert.go makes the TLS material.
package h2fake
