package transport

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/http2"
)

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
		if len(cc.blocked) > 0 {
			cc.sendBlockedLocked() // a larger initial window
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
		if len(cc.blocked) > 0 {
			cc.sendBlockedLocked()
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
		cc.p.event(GoAway, cc.goAway)
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
