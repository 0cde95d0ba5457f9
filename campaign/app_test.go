package campaign

import (
	"context"
	"testing"
	"time"

	"github.com/pushd/pushd"
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

// A retired app lets go of its client when the last runner releases it,
// not before, and at once when none holds it.
func TestRetireWaitsForTheLastRunner(t *testing.T) {
	t.Parallel()
	a := NewApp("A", pushd.APNs, nil, AppOptions{})
	closed := 0
	if !a.Hold() || !a.Hold() {
		t.Fatal("Hold on a live app = false")
	}
	a.Retire(func() { closed++ })
	if closed != 0 {
		t.Fatal("retired app closed while two runners hold it")
	}
	a.Release()
	if closed != 0 {
		t.Fatal("retired app closed while one runner holds it")
	}
	a.Release()
	if closed != 1 {
		t.Fatalf("closed %d times after the last release, want 1", closed)
	}
	if a.Hold() {
		t.Fatal("Hold on a retired, closed app = true")
	}

	idle := NewApp("B", pushd.FCM, nil, AppOptions{})
	idle.Retire(func() { closed++ })
	if closed != 2 {
		t.Fatal("a retired app no runner holds was not closed at once")
	}
}
