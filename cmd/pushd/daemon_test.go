package main

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"testing"
)

// failingListener fails every Accept with a permanent error.
type failingListener struct{ net.Listener }

var errAccept = errors.New("accept: too many open files")

func (failingListener) Accept() (net.Conn, error) { return nil, errAccept }

// The health listener's failure reaches the daemon's loop instead of
// being dropped; its orderly shutdown does not.
func TestServeReportsAFailedListener(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := &service{log: slog.New(slog.DiscardHandler), failed: make(chan error, 1), http: &http.Server{}}
	d.serve(failingListener{ln})
	select {
	case err := <-d.failed:
		if !errors.Is(err, errAccept) {
			t.Fatalf("failed = %v, want the accept error", err)
		}
	default:
		t.Fatal("a listener that stopped serving was not reported")
	}

	d.http = &http.Server{}
	d.http.Close()
	d.serve(ln)
	select {
	case err := <-d.failed:
		t.Fatalf("an orderly shutdown was reported as a failure: %v", err)
	default:
	}
}
