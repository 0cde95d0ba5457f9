package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
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

// exchange is everything one request needs, in one allocation: the
// request and its completion, the stream while it is in flight, then the
// response and its body.
type exchange struct {
	stream
	pool    *Pool
	req     *http.Request
	reqBody []byte
	attempt int
	done    func(*http.Response, error)
	next    *exchange // in clientConn.ended
	resp    http.Response
	rbody   responseBody
}

// stream is one request in flight. Its fields are guarded by clientConn.mu
// until it has ended; after that only its completion reads them.
type stream struct {
	id       uint32
	deadline time.Time // zero: none
	window   int32     // send window
	status   int
	header   http.Header
	body     []byte
	gotHead  bool
	sentAll  bool // END_STREAM written: the stream no longer counts as ours to close
	err      error
	ended    bool
}

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
		return nil, fmt.Errorf("dial %s: server did not negotiate HTTP/2 (ALPN %q)", p.addr, proto)
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

// wbufWriter lets the framer write into wbuf; the caller holds mu.
type wbufWriter clientConn

func (w *wbufWriter) Write(b []byte) (int, error) {
	cc := (*clientConn)(w)
	cc.wbuf = append(cc.wbuf, b...)
	cc.wcond.Signal()
	return len(b), nil
}

func (cc *clientConn) writeLoop() {
	var spare []byte
	cc.mu.Lock()
	defer cc.unlock()
	for {
		for len(cc.wbuf) == 0 && cc.err == nil {
			cc.wcond.Wait()
		}
		if cc.err != nil {
			// Last frames, such as a GOAWAY explaining a protocol error,
			// go out before the close; failLocked set a write deadline.
			out := cc.wbuf
			cc.wbuf = nil
			cc.unlock()
			if len(out) > 0 {
				cc.nc.Write(out)
			}
			cc.nc.Close()
			cc.mu.Lock()
			return
		}
		if len(cc.wbuf) < yieldBelow {
			// Let senders that are already runnable add their frames
			// first: a yield costs far less than the write syscall and
			// TLS record that it saves them.
			cc.unlock()
			runtime.Gosched()
			cc.mu.Lock()
			if cc.err != nil {
				continue
			}
		}
		out := cc.wbuf
		cc.wbuf = spare[:0]
		cc.unlock()
		_, err := cc.nc.Write(out)
		cc.mu.Lock()
		spare = out[:0]
		if err != nil {
			cc.failLocked(fmt.Errorf("write to %s: %w", cc.p.addr, err))
			cc.wbuf = nil
		}
		if cc.waiters > 0 {
			cc.cond.Broadcast() // queue space for senders
		}
	}
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
		cc.failLocked(errors.New("connection closed as idle"))
	}
}

// start opens a stream for x and writes its request, unless the request
// cannot go out on this connection, which it then returns as an error
// (unprocessedError if another connection may take it). Once started, x
// is completed when its stream ends. The deadline (zero: none) is the
// request's RequestTimeout deadline, fixed by Pool.Go to span retries.
func (cc *clientConn) start(x *exchange) error {
	ctx := x.req.Context()
	body := x.reqBody
	cc.mu.Lock()
	// A slot, and room in the write queue.
	for {
		if cc.err != nil {
			err := cc.err
			cc.unlock()
			return unprocessedError{err}
		}
		if cc.draining {
			err := cc.goAway
			cc.unlock()
			return unprocessedError{err}
		}
		if err := x.expired(ctx, cc.p.opts.RequestTimeout); err != nil {
			cc.unlock()
			return err
		}
		if uint32(len(cc.streams)) < cc.maxStreams && len(cc.wbuf) < maxPending {
			break
		}
		cc.wait()
	}
	x.id = cc.nextID
	cc.nextID += 2
	if cc.nextID > maxStreamID {
		cc.draining = true
		cc.unusable.Store(true)
		cc.goAway = errors.New("stream ids used up")
	}
	x.window = cc.initialWindow
	cc.streams[x.id] = x
	cc.used.Store(true)
	cc.writeHeaders(x.req, x.id, len(body))
	x.sentAll = len(body) == 0

	// The body, as the windows allow. After a wait, the deadline is checked
	// again before anything more is written: a request completed after it
	// could still be processed.
	for len(body) > 0 && cc.err == nil && !x.ended {
		n := min(int32(len(body)), cc.sendWindow, x.window, int32(cc.maxFrame))
		if n <= 0 || len(cc.wbuf) >= maxPending {
			cc.wait()
			if err := x.expired(ctx, cc.p.opts.RequestTimeout); err != nil {
				cc.resetLocked(x, http2.ErrCodeCancel, err)
				break
			}
			continue
		}
		cc.fr.WriteData(x.id, int(n) == len(body), body[:n])
		x.sentAll = int(n) == len(body)
		body = body[n:]
		cc.sendWindow -= n
		x.window -= n
	}
	cc.unlock()
	return nil
}

