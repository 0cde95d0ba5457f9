package transport

// A strict, scriptable HTTP/2 server that speaks raw frames, for testing the
// client in this package. It validates everything it can observe about the
// client's behaviour against RFC 9113 (and RFC 7541 for HPACK) and reports
// each violation with t.Errorf, so every test that uses it is also a
// conformance test.
//
// Settings model. The client promises to wait for the server's first
// SETTINGS before it opens a stream, so the fake holds the client to the
// first SETTINGS from the moment it is sent. A later SETTINGS that lowers a
// limit is only binding once the client has ACKed it (RFC 9113 §6.5.3); one
// that raises a limit may be used by the client as soon as it has been sent.
// Every check therefore uses the largest value the client could legitimately
// be using at that point.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// ---------------------------------------------------------------------------
// Certificate

var (
	fakeCertOnce sync.Once
	fakeCert     tls.Certificate
	fakeCertPool *x509.CertPool
	fakeCertErr  error
)

// testCert returns a self-signed ECDSA certificate for 127.0.0.1 and
// localhost, and a pool that trusts it. It is generated once per test binary.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	fakeCertOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			fakeCertErr = err
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "pushd transport test"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(48 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
			IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
			DNSNames:              []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			fakeCertErr = err
			return
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			fakeCertErr = err
			return
		}
		fakeCertPool = x509.NewCertPool()
		fakeCertPool.AddCert(leaf)
		fakeCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	})
	if fakeCertErr != nil {
		t.Fatalf("generating test certificate: %v", fakeCertErr)
	}
	return fakeCert, fakeCertPool
}

// ---------------------------------------------------------------------------
// Server

type fakeOptions struct {
	// Settings is the server's first SETTINGS frame. nil means
	// MAX_CONCURRENT_STREAMS=100 only; an empty non-nil slice sends an empty
	// SETTINGS frame (all defaults).
	Settings []http2.Setting
	// Handler is called in its own goroutine for every request stream as
	// soon as its HEADERS have arrived (the body may still be arriving; see
	// fakeStream.ReadBody). nil means echoHandler.
	Handler func(s *fakeStream)
	// OnConn is called for every new connection after the TLS handshake,
	// before the server's SETTINGS are sent and before any frame is read.
	OnConn func(c *fakeConn)
	// ManualFlow stops the fake from sending WINDOW_UPDATE frames for the
	// request bodies it receives; the test grants window itself with
	// fakeConn.WindowUpdate.
	ManualFlow bool
	// SettingsDelay delays the server's first SETTINGS frame.
	SettingsDelay time.Duration
	// NoSettings: the server never sends SETTINGS.
	NoSettings bool
}

type fakeServer struct {
	t       testing.TB
	opts    fakeOptions
	ln      net.Listener
	tlsCfg  *tls.Config
	RootCAs *x509.CertPool
	Addr    string

	wg sync.WaitGroup

	mu     sync.Mutex
	conns  []*fakeConn
	closed bool
}

func newFakeServer(t testing.TB, opts fakeOptions) *fakeServer {
	t.Helper()
	cert, pool := testCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	if opts.Settings == nil {
		opts.Settings = []http2.Setting{{ID: http2.SettingMaxConcurrentStreams, Val: 100}}
	}
	if opts.Handler == nil {
		opts.Handler = echoHandler
	}
	fs := &fakeServer{
		t:       t,
		opts:    opts,
		ln:      ln,
		RootCAs: pool,
		Addr:    ln.Addr().String(),
		tlsCfg: &tls.Config{
			Certificates: []tls.Certificate{cert},
			NextProtos:   []string{"h2"},
			MinVersion:   tls.VersionTLS12,
		},
	}
	fs.wg.Add(1)
	go fs.acceptLoop()
	t.Cleanup(fs.Close)
	return fs
}

// URL returns an https URL for path on the fake.
func (fs *fakeServer) URL(path string) string { return "https://" + fs.Addr + path }

func (fs *fakeServer) acceptLoop() {
	defer fs.wg.Done()
	for {
		nc, err := fs.ln.Accept()
		if err != nil {
			return
		}
		fs.wg.Add(1)
		go fs.serve(nc)
	}
}

func (fs *fakeServer) serve(nc net.Conn) {
	defer fs.wg.Done()
	tc := tls.Server(nc, fs.tlsCfg)
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		// The client may give up on a dial (e.g. its dial timeout); that is
		// not a protocol violation.
		tc.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	c := newFakeConn(fs, tc)
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		c.fail("TLS negotiated ALPN %q, want h2", p)
		tc.Close()
		return
	}
	fs.mu.Lock()
	if fs.closed {
		fs.mu.Unlock()
		tc.Close()
		return
	}
	c.Index = len(fs.conns)
	fs.conns = append(fs.conns, c)
	fs.mu.Unlock()

	if fs.opts.OnConn != nil {
		fs.opts.OnConn(c)
	}
	switch {
	case fs.opts.NoSettings:
	case fs.opts.SettingsDelay > 0:
		fs.wg.Add(1)
		go func() {
			defer fs.wg.Done()
			select {
			case <-time.After(fs.opts.SettingsDelay):
				c.sendFirstSettings(fs.opts.Settings)
			case <-c.deadCh:
			}
		}()
	default:
		c.sendFirstSettings(fs.opts.Settings)
	}
	c.readLoop()
}

// Close shuts the listener and every connection and waits for the fake's
// goroutines (connection loops and handlers) to finish.
func (fs *fakeServer) Close() {
	fs.mu.Lock()
	if fs.closed {
		fs.mu.Unlock()
		return
	}
	fs.closed = true
	conns := append([]*fakeConn(nil), fs.conns...)
	fs.mu.Unlock()
	fs.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	done := make(chan struct{})
	go func() { fs.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		fs.t.Errorf("fake server: handlers still running 10s after Close (a test handler is stuck)")
	}
}

// Conns returns the connections accepted so far, in accept order.
func (fs *fakeServer) Conns() []*fakeConn {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]*fakeConn(nil), fs.conns...)
}

// NumConns is the number of HTTP/2 connections accepted so far.
func (fs *fakeServer) NumConns() int { return len(fs.Conns()) }

// WaitConns waits until at least n connections were accepted.
func (fs *fakeServer) WaitConns(t testing.TB, n int) []*fakeConn {
	t.Helper()
	if !waitUntil(5*time.Second, func() bool { return fs.NumConns() >= n }) {
		t.Fatalf("fake server: %d connection(s) after 5s, want %d", fs.NumConns(), n)
	}
	return fs.Conns()
}

// Streams returns every request stream seen on every connection.
func (fs *fakeServer) Streams() []*fakeStream {
	var all []*fakeStream
	for _, c := range fs.Conns() {
		all = append(all, c.Streams()...)
	}
	return all
}

