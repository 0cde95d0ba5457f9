package api

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/pushd/pushd"
)

// batcher groups requests that arrive while earlier ones are being
// written, so that one transaction (one commit, one fsync) stores many of
// them: with innodb_flush_log_at_trx_commit = 1 a commit per request caps
// the rate at the disk's flushes. Nothing is answered before its batch
// has committed. A few writers work in parallel; each takes what is
// waiting when it is free, up to max, so a lone request waits for nobody.
type batcher[T, R any] struct {
	// mu makes close wait for the sends under way, and do see closed.
	mu     sync.RWMutex
	closed bool
	in     chan *pending[T, R]
	write  func(ctx context.Context, items []T) ([]R, error)
	max    int
	quit   chan struct{}
	wg     sync.WaitGroup
}

// writeTimeout bounds one batch's transaction.
const writeTimeout = 30 * time.Second

type pending[T, R any] struct {
	item T
	res  R
	err  error
	done chan struct{}
}

func newBatcher[T, R any](writers, max int, write func(context.Context, []T) ([]R, error)) *batcher[T, R] {
	b := &batcher[T, R]{in: make(chan *pending[T, R], 4*max*writers), write: write, max: max, quit: make(chan struct{})}
	for range writers {
		b.wg.Add(1)
		go b.loop()
	}
	return b
}

// do stores item with the next batch and returns its result, or ctx's
// error if the request ends first (the item may still be stored: every
// write of the API can be repeated safely).
func (b *batcher[T, R]) do(ctx context.Context, item T) (R, error) {
	p := &pending[T, R]{item: item, done: make(chan struct{})}
	var zero R
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return zero, errClosed
	}
	select {
	case b.in <- p:
	case <-ctx.Done():
		b.mu.RUnlock()
		return zero, ctx.Err()
	}
	b.mu.RUnlock()
	select {
	case <-p.done:
		return p.res, p.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

func (b *batcher[T, R]) loop() {
	defer b.wg.Done()
	batch := make([]*pending[T, R], 0, b.max)
	items := make([]T, 0, b.max)
	for {
		select {
		case p := <-b.in:
			batch = append(batch[:0], p)
		case <-b.quit:
			return
		}
	more:
		for len(batch) < b.max {
			select {
			case p := <-b.in:
				batch = append(batch, p)
			default:
				break more
			}
		}
		items = items[:0]
		for _, p := range batch {
			items = append(items, p.item)
		}
		// The batch outlives any one request's context.
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		res, err := b.write(ctx, items)
		cancel()
		if err != nil && len(batch) > 1 && !errors.Is(err, pushd.ErrUnavailable) {
			// One item the database refuses must not fail the others:
			// each on its own, so that only it gets the error.
			for _, p := range batch {
				ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
				r, err := b.write(ctx, []T{p.item})
				cancel()
				if err == nil {
					p.res = r[0]
				}
				p.err = err
				close(p.done)
			}
			continue
		}
		for i, p := range batch {
			if err == nil {
				p.res = res[i]
			}
			p.err = err
			close(p.done)
		}
	}
}

// close stops the writers once their batches are written; requests still
// waiting to be taken get errClosed.
func (b *batcher[T, R]) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	close(b.quit)
	b.wg.Wait()
	for {
		select {
		case p := <-b.in:
			p.err = errClosed
			close(p.done)
		default:
			return
		}
	}
}
