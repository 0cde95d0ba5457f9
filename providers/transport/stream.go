package transport

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/http2"
)

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
	sentAll  bool   // END_STREAM written: the stream no longer counts as ours to close
	rest     []byte // the body not yet written, waiting for window
	err      error
	ended    bool
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

// responseBody is an answer already read in full.
type responseBody struct{ bytes.Reader }

func (*responseBody) Close() error { return nil }

func statusLine(code int) string {
	if code == http.StatusOK {
		return "200 OK"
	}
	return strconv.Itoa(code) + " " + http.StatusText(code)
}