// StreamsForPath returns the streams, on any connection, whose :path is path.
func (fs *fakeServer) StreamsForPath(path string) []*fakeStream {
	var out []*fakeStream
	for _, s := range fs.Streams() {
		if s.Path() == path {
			out = append(out, s)
		}
	}
	return out
}

// Violations is the number of protocol violations reported so far.
func (fs *fakeServer) Violations() int {
	n := 0
	for _, c := range fs.Conns() {
		c.mu.Lock()
		n += len(c.violations)
		c.mu.Unlock()
	}
	return n
}

// ---------------------------------------------------------------------------
// Connection

type frameRec struct {
	Type     http2.FrameType
	Flags    http2.Flags
	StreamID uint32
	Length   uint32
}

type goAwayRec struct {
	LastStreamID uint32
	Code         http2.ErrCode
	Debug        string
}

type headerBlock struct {
	stream uint32
	end    bool
	frag   []byte
	conts  int
}

type fakeConn struct {
	fs    *fakeServer
	nc    net.Conn
	Index int

	// write side
	wmu    sync.Mutex
	fw     *http2.Framer
	enc    *hpack.Encoder
	encBuf bytes.Buffer

	// read-loop-only state
	dec *hpack.Decoder
	hb  *headerBlock

	mu     sync.Mutex
	cond   *sync.Cond
	dead   bool
	deadCh chan struct{}
	closng bool

	settingsSent bool
	applied      map[http2.SettingID]uint32
	unacked      []map[http2.SettingID]uint32
	settingsAcks int

	tableMax     uint32 // client's current HPACK table size, as signalled
	mustUpdate   bool   // next header block must start with a size update
	mustUpdateTo uint32

	clientSettings [][]http2.Setting
	clientInitWin  int64
	clientMaxFrame uint32
	connSendWin    int64

	connRecv    int64
	connGranted int64

	streams      map[uint32]*fakeStream
	order        []*fakeStream
	lastID       uint32
	open         int
	peak         int
	earlyHeaders int

	goawaySent    bool
	goawayLast    uint32
	goawayBarrier bool
	barrierPings  map[[8]byte]bool

	pings       map[[8]byte]chan struct{}
	pingSeq     uint64
	clientPings int
	ignorePings bool

	clientGoAways []goAwayRec
	frames        []frameRec
	violations    []string
}

func newFakeConn(fs *fakeServer, nc net.Conn) *fakeConn {
	c := &fakeConn{
		fs:             fs,
		nc:             nc,
		deadCh:         make(chan struct{}),
		applied:        map[http2.SettingID]uint32{},
		tableMax:       4096,
		clientInitWin:  65535,
		clientMaxFrame: 16384,
		connSendWin:    65535,
		connGranted:    65535,
		streams:        map[uint32]*fakeStream{},
		barrierPings:   map[[8]byte]bool{},
		pings:          map[[8]byte]chan struct{}{},
	}
	c.cond = sync.NewCond(&c.mu)
	c.fw = http2.NewFramer(nc, nil)
	c.fw.AllowIllegalWrites = true
	c.enc = hpack.NewEncoder(&c.encBuf)
	c.dec = hpack.NewDecoder(4096, nil)
	return c
}

// fail reports a protocol violation by the client.
func (c *fakeConn) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.violations = append(c.violations, msg)
	c.mu.Unlock()
	c.fs.t.Errorf("fake h2 server, conn %d: client violated the protocol: %s", c.Index, msg)
}

// boundLocked is the largest value of setting id that the client may be
// using now.
func (c *fakeConn) boundLocked(id http2.SettingID, def uint32) uint32 {
	v := def
	if x, ok := c.applied[id]; ok {
		v = x
	}
	for _, m := range c.unacked {
		if x, ok := m[id]; ok && x > v {
			v = x
		}
	}
	return v
}

func (c *fakeConn) sendFirstSettings(settings []http2.Setting) {
	c.mu.Lock()
	for _, s := range settings {
		c.applied[s.ID] = s.Val
		if s.ID == http2.SettingHeaderTableSize && s.Val < c.tableMax {
			c.mustUpdate, c.mustUpdateTo = true, s.Val
		}
	}
	c.unacked = append(c.unacked, map[http2.SettingID]uint32{}) // its ACK
	c.settingsSent = true
	c.mu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.fw.WriteSettings(settings...)
}

// WriteSettings sends a further SETTINGS frame.
func (c *fakeConn) WriteSettings(settings ...http2.Setting) error {
	m := map[http2.SettingID]uint32{}
	for _, s := range settings {
		m[s.ID] = s.Val
	}
	c.mu.Lock()
	c.unacked = append(c.unacked, m)
	c.mu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.fw.WriteSettings(settings...)
}

// WaitSettingsAcked waits until the client has ACKed every SETTINGS frame
// sent so far.
func (c *fakeConn) WaitSettingsAcked(t testing.TB) {
	t.Helper()
	ok := waitUntil(5*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.settingsSent && len(c.unacked) == 0
	})
	if !ok {
		t.Fatalf("client did not ACK the server's SETTINGS within 5s")
	}
}

// SettingsAcks is the number of SETTINGS ACKs the client sent.
func (c *fakeConn) SettingsAcks() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.settingsAcks
}

// ClientSettings returns the non-ACK SETTINGS frames the client sent.
func (c *fakeConn) ClientSettings() [][]http2.Setting {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]http2.Setting(nil), c.clientSettings...)
}

// GoAway sends GOAWAY. Streams above last are from then on ignored, as a
// real server does: the handlers' writes on them fail with errIgnored. The
// fake then sends a PING; once the client has ACKed it, the client has
// processed the GOAWAY, and a new stream on this connection is a violation.
func (c *fakeConn) GoAway(last uint32, code http2.ErrCode, debug string) error {
	var data [8]byte
	c.mu.Lock()
	c.goawaySent = true
	c.goawayLast = last
	for _, s := range c.order {
		if s.ID > last && !s.ignored {
			s.ignored = true
			if !s.closed {
				s.closed = true
				c.open--
			}
			s.closeGoneLocked()
		}
	}
	c.pingSeq++
	binary.BigEndian.PutUint64(data[:], 0xB0000000+c.pingSeq)
	c.barrierPings[data] = true
	c.cond.Broadcast()
	c.mu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.fw.WriteGoAway(last, code, []byte(debug)); err != nil {
		return err
	}
	return c.fw.WritePing(false, data)
}

// GoAwayProcessed reports whether the client has ACKed the PING sent after
// the GOAWAY.
func (c *fakeConn) GoAwayProcessed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.goawayBarrier
}

// Ping sends a PING and waits for its ACK.
func (c *fakeConn) Ping(timeout time.Duration) error {
	var data [8]byte
	_, _ = rand.Read(data[:])
	ch := make(chan struct{})
	c.mu.Lock()
	c.pings[data] = ch
	c.mu.Unlock()
	c.wmu.Lock()
	err := c.fw.WritePing(false, data)
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	select {
	case <-ch:
		return nil
	case <-c.deadCh:
		return errors.New("connection closed before the PING was ACKed")
	case <-time.After(timeout):
		return fmt.Errorf("PING not ACKed within %v", timeout)
	}
}

