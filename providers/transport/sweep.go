package transport

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/net/http2"
)

// expired returns why s must give up before it is answered, if it must.
func (s *stream) expired(ctx context.Context, timeout time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// The context's own timer may run late on a busy machine; nothing is
	// written after its deadline all the same.
	dl, ok := ctx.Deadline()
	if !ok && s.deadline.IsZero() {
		return nil
	}
	now := time.Now()
	if ok && !now.Before(dl) {
		return context.DeadlineExceeded
	}
	if !s.deadline.IsZero() && now.After(s.deadline) {
		return timeoutError{timeout}
	}
	return nil
}

// sweepLoop enforces request deadlines, wakes waiters to check their
// contexts, and health-checks a silent connection with PING.
func (cc *clientConn) sweepLoop() {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-cc.closed:
			return
		case now := <-t.C:
			cc.sweep(now)
		}
	}
}

func (cc *clientConn) sweep(now time.Time) {
	cc.mu.Lock()
	defer cc.unlock()
	if cc.err != nil {
		return
	}
	timedOut := false
	for _, s := range cc.streams {
		switch {
		case !s.deadline.IsZero() && now.After(s.deadline):
			cc.resetLocked(s, http2.ErrCodeCancel, timeoutError{cc.p.opts.RequestTimeout})
			timedOut = true
		case s.req.Context().Err() != nil:
			cc.resetLocked(s, http2.ErrCodeCancel, s.req.Context().Err())
		}
	}
	if cc.err != nil {
		return // the last stream of a draining connection
	}
	if cc.waiters > 0 {
		cc.cond.Broadcast()
	}
	if cc.readSome.Swap(false) {
		cc.lastRead = now
	}
	if !cc.pingSent.IsZero() {
		if now.Sub(cc.pingSent) > cc.p.opts.PingTimeout {
			cc.failLocked(fmt.Errorf("%s did not answer a PING within %s", cc.p.addr, cc.p.opts.PingTimeout))
		}
		return
	}
	// A request that timed out may mean a dead connection: check now
	// rather than after ReadIdleTimeout of silence.
	if timedOut || now.Sub(cc.lastRead) > cc.p.opts.ReadIdleTimeout {
		cc.pingSent = now
		cc.pingData[0]++
		cc.fr.WritePing(false, cc.pingData)
	}
}
