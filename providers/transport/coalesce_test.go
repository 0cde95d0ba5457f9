package transport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Many concurrent small writes arrive complete and in write order, in
// fewer, larger writes to the underlying connection.
func TestCoalescingConnKeepsOrderAndBatches(t *testing.T) {
	t.Parallel()
	client, server := net.Pipe()
	counted := &countingConn{Conn: client}
	c := newCoalescingConn(counted)
	defer c.Close()
	var want bytes.Buffer
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(server)
		got <- b
	}()
	var mu sync.Mutex // the HTTP/2 framer serialises writes the same way
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				mu.Lock()
				frame := []byte{byte(g), byte(i), byte(i >> 8), 0xAB}
				want.Write(frame)
				if _, err := c.Write(frame); err != nil {
					t.Error(err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Wait for the flusher to drain, then close to end ReadAll.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		empty := len(c.buf) == 0
		c.mu.Unlock()
		if empty || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	c.Close()
	b := <-got
	if !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("received %d bytes, want %d in write order", len(b), want.Len())
	}
	if n := counted.writes(); n >= 4000 {
		t.Errorf("%d underlying writes for 4000 frames: nothing was coalesced", n)
	}
}

// A broken connection surfaces as an error on a later Write, and Close
// stops the flusher.
func TestCoalescingConnReportsErrors(t *testing.T) {
	t.Parallel()
	client, server := net.Pipe()
	c := newCoalescingConn(client)
	server.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.Write([]byte("frame"))
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writes to a closed peer never failed")
		}
		time.Sleep(time.Millisecond)
	}
	c.Close()
	if _, err := c.Write([]byte("x")); !errors.Is(err, errClosed) && err == nil {
		t.Fatal("write after Close succeeded")
	}
}

type countingConn struct {
	net.Conn
	mu sync.Mutex
	n  int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *countingConn) writes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