// SetIgnorePings makes the fake stop answering the client's PINGs.
func (c *fakeConn) SetIgnorePings(v bool) {
	c.mu.Lock()
	c.ignorePings = v
	c.mu.Unlock()
}

// ClientPings is the number of (non-ACK) PINGs the client sent.
func (c *fakeConn) ClientPings() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clientPings
}

// ClientMaxFrame is the client's SETTINGS_MAX_FRAME_SIZE.
func (c *fakeConn) ClientMaxFrame() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clientMaxFrame
}

// ClientGoAways returns the GOAWAY frames the client sent.
func (c *fakeConn) ClientGoAways() []goAwayRec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]goAwayRec(nil), c.clientGoAways...)
}

// WindowUpdate grants the client flow-control window (stream 0: the
// connection).
func (c *fakeConn) WindowUpdate(stream, incr uint32) error {
	c.mu.Lock()
	if stream == 0 {
		c.connGranted += int64(incr)
	} else if s := c.streams[stream]; s != nil {
		s.granted += int64(incr)
	}
	c.mu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.fw.WriteWindowUpdate(stream, incr)
}

// WriteRaw writes any frame.
func (c *fakeConn) WriteRaw(t http2.FrameType, flags http2.Flags, stream uint32, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.fw.WriteRawFrame(t, flags, stream, payload)
}

// WritePushPromise sends a PUSH_PROMISE on stream promising promised, with
// a header block encoded by the connection's encoder.
func (c *fakeConn) WritePushPromise(stream, promised uint32, fields []hpack.HeaderField) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.encBuf.Reset()
	for _, f := range fields {
		_ = c.enc.WriteField(f)
	}
	return c.fw.WritePushPromise(http2.PushPromiseParam{
		StreamID:      stream,
		PromiseID:     promised,
		BlockFragment: append([]byte(nil), c.encBuf.Bytes()...),
		EndHeaders:    true,
	})
}

// Close drops the TCP connection (without GOAWAY).
func (c *fakeConn) Close() {
	c.mu.Lock()
	c.closng = true
	c.mu.Unlock()
	c.nc.Close()
}

// Done is closed when the connection is gone (either side closed it).
func (c *fakeConn) Done() <-chan struct{} { return c.deadCh }

// Streams returns the request streams of this connection in opening order.
func (c *fakeConn) Streams() []*fakeStream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*fakeStream(nil), c.order...)
}

// StreamIDs returns the ids of the request streams in opening order.
func (c *fakeConn) StreamIDs() []uint32 {
	var ids []uint32
	for _, s := range c.Streams() {
		ids = append(ids, s.ID)
	}
	return ids
}

// Open is the number of streams open now, as far as the server knows.
func (c *fakeConn) Open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open
}

// Peak is the largest number of streams that were open at once since the
// connection started or ResetPeak was last called.
func (c *fakeConn) Peak() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peak
}

func (c *fakeConn) ResetPeak() {
	c.mu.Lock()
	c.peak = c.open
	c.mu.Unlock()
}

// EarlyHeaders is the number of streams opened before the server had sent
// its first SETTINGS.
func (c *fakeConn) EarlyHeaders() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.earlyHeaders
}

// Frames returns every frame the client sent, in order.
func (c *fakeConn) Frames() []frameRec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]frameRec(nil), c.frames...)
}

// ConnRecv is the number of flow-controlled bytes the client sent.
func (c *fakeConn) ConnRecv() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connRecv
}

func (c *fakeConn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closng
}

func (c *fakeConn) markDead() {
	c.mu.Lock()
	if !c.dead {
		c.dead = true
		for _, s := range c.order {
			s.closeGoneLocked()
		}
		close(c.deadCh)
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	c.nc.Close()
}

func (c *fakeConn) maybeCloseLocked(s *fakeStream) {
	if s.closed {
		return
	}
	if (s.remoteEnded && s.localEnded) || s.clientReset != nil || s.serverReset {
		s.closed = true
		c.open--
	}
}

var errConnDead = errors.New("fake: connection is gone")
var errIgnored = errors.New("fake: stream is above the GOAWAY last stream id; the server ignores it")
var errStreamReset = errors.New("fake: stream was reset")

// ---------------------------------------------------------------------------
// Read loop

func (c *fakeConn) readLoop() {
	defer c.markDead()
	pre := make([]byte, len(http2.ClientPreface))
	if n, err := io.ReadFull(c.nc, pre); err != nil {
		if n > 0 && !c.isClosing() {
			c.fail("reading the client connection preface: got %q then %v", pre[:n], err)
		}
		return
	}
	if string(pre) != http2.ClientPreface {
		c.fail("bad client connection preface %q", pre)
		return
	}
	fr := http2.NewFramer(nil, c.nc)
	fr.AllowIllegalReads = true
	fr.SetMaxReadFrameSize(1<<24 - 1)
	first := true
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			var ce http2.ConnectionError
			var se http2.StreamError
			if errors.As(err, &ce) || errors.As(err, &se) || errors.Is(err, http2.ErrFrameTooLarge) {
				if !c.isClosing() {
					c.fail("malformed frame: %v (%v)", err, fr.ErrorDetail())
				}
			}
			return
		}
		fh := f.Header()
		c.mu.Lock()
		c.frames = append(c.frames, frameRec{fh.Type, fh.Flags, fh.StreamID, fh.Length})
		maxFrame := c.boundLocked(http2.SettingMaxFrameSize, 16384)
		c.mu.Unlock()
		if first {
			first = false
			if fh.Type != http2.FrameSettings || fh.Flags.Has(http2.FlagSettingsAck) {
				c.fail("the client preface must be followed by a SETTINGS frame, got %v", fh)
				return
			}
		}
		if fh.Length > maxFrame {
			c.fail("%v frame of %d bytes on stream %d exceeds SETTINGS_MAX_FRAME_SIZE %d", fh.Type, fh.Length, fh.StreamID, maxFrame)
		}
		if c.hb != nil && (fh.Type != http2.FrameContinuation || fh.StreamID != c.hb.stream) {
			c.fail("header block on stream %d not followed directly by its CONTINUATION: got %v on stream %d", c.hb.stream, fh.Type, fh.StreamID)
			return
		}
		if !c.handle(f) {
			return
		}
	}
}

