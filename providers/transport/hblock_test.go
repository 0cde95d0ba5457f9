package transport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/pushd/pushd/internal/h2fake"
)

// send posts body with the given header map itself, not a copy: the cache
// of header encodings is keyed by the map.
func send(ctx context.Context, p *Pool, url string, h http.Header, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header = h
	resp, err := p.RoundTrip(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// checkFields fails unless the server decoded exactly h's fields, in lower
// case, on s.
func checkFields(t *testing.T, s *h2fake.Stream, h http.Header, bodyLen int) {
	t.Helper()
	got := map[string][]string{}
	for _, f := range s.Fields {
		if !f.IsPseudo() {
			got[f.Name] = append(got[f.Name], f.Value)
		}
	}
	want := map[string][]string{"content-length": {strconv.Itoa(bodyLen)}}
	for k, vv := range h {
		want[http.CanonicalHeaderKey(k)] = vv
	}
	for k, vv := range want {
		if g := got[lowerASCII(k)]; fmt.Sprint(g) != fmt.Sprint(vv) {
			t.Errorf("stream %d (%s): %s = %q, want %q", s.ID, s.Path(), k, g, vv)
		}
	}
	if len(got) != len(want) {
		t.Errorf("stream %d (%s): fields %v, want %v", s.ID, s.Path(), got, want)
	}
}

func lowerASCII(s string) string { return string(bytes.ToLower([]byte(s))) }

// The same header set sent again is sent as the same few index bytes:
// from the second request on (when every field is in the table) the block
// is identical, whatever order the map happens to iterate in.
func TestHeaderBlockReused(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{})
	p := newTestPool(t, fs, Options{Connections: 1})
	ctx := ctxT(t, 10*time.Second)
	h := http.Header{"Authorization": {"bearer " + randToken(300)}, "X-A": {"1"}, "X-B": {"2"}, "X-C": {"3"}, "X-D": {"4", "5"}}
	body := []byte("payload")
	for i := range 12 {
		if st, b, err := send(ctx, p, fs.URL("/same"), h, body); err != nil || st != 200 || !bytes.Equal(b, body) {
			t.Fatalf("request %d: %d %q %v", i, st, b, err)
		}
	}
	ss := fs.StreamsForPath("/same")
	if len(ss) != 12 {
		t.Fatalf("server saw %d streams, want 12", len(ss))
	}
	for _, s := range ss {
		checkFields(t, s, h, len(body))
	}
	for _, s := range ss[2:] {
		if !bytes.Equal(s.Block, ss[1].Block) {
			t.Errorf("stream %d's block %x differs from stream %d's %x", s.ID, s.Block, ss[1].ID, ss[1].Block)
		}
	}
	// Six indexed fields, :path, the :method and :scheme of the static
	// table, and content-length as a short literal.
	if n := len(ss[1].Block); n > 20 {
		t.Errorf("a repeated header set takes %d bytes, want at most 20", n)
	}
	if v := fs.Violations(); v != 0 {
		t.Errorf("%d violations", v)
	}
}

// A header map changed in place between requests is sent as it now is.
func TestHeaderBlockMapChangedInPlace(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{})
	p := newTestPool(t, fs, Options{Connections: 1, UniquePaths: true})
	ctx := ctxT(t, 10*time.Second)
	h := http.Header{"Authorization": {"bearer one"}, "X-A": {"1"}}
	changes := []func(){
		func() {},
		func() { h["X-A"][0] = "2" },           // same slice, new value
		func() { h.Set("Authorization", "x") }, // new slice
		func() { h.Add("X-A", "3") },
		func() { h.Set("X-New", "new") },
		func() { h.Del("X-New") },
		func() { h.Del("X-A"); h.Set("X-B", "1") }, // same size, other key
	}
	for i, change := range changes {
		change()
		for j := range 3 {
			path := fmt.Sprintf("/c%d/%d", i, j)
			if _, _, err := send(ctx, p, fs.URL(path), h, []byte("b")); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			ss := fs.StreamsForPath(path)
			if len(ss) != 1 {
				t.Fatalf("%s: %d streams", path, len(ss))
			}
			checkFields(t, ss[0], h, 1)
		}
	}
}