// complete hands x's answer or error to its caller, or starts a retry of
// a request the server did not process. It runs without mu.
func (x *exchange) complete() {
	err := x.err
	if ue, ok := err.(unprocessedError); ok {
		if x.attempt < maxAttempts && x.req.Context().Err() == nil {
			// Not on the goroutine that ended it: that may be the frame
			// reader, and the retry may wait for a connection.
			go x.pool.send(x.req, x.reqBody, x.deadline, x.attempt+1, x.done)
			return
		}
		err = ue.err
	}
	if err != nil {
		x.done(nil, err)
		return
	}
	x.rbody.Reset(x.body)
	x.resp = http.Response{
		Status:        statusLine(x.status),
		StatusCode:    x.status,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        x.header,
		Body:          &x.rbody,
		ContentLength: int64(len(x.body)),
		Request:       x.req,
	}
	x.done(&x.resp, nil)
}

// unlock releases mu and then runs the completions of the streams that
// ended while it was held, so that callers' code never runs under mu.
// Every path that may end a stream unlocks with it.
func (cc *clientConn) unlock() {
	x := cc.ended
	cc.ended = nil
	cc.mu.Unlock()
	for x != nil {
		next := x.next
		x.next = nil
		x.complete()
		x = next
	}
}

// wait blocks on cond; the sweeper wakes waiters so they see their
// contexts end.
func (cc *clientConn) wait() {
	cc.waiters++
	cc.cond.Wait()
	cc.waiters--
}

// expired returns why s must give up before it is answered, if it must.
func (s *stream) expired(ctx context.Context, timeout time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// The context's own timer may run late on a busy machine; nothing is
	// written after its deadline all the same.
	dl, ok := ctx.Deadline()
	if !ok && s.deadline.IsZero() {
		return nil
	}
	now := time.Now()
	if ok && !now.Before(dl) {
		return context.DeadlineExceeded
	}
	if !s.deadline.IsZero() && now.After(s.deadline) {
		return timeoutError{timeout}
	}
	return nil
}

// resetLocked ends s with err and tells the server with RST_STREAM, unless
// s is already done.
func (cc *clientConn) resetLocked(s *exchange, code http2.ErrCode, err error) {
	if s.ended {
		return
	}
	if cc.err == nil {
		cc.fr.WriteRSTStream(s.id, code)
	}
	cc.endLocked(s, err)
}

// writeHeaders encodes req's header block and writes HEADERS and any
// CONTINUATION frames. The caller holds mu, so the block's HPACK state and
// the stream id order match the order on the wire.
func (cc *clientConn) writeHeaders(req *http.Request, id uint32, bodyLen int) {
	endStream := bodyLen == 0
	cc.hbuf.Reset()
	cc.encodeHeaders(req, bodyLen)
	block := cc.hbuf.Bytes()
	first := true
	for first || len(block) > 0 {
		n := min(len(block), int(cc.maxFrame))
		frag := block[:n]
		block = block[n:]
		if first {
			cc.fr.WriteHeaders(http2.HeadersFrameParam{
				StreamID:      id,
				BlockFragment: frag,
				EndStream:     endStream,
				EndHeaders:    len(block) == 0,
			})
			first = false
		} else {
			cc.fr.WriteContinuation(id, len(block) == 0, frag)
		}
	}
}

