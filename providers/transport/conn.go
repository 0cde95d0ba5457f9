package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Limits of the client side of a connection.
const (
	// maxResponseBody bounds the body kept per stream. Push providers
	// answer with at most a few hundred bytes; a larger answer is an error,
	// not something to hold in memory for a thousand streams at once.
	maxResponseBody = 64 << 10
	// maxResponseHeaders bounds a decoded response header list.
	maxResponseHeaders = 64 << 10
	// connWindow is the connection receive window opened at the start and
	// topped up after every half of it is consumed.
	connWindow = 1 << 20
	// yieldBelow is the queue size below which the writer yields once
	// before writing, so that more requests share the write.
	yieldBelow = 16 << 10
	// maxPending bounds the bytes queued for the socket before senders wait.
	maxPending = 256 << 10
	// sweepEvery is how often a connection checks request deadlines, waiters'
	// contexts and its PING health. It is the resolution of RequestTimeout.
	sweepEvery = 100 * time.Millisecond
	// maxStreamID is the last stream id a client may use (RFC 9113 5.1.1).
	maxStreamID = 1<<31 - 1
)

var clientPreface = []byte(http2.ClientPreface)

// errNoH2 is a server that did not negotiate HTTP/2 in the TLS handshake.
var errNoH2 = errors.New("server did not negotiate HTTP/2")

// timeoutError is a request that outlived Options.RequestTimeout. It is a
// net.Error with Timeout() true and also matches context.DeadlineExceeded.
type timeoutError struct{ after time.Duration }

