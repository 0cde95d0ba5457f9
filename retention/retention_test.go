package retention

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pushd/pushd"
)

// fakeStore records the passes and can pretend another instance holds the
// lock or that the database is away.
type fakeStore struct {
	mu      sync.Mutex
	locked  bool // held by another instance
	fail    error
	befores []time.Time
	pauses  int
	// audiences counts PurgeAudiences calls.
	audiences int
}

func (f *fakeStore) TryLock(ctx context.Context, _ string, fn func(context.Context) error) (bool, error) {
	f.mu.Lock()
	locked := f.locked
	f.mu.Unlock()
	if locked {
		return false, nil
	}
	return true, fn(ctx)
}

func (f *fakeStore) PurgeAudiences(context.Context, int, func(time.Duration) bool) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.audiences++
	return 0, nil
}

func (f *fakeStore) PurgeLedger(_ context.Context, before time.Time, chunk int, pause func(time.Duration) bool) (pushd.Purged, error) {
	f.mu.Lock()
	f.befores = append(f.befores, before)
	err := f.fail
	f.mu.Unlock()
	if err != nil {
		return pushd.Purged{}, err
	}
	// Three statements of 10 ms each.
	for range 3 {
		if !pause(10 * time.Millisecond) {
			return pushd.Purged{Runs: 1}, context.Canceled
		}
		f.mu.Lock()
		f.pauses++
		f.mu.Unlock()
	}
	return pushd.Purged{Runs: 1, Deliveries: int64(3 * chunk)}, nil
}

func (f *fakeStore) passes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.befores...)
}

// A pass runs at start and then every hour, deleting what finished more
// than the retention ago; a lock held elsewhere or a failed pass skips to
// the next hour; Stop ends it.
func TestPurgerSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{}
		p := New(st, Options{Retention: 90 * 24 * time.Hour})
		start := time.Now()
		p.Start(t.Context())
		p.Start(t.Context()) // a second Start does nothing
		synctest.Wait()
		got := st.passes()
		if len(got) != 1 || !got[0].Equal(start.Add(-90*24*time.Hour)) {
			t.Fatalf("passes at start %v, want one deleting what finished before %v", got, start.Add(-90*24*time.Hour))
		}

		st.mu.Lock()
		st.locked = true
		st.mu.Unlock()
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := len(st.passes()); n != 1 {
			t.Fatalf("%d passes while another instance held the lock, want still 1", n)
		}

		st.mu.Lock()
		st.locked, st.fail = false, errors.New("database away")
		st.mu.Unlock()
		time.Sleep(time.Hour)
		synctest.Wait()
		st.mu.Lock()
		st.fail = nil
		st.mu.Unlock()
		p.SetRetention(30 * 24 * time.Hour)
		time.Sleep(time.Hour)
		synctest.Wait()
		got = st.passes()
		if len(got) != 3 || !got[2].Equal(start.Add(3*time.Hour-30*24*time.Hour)) {
			t.Fatalf("passes %v: want the third, after a failed one, with the new retention", got)
		}
		p.Stop()
		p.Stop()
		time.Sleep(3 * time.Hour)
		synctest.Wait()
		if n := len(st.passes()); n != 3 {
			t.Fatalf("%d passes after Stop, want 3", n)
		}
	})
}

// Each statement is followed by a pause as long as it took, and Stop
// interrupts a pass between two statements.
func TestPurgerPausesAndStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{}
		p := New(st, Options{Retention: time.Hour})
		start := time.Now()
		p.Pass(t.Context())
		if took := time.Since(start); took != 30*time.Millisecond {
			t.Fatalf("a pass of three 10 ms statements took %v, want 30 ms of pauses", took)
		}

		p.Start(t.Context())
		time.Sleep(15 * time.Millisecond) // inside the second pause
		p.Stop()
		st.mu.Lock()
		pauses := st.pauses
		st.mu.Unlock()
		if pauses != 4 {
			t.Fatalf("%d pauses completed, want 4 (3 of the first pass, 1 before Stop)", pauses)
		}
	})
}

// With retention 0 nothing is ever deleted.
func TestPurgerKeepsEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{}
		p := New(st, Options{})
		p.Start(t.Context())
		time.Sleep(5 * time.Hour)
		synctest.Wait()
		p.Stop()
		if n := len(st.passes()); n != 0 {
			t.Fatalf("%d passes with retention 0, want none", n)
		}
		// Member lists and old frequency-cap sends are purged whatever the
		// retention: at the start and hourly.
		st.mu.Lock()
		defer st.mu.Unlock()
		if st.audiences != 6 {
			t.Errorf("PurgeAudiences ran %d times in 5 hours with retention 0, want 6", st.audiences)
		}
	})
}