func (c *fakeConn) handle(f http2.Frame) bool {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.HeadersFrame:
		hb := &headerBlock{stream: f.StreamID, end: f.StreamEnded(), frag: append([]byte(nil), f.HeaderBlockFragment()...)}
		if f.HeadersEnded() {
			return c.onHeaderBlock(hb)
		}
		c.hb = hb
	case *http2.ContinuationFrame:
		if c.hb == nil {
			c.fail("CONTINUATION on stream %d without a preceding HEADERS", f.StreamID)
			return false
		}
		c.hb.frag = append(c.hb.frag, f.HeaderBlockFragment()...)
		c.hb.conts++
		if f.HeadersEnded() {
			hb := c.hb
			c.hb = nil
			return c.onHeaderBlock(hb)
		}
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.WindowUpdateFrame:
		c.onWindowUpdate(f)
	case *http2.RSTStreamFrame:
		c.onRST(f)
	case *http2.PingFrame:
		c.onPing(f)
	case *http2.GoAwayFrame:
		c.mu.Lock()
		c.clientGoAways = append(c.clientGoAways, goAwayRec{f.LastStreamID, f.ErrCode, string(f.DebugData())})
		c.mu.Unlock()
	case *http2.PushPromiseFrame:
		c.fail("client sent PUSH_PROMISE (RFC 9113 §8.4: a client cannot push)")
		return false
	case *http2.PriorityFrame:
		// Allowed in any state; ignored.
	default:
		// Unknown frame types are ignored (RFC 9113 §4.1).
	}
	return true
}

func (c *fakeConn) onSettings(f *http2.SettingsFrame) bool {
	if f.StreamID != 0 {
		c.fail("SETTINGS on stream %d", f.StreamID)
		return false
	}
	if f.IsAck() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.unacked) == 0 {
			c.violations = append(c.violations, "unsolicited SETTINGS ACK")
			c.fs.t.Errorf("fake h2 server, conn %d: client sent a SETTINGS ACK for no outstanding SETTINGS", c.Index)
			return true
		}
		m := c.unacked[0]
		c.unacked = c.unacked[1:]
		for id, v := range m {
			c.applied[id] = v
		}
		if v, ok := m[http2.SettingHeaderTableSize]; ok && v < c.tableMax {
			c.mustUpdate, c.mustUpdateTo = true, v
		}
		c.settingsAcks++
		c.cond.Broadcast()
		return true
	}
	var list []http2.Setting
	ok := true
	_ = f.ForeachSetting(func(s http2.Setting) error {
		list = append(list, s)
		if err := s.Valid(); err != nil {
			c.fail("invalid client setting %v: %v", s, err)
			ok = false
		}
		return nil
	})
	if !ok {
		return false
	}
	c.wmu.Lock()
	c.mu.Lock()
	c.clientSettings = append(c.clientSettings, list)
	for _, s := range list {
		switch s.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - c.clientInitWin
			c.clientInitWin = int64(s.Val)
			for _, st := range c.order {
				if !st.closed {
					st.sendWin += delta
				}
			}
		case http2.SettingMaxFrameSize:
			c.clientMaxFrame = s.Val
		case http2.SettingHeaderTableSize:
			c.enc.SetMaxDynamicTableSizeLimit(s.Val)
		}
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	err := c.fw.WriteSettingsAck()
	c.wmu.Unlock()
	return err == nil
}

// leadingSizeUpdates decodes the dynamic table size updates at the start of
// a header block (RFC 7541 §6.3).
func leadingSizeUpdates(b []byte) []uint64 {
	var out []uint64
	for len(b) > 0 && b[0]&0xe0 == 0x20 {
		v := uint64(b[0] & 0x1f)
		b = b[1:]
		if v == 0x1f {
			var m uint
			for {
				if len(b) == 0 {
					return out
				}
				x := b[0]
				b = b[1:]
				v += uint64(x&0x7f) << m
				m += 7
				if x&0x80 == 0 {
					break
				}
			}
		}
		out = append(out, v)
	}
	return out
}

func (c *fakeConn) onHeaderBlock(hb *headerBlock) bool {
	// HPACK state first: every block must be decoded, in order.
	c.mu.Lock()
	allowed := c.boundLocked(http2.SettingHeaderTableSize, 4096)
	ups := leadingSizeUpdates(hb.frag)
	if c.mustUpdate {
		if len(ups) == 0 || ups[len(ups)-1] > uint64(c.mustUpdateTo) {
			c.mu.Unlock()
			c.fail("SETTINGS_HEADER_TABLE_SIZE was lowered to %d but the next header block (stream %d) does not start with a dynamic table size update to at most that (RFC 7541 §4.2); updates: %v", c.mustUpdateTo, hb.stream, ups)
			c.mu.Lock()
		}
		c.mustUpdate = false
	}
	if len(ups) > 0 {
		c.tableMax = uint32(ups[len(ups)-1])
	}
	c.mu.Unlock()
	c.dec.SetAllowedMaxDynamicTableSize(allowed)
	fields, err := c.dec.DecodeFull(hb.frag)
	if err != nil {
		c.fail("HPACK decoding of the header block on stream %d failed (table size allowed %d): %v", hb.stream, allowed, err)
		return false
	}

	id := hb.stream
	c.mu.Lock()
	if s := c.streams[id]; s != nil || id <= c.lastID {
		// Trailers on an existing stream.
		defer c.mu.Unlock()
		if s == nil {
			c.violations = append(c.violations, "HEADERS on unused lower stream id")
			c.fs.t.Errorf("fake h2 server, conn %d: client sent HEADERS on stream %d, which is not above the last stream id %d (stream ids must increase)", c.Index, id, c.lastID)
			return true
		}
		if s.ignored || s.serverReset {
			return true
		}
		var problems []string
		switch {
		case s.clientReset != nil:
			problems = append(problems, "HEADERS after the client reset the stream")
		case s.remoteEnded:
			problems = append(problems, "HEADERS after END_STREAM")
		case !hb.end:
			problems = append(problems, "trailers HEADERS without END_STREAM")
		}
		for _, f := range fields {
			if f.IsPseudo() {
				problems = append(problems, "pseudo-header "+f.Name+" in trailers")
			}
			if strings.ToLower(f.Name) != f.Name {
				problems = append(problems, "upper-case field name "+f.Name)
			}
		}
		for _, p := range problems {
			c.violations = append(c.violations, p)
			c.fs.t.Errorf("fake h2 server, conn %d, stream %d: client violated the protocol: %s", c.Index, id, p)
		}
		s.trailers = fields
		if hb.end && !s.remoteEnded {
			c.endRemoteLocked(s)
		}
		return true
	}

	// A new stream.
	var problems []string
	if id%2 == 0 {
		problems = append(problems, fmt.Sprintf("client opened even stream id %d", id))
	}
	c.lastID = id
	if !c.settingsSent {
		c.earlyHeaders++
	}
	s := &fakeStream{
		c:             c,
		ID:            id,
		Fields:        fields,
		BlockSize:     len(hb.frag),
		Block:         hb.frag,
		Continuations: hb.conts,
		HeadersEnd:    hb.end,
		sendWin:       c.clientInitWin,
		endCh:         make(chan struct{}),
		goneCh:        make(chan struct{}),
		contentLength: -1,
	}
	if c.goawaySent && id > c.goawayLast {
		if c.goawayBarrier {
			problems = append(problems, fmt.Sprintf("client opened stream %d after it had processed GOAWAY(last stream %d) (RFC 9113 §6.8)", id, c.goawayLast))
		}
		s.ignored = true
		s.closed = true
		s.closeGoneLocked()
	} else {
		if bound := c.boundLocked(http2.SettingMaxConcurrentStreams, math.MaxUint32); uint64(c.open)+1 > uint64(bound) {
			problems = append(problems, fmt.Sprintf("client opened stream %d while %d streams were open; SETTINGS_MAX_CONCURRENT_STREAMS is %d", id, c.open, bound))
		}
		c.open++
		if c.open > c.peak {
			c.peak = c.open
		}
	}
	problems = append(problems, validateRequestFields(fields, s)...)
	c.streams[id] = s
	c.order = append(c.order, s)
	if hb.end {
		c.endRemoteLocked(s)
	}
	for _, p := range problems {
		c.violations = append(c.violations, p)
		c.fs.t.Errorf("fake h2 server, conn %d, stream %d: client violated the protocol: %s", c.Index, id, p)
	}
	ignored := s.ignored
	c.mu.Unlock()
	if !ignored {
		c.fs.wg.Add(1)
		go func() {
			defer c.fs.wg.Done()
			c.fs.opts.Handler(s)
		}()
	}
	return true
}