func (cc *clientConn) field(name, value string) {
	cc.henc.WriteField(hpack.HeaderField{Name: name, Value: value})
}

// lower returns the HTTP/2 spelling of a header name, cached because the
// same few names repeat on every request. Connection-specific headers,
// which HTTP/2 forbids, are dropped.
func (cc *clientConn) lower(k string) (string, bool) {
	if v, ok := cc.lowerNames[k]; ok {
		return v, v != ""
	}
	v := strings.ToLower(k)
	switch v {
	case "connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length", "te":
		v = ""
	}
	if len(cc.lowerNames) < 256 {
		cc.lowerNames[k] = v
	}
	return v, v != ""
}

func (cc *clientConn) readLoop() {
	for {
		f, err := cc.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				cc.mu.Lock()
				if s := cc.streams[se.StreamID]; s != nil {
					cc.resetLocked(s, se.Code, fmt.Errorf("answer from %s: %w", cc.p.addr, se))
				}
				cc.unlock()
				continue
			}
			cc.mu.Lock()
			// Tell the server about a protocol error before closing.
			if code, ok := goAwayCode(err); ok {
				cc.fr.WriteGoAway(0, code, nil)
			}
			if cc.goAway != nil {
				// The server said why it is closing; that is the news.
				err = fmt.Errorf("%w; then the connection closed: %v", cc.goAway, err)
			} else {
				err = fmt.Errorf("read from %s: %w", cc.p.addr, err)
			}
			cc.failLocked(err)
			cc.unlock()
			return
		}
		// A flag, not a clock read per frame: the sweeper dates it.
		if !cc.readSome.Load() {
			cc.readSome.Store(true)
		}
		if err := cc.handle(f); err != nil {
			code, ok := goAwayCode(err)
			if !ok {
				code = http2.ErrCodeProtocol
			}
			cc.mu.Lock()
			if cc.err == nil {
				cc.fr.WriteGoAway(0, code, nil)
			}
			cc.failLocked(fmt.Errorf("from %s: %w", cc.p.addr, err))
			cc.unlock()
			return
		}
	}
}

// goAwayCode is the GOAWAY error code for a connection error, if err is
// one that the server should hear about (not a plain read failure).
func goAwayCode(err error) (http2.ErrCode, bool) {
	var (
		fe flowControlError
		ce http2.ConnectionError
	)
	switch {
	case errors.As(err, &fe):
		return http2.ErrCodeFlowControl, true
	case errors.As(err, &ce):
		return http2.ErrCode(ce), true
	case errors.Is(err, http2.ErrFrameTooLarge):
		return http2.ErrCodeFrameSize, true
	}
	return 0, false
}

