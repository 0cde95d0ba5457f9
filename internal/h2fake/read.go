package h2fake

import (
	"errors"
	"fmt"
	"io"

	"golang.org/x/net/http2"
)

func (c *Conn) readLoop() {
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
		c.frames = append(c.frames, FrameRecord{fh.Type, fh.Flags, fh.StreamID, fh.Length})
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

func (c *Conn) handle(f http2.Frame) bool {
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
		c.clientGoAways = append(c.clientGoAways, GoAwayRecord{f.LastStreamID, f.ErrCode, string(f.DebugData())})
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

func (c *Conn) onSettings(f *http2.SettingsFrame) bool {
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

func (c *Conn) onData(f *http2.DataFrame) bool {
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

func (c *Conn) onWindowUpdate(f *http2.WindowUpdateFrame) {
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

func (c *Conn) onRST(f *http2.RSTStreamFrame) {
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

func (c *Conn) onPing(f *http2.PingFrame) {
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