// Several header sets on one connection, with a table small enough that
// each evicts the others' entries: every request still decodes to its own
// fields, so no cached encoding outlives the table state it was made for.
func TestHeaderBlockSetsEvictEachOther(t *testing.T) {
	t.Parallel()
	for _, table := range []uint32{4096, 300} {
		t.Run(fmt.Sprint("table ", table), func(t *testing.T) {
			t.Parallel()
			fs := h2fake.New(t, h2fake.Options{Settings: settings(sMCS, 100, sTable, table)})
			p := newTestPool(t, fs, Options{Connections: 1, UniquePaths: true})
			ctx := ctxT(t, 20*time.Second)
			sets := make([]http.Header, 6) // more than a connection caches
			for i := range sets {
				sets[i] = http.Header{"Authorization": {fmt.Sprintf("bearer %d-%s", i, randToken(100))}, "X-Set": {strconv.Itoa(i)}}
			}
			body := func(n int) []byte { return bytes.Repeat([]byte("x"), 1+n%37) }
			order := []int{0, 0, 0, 1, 1, 0, 1, 2, 0, 3, 4, 5, 0, 0, 5, 4, 3, 2, 1, 0, 0, 1}
			for i, k := range order {
				path := fmt.Sprintf("/seq/%d", i)
				if _, _, err := send(ctx, p, fs.URL(path), sets[k], body(i)); err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				checkFields(t, fs.StreamsForPath(path)[0], sets[k], len(body(i)))
			}
			parallel(60, func(i int) {
				path := fmt.Sprintf("/par/%d", i)
				if _, _, err := send(ctx, p, fs.URL(path), sets[i%len(sets)], body(i)); err != nil {
					t.Errorf("%s: %v", path, err)
				}
			})
			for i := range 60 {
				path := fmt.Sprintf("/par/%d", i)
				if ss := fs.StreamsForPath(path); len(ss) == 1 {
					checkFields(t, ss[0], sets[i%len(sets)], len(body(i)))
				}
			}
			if v := fs.Violations(); v != 0 {
				t.Errorf("%d violations", v)
			}
		})
	}
}

// A header table size lowered mid-connection is announced at the start of
// the next block even when that block's header set was cached.
func TestHeaderBlockTableSizeLowered(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{})
	p := newTestPool(t, fs, Options{Connections: 1, UniquePaths: true})
	ctx := ctxT(t, 10*time.Second)
	h := http.Header{"Authorization": {"bearer " + randToken(200)}, "X-A": {"1"}}
	for i := range 4 {
		if _, _, err := send(ctx, p, fs.URL(fmt.Sprint("/before/", i)), h, []byte("b")); err != nil {
			t.Fatal(err)
		}
	}
	c := fs.Conns()[0]
	if err := c.WriteSettings(settings(sTable, 0)...); err != nil {
		t.Fatal(err)
	}
	c.WaitSettingsAcked(t)
	for i := range 4 {
		path := fmt.Sprint("/after/", i)
		if _, _, err := send(ctx, p, fs.URL(path), h, []byte("b")); err != nil {
			t.Fatal(err)
		}
		checkFields(t, fs.StreamsForPath(path)[0], h, 1)
	}
	if v := fs.Violations(); v != 0 {
		t.Errorf("%d violations", v)
	}
}

func TestAllIndexed(t *testing.T) {
	for _, c := range []struct {
		b    []byte
		want bool
	}{
		{nil, true},
		{[]byte{0x82, 0x87}, true},
		{[]byte{0xff, 0x80, 0x01, 0x82}, true}, // a multi-byte index
		{[]byte{0x82, 0x40, 0x01, 'a', 0x01, 'b'}, false},
		{[]byte{0x20, 0x82}, false}, // a size update
		{[]byte{0x14, 0x01, '/'}, false},
	} {
		if got := allIndexed(c.b); got != c.want {
			t.Errorf("allIndexed(%x) = %v, want %v", c.b, got, c.want)
		}
	}
}

// With UniqueAnswers the client asks for answers without indexing
// (SETTINGS_HEADER_TABLE_SIZE 0); the strict fake then opens its next
// header block with a table size update, which the client must follow,
// and every answer's unique header still comes back. Without it the
// client leaves the table at its default.
func TestUniqueAnswersAskForNoIndexing(t *testing.T) {
	t.Parallel()
	for _, unique := range []bool{true, false} {
		fs := h2fake.New(t, h2fake.Options{Handler: func(s *h2fake.Stream) {
			if _, err := s.ReadBody(); err != nil {
				return
			}
			_ = s.Respond(200, nil, "apns-id", "id-"+s.Path())
		}})
		p := newTestPool(t, fs, Options{Connections: 1, UniqueAnswers: unique})
		for i := range 5 {
			path := fmt.Sprintf("/3/device/%d", i)
			r := roundTrip(ctxT(t, 10*time.Second), p, "POST", fs.URL(path), []byte("{}"))
			if r.err != nil {
				t.Fatalf("unique=%v, request %d: %v", unique, i, r.err)
			}
			if got := r.header.Get("Apns-Id"); got != "id-"+path {
				t.Fatalf("unique=%v, request %d: apns-id %q, want %q", unique, i, got, "id-"+path)
			}
		}
		cs := fs.WaitConns(t, 1)[0].ClientSettings()
		if len(cs) == 0 {
			t.Fatal("client sent no SETTINGS")
		}
		table, found := uint32(4096), false
		for _, s := range cs[0] {
			if s.ID == http2.SettingHeaderTableSize {
				table, found = s.Val, true
			}
		}
		if unique && (!found || table != 0) {
			t.Errorf("UniqueAnswers: first SETTINGS %v, want HEADER_TABLE_SIZE=0", cs[0])
		}
		if !unique && found {
			t.Errorf("without UniqueAnswers: first SETTINGS %v set HEADER_TABLE_SIZE", cs[0])
		}
		if v := fs.Violations(); v != 0 {
			t.Errorf("unique=%v: %d protocol violations", unique, v)
		}
	}
}
