package transport

import (
	"bytes"
	"net/http"
	"reflect"
	"strconv"
)

// A push campaign sends the same header set on every request of a
// connection, apart from the APNs :path and the content-length. Once the
// set's fields are all in the HPACK dynamic table its encoding is a few
// index bytes that do not change until the table does, so each connection
// keeps the encodings of its last few header sets instead of searching the
// table (hashing the whole bearer token) for every request.

// maxBlocks is how many header sets a connection remembers: one per
// campaign run sending on it at the same time, in practice.
const maxBlocks = 4

// hblock is the cached encoding of one header set.
type hblock struct {
	// The set, as sent. header is also the identity key, and holding it
	// keeps its address from being reused by another map.
	header            http.Header
	snap              []headerValues
	method, authority string
	path              string // "" with UniquePaths: the path is sent literally
	gen               uint64 // cc.tableGen the encoding is valid for
	// pseudo and regular are the encoded pseudo-header and regular fields;
	// the :path literal and content-length go between and after them.
	pseudo, regular []byte
}

type headerValues struct {
	key  string
	vals []string
}

// matches reports whether b encodes this request's header set. It checks
// the contents, not only the map's identity, so a header map changed in
// place is never sent with a stale encoding.
func (b *hblock) matches(h http.Header, method, authority, path string) bool {
	if b.method != method || b.authority != authority || b.path != path || len(h) != len(b.snap) {
		return false
	}
	for _, hv := range b.snap {
		vv, ok := h[hv.key]
		if !ok || len(vv) != len(hv.vals) {
			return false
		}
		for i, v := range vv {
			if v != hv.vals[i] {
				return false
			}
		}
	}
	return true
}

func mapID(h http.Header) uintptr {
	if h == nil {
		return 0
	}
	return uintptr(reflect.ValueOf(h).UnsafePointer())
}

// encodeHeaders appends req's header block to cc.hbuf: the pseudo-header
// fields, the :path literal (UniquePaths), the regular fields, then
// content-length. The caller holds mu.
func (cc *clientConn) encodeHeaders(req *http.Request, bodyLen int) {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	path := req.URL.RequestURI()
	keyPath := path
	if cc.p.opts.UniquePaths {
		keyPath = ""
	}
	id := mapID(req.Header)
	for i := range cc.blocks {
		b := &cc.blocks[i]
		if b.gen == cc.tableGen && mapID(b.header) == id && b.matches(req.Header, req.Method, host, keyPath) {
			cc.hbuf.Write(b.pseudo)
			if cc.p.opts.UniquePaths {
				writeLiteral(&cc.hbuf, neverIndexed, pathIndex, path)
			}
			cc.hbuf.Write(b.regular)
			cc.contentLength(bodyLen)
			return
		}
	}

	// Through the encoder, noting where each part lies.
	cc.field(":method", req.Method)
	cc.field(":scheme", "https")
	cc.field(":authority", host)
	if !cc.p.opts.UniquePaths {
		cc.field(":path", path)
	}
	pseudoEnd := cc.hbuf.Len()
	if cc.p.opts.UniquePaths {
		writeLiteral(&cc.hbuf, neverIndexed, pathIndex, path)
	}
	regularStart := cc.hbuf.Len()
	var snap []headerValues
	for k, vv := range req.Header {
		snap = append(snap, headerValues{k, append([]string(nil), vv...)})
		name, ok := cc.lower(k)
		if !ok {
			continue
		}
		for _, v := range vv {
			cc.field(name, v)
		}
	}
	block := cc.hbuf.Bytes()
	pseudo, regular := block[:pseudoEnd], block[regularStart:]
	if !allIndexed(pseudo) || !allIndexed(regular) {
		// Something was inserted into the table (or its size changed), so
		// every cached encoding may now point at the wrong entries. The
		// next request with this set will find it all indexed.
		cc.tableGen++
	} else {
		b := hblock{
			header: req.Header, snap: snap, method: req.Method, authority: host, path: keyPath, gen: cc.tableGen,
			pseudo: bytes.Clone(pseudo), regular: bytes.Clone(regular),
		}
		cc.cacheBlock(b, id)
	}
	cc.contentLength(bodyLen)
}

// cacheBlock stores b, replacing a stale encoding of the same map, else
// the oldest entry.
func (cc *clientConn) cacheBlock(b hblock, id uintptr) {
	for i := range cc.blocks {
		if mapID(cc.blocks[i].header) == id {
			cc.blocks[i] = b
			return
		}
	}
	if len(cc.blocks) < maxBlocks {
		cc.blocks = append(cc.blocks, b)
		return
	}
	cc.blocks[cc.nextBlock%maxBlocks] = b
	cc.nextBlock++
}

// contentLength appends a content-length literal that is not indexed: the
// length varies with the device token in FCM bodies, and indexing each
// value would churn the table and invalidate the cached blocks.
func (cc *clientConn) contentLength(bodyLen int) {
	if bodyLen > 0 {
		var d [20]byte
		writeLiteral(&cc.hbuf, withoutIndexing, contentLengthIndex, string(strconv.AppendInt(d[:0], int64(bodyLen), 10)))
	}
}

// allIndexed reports whether an HPACK block holds only indexed fields
// (RFC 7541 6.1), which neither change the dynamic table nor depend on
// anything but its current entries.
func allIndexed(b []byte) bool {
	for len(b) > 0 {
		if b[0]&0x80 == 0 {
			return false
		}
		// Skip the 7-bit-prefix index.
		i := 1
		if b[0]&0x7f == 0x7f {
			for i < len(b) && b[i]&0x80 != 0 {
				i++
			}
			i++
		}
		b = b[min(i, len(b)):]
	}
	return true
}

// Literal field representations with an indexed name (RFC 7541 6.2.2,
// 6.2.3), and static table indices (appendix A).
const (
	withoutIndexing    = 0x00
	neverIndexed       = 0x10
	pathIndex          = 4
	contentLengthIndex = 28
)

// writeLiteral appends a literal field with a static-table name and a raw
// (not Huffman) value, which is cheaper for both ends than Huffman coding
// a value that is used once.
func writeLiteral(w *bytes.Buffer, kind byte, nameIndex uint64, value string) {
	appendVarint(w, 4, kind, nameIndex)
	appendVarint(w, 7, 0, uint64(len(value))) // H bit 0: raw
	w.WriteString(value)
}

// appendVarint writes an HPACK integer with an n-bit prefix, the first
// byte's other bits being flags (RFC 7541 5.1).
func appendVarint(w *bytes.Buffer, n uint, flags byte, v uint64) {
	limit := uint64(1)<<n - 1
	if v < limit {
		w.WriteByte(flags | byte(v))
		return
	}
	w.WriteByte(flags | byte(limit))
	v -= limit
	for v >= 128 {
		w.WriteByte(byte(v&0x7f) | 0x80)
		v >>= 7
	}
	w.WriteByte(byte(v))
}