// endRemoteLocked records the client's END_STREAM on s.
func (c *fakeConn) endRemoteLocked(s *fakeStream) {
	s.remoteEnded = true
	if s.contentLength >= 0 && int64(s.body.Len()) != s.contentLength {
		msg := fmt.Sprintf("content-length %d but the request body had %d bytes (RFC 9113 §8.1.1)", s.contentLength, s.body.Len())
		c.violations = append(c.violations, msg)
		c.fs.t.Errorf("fake h2 server, conn %d, stream %d: client violated the protocol: %s", c.Index, s.ID, msg)
	}
	close(s.endCh)
	c.maybeCloseLocked(s)
	c.cond.Broadcast()
}

var connectionSpecific = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true,
	"transfer-encoding": true, "upgrade": true,
}

// validateRequestFields checks a request header block (RFC 9113 §8.2, §8.3).
func validateRequestFields(fields []hpack.HeaderField, s *fakeStream) []string {
	var problems []string
	pseudo := map[string]string{}
	seenRegular := false
	for _, f := range fields {
		if f.Name == "" {
			problems = append(problems, "empty field name")
			continue
		}
		if strings.ToLower(f.Name) != f.Name {
			problems = append(problems, fmt.Sprintf("upper-case field name %q (RFC 9113 §8.2.1)", f.Name))
		}
		if f.IsPseudo() {
			if seenRegular {
				problems = append(problems, fmt.Sprintf("pseudo-header %s after a regular field (RFC 9113 §8.3)", f.Name))
			}
			switch f.Name {
			case ":method", ":scheme", ":authority", ":path":
			default:
				problems = append(problems, fmt.Sprintf("unknown request pseudo-header %s", f.Name))
			}
			if _, dup := pseudo[f.Name]; dup {
				problems = append(problems, fmt.Sprintf("duplicate pseudo-header %s", f.Name))
			}
			pseudo[f.Name] = f.Value
			continue
		}
		seenRegular = true
		if connectionSpecific[f.Name] {
			problems = append(problems, fmt.Sprintf("connection-specific field %q (RFC 9113 §8.2.2)", f.Name))
		}
		if f.Name == "te" && f.Value != "trailers" {
			problems = append(problems, fmt.Sprintf("te: %q (only \"trailers\" is allowed)", f.Value))
		}
		if f.Name == "content-length" {
			n, err := strconv.ParseInt(f.Value, 10, 64)
			if err != nil || n < 0 {
				problems = append(problems, fmt.Sprintf("bad content-length %q", f.Value))
			} else if s.contentLength >= 0 && s.contentLength != n {
				problems = append(problems, "conflicting content-length fields")
			} else {
				s.contentLength = n
			}
		}
	}
	for _, name := range []string{":method", ":scheme", ":authority", ":path"} {
		if _, ok := pseudo[name]; !ok {
			problems = append(problems, "missing pseudo-header "+name)
		}
	}
	if v, ok := pseudo[":scheme"]; ok && v != "https" {
		problems = append(problems, fmt.Sprintf(":scheme %q, want https", v))
	}
	if v, ok := pseudo[":path"]; ok && !strings.HasPrefix(v, "/") {
		problems = append(problems, fmt.Sprintf(":path %q does not start with /", v))
	}
	if v, ok := pseudo[":authority"]; ok && v == "" {
		problems = append(problems, "empty :authority")
	}
	for _, f := range fields {
		if f.Name == "host" && f.Value != pseudo[":authority"] {
			problems = append(problems, fmt.Sprintf("host %q differs from :authority %q (RFC 9113 §8.3.1)", f.Value, pseudo[":authority"]))
		}
	}
	return problems
}

func (c *fakeConn) onData(f *http2.DataFrame) bool {
	id := f.StreamID
	n := int64(f.Length)
	var problems []string
	c.mu.Lock()
	c.connRecv += n
	if c.connRecv > c.connGranted {
		problems = append(problems, fmt.Sprintf("DATA beyond the connection flow-control window: %d bytes sent, %d granted", c.connRecv, c.connGranted))
	}
	s := c.streams[id]
	streamUpdate := false
	switch {
	case s == nil && id > c.lastID:
		problems = append(problems, fmt.Sprintf("DATA on idle stream %d", id))
	case s == nil:
		problems = append(problems, fmt.Sprintf("DATA on stream %d, which was never opened", id))
	case s.clientReset != nil:
		problems = append(problems, fmt.Sprintf("DATA on stream %d after the client reset it", id))
	case s.remoteEnded:
		problems = append(problems, fmt.Sprintf("DATA on stream %d after END_STREAM", id))
	case s.ignored || s.serverReset:
		// In flight when the server gave up on the stream: only the
		// connection window counts.
	default:
		s.recv += n
		bound := int64(c.boundLocked(http2.SettingInitialWindowSize, 65535)) + s.granted
		if s.recv > bound {
			problems = append(problems, fmt.Sprintf("DATA beyond the stream %d flow-control window: %d bytes sent, at most %d allowed (initial window + WINDOW_UPDATEs)", id, s.recv, bound))
		}
		s.body.Write(f.Data())
		s.dataFrames = append(s.dataFrames, int(f.Length))
		if s.contentLength >= 0 && int64(s.body.Len()) > s.contentLength {
			problems = append(problems, fmt.Sprintf("request body longer than content-length %d", s.contentLength))
		}
		if f.StreamEnded() {
			c.endRemoteLocked(s)
		} else {
			streamUpdate = true
		}
		c.cond.Broadcast()
	}
	manual := c.fs.opts.ManualFlow
	if !manual && n > 0 {
		c.connGranted += n
		if streamUpdate {
			s.granted += n
		}
	}
	for _, p := range problems {
		c.violations = append(c.violations, p)
		c.fs.t.Errorf("fake h2 server, conn %d: client violated the protocol: %s", c.Index, p)
	}
	c.mu.Unlock()
	if !manual && n > 0 {
		c.wmu.Lock()
		err := c.fw.WriteWindowUpdate(0, uint32(n))
		if err == nil && streamUpdate {
			err = c.fw.WriteWindowUpdate(id, uint32(n))
		}
		c.wmu.Unlock()
		if err != nil {
			return false
		}
	}
	return true
}

