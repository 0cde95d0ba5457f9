package transport

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/pushd/pushd/internal/h2fake"
)

// goResult is one completion of Pool.Go.
type goResult struct {
	path   string
	status int
	body   []byte
	err    error
}

// goRequest starts a POST of body to path with Go; its completion (body
// read inside done, as a provider client does) goes to out. It fails the
// test if done is called more than once.
func goRequest(t *testing.T, p *Pool, fs *h2fake.Server, path string, body []byte, out chan<- goResult) {
	req, err := http.NewRequestWithContext(ctxT(t, 20*time.Second), "POST", fs.URL(path), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	p.Go(req, func(resp *http.Response, err error) {
		if calls.Add(1) != 1 {
			t.Errorf("%s: done called again (%v)", path, err)
			return
		}
		r := goResult{path: path, err: err}
		if err == nil {
			r.status = resp.StatusCode
			r.body, r.err = io.ReadAll(resp.Body)
		}
		out <- r
	})
}

// One goroutine keeps many requests in flight with Go; every request is
// answered once, with its own answer.
func TestGoManyInFlight(t *testing.T) {
	t.Parallel()
	const n = 2000
	fs := h2fake.New(t, h2fake.Options{Settings: settings(sMCS, 250)})
	p := newTestPool(t, fs, Options{Connections: 2})
	out := make(chan goResult, n)
	for i := range n {
		goRequest(t, p, fs, fmt.Sprintf("/go/%d", i), []byte(fmt.Sprint("body ", i)), out)
	}
	seen := map[string]bool{}
	for range n {
		r := <-out
		var i int
		fmt.Sscanf(r.path, "/go/%d", &i)
		if r.err != nil || r.status != 200 || string(r.body) != fmt.Sprint("body ", i) {
			t.Errorf("%s: %d %q %v", r.path, r.status, r.body, r.err)
		}
		if seen[r.path] {
			t.Errorf("%s answered twice", r.path)
		}
		seen[r.path] = true
	}
	if peak := fs.Conns()[0].Peak(); peak < 100 {
		t.Errorf("at most %d streams open at once on a connection; Go should fill the 250 allowed", peak)
	}
	if v := fs.Violations(); v != 0 {
		t.Errorf("%d violations", v)
	}
}

// done runs without any of the connection's locks held: a done that sends
// the next request with Go does not deadlock.
func TestGoDoneMaySendAgain(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{})
	p := newTestPool(t, fs, Options{Connections: 1})
	const chain = 50
	finished := make(chan int, 1)
	var next func(i int)
	next = func(i int) {
		req, _ := http.NewRequestWithContext(ctxT(t, 20*time.Second), "POST", fs.URL(fmt.Sprint("/chain/", i)), bytes.NewReader([]byte("x")))
		p.Go(req, func(resp *http.Response, err error) {
			if err != nil {
				t.Errorf("chain %d: %v", i, err)
				finished <- i
				return
			}
			if i == chain {
				finished <- i
				return
			}
			next(i + 1)
		})
	}
	next(1)
	select {
	case i := <-finished:
		if i != chain {
			t.Errorf("chain stopped at %d of %d", i, chain)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("chain of Go calls from done stalled: done runs under a lock")
	}
}

// A request refused with REFUSED_STREAM is retried, and its done called
// once, with the retry's answer; errors and the retry budget likewise end
// in exactly one call.
func TestGoRetriedOnce(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]int{}
	fs := h2fake.New(t, h2fake.Options{Handler: func(s *h2fake.Stream) {
		mu.Lock()
		seen[s.Path()]++
		n := seen[s.Path()]
		mu.Unlock()
		switch {
		case s.Path() == "/always-refused" || (s.Path() == "/refused-once" && n == 1):
			_ = s.Reset(http2.ErrCodeRefusedStream)
		case s.Path() == "/rst":
			_ = s.Reset(http2.ErrCodeInternal)
		default:
			h2fake.EchoHandler(s)
		}
	}})
	p := newTestPool(t, fs, Options{Connections: 2})
	out := make(chan goResult, 3)
	for _, path := range []string{"/refused-once", "/always-refused", "/rst"} {
		goRequest(t, p, fs, path, []byte("b"), out)
	}
	got := map[string]goResult{}
	for range 3 {
		r := <-out
		got[r.path] = r
	}
	if r := got["/refused-once"]; r.err != nil || r.status != 200 || string(r.body) != "b" {
		t.Errorf("/refused-once: %d %q %v, want the retry's 200", r.status, r.body, r.err)
	}
	if r := got["/always-refused"]; r.err == nil {
		t.Errorf("/always-refused succeeded")
	} else if _, ok := r.err.(unprocessedError); ok {
		t.Errorf("/always-refused: the error %v is still marked unprocessed", r.err)
	}
	if r := got["/rst"]; r.err == nil {
		t.Errorf("/rst succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["/refused-once"] != 2 || seen["/always-refused"] != maxAttempts || seen["/rst"] != 1 {
		t.Errorf("attempts %v, want refused-once 2, always-refused %d, rst 1", seen, maxAttempts)
	}
	// No late second call.
	time.Sleep(100 * time.Millisecond)
	if len(out) != 0 {
		t.Errorf("done called again: %+v", <-out)
	}
}

// A connection being dialled does not hold requests back while another
// connection of the pool works, and it is used once it is made.
func TestGoDialDoesNotBlockOtherConnection(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	fs := h2fake.New(t, h2fake.Options{OnConn: func(c *h2fake.Conn) {
		if c.Index == 1 {
			<-release // the second connection's SETTINGS wait for the test
		}
	}})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	p := newTestPool(t, fs, Options{Connections: 2})
	ctx := ctxT(t, 10*time.Second)
	for i := range 20 {
		path := fmt.Sprint("/during-dial/", i)
		checkEcho(t, roundTrip(ctx, p, "POST", fs.URL(path), []byte("b")), path, []byte("b"))
	}
	if n := len(fs.Conns()[0].Streams()); n != 20 {
		t.Errorf("the working connection carried %d of the 20 requests", n)
	}
	close(release)
	if !h2fake.WaitUntil(5*time.Second, func() bool {
		path := fmt.Sprint("/after-dial/", time.Now().UnixNano())
		checkEcho(t, roundTrip(ctx, p, "POST", fs.URL(path), []byte("b")), path, []byte("b"))
		return fs.NumConns() == 2 && len(fs.Conns()[1].Streams()) > 0
	}) {
		t.Errorf("the second connection was never used (%d connections)", fs.NumConns())
	}
}

// A body larger than the stream window does not hold up the next request:
// Go returns once what the window allows is written, and the frame reader
// sends the rest when the server opens the window. (The field trial: a
// 3 KB payload behind a proxy with a 1 KiB window made sending 2.6x
// slower, one WINDOW_UPDATE round trip per push.)
func TestGoDoesNotWaitForStreamWindow(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{ManualFlow: true, Settings: settings(sMCS, 100, sIWS, 1024)})
	p := newTestPool(t, fs, Options{Connections: 1})
	const n = 3
	out := make(chan goResult, n)
	bodies := make([][]byte, n)
	for i := range n {
		bodies[i] = randBytes(3000)
		goRequest(t, p, fs, fmt.Sprintf("/w/%d", i), bodies[i], out) // returns without a WINDOW_UPDATE
	}
	var streams []*h2fake.Stream
	if !h2fake.WaitUntil(5*time.Second, func() bool {
		streams = fs.Streams()
		if len(streams) < n {
			return false
		}
		for _, s := range streams {
			if s.RecvFlow() < 1024 {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("the requests did not all start with their first 1024 bytes: %d streams", len(streams))
	}
	for _, s := range streams {
		if got := s.RecvFlow(); got != 1024 {
			t.Errorf("stream %d: %d bytes sent with a window of 1024", s.ID, got)
		}
		if err := s.Conn().WindowUpdate(s.ID, 3000); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]goResult{}
	for range n {
		r := <-out
		got[r.path] = r
	}
	for i := range n {
		r := got[fmt.Sprintf("/w/%d", i)]
		if r.err != nil || !bytes.Equal(r.body, bodies[i]) {
			t.Errorf("request %d: %v, echoed %d bytes of %d", i, r.err, len(r.body), len(bodies[i]))
		}
	}
}

// A pool reports its connections' events: a failed dial, a connection, a
// GOAWAY, and a connection lost under it.
func TestPoolReportsEvents(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{Settings: settings(sMCS, 100)})
	var (
		mu     sync.Mutex
		events []EventKind
	)
	p := newTestPool(t, fs, Options{Connections: 1, OnEvent: func(e Event) {
		mu.Lock()
		events = append(events, e.Kind)
		mu.Unlock()
	}})
	out := make(chan goResult, 1)
	goRequest(t, p, fs, "/a", []byte("x"), out)
	if r := <-out; r.err != nil {
		t.Fatal(r.err)
	}
	// The client closes an idle connection at once on GOAWAY, which may
	// make the fake's barrier PING after it fail: its error says nothing.
	_ = fs.Conns()[0].GoAway(1, http2.ErrCodeNo, "rotating")
	if !h2fake.WaitUntil(5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(events, GoAway)
	}) {
		t.Fatalf("events %v: no GoAway after the server sent one", events)
	}
	goRequest(t, p, fs, "/b", []byte("x"), out) // on a new connection
	if r := <-out; r.err != nil {
		t.Fatal(r.err)
	}
	fs.Conns()[len(fs.Conns())-1].Close()
	if !h2fake.WaitUntil(5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(events, Lost)
	}) {
		t.Fatalf("events %v: no Lost after the server dropped the connection", events)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) < 4 || events[0] != Connected || !slices.Contains(events, GoAway) || slices.Index(events, GoAway) > slices.Index(events, Lost) {
		t.Errorf("events %v, want connected, goaway, connected, lost", events)
	}
}
