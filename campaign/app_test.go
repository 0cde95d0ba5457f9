package campaign

import (
	"context"
	"testing"
	"time"
)

// A send refused by the rate limiter (its deadline comes before the next
// token) takes no in-flight slot, so it gives none back either: it neither
// frees another send's slot nor blocks when none is taken.
func TestAcquireRateLimitedGivesNoSlotBack(t *testing.T) {
	t.Parallel()
	a := NewApp("A", "apns", nil, AppOptions{Concurrency: 10, RateLimit: 0.5})
	a.accepted() // credentials proven: no probe slot
	l, err := a.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	failed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := a.acquire(ctx) // the next token is 2 s away
		failed <- err
	}()
	select {
	case err := <-failed:
		if err == nil {
			t.Fatal("acquire past the rate limit succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("acquire refused by the rate limiter hung")
	}
	if n := a.InFlight(); n != 1 {
		t.Errorf("in flight after a refused acquire: %d, want 1 (the first send's)", n)
	}
	a.release(l)
	if n := a.InFlight(); n != 0 {
		t.Errorf("in flight after release: %d, want 0", n)
	}
}
