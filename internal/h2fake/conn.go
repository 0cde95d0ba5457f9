package h2fake

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// FrameRecord is the header of one frame the client sent (Length in bytes
// of payload).
type FrameRecord struct {
	Type     http2.FrameType
	Flags    http2.Flags
	StreamID uint32
	Length   uint32
}

// GoAwayRecord is a GOAWAY frame the client sent.
type GoAwayRecord struct {
	LastStreamID uint32
	Code         http2.ErrCode
	Debug        string
}

// Conn is the server's side of one client connection. Its methods are safe
// for concurrent use (from handlers and the test); they report what the fake
// has seen so far. The write methods write one frame, or one frame sequence,
// at a time and do no checks of their own: a test may make the server
// misbehave on purpose.
type Conn struct {
	fs    *Server
	nc    net.Conn
	Index int // the connection's place in accept order, from 0

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

	streams      map[uint32]*Stream
	order        []*Stream
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

	clientGoAways []GoAwayRecord
	frames        []FrameRecord
	violations    []string
}

func newConn(fs *Server, nc net.Conn) *Conn {
	c := &Conn{
		fs:             fs,
		nc:             nc,
		deadCh:         make(chan struct{}),
		applied:        map[http2.SettingID]uint32{},
		tableMax:       4096,
		clientInitWin:  65535,
		clientMaxFrame: 16384,
		connSendWin:    65535,
		connGranted:    65535,
		streams:        map[uint32]*Stream{},
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
func (c *Conn) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.violations = append(c.violations, msg)
	c.mu.Unlock()
	c.fs.t.Errorf("fake h2 server, conn %d: client violated the protocol: %s", c.Index, msg)
}

// boundLocked is the largest value of setting id that the client may be
// using now.
func (c *Conn) boundLocked(id http2.SettingID, def uint32) uint32 {
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

// WriteFirstSettings sends the server's first SETTINGS frame, binding on the
// client at once (see the package doc). The server sends it itself unless
// Options.NoSettings is set; a test that sets it may send it from
// Options.OnConn, before or after frames of its own.
func (c *Conn) WriteFirstSettings(settings ...http2.Setting) error {
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
	return c.fw.WriteSettings(settings...)
}

// WriteSettings sends a further SETTINGS frame.
func (c *Conn) WriteSettings(settings ...http2.Setting) error {
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

// WaitSettingsAcked waits up to 5s until the client has ACKed every
// SETTINGS frame sent so far, and fails t if it has not.
func (c *Conn) WaitSettingsAcked(t testing.TB) {
	t.Helper()
	ok := WaitUntil(5*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.settingsSent && len(c.unacked) == 0
	})
	if !ok {
		t.Fatalf("client did not ACK the server's SETTINGS within 5s")
	}
}

// SettingsAcks is the number of SETTINGS ACKs the client sent.
func (c *Conn) SettingsAcks() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.settingsAcks
}

// ClientSettings returns the non-ACK SETTINGS frames the client sent.
func (c *Conn) ClientSettings() [][]http2.Setting {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]http2.Setting(nil), c.clientSettings...)
}

// GoAway sends GOAWAY. Streams above last are from then on ignored, as a
// real server does: the handlers' writes on them fail with ErrIgnored. The
// fake then sends a PING; once the client has ACKed it, the client has
// processed the GOAWAY, and a new stream on this connection is a violation.
func (c *Conn) GoAway(last uint32, code http2.ErrCode, debug string) error {
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
func (c *Conn) GoAwayProcessed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.goawayBarrier
}

// Ping sends a PING and waits up to timeout for its ACK.
func (c *Conn) Ping(timeout time.Duration) error {
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
func (c *Conn) SetIgnorePings(v bool) {
	c.mu.Lock()
	c.ignorePings = v
	c.mu.Unlock()
}

// ClientPings is the number of (non-ACK) PINGs the client sent.
func (c *Conn) ClientPings() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clientPings
}

// ClientMaxFrame is the client's SETTINGS_MAX_FRAME_SIZE.
func (c *Conn) ClientMaxFrame() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clientMaxFrame
}

// ClientGoAways returns the GOAWAY frames the client sent.
func (c *Conn) ClientGoAways() []GoAwayRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]GoAwayRecord(nil), c.clientGoAways...)
}

// WindowUpdate grants the client flow-control window (stream 0: the
// connection).
func (c *Conn) WindowUpdate(stream, incr uint32) error {
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
func (c *Conn) WriteRaw(t http2.FrameType, flags http2.Flags, stream uint32, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.fw.WriteRawFrame(t, flags, stream, payload)
}

// WritePushPromise sends a PUSH_PROMISE on stream promising promised, with
// a header block encoded by the connection's encoder.
func (c *Conn) WritePushPromise(stream, promised uint32, fields []hpack.HeaderField) error {
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
func (c *Conn) Close() {
	c.mu.Lock()
	c.closng = true
	c.mu.Unlock()
	c.nc.Close()
}

// Done is closed when the connection is gone (either side closed it).
func (c *Conn) Done() <-chan struct{} { return c.deadCh }

// Streams returns the request streams of this connection in opening order.
func (c *Conn) Streams() []*Stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Stream(nil), c.order...)
}

// StreamIDs returns the ids of the request streams in opening order.
func (c *Conn) StreamIDs() []uint32 {
	var ids []uint32
	for _, s := range c.Streams() {
		ids = append(ids, s.ID)
	}
	return ids
}

// Open is the number of streams open now, as far as the server knows.
func (c *Conn) Open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open
}

// Peak is the largest number of streams that were open at once since the
// connection started or ResetPeak was last called.
func (c *Conn) Peak() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peak
}

// ResetPeak starts Peak afresh from the number of streams open now.
func (c *Conn) ResetPeak() {
	c.mu.Lock()
	c.peak = c.open
	c.mu.Unlock()
}

// EarlyHeaders is the number of streams opened before the server had sent
// its first SETTINGS.
func (c *Conn) EarlyHeaders() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.earlyHeaders
}

// Frames returns every frame the client sent, in order.
func (c *Conn) Frames() []FrameRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]FrameRecord(nil), c.frames...)
}

// ConnRecv is the number of flow-controlled bytes the client sent.
func (c *Conn) ConnRecv() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connRecv
}

func (c *Conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closng
}

func (c *Conn) markDead() {
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

func (c *Conn) maybeCloseLocked(s *Stream) {
	if s.closed {
		return
	}
	if (s.remoteEnded && s.localEnded) || s.clientReset != nil || s.serverReset {
		s.closed = true
		c.open--
	}
}

// Errors the Stream write methods return when the server may not write on
// the stream any more.
var (
	// ErrConnDead: the connection is gone.
	ErrConnDead = errors.New("fake: connection is gone")
	// ErrIgnored: the stream is above the last stream id of a GOAWAY the
	// server sent (see Conn.GoAway).
	ErrIgnored = errors.New("fake: stream is above the GOAWAY last stream id; the server ignores it")
	// ErrStreamReset: either side reset the stream.
	ErrStreamReset = errors.New("fake: stream was reset")
)
