package h2fake_test

import (
	"bytes"
	"crypto/tls"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/pushd/pushd/internal/h2fake"
)

// The fake's self-test: a hand-driven client breaks one rule at a time,
// and the fake must report it.

// rawClient is a hand-driven HTTP/2 client for the self-test.
type rawClient struct {
	t   testing.TB
	nc  *tls.Conn
	wmu sync.Mutex
	fw  *http2.Framer
	buf bytes.Buffer
	enc *hpack.Encoder
}

func dialRaw(t testing.TB, fs *h2fake.Server) *rawClient {
	t.Helper()
	nc, err := tls.Dial("tcp", fs.Addr, &tls.Config{RootCAs: fs.RootCAs, NextProtos: []string{"h2"}, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	rc := &rawClient{t: t, nc: nc, fw: http2.NewFramer(nc, nil)}
	rc.fw.AllowIllegalWrites = true
	rc.enc = hpack.NewEncoder(&rc.buf)
	if _, err := nc.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	_ = rc.fw.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 0})
	settingsSeen := make(chan struct{})
	go func() {
		fr := http2.NewFramer(nil, nc)
		first := true
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					rc.wmu.Lock()
					_ = rc.fw.WriteSettingsAck()
					rc.wmu.Unlock()
					if first {
						first = false
						close(settingsSeen)
					}
				}
			case *http2.PingFrame:
				if !f.IsAck() {
					rc.wmu.Lock()
					_ = rc.fw.WritePing(true, f.Data)
					rc.wmu.Unlock()
				}
			}
		}
	}()
	select {
	case <-settingsSeen:
	case <-time.After(5 * time.Second):
		t.Fatal("raw client: no SETTINGS from the fake")
	}
	time.Sleep(20 * time.Millisecond) // let the ACK land first
	return rc
}

func (rc *rawClient) block(kv ...string) []byte {
	rc.buf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		_ = rc.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return append([]byte(nil), rc.buf.Bytes()...)
}

func (rc *rawClient) headers(id uint32, end bool, kv ...string) {
	rc.wmu.Lock()
	defer rc.wmu.Unlock()
	_ = rc.fw.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.block(kv...), EndStream: end, EndHeaders: true})
}

func (rc *rawClient) write(f func(fw *http2.Framer)) {
	rc.wmu.Lock()
	defer rc.wmu.Unlock()
	f(rc.fw)
}

func reqFields(path string, extra ...string) []string {
	return append([]string{":method", "POST", ":scheme", "https", ":authority", "127.0.0.1", ":path", path}, extra...)
}