func (c *fakeConn) onWindowUpdate(f *http2.WindowUpdateFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.cond.Broadcast()
	if f.StreamID == 0 {
		c.connSendWin += int64(f.Increment)
		if c.connSendWin > 1<<31-1 {
			c.violations = append(c.violations, "conn window overflow")
			c.fs.t.Errorf("fake h2 server, conn %d: client's connection WINDOW_UPDATE overflows the window past 2^31-1 (RFC 9113 §6.9.1)", c.Index)
		}
		return
	}
	s := c.streams[f.StreamID]
	if s == nil {
		if f.StreamID > c.lastID {
			c.violations = append(c.violations, "WINDOW_UPDATE on idle stream")
			c.fs.t.Errorf("fake h2 server, conn %d: client sent WINDOW_UPDATE on idle stream %d", c.Index, f.StreamID)
		}
		return
	}
	if s.closed {
		return
	}
	s.sendWin += int64(f.Increment)
	if s.sendWin > 1<<31-1 {
		c.violations = append(c.violations, "stream window overflow")
		c.fs.t.Errorf("fake h2 server, conn %d: client's WINDOW_UPDATE overflows stream %d's window past 2^31-1", c.Index, f.StreamID)
	}
}

func (c *fakeConn) onRST(f *http2.RSTStreamFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.streams[f.StreamID]
	if s == nil {
		c.violations = append(c.violations, "RST_STREAM on unknown stream")
		c.fs.t.Errorf("fake h2 server, conn %d: client sent RST_STREAM(%v) on stream %d, which it never opened", c.Index, f.ErrCode, f.StreamID)
		return
	}
	if s.clientReset != nil {
		c.violations = append(c.violations, "second RST_STREAM")
		c.fs.t.Errorf("fake h2 server, conn %d: client sent a second RST_STREAM(%v) on stream %d, already reset with %v", c.Index, f.ErrCode, f.StreamID, *s.clientReset)
		return
	}
	code := f.ErrCode
	s.clientReset = &code
	c.maybeCloseLocked(s)
	s.closeGoneLocked()
	c.cond.Broadcast()
}

func (c *fakeConn) onPing(f *http2.PingFrame) {
	if f.StreamID != 0 {
		c.fail("PING on stream %d", f.StreamID)
		return
	}
	c.mu.Lock()
	if f.IsAck() {
		defer c.mu.Unlock()
		if c.barrierPings[f.Data] {
			delete(c.barrierPings, f.Data)
			c.goawayBarrier = true
			return
		}
		if ch, ok := c.pings[f.Data]; ok {
			delete(c.pings, f.Data)
			close(ch)
			return
		}
		c.violations = append(c.violations, "unknown PING ACK")
		c.fs.t.Errorf("fake h2 server, conn %d: client ACKed a PING the server never sent (data %x)", c.Index, f.Data)
		return
	}
	c.clientPings++
	ignore := c.ignorePings
	c.mu.Unlock()
	if !ignore {
		c.wmu.Lock()
		_ = c.fw.WritePing(true, f.Data)
		c.wmu.Unlock()
	}
}

// ---------------------------------------------------------------------------
// Streams

type fakeStream struct {
	c             *fakeConn
	ID            uint32
	Fields        []hpack.HeaderField
	BlockSize     int    // bytes of the request's HPACK block
	Block         []byte // the request's HPACK block as sent
	Continuations int    // CONTINUATION frames after its HEADERS
	HeadersEnd    bool   // END_STREAM was on HEADERS

	// guarded by c.mu
	ignored       bool
	body          bytes.Buffer
	dataFrames    []int
	trailers      []hpack.HeaderField
	remoteEnded   bool
	localEnded    bool
	closed        bool
	clientReset   *http2.ErrCode
	serverReset   bool
	recv, granted int64
	sendWin       int64
	contentLength int64
	endCh         chan struct{}
	goneCh        chan struct{}
	goneClosed    bool
}

func (s *fakeStream) closeGoneLocked() {
	if !s.goneClosed {
		s.goneClosed = true
		close(s.goneCh)
	}
}