// handle processes one frame. A returned error is a connection error.
func (cc *clientConn) handle(f http2.Frame) error {
	cc.mu.Lock()
	defer cc.unlock()
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		s := cc.streams[f.StreamID]
		if s == nil {
			return nil // a stream we reset
		}
		if f.Truncated {
			cc.resetLocked(s, http2.ErrCodeCancel, fmt.Errorf("answer from %s: header list over %d bytes", cc.p.addr, maxResponseHeaders))
			return nil
		}
		if !s.gotHead {
			status, err := strconv.Atoi(f.PseudoValue("status"))
			if err != nil || status < 100 || status > 999 {
				cc.resetLocked(s, http2.ErrCodeProtocol, fmt.Errorf("answer from %s: bad :status %q", cc.p.addr, f.PseudoValue("status")))
				return nil
			}
			if status < 200 {
				if f.StreamEnded() {
					cc.resetLocked(s, http2.ErrCodeProtocol, fmt.Errorf("answer from %s: informational %d ends the stream", cc.p.addr, status))
				}
				return nil // informational; the real answer follows
			}
			s.gotHead = true
			s.status = status
			fields := f.RegularFields()
			s.header = make(http.Header, len(fields))
			// One backing array for every value instead of a slice per
			// header; a repeated header's append copies out of it.
			vals := make([]string, len(fields))
			for i, hf := range fields {
				k := cc.canonical(hf.Name)
				if v, ok := s.header[k]; ok {
					s.header[k] = append(v, hf.Value)
					continue
				}
				vals[i] = hf.Value
				s.header[k] = vals[i : i+1 : i+1]
			}
		}
		if f.StreamEnded() {
			cc.finishLocked(s)
		}
	case *http2.DataFrame:
		cc.recvUnacked += int32(f.Length)
		if cc.recvUnacked >= connWindow/2 {
			cc.fr.WriteWindowUpdate(0, uint32(cc.recvUnacked))
			cc.recvUnacked = 0
		}
		s := cc.streams[f.StreamID]
		if s == nil {
			return nil
		}
		if !s.gotHead {
			return errors.New("DATA before HEADERS")
		}
		if len(s.body)+len(f.Data()) > maxResponseBody {
			cc.resetLocked(s, http2.ErrCodeCancel, fmt.Errorf("answer from %s: body over %d bytes", cc.p.addr, maxResponseBody))
			return nil
		}
		s.body = append(s.body, f.Data()...)
		if f.StreamEnded() {
			cc.finishLocked(s)
		}
	case *http2.RSTStreamFrame:
		s := cc.streams[f.StreamID]
		if s == nil {
			return nil
		}
		var err error = fmt.Errorf("%s reset the stream: %v", cc.p.addr, f.ErrCode)
		if f.ErrCode == http2.ErrCodeRefusedStream {
			err = unprocessedError{err}
		}
		cc.endLocked(s, err)
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		if err := f.ForeachSetting(cc.applySetting); err != nil {
			return err
		}
		cc.fr.WriteSettingsAck()
		select {
		case <-cc.settingsOK:
		default:
			close(cc.settingsOK)
		}
		cc.cond.Broadcast()
	case *http2.WindowUpdateFrame:
		if f.StreamID == 0 {
			if int64(cc.sendWindow)+int64(f.Increment) > maxStreamID {
				return flowControlError("connection send window over 2^31-1")
			}
			cc.sendWindow += int32(f.Increment)
		} else if s := cc.streams[f.StreamID]; s != nil {
			if int64(s.window)+int64(f.Increment) > maxStreamID {
				cc.resetLocked(s, http2.ErrCodeFlowControl, errors.New("stream send window over 2^31-1"))
				return nil
			}
			s.window += int32(f.Increment)
		}
		cc.cond.Broadcast()
	case *http2.PingFrame:
		if !f.IsAck() {
			cc.fr.WritePing(true, f.Data)
		} else if f.Data == cc.pingData {
			cc.pingSent = time.Time{}
		}
	case *http2.GoAwayFrame:
		cc.draining = true
		cc.unusable.Store(true)
		cc.goAway = fmt.Errorf("%s sent GOAWAY (%v, last stream %d, %q)", cc.p.addr, f.ErrCode, f.LastStreamID, f.DebugData())
		for id, s := range cc.streams {
			if id > f.LastStreamID {
				cc.endLocked(s, unprocessedError{cc.goAway})
			}
		}
		if len(cc.streams) == 0 {
			cc.failLocked(cc.goAway)
		}
	case *http2.PushPromiseFrame:
		return errors.New("PUSH_PROMISE although push is disabled")
	}
	return nil
}