func TestFakeServerDetectsViolations(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts h2fake.Options
		run  func(rc *rawClient, fs *h2fake.Server)
		want string
	}{
		{"even stream id", h2fake.Options{}, func(rc *rawClient, _ *h2fake.Server) {
			rc.headers(2, true, reqFields("/")...)
		}, "even stream id"},
		{"decreasing stream id", h2fake.Options{}, func(rc *rawClient, _ *h2fake.Server) {
			rc.headers(5, true, reqFields("/")...)
			rc.headers(3, true, reqFields("/")...)
		}, "not above the last stream id"},
		{"too many streams", h2fake.Options{Settings: []http2.Setting{{ID: http2.SettingMaxConcurrentStreams, Val: 1}}, Handler: func(s *h2fake.Stream) { <-s.Gone() }}, func(rc *rawClient, _ *h2fake.Server) {
			rc.headers(1, false, reqFields("/")...)
			rc.headers(3, false, reqFields("/")...)
		}, "SETTINGS_MAX_CONCURRENT_STREAMS is 1"},
		{"stream window", h2fake.Options{Settings: []http2.Setting{{ID: http2.SettingInitialWindowSize, Val: 10}}, ManualFlow: true}, func(rc *rawClient, _ *h2fake.Server) {
			rc.headers(1, false, reqFields("/")...)
			rc.write(func(fw *http2.Framer) { _ = fw.WriteData(1, true, make([]byte, 11)) })
		}, "beyond the stream 1 flow-control window"},
		{"connection window", h2fake.Options{Settings: []http2.Setting{{ID: http2.SettingInitialWindowSize, Val: 1 << 20}}, ManualFlow: true}, func(rc *rawClient, _ *h2fake.Server) {
			rc.headers(1, false, reqFields("/")...)
			for range 4 {
				rc.write(func(fw *http2.Framer) { _ = fw.WriteData(1, false, make([]byte, 16384)) })
			}
		}, "beyond the connection flow-control window"},
		{"frame size", h2fake.Options{Settings: []http2.Setting{{ID: http2.SettingInitialWindowSize, Val: 1 << 20}}}, func(rc *rawClient, _ *h2fake.Server) {
			rc.headers(1, false, reqFields("/")...)
			rc.write(func(fw *http2.Framer) { _ = fw.WriteData(1, true, make([]byte, 16385)) })
		}, "exceeds SETTINGS_MAX_FRAME_SIZE"},
		{"interleaved header block", h2fake.Options{}, func(rc *rawClient, _ *h2fake.Server) {
			b := rc.block(reqFields("/")...)
			rc.write(func(fw *http2.Framer) {
				_ = fw.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:3], EndStream: true})
				_ = fw.WriteData(1, true, []byte("x"))
			})
		}, "not followed directly by its CONTINUATION"},
		{"upper-case name", h2fake.Options{}, func(rc *rawClient, _ *h2fake.Server) {
			rc.headers(1, true, reqFields("/", "X-Upper", "v")...)
		}, "upper-case field name"},
		{"missing pseudo-header", h2fake.Options{}, func(rc *rawClient, _ *h2fake.Server) {
			rc.headers(1, true, ":method", "GET", ":scheme", "https", ":path", "/")
		}, "missing pseudo-header :authority"},
		{"pseudo-header after regular", h2fake.Options{}, func(rc *rawClient, _ *h2fake.Server) {
			rc.headers(1, true, ":method", "GET", ":scheme", "https", "x-a", "b", ":authority", "h", ":path", "/")
		}, "after a regular field"},
		{"connection-specific field", h2fake.Options{}, func(rc *rawClient, _ *h2fake.Server) {
			rc.headers(1, true, reqFields("/", "connection", "close")...)
		}, "connection-specific field"},
		{"content-length mismatch", h2fake.Options{}, func(rc *rawClient, _ *h2fake.Server) {
			rc.headers(1, false, reqFields("/", "content-length", "5")...)
			rc.write(func(fw *http2.Framer) { _ = fw.WriteData(1, true, []byte("abc")) })
		}, "content-length 5 but the request body had 3 bytes"},
		{"DATA after END_STREAM", h2fake.Options{Handler: func(s *h2fake.Stream) { <-s.Gone() }}, func(rc *rawClient, _ *h2fake.Server) {
			rc.headers(1, true, reqFields("/")...)
			rc.write(func(fw *http2.Framer) { _ = fw.WriteData(1, true, []byte("x")) })
		}, "after END_STREAM"},
		{"no table size update", h2fake.Options{Settings: []http2.Setting{{ID: http2.SettingHeaderTableSize, Val: 0}}}, func(rc *rawClient, _ *h2fake.Server) {
			rc.headers(1, true, reqFields("/")...)
		}, "dynamic table size update"},
		{"stream after GOAWAY", h2fake.Options{Handler: func(s *h2fake.Stream) { <-s.Gone() }}, func(rc *rawClient, fs *h2fake.Server) {
			rc.headers(1, false, reqFields("/")...)
			c := fs.WaitConns(rc.t, 1)[0]
			_ = c.GoAway(1, http2.ErrCodeNo, "")
			h2fake.WaitUntil(2*time.Second, c.GoAwayProcessed)
			rc.headers(3, true, reqFields("/")...)
		}, "after it had processed GOAWAY"},
		{"unknown PING ACK", h2fake.Options{}, func(rc *rawClient, _ *h2fake.Server) {
			rc.write(func(fw *http2.Framer) { _ = fw.WritePing(true, [8]byte{1, 2, 3}) })
		}, "never sent"},
		{"second RST_STREAM", h2fake.Options{Handler: func(s *h2fake.Stream) { <-s.Gone() }}, func(rc *rawClient, _ *h2fake.Server) {
			rc.headers(1, true, reqFields("/")...)
			rc.write(func(fw *http2.Framer) {
				_ = fw.WriteRSTStream(1, http2.ErrCodeCancel)
				_ = fw.WriteRSTStream(1, http2.ErrCodeCancel)
			})
		}, "second RST_STREAM"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := &h2fake.Recorder{TB: t}
			fs := h2fake.New(rec, tc.opts)
			rc := dialRaw(t, fs)
			tc.run(rc, fs)
			if !h2fake.WaitUntil(3*time.Second, func() bool { return rec.Has(tc.want) }) {
				t.Errorf("fake did not report %q; it reported %q", tc.want, rec.All())
			}
		})
	}

	// And a well-behaved exchange is reported clean.
	t.Run("clean", func(t *testing.T) {
		t.Parallel()
		rec := &h2fake.Recorder{TB: t}
		fs := h2fake.New(rec, h2fake.Options{Settings: []http2.Setting{{ID: http2.SettingMaxConcurrentStreams, Val: 2}, {ID: http2.SettingInitialWindowSize, Val: 100}}})
		rc := dialRaw(t, fs)
		rc.headers(1, false, reqFields("/a", "content-length", "100")...)
		rc.write(func(fw *http2.Framer) { _ = fw.WriteData(1, true, make([]byte, 100)) })
		rc.headers(3, true, reqFields("/b")...)
		h2fake.WaitUntil(2*time.Second, func() bool { return len(fs.Streams()) == 2 })
		time.Sleep(100 * time.Millisecond)
		if errs := rec.All(); len(errs) != 0 {
			t.Errorf("fake reported violations for a correct exchange: %q", errs)
		}
	})
}
