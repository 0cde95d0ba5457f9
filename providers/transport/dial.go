package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// dialTLS dials a TLS connection that must negotiate HTTP/2: both providers
// refuse HTTP/1.1, so failing here gives a clearer error than a protocol
// mismatch later.
func dialTLS(timeout time.Duration, coalesce bool) func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
	return func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}, Config: cfg}
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := conn.(*tls.Conn)
		if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
			tc.Close()
			return nil, fmt.Errorf("dial %s: server did not negotiate HTTP/2 (ALPN %q)", addr, p)
		}
		if coalesce {
			return newCoalescingConn(tc), nil
		}
		return tc, nil
	}
}
