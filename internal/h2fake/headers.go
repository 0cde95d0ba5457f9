package h2fake

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// headerBlock is a request's header block, gathered from its HEADERS and
// CONTINUATION frames.
type headerBlock struct {
	stream uint32
	end    bool
	frag   []byte
	conts  int
}

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

func (c *Conn) onHeaderBlock(hb *headerBlock) bool {
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
	s := &Stream{
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
func (c *Conn) endRemoteLocked(s *Stream) {
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
func validateRequestFields(fields []hpack.HeaderField, s *Stream) []string {
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