func (s *fakeStream) pseudo(name string) string {
	for _, f := range s.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

func (s *fakeStream) Path() string      { return s.pseudo(":path") }
func (s *fakeStream) Method() string    { return s.pseudo(":method") }
func (s *fakeStream) Authority() string { return s.pseudo(":authority") }
func (s *fakeStream) Scheme() string    { return s.pseudo(":scheme") }

// Header returns the first regular field called name ("" if none).
func (s *fakeStream) Header(name string) string {
	for _, f := range s.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// Field returns the first field called name.
func (s *fakeStream) Field(name string) (hpack.HeaderField, bool) {
	for _, f := range s.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return hpack.HeaderField{}, false
}

// Conn is the connection the stream is on.
func (s *fakeStream) Conn() *fakeConn { return s.c }

// Gone is closed when the stream is reset by either side, ignored after a
// GOAWAY, or its connection is gone.
func (s *fakeStream) Gone() <-chan struct{} { return s.goneCh }

// Ended is closed when the client has sent END_STREAM.
func (s *fakeStream) Ended() <-chan struct{} { return s.endCh }

// ReadBody waits for the whole request body.
func (s *fakeStream) ReadBody() ([]byte, error) {
	select {
	case <-s.endCh:
	case <-s.goneCh:
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if !s.remoteEnded {
		return nil, errStreamReset
	}
	return append([]byte(nil), s.body.Bytes()...), nil
}

// BodyLen is the number of body bytes received so far.
func (s *fakeStream) BodyLen() int {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.body.Len()
}

// RecvFlow is the number of flow-controlled bytes received on the stream.
func (s *fakeStream) RecvFlow() int64 {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.recv
}

// DataFrames returns the lengths of the DATA frames received.
func (s *fakeStream) DataFrames() []int {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return append([]int(nil), s.dataFrames...)
}

// ClientReset returns the code of the client's RST_STREAM, if it sent one.
func (s *fakeStream) ClientReset() (http2.ErrCode, bool) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.clientReset == nil {
		return 0, false
	}
	return *s.clientReset, true
}

// ClosedByClient reports whether the client has closed its side of the
// stream, with END_STREAM or RST_STREAM.
func (s *fakeStream) ClosedByClient() bool {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.remoteEnded || s.clientReset != nil
}

// WriteDataFrameRaw sends p as one DATA frame whatever its size (for
// testing the client's MAX_FRAME_SIZE check), within the flow-control
// windows.
func (s *fakeStream) WriteDataFrameRaw(p []byte, endStream bool) error {
	c := s.c
	c.mu.Lock()
	for {
		if err := s.writableLocked(); err != nil {
			c.mu.Unlock()
			return err
		}
		if min(c.connSendWin, s.sendWin) >= int64(len(p)) {
			break
		}
		c.cond.Wait()
	}
	c.connSendWin -= int64(len(p))
	s.sendWin -= int64(len(p))
	if endStream {
		s.localEnded = true
		c.maybeCloseLocked(s)
	}
	c.mu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.fw.WriteData(s.ID, endStream, p)
}

// WaitClientReset waits for the client's RST_STREAM.
func (s *fakeStream) WaitClientReset(timeout time.Duration) (http2.ErrCode, bool) {
	var code http2.ErrCode
	var ok bool
	waitUntil(timeout, func() bool {
		code, ok = s.ClientReset()
		return ok
	})
	return code, ok
}

func (s *fakeStream) writableLocked() error {
	switch {
	case s.c.dead:
		return errConnDead
	case s.ignored:
		return errIgnored
	case s.clientReset != nil || s.serverReset:
		return errStreamReset
	case s.localEnded:
		return errors.New("fake: stream already ended by the server")
	}
	return nil
}

// WriteHeaders sends a header block, split into frames of the client's
// MAX_FRAME_SIZE.
func (s *fakeStream) WriteHeaders(fields []hpack.HeaderField, endStream bool) error {
	return s.WriteHeadersSplit(fields, endStream, 0)
}

// WriteHeadersSplit sends a header block as HEADERS plus CONTINUATION
// frames of at most frag bytes each (0: the client's MAX_FRAME_SIZE).
func (s *fakeStream) WriteHeadersSplit(fields []hpack.HeaderField, endStream bool, frag int) error {
	c := s.c
	c.mu.Lock()
	if err := s.writableLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	if endStream {
		// Before the write: the client cannot reuse the slot before it
		// sees the frame.
		s.localEnded = true
		c.maybeCloseLocked(s)
	}
	maxFrame := int(c.clientMaxFrame)
	c.mu.Unlock()
	if frag <= 0 || frag > maxFrame {
		frag = maxFrame
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.encBuf.Reset()
	for _, f := range fields {
		_ = c.enc.WriteField(f)
	}
	block := append([]byte(nil), c.encBuf.Bytes()...)
	first := true
	for first || len(block) > 0 {
		n := min(frag, len(block))
		chunk := block[:n]
		block = block[n:]
		var err error
		if first {
			err = c.fw.WriteHeaders(http2.HeadersFrameParam{StreamID: s.ID, BlockFragment: chunk, EndStream: endStream, EndHeaders: len(block) == 0})
			first = false
		} else {
			err = c.fw.WriteContinuation(s.ID, len(block) == 0, chunk)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// WriteData sends p as DATA frames, respecting the client's MAX_FRAME_SIZE
// and flow-control windows (it blocks until the client grants window).
func (s *fakeStream) WriteData(p []byte, endStream bool) error {
	return s.WriteDataPadded(p, endStream, 0)
}

// WriteDataPadded is WriteData with pad bytes of padding on every frame.
func (s *fakeStream) WriteDataPadded(p []byte, endStream bool, pad int) error {
	c := s.c
	overhead := 0
	var padding []byte
	if pad > 0 {
		overhead = pad + 1
		padding = make([]byte, pad)
	}
	for {
		c.mu.Lock()
		var n int
		for {
			if err := s.writableLocked(); err != nil {
				c.mu.Unlock()
				return err
			}
			if len(p) == 0 {
				n = 0
				break
			}
			avail := min(c.connSendWin, s.sendWin) - int64(overhead)
			if avail > 0 {
				n = int(min(int64(len(p)), int64(int(c.clientMaxFrame)-overhead), avail))
				break
			}
			c.cond.Wait()
		}
		last := n == len(p)
		pd := padding
		if n == 0 {
			pd = nil
		} else {
			c.connSendWin -= int64(n + overhead)
			s.sendWin -= int64(n + overhead)
		}
		if last && endStream {
			s.localEnded = true
			c.maybeCloseLocked(s)
		}
		c.mu.Unlock()
		c.wmu.Lock()
		err := c.fw.WriteDataPadded(s.ID, last && endStream, p[:n], pd)
		c.wmu.Unlock()
		if err != nil || last {
			return err
		}
		p = p[n:]
	}
}

// Respond sends a complete response: :status, the kv header pairs, body.
func (s *fakeStream) Respond(status int, body []byte, kv ...string) error {
	fields := []hpack.HeaderField{{Name: ":status", Value: strconv.Itoa(status)}}
	for i := 0; i+1 < len(kv); i += 2 {
		fields = append(fields, hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	if len(body) == 0 {
		return s.WriteHeaders(fields, true)
	}
	if err := s.WriteHeaders(fields, false); err != nil {
		return err
	}
	return s.WriteData(body, true)
}

// Reset sends RST_STREAM.
func (s *fakeStream) Reset(code http2.ErrCode) error {
	c := s.c
	c.mu.Lock()
	switch {
	case c.dead:
		c.mu.Unlock()
		return errConnDead
	case s.ignored:
		c.mu.Unlock()
		return errIgnored
	case s.closed:
		c.mu.Unlock()
		return errStreamReset
	}
	s.serverReset = true
	c.maybeCloseLocked(s)
	s.closeGoneLocked()
	c.cond.Broadcast()
	c.mu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.fw.WriteRSTStream(s.ID, code)
}

// echoHandler answers 200 with the request's path in x-echo-path and
// apns-id, and as the response body echoBody of the request body.
func echoHandler(s *fakeStream) {
	body, err := s.ReadBody()
	if err != nil {
		return
	}
	_ = s.Respond(200, echoBody(s.Path(), body), "x-echo-path", s.Path(), "apns-id", "id-"+s.Path(), "x-echo-len", strconv.Itoa(len(body)))
}

// echoBody is what echoHandler answers for a request body: the body itself,
// the path for an empty body, and the SHA-256 of a body over 16 KiB (the
// client refuses answers over 64 KiB).
func echoBody(path string, body []byte) []byte {
	switch {
	case len(body) == 0:
		return []byte(path)
	case len(body) > 16<<10:
		sum := sha256.Sum256(body)
		return []byte("sha256:" + hex.EncodeToString(sum[:]))
	}
	return body
}

// ---------------------------------------------------------------------------
// Helpers

// waitUntil polls cond until it is true or timeout passes.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// sortedIDs returns ids sorted ascending.
func sortedIDs(ids []uint32) []uint32 {
	out := append([]uint32(nil), ids...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// ---------------------------------------------------------------------------
// Self-test: the fake detects violations

// recordingTB captures the fake's Errorf reports instead of failing.
type recordingTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recordingTB) has(sub string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.errs {
		if strings.Contains(e, sub) {
			return true
		}
	}
	return false
}

func (r *recordingTB) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

// rawClient is a hand-driven HTTP/2 client for the self-test.
type rawClient struct {
	t   testing.TB
	nc  *tls.Conn
	wmu sync.Mutex
	fw  *http2.Framer
	buf bytes.Buffer
	enc *hpack.Encoder
}

func dialRaw(t testing.TB, fs *fakeServer) *rawClient {
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
		opts fakeOptions
		run  func(rc *rawClient, fs *fakeServer)
		want string
	}{
		{"even stream id", fakeOptions{}, func(rc *rawClient, _ *fakeServer) {
			rc.headers(2, true, reqFields("/")...)
		}, "even stream id"},
		{"decreasing stream id", fakeOptions{}, func(rc *rawClient, _ *fakeServer) {
			rc.headers(5, true, reqFields("/")...)
			rc.headers(3, true, reqFields("/")...)
		}, "not above the last stream id"},
		{"too many streams", fakeOptions{Settings: settings(sMCS, 1), Handler: func(s *fakeStream) { <-s.Gone() }}, func(rc *rawClient, _ *fakeServer) {
			rc.headers(1, false, reqFields("/")...)
			rc.headers(3, false, reqFields("/")...)
		}, "SETTINGS_MAX_CONCURRENT_STREAMS is 1"},
		{"stream window", fakeOptions{Settings: settings(sIWS, 10), ManualFlow: true}, func(rc *rawClient, _ *fakeServer) {
			rc.headers(1, false, reqFields("/")...)
			rc.write(func(fw *http2.Framer) { _ = fw.WriteData(1, true, make([]byte, 11)) })
		}, "beyond the stream 1 flow-control window"},
		{"connection window", fakeOptions{Settings: settings(sIWS, 1<<20), ManualFlow: true}, func(rc *rawClient, _ *fakeServer) {
			rc.headers(1, false, reqFields("/")...)
			for range 4 {
				rc.write(func(fw *http2.Framer) { _ = fw.WriteData(1, false, make([]byte, 16384)) })
			}
		}, "beyond the connection flow-control window"},
		{"frame size", fakeOptions{Settings: settings(sIWS, 1<<20)}, func(rc *rawClient, _ *fakeServer) {
			rc.headers(1, false, reqFields("/")...)
			rc.write(func(fw *http2.Framer) { _ = fw.WriteData(1, true, make([]byte, 16385)) })
		}, "exceeds SETTINGS_MAX_FRAME_SIZE"},
		{"interleaved header block", fakeOptions{}, func(rc *rawClient, _ *fakeServer) {
			b := rc.block(reqFields("/")...)
			rc.write(func(fw *http2.Framer) {
				_ = fw.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:3], EndStream: true})
				_ = fw.WriteData(1, true, []byte("x"))
			})
		}, "not followed directly by its CONTINUATION"},
		{"upper-case name", fakeOptions{}, func(rc *rawClient, _ *fakeServer) {
			rc.headers(1, true, reqFields("/", "X-Upper", "v")...)
		}, "upper-case field name"},
		{"missing pseudo-header", fakeOptions{}, func(rc *rawClient, _ *fakeServer) {
			rc.headers(1, true, ":method", "GET", ":scheme", "https", ":path", "/")
		}, "missing pseudo-header :authority"},
		{"pseudo-header after regular", fakeOptions{}, func(rc *rawClient, _ *fakeServer) {
			rc.headers(1, true, ":method", "GET", ":scheme", "https", "x-a", "b", ":authority", "h", ":path", "/")
		}, "after a regular field"},
		{"connection-specific field", fakeOptions{}, func(rc *rawClient, _ *fakeServer) {
			rc.headers(1, true, reqFields("/", "connection", "close")...)
		}, "connection-specific field"},
		{"content-length mismatch", fakeOptions{}, func(rc *rawClient, _ *fakeServer) {
			rc.headers(1, false, reqFields("/", "content-length", "5")...)
			rc.write(func(fw *http2.Framer) { _ = fw.WriteData(1, true, []byte("abc")) })
		}, "content-length 5 but the request body had 3 bytes"},
		{"DATA after END_STREAM", fakeOptions{Handler: func(s *fakeStream) { <-s.Gone() }}, func(rc *rawClient, _ *fakeServer) {
			rc.headers(1, true, reqFields("/")...)
			rc.write(func(fw *http2.Framer) { _ = fw.WriteData(1, true, []byte("x")) })
		}, "after END_STREAM"},
		{"no table size update", fakeOptions{Settings: settings(sTable, 0)}, func(rc *rawClient, _ *fakeServer) {
			rc.headers(1, true, reqFields("/")...)
		}, "dynamic table size update"},
		{"stream after GOAWAY", fakeOptions{Handler: func(s *fakeStream) { <-s.Gone() }}, func(rc *rawClient, fs *fakeServer) {
			rc.headers(1, false, reqFields("/")...)
			c := fs.WaitConns(rc.t, 1)[0]
			_ = c.GoAway(1, http2.ErrCodeNo, "")
			waitUntil(2*time.Second, c.GoAwayProcessed)
			rc.headers(3, true, reqFields("/")...)
		}, "after it had processed GOAWAY"},
		{"unknown PING ACK", fakeOptions{}, func(rc *rawClient, _ *fakeServer) {
			rc.write(func(fw *http2.Framer) { _ = fw.WritePing(true, [8]byte{1, 2, 3}) })
		}, "never sent"},
		{"second RST_STREAM", fakeOptions{Handler: func(s *fakeStream) { <-s.Gone() }}, func(rc *rawClient, _ *fakeServer) {
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
			rec := &recordingTB{TB: t}
			fs := newFakeServer(rec, tc.opts)
			rc := dialRaw(t, fs)
			tc.run(rc, fs)
			if !waitUntil(3*time.Second, func() bool { return rec.has(tc.want) }) {
				t.Errorf("fake did not report %q; it reported %q", tc.want, rec.all())
			}
		})
	}

	// And a well-behaved exchange is reported clean.
	t.Run("clean", func(t *testing.T) {
		t.Parallel()
		rec := &recordingTB{TB: t}
		fs := newFakeServer(rec, fakeOptions{Settings: settings(sMCS, 2, sIWS, 100)})
		rc := dialRaw(t, fs)
		rc.headers(1, false, reqFields("/a", "content-length", "100")...)
		rc.write(func(fw *http2.Framer) { _ = fw.WriteData(1, true, make([]byte, 100)) })
		rc.headers(3, true, reqFields("/b")...)
		waitUntil(2*time.Second, func() bool { return len(fs.Streams()) == 2 })
		time.Sleep(100 * time.Millisecond)
		if errs := rec.all(); len(errs) != 0 {
			t.Errorf("fake reported violations for a correct exchange: %q", errs)
		}
	})
}
