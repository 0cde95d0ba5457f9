package heartbeat

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/campaign"
)

type fakeStore struct {
	mu     sync.Mutex
	beats  []pushd.Instance
	forgot []string
}

func (f *fakeStore) Heartbeat(_ context.Context, in pushd.Instance) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.beats = append(f.beats, in)
	return nil
}

func (f *fakeStore) Forget(_ context.Context, owner string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgot = append(f.forgot, owner)
	return nil
}

func (f *fakeStore) last() pushd.Instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.beats[len(f.beats)-1]
}

// fakeSource records at a steady pace per run: run 1 sends 1,000 a second
// with 100 more other outcomes; run 2 stalls after 10 s.
type fakeSource struct{ start time.Time }

func (f fakeSource) Recorded() map[int64]campaign.Recorded {
	secs := int64(time.Since(f.start) / time.Second)
	return map[int64]campaign.Recorded{
		1: {Sent: 1000 * secs, Outcomes: 1100 * secs},
		2: {Sent: 50 * min(secs, 10), Outcomes: 50 * min(secs, 10)},
	}
}

// The pace is measured over the last half minute, not since the start: a
// run that stalls reads 0 once its last progress is older than the window.
func TestBeatReportsRecentPace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{}
		b := New(st, fakeSource{start: time.Now()}, pushd.Instance{Owner: "a#1", Host: "h"}, Options{})
		b.Start(t.Context())
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := st.last(); got.Owner != "a#1" || len(got.Runs) != 2 || got.Runs[0].Sent != 0 {
			t.Fatalf("first heartbeat %+v: want both runs, no pace yet", got)
		}
		time.Sleep(58 * time.Second) // 12 heartbeats
		synctest.Wait()
		got := st.last().Runs
		if got[0].RunID != 1 || got[0].Sent != 1000 || got[0].Outcomes != 1100 {
			t.Errorf("run 1: %+v, want 1,000 sent and 1,100 outcomes a second", got[0])
		}
		if got[1].RunID != 2 || got[1].Sent != 0 {
			t.Errorf("run 2, stalled since 10 s: %+v, want no pace", got[1])
		}
		b.Stop(context.Background())
		b.Stop(context.Background())
		n := len(st.beats)
		time.Sleep(time.Minute)
		synctest.Wait()
		if len(st.beats) != n || len(st.forgot) != 1 || st.forgot[0] != "a#1" {
			t.Fatalf("after Stop: %d more beats, forgot %v; want none and the row removed once", len(st.beats)-n, st.forgot)
		}
	})
}
