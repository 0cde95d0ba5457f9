package h2fake

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Stream is the server's side of one request stream, handed to
// Options.Handler. Its exported fields are set when the request's header
// block arrives and never change; its methods are safe for concurrent use.
// The write methods block until flow control allows the write and fail with
// ErrConnDead, ErrIgnored or ErrStreamReset once the server may no longer
// write on the stream.
type Stream struct {
	c             *Conn
	ID            uint32
	Fields        []hpack.HeaderField // the request's header fields, in order
	BlockSize     int                 // bytes of the request's HPACK block
	Block         []byte              // the request's HPACK block as sent
	Continuations int                 // CONTINUATION frames after its HEADERS
	HeadersEnd    bool                // END_STREAM was on HEADERS

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

func (s *Stream) closeGoneLocked() {
	if !s.goneClosed {
		s.goneClosed = true
		close(s.goneCh)
	}
}

func (s *Stream) pseudo(name string) string {
	for _, f := range s.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// Path is the request's :path ("" if it had none).
func (s *Stream) Path() string { return s.pseudo(":path") }

// Method is the request's :method ("" if it had none).
func (s *Stream) Method() string { return s.pseudo(":method") }

// Authority is the request's :authority ("" if it had none).
func (s *Stream) Authority() string { return s.pseudo(":authority") }

// Scheme is the request's :scheme ("" if it had none).
func (s *Stream) Scheme() string { return s.pseudo(":scheme") }

// Header returns the first regular field called name ("" if none).
func (s *Stream) Header(name string) string {
	for _, f := range s.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// Field returns the first field called name.
func (s *Stream) Field(name string) (hpack.HeaderField, bool) {
	for _, f := range s.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return hpack.HeaderField{}, false
}

// Conn is the connection the stream is on.
func (s *Stream) Conn() *Conn { return s.c }

// Gone is closed when the stream is reset by either side, ignored after a
// GOAWAY, or its connection is gone.
func (s *Stream) Gone() <-chan struct{} { return s.goneCh }

// Ended is closed when the client has sent END_STREAM.
func (s *Stream) Ended() <-chan struct{} { return s.endCh }

// ReadBody waits for the whole request body. It fails with ErrStreamReset
// if the stream is gone before the client ends it.
func (s *Stream) ReadBody() ([]byte, error) {
	select {
	case <-s.endCh:
	case <-s.goneCh:
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if !s.remoteEnded {
		return nil, ErrStreamReset
	}
	return append([]byte(nil), s.body.Bytes()...), nil
}

// BodyLen is the number of body bytes received so far.
func (s *Stream) BodyLen() int {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.body.Len()
}

// RecvFlow is the number of flow-controlled bytes received on the stream.
func (s *Stream) RecvFlow() int64 {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.recv
}

// DataFrames returns the lengths of the DATA frames received.
func (s *Stream) DataFrames() []int {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return append([]int(nil), s.dataFrames...)
}

// ClientReset returns the code of the client's RST_STREAM, if it sent one.
func (s *Stream) ClientReset() (http2.ErrCode, bool) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.clientReset == nil {
		return 0, false
	}
	return *s.clientReset, true
}

// ClosedByClient reports whether the client has closed its side of the
// stream, with END_STREAM or RST_STREAM.
func (s *Stream) ClosedByClient() bool {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.remoteEnded || s.clientReset != nil
}

// WriteDataFrameRaw sends p as one DATA frame whatever its size (for
// testing the client's MAX_FRAME_SIZE check), within the flow-control
// windows.
func (s *Stream) WriteDataFrameRaw(p []byte, endStream bool) error {
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

// WaitClientReset waits up to timeout for the client's RST_STREAM and
// returns its code, and whether it came.
func (s *Stream) WaitClientReset(timeout time.Duration) (http2.ErrCode, bool) {
	var code http2.ErrCode
	var ok bool
	WaitUntil(timeout, func() bool {
		code, ok = s.ClientReset()
		return ok
	})
	return code, ok
}

func (s *Stream) writableLocked() error {
	switch {
	case s.c.dead:
		return ErrConnDead
	case s.ignored:
		return ErrIgnored
	case s.clientReset != nil || s.serverReset:
		return ErrStreamReset
	case s.localEnded:
		return errors.New("fake: stream already ended by the server")
	}
	return nil
}

// WriteHeaders sends a header block, split into frames of the client's
// MAX_FRAME_SIZE.
func (s *Stream) WriteHeaders(fields []hpack.HeaderField, endStream bool) error {
	return s.WriteHeadersSplit(fields, endStream, 0)
}

// WriteHeadersSplit sends a header block as HEADERS plus CONTINUATION
// frames of at most frag bytes each (0: the client's MAX_FRAME_SIZE).
func (s *Stream) WriteHeadersSplit(fields []hpack.HeaderField, endStream bool, frag int) error {
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
func (s *Stream) WriteData(p []byte, endStream bool) error {
	return s.WriteDataPadded(p, endStream, 0)
}

// WriteDataPadded is WriteData with pad bytes of padding on every frame.
func (s *Stream) WriteDataPadded(p []byte, endStream bool, pad int) error {
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
func (s *Stream) Respond(status int, body []byte, kv ...string) error {
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
func (s *Stream) Reset(code http2.ErrCode) error {
	c := s.c
	c.mu.Lock()
	switch {
	case c.dead:
		c.mu.Unlock()
		return ErrConnDead
	case s.ignored:
		c.mu.Unlock()
		return ErrIgnored
	case s.closed:
		c.mu.Unlock()
		return ErrStreamReset
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

// EchoHandler answers 200 with the request's path in x-echo-path and
// apns-id, and as the response body EchoBody of the request body.
func EchoHandler(s *Stream) {
	body, err := s.ReadBody()
	if err != nil {
		return
	}
	_ = s.Respond(200, EchoBody(s.Path(), body), "x-echo-path", s.Path(), "apns-id", "id-"+s.Path(), "x-echo-len", strconv.Itoa(len(body)))
}

// EchoBody is what EchoHandler answers for a request body: the body itself,
// the path for an empty body, and the SHA-256 of a body over 16 KiB (the
// client refuses answers over 64 KiB).
func EchoBody(path string, body []byte) []byte {
	switch {
	case len(body) == 0:
		return []byte(path)
	case len(body) > 16<<10:
		sum := sha256.Sum256(body)
		return []byte("sha256:" + hex.EncodeToString(sum[:]))
	}
	return body
}