func (e timeoutError) Error() string {
	return fmt.Sprintf("no answer within the request timeout of %s", e.after)
}
func (timeoutError) Timeout() bool        { return true }
func (timeoutError) Temporary() bool      { return true }
func (timeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// flowControlError is a connection error of code FLOW_CONTROL_ERROR.
type flowControlError string

func (e flowControlError) Error() string { return string(e) }

// unprocessedError marks a request the server certainly did not process: it
// was never written, refused with REFUSED_STREAM, or above a GOAWAY's last
// stream id. Only these are retried, on another connection.
type unprocessedError struct{ err error }

func (e unprocessedError) Error() string { return e.err.Error() }
func (e unprocessedError) Unwrap() error { return e.err }

// clientConn is one HTTP/2 connection. Requests are written on their
// callers' goroutines and completed on the one that ends their stream,
// usually the frame reader. A connection has three goroutines: the
// reader, the socket writer and the sweeper.
//
// Writes are coalesced: a request appends its frames to wbuf under mu and
// the writer goroutine sends whatever has accumulated in one TLS record and
// one syscall, so under load many requests share a write.
type clientConn struct {
	p  *Pool
	nc net.Conn
	fr *http2.Framer // reads in readLoop; writes into wbuf under mu

	mu      sync.Mutex
	cond    *sync.Cond // stream slots, send windows, queue space
	wcond   *sync.Cond // wbuf has bytes, or the connection failed
	wbuf    []byte
	hbuf    bytes.Buffer
	henc    *hpack.Encoder
	streams map[uint32]*exchange
	ended   *exchange // ended streams whose completion unlock runs
	nextID  uint32
	waiters int // callers blocked on cond
	// blocked are the streams whose bodies wait for window or queue
	// space, in the order they started.
	blocked []*exchange
	// closedIdle is set when we closed the connection for having no
	// request: not an event worth reporting.
	closedIdle bool

	// Peer settings.
	maxStreams    uint32
	initialWindow int32
	maxFrame      uint32
	sendWindow    int32 // connection send window

	recvUnacked int32 // DATA bytes received since the last WINDOW_UPDATE

	draining bool        // GOAWAY received or stream ids used up: no new streams
	unusable atomic.Bool // draining or dead, for Pool.conn without mu
	used     atomic.Bool // a stream was ever opened
	goAway   error       // why draining, for the error of refused streams
	err      error       // sticky: the connection is dead
	closed   chan struct{}

	readSome   atomic.Bool // a frame was read since the last sweep
	lastRead   time.Time   // the last sweep that found readSome; guarded by mu
	pingSent   time.Time   // zero: no PING outstanding
	pingData   [8]byte
	settingsOK chan struct{}     // closed at the server's first SETTINGS
	lowerNames map[string]string // request header key -> wire name ("" to drop)
	blocks     []hblock          // recent header sets' encodings (hblock.go)
	nextBlock  int               // the entry to replace next
	tableGen   uint64            // bumped whenever the HPACK table may change
	canonNames map[string]string // response field name -> http.Header key
}

// dial opens a connection and waits for the server's first SETTINGS.
func (p *Pool) dial(ctx context.Context) (*clientConn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.DialTimeout)
	defer cancel()
	d := &tls.Dialer{NetDialer: &net.Dialer{KeepAlive: 30 * time.Second}, Config: p.tlsConf}
	nc, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	tc := nc.(*tls.Conn)
	if proto := tc.ConnectionState().NegotiatedProtocol; proto != "h2" {
		tc.Close()
		return nil, fmt.Errorf("dial %s: %w (ALPN %q)", p.addr, errNoH2, proto)
	}
	cc := &clientConn{
		p:             p,
		nc:            tc,
		streams:       make(map[uint32]*exchange),
		nextID:        1,
		maxStreams:    maxStreamID, // until SETTINGS say otherwise; we wait for them anyway
		initialWindow: 65535,
		maxFrame:      16384,
		sendWindow:    65535,
		closed:        make(chan struct{}),
		settingsOK:    make(chan struct{}),
		lowerNames:    make(map[string]string),
		canonNames:    make(map[string]string),
	}
	cc.cond = sync.NewCond(&cc.mu)
	cc.wcond = sync.NewCond(&cc.mu)
	cc.henc = hpack.NewEncoder(&cc.hbuf)
	// Buffered, so that reading a frame header is not a call into TLS.
	cc.fr = http2.NewFramer((*wbufWriter)(cc), bufio.NewReaderSize(tc, 32<<10))
	cc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	cc.fr.MaxHeaderListSize = maxResponseHeaders
	cc.fr.SetMaxReadFrameSize(16384) // we never raise SETTINGS_MAX_FRAME_SIZE
	cc.lastRead = time.Now()

	cc.mu.Lock()
	cc.wbuf = append(cc.wbuf, clientPreface...)
	settings := []http2.Setting{
		{ID: http2.SettingEnablePush, Val: 0},
		{ID: http2.SettingMaxHeaderListSize, Val: maxResponseHeaders},
		// Above maxResponseBody, so an oversized answer is refused by the
		// size check rather than stalled by flow control.
		{ID: http2.SettingInitialWindowSize, Val: 2 * maxResponseBody},
	}
	if cc.p.opts.UniqueAnswers {
		// The decoder keeps its 4096 bytes until the server's encoder says
		// otherwise with a table size update (RFC 7541 §4.2), since answers
		// sent before our SETTINGS arrive may still index.
		settings = append(settings, http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
	}
	cc.fr.WriteSettings(settings...)
	cc.fr.WriteWindowUpdate(0, connWindow-65535)
	cc.unlock()

	go cc.writeLoop()
	go cc.readLoop()
	select {
	case <-cc.settingsOK:
	case <-cc.closed:
		return nil, cc.why()
	case <-ctx.Done():
		cc.fail(fmt.Errorf("dial %s: no SETTINGS from the server: %w", p.addr, ctx.Err()))
		return nil, cc.why()
	}
	go cc.sweepLoop()
	return cc, nil
}

// fail closes the connection with err; every stream in flight fails.
func (cc *clientConn) fail(err error) {
	cc.mu.Lock()
	defer cc.unlock()
	cc.failLocked(err)
}

func (cc *clientConn) failLocked(err error) {
	if cc.err != nil {
		return
	}
	cc.err = err
	cc.unusable.Store(true)
	if !cc.closedIdle && cc.goAway == nil && cc.settingsDone() {
		// Ours to report: a dial that fails is reported as such, and a
		// connection that drains after a GOAWAY was reported then.
		cc.p.event(Lost, err)
	}
	for id, x := range cc.streams {
		delete(cc.streams, id)
		cc.completeLocked(x, err)
	}
	close(cc.closed)
	cc.cond.Broadcast()
	// The writer flushes what is queued and closes the socket; the
	// deadline keeps a peer that stopped reading from holding it.
	cc.nc.SetWriteDeadline(time.Now().Add(time.Second))
	cc.wcond.Broadcast()
}

// settingsDone reports whether the server's first SETTINGS arrived: until
// then the connection is still being dialled.
func (cc *clientConn) settingsDone() bool {
	select {
	case <-cc.settingsOK:
		return true
	default:
		return false
	}
}

// why says why the connection takes no new streams.
func (cc *clientConn) why() error {
	cc.mu.Lock()
	defer cc.mu.Unlock() // ends no stream; Pool.conn calls it under slot.mu
	if cc.goAway != nil {
		return cc.goAway
	}
	if cc.err != nil {
		return cc.err
	}
	return errors.New("connection unusable")
}

// closeIfIdle closes the connection if it carries no stream.
func (cc *clientConn) closeIfIdle() {
	cc.mu.Lock()
	defer cc.unlock()
	if len(cc.streams) == 0 && cc.err == nil {
		// Say goodbye (RFC 9113 6.8); the writer flushes it before closing.
		cc.fr.WriteGoAway(0, http2.ErrCodeNo, nil)
		cc.closedIdle = true
		cc.failLocked(errors.New("connection closed as idle"))
	}
}