func (cc *clientConn) applySetting(s http2.Setting) error {
	if err := s.Valid(); err != nil {
		return err
	}
	switch s.ID {
	case http2.SettingMaxConcurrentStreams:
		cc.maxStreams = s.Val
	case http2.SettingInitialWindowSize:
		delta := int32(s.Val) - cc.initialWindow
		for _, st := range cc.streams {
			if int64(st.window)+int64(delta) > maxStreamID {
				return flowControlError("stream send window over 2^31-1")
			}
			st.window += delta
		}
		cc.initialWindow = int32(s.Val)
	case http2.SettingMaxFrameSize:
		cc.maxFrame = s.Val
	case http2.SettingHeaderTableSize:
		cc.henc.SetMaxDynamicTableSizeLimit(s.Val)
		cc.tableGen++ // the next block must start with the size update
	}
	return nil
}

// finishLocked completes s with its answer.
func (cc *clientConn) finishLocked(s *exchange) {
	if !s.sentAll {
		// Answered before the whole request went out (RFC 9113 8.1):
		// stop sending and close our side, or the stream stays open.
		cc.fr.WriteRSTStream(s.id, http2.ErrCodeCancel)
		s.sentAll = true
	}
	cc.endLocked(s, nil)
}

// completeLocked marks x ended with err and queues its completion for
// unlock.
func (cc *clientConn) completeLocked(x *exchange, err error) {
	x.err = err
	x.ended = true
	x.next = cc.ended
	cc.ended = x
}

// endLocked removes s, completing it with err (nil: its answer), and
// closes a draining connection once its last stream is gone: the pool has
// already replaced it, so nothing else would.
func (cc *clientConn) endLocked(s *exchange, err error) {
	delete(cc.streams, s.id)
	cc.completeLocked(s, err)
	cc.cond.Broadcast()
	if cc.draining && len(cc.streams) == 0 {
		cc.failLocked(cc.goAway)
	}
}

func (cc *clientConn) canonical(name string) string {
	if v, ok := cc.canonNames[name]; ok {
		return v
	}
	v := http.CanonicalHeaderKey(name)
	if len(cc.canonNames) < 256 {
		cc.canonNames[name] = v
	}
	return v
}

// sweepLoop enforces request deadlines, wakes waiters to check their
// contexts, and health-checks a silent connection with PING.
func (cc *clientConn) sweepLoop() {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-cc.closed:
			return
		case now := <-t.C:
			cc.sweep(now)
		}
	}
}

func (cc *clientConn) sweep(now time.Time) {
	cc.mu.Lock()
	defer cc.unlock()
	if cc.err != nil {
		return
	}
	timedOut := false
	for _, s := range cc.streams {
		switch {
		case !s.deadline.IsZero() && now.After(s.deadline):
			cc.resetLocked(s, http2.ErrCodeCancel, timeoutError{cc.p.opts.RequestTimeout})
			timedOut = true
		case s.req.Context().Err() != nil:
			cc.resetLocked(s, http2.ErrCodeCancel, s.req.Context().Err())
		}
	}
	if cc.err != nil {
		return // the last stream of a draining connection
	}
	if cc.waiters > 0 {
		cc.cond.Broadcast()
	}
	if cc.readSome.Swap(false) {
		cc.lastRead = now
	}
	if !cc.pingSent.IsZero() {
		if now.Sub(cc.pingSent) > cc.p.opts.PingTimeout {
			cc.failLocked(fmt.Errorf("%s did not answer a PING within %s", cc.p.addr, cc.p.opts.PingTimeout))
		}
		return
	}
	// A request that timed out may mean a dead connection: check now
	// rather than after ReadIdleTimeout of silence.
	if timedOut || now.Sub(cc.lastRead) > cc.p.opts.ReadIdleTimeout {
		cc.pingSent = now
		cc.pingData[0]++
		cc.fr.WritePing(false, cc.pingData)
	}
}

// responseBody is an answer already read in full.
type responseBody struct{ bytes.Reader }

func (*responseBody) Close() error { return nil }

func statusLine(code int) string {
	if code == http.StatusOK {
		return "200 OK"
	}
	return strconv.Itoa(code) + " " + http.StatusText(code)
}
