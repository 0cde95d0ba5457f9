package campaign

import (
	"sync"
	"testing"
	"time"
)

// eventually polls cond for up to 10 s.
func eventually(cond func() bool) bool {
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// Workers are reused, the ones a lighter load no longer needs are retired
// while the app keeps sending, and none is left once it stops.
func TestWorkersRetire(t *testing.T) {
	t.Parallel()
	a := NewApp("A", "apns", nil, AppOptions{})
	a.idleAfter = 50 * time.Millisecond

	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		a.run(func() { defer wg.Done(); <-release })
	}
	if n := a.workers.Load(); n != 100 {
		t.Fatalf("%d workers for 100 blocked jobs, want 100", n)
	}
	close(release)
	wg.Wait()

	// A trickle of one job at a time needs one or two workers, not 100.
	stop := make(chan struct{})
	trickled := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				trickled <- n
				return
			case <-time.After(2 * time.Millisecond):
			}
			done := make(chan struct{})
			a.run(func() { close(done) })
			<-done
			n++
		}
	}()
	if !eventually(func() bool { return a.workers.Load() <= 3 }) {
		t.Errorf("%d workers still alive under a trickle of single jobs", a.workers.Load())
	}
	close(stop)
	if n := <-trickled; n == 0 {
		t.Fatal("no job ran during the trickle")
	}
	if !eventually(func() bool { return a.workers.Load() == 0 && !a.reaping.Load() }) {
		t.Errorf("idle app: %d workers, reaping %v; want none", a.workers.Load(), a.reaping.Load())
	}

	// And it starts again.
	done := make(chan struct{})
	a.run(func() { close(done) })
	<-done
	if !eventually(func() bool { return a.workers.Load() == 0 && !a.reaping.Load() }) {
		t.Errorf("after a second start: %d workers, reaping %v; want none", a.workers.Load(), a.reaping.Load())
	}
}
