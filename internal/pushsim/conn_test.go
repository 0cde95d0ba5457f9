package pushsim

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestGoAwayDebugData speaks raw HTTP/2 to see the GOAWAY frame itself.
func TestGoAwayDebugData(t *testing.T) {
	t.Parallel()
	e := start(t, Options{Faults: Faults{GoAwayAfter: 2}})
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(e.s.Files().CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(ca)
	addr := strings.TrimPrefix(e.s.URL(), "https://")
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	// Two requests; the server goes away after the second.
	for _, id := range []uint32{1, 3} {
		hbuf.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", addr}, {":path", "/3/device/" + devToken}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hbuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatalf("stream %d: %v", id, err)
		}
	}
	// Read until the server closes the connection.
	var debug []string
	var lastStream uint32
	var code http2.ErrCode
	answered := 0
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			break
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			answered++
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.GoAwayFrame:
			debug = append(debug, string(f.DebugData()))
			lastStream, code = f.LastStreamID, f.ErrCode
		}
	}
	if len(debug) != 1 || debug[0] != `{"reason":"Shutdown"}` {
		t.Errorf("GOAWAY debug data %q, want one GOAWAY with {\"reason\":\"Shutdown\"}", debug)
	}
	if code != http2.ErrCodeNo || lastStream != 3 {
		t.Errorf("GOAWAY code %v last stream %d, want NO_ERROR and 3", code, lastStream)
	}
	if answered != 2 {
		t.Errorf("%d answers, want both requests answered", answered)
	}
	if st := e.s.Stats(); st.GoAways != 1 || st.APNs.ByReason["MethodNotAllowed"] != 2 {
		t.Errorf("stats %+v, want 1 goaway and 2 answered requests", st)
	}
}

// TestFrameFilter feeds a frame stream through the filter in random pieces.
func TestFrameFilter(t *testing.T) {
	t.Parallel()
	var stream bytes.Buffer
	fr := http2.NewFramer(&stream, nil)
	fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100})
	fr.WriteData(1, false, bytes.Repeat([]byte("a"), 300))
	fr.WriteGoAway(7, http2.ErrCodeProtocol, nil) // not graceful: left alone
	fr.WriteData(1, true, []byte("b"))
	fr.WriteGoAway(9, http2.ErrCodeNo, nil) // gets the debug data
	fr.WriteGoAway(9, http2.ErrCodeNo, nil) // debug data is used once
	fr.WritePing(false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
	in := stream.Bytes()

	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		var f frameFilter
		var out bytes.Buffer
		rest := in
		armed := false
		for len(rest) > 0 {
			n := 1 + rng.IntN(min(len(rest), 40))
			if round%3 == 0 {
				n = len(rest) // whole writes too
			}
			// Arm it before the first write, or mid-stream.
			if !armed && (round%2 == 0 || round%3 == 0 || len(rest) < len(in)-300) {
				f.debug = []byte(`{"reason":"Shutdown"}`)
				armed = true
			}
			out.Write(f.filter(rest[:n]))
			rest = rest[n:]
		}
		if len(f.held) != 0 {
			t.Fatalf("round %d: %d bytes still held at a frame boundary", round, len(f.held))
		}
		rd := http2.NewFramer(nil, &out)
		var debug []string // of each GOAWAY
		var lastStream []uint32
		var frames int
		for {
			fr, err := rd.ReadFrame()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("round %d: frame %d: %v", round, frames+1, err)
			}
			frames++
			if g, ok := fr.(*http2.GoAwayFrame); ok {
				debug = append(debug, string(g.DebugData()))
				lastStream = append(lastStream, g.LastStreamID)
			}
		}
		if frames != 7 || len(debug) != 3 {
			t.Fatalf("round %d: %d frames, %d GOAWAYs, want 7 and 3", round, frames, len(debug))
		}
		if debug[0] != "" || debug[1] != `{"reason":"Shutdown"}` || debug[2] != "" || lastStream[1] != 9 {
			t.Fatalf("round %d: debug data %q, want only the first graceful GOAWAY to carry it", round, debug)
		}
	}
}

func TestFrameFilterPassesThrough(t *testing.T) {
	t.Parallel()
	var stream bytes.Buffer
	fr := http2.NewFramer(&stream, nil)
	fr.WriteData(1, false, []byte("hello"))
	fr.WriteGoAway(3, http2.ErrCodeNo, nil)
	var f frameFilter // no debug requested
	in := stream.Bytes()
	if out := f.filter(in); &out[0] != &in[0] || len(out) != len(in) {
		t.Error("filter copied a write it did not need to change")
	}
}

func TestRefusesHTTP1(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(e.s.Files().CAFile)
	pool.AppendCertsFromPEM(ca)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer c.CloseIdleConnections()
	resp, err := c.Post(e.s.URL()+"/3/device/"+devToken, "application/json", strings.NewReader(alertBody))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusHTTPVersionNotSupported || resp.ProtoMajor != 1 {
		t.Errorf("HTTP/1.1 request: %s %d, want HTTP/1.1 505", resp.Proto, resp.StatusCode)
	}
	if st := e.s.Stats(); st.APNs.Requests != 0 {
		t.Errorf("APNs requests %d, want 0: HTTP/1 never reaches the API", st.APNs.Requests)
	}
}

func TestServerAdvertisesMaxConcurrentStreams(t *testing.T) {
	t.Parallel()
	e := start(t, Options{MaxConcurrentStreams: 7})
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(e.s.Files().CAFile)
	pool.AppendCertsFromPEM(ca)
	c, err := tls.Dial("tcp", strings.TrimPrefix(e.s.URL(), "https://"), &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok {
		t.Fatalf("first frame %T, want SETTINGS", f)
	}
	if v, ok := sf.Value(http2.SettingMaxConcurrentStreams); !ok || v != 7 {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d (%v), want 7", v, ok)
	}
}
