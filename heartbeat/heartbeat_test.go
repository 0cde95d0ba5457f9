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
	// others are the other instances' rows, with when they last beat.
	others []pushd.Instance
}

// Instances returns this process's last beat and the others, live when
// their SeenAt is younger than live.
func (f *fakeStore) Instances(_ context.Context, live time.Duration) ([]pushd.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []pushd.Instance
	if len(f.beats) > 0 {
		me := f.beats[len(f.beats)-1]
		me.Live = true
		out = append(out, me)
	}
	for _, o := range f.others {
		o.Live = time.Since(o.SeenAt) < live
		out = append(out, o)
	}
	return out, nil
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
		1: {App: "iOS", Sent: 1000 * secs, Outcomes: 1100 * secs},
		2: {App: "iOS", Sent: 50 * min(secs, 10), Outcomes: 50 * min(secs, 10)},
	}
}

func (fakeSource) SetShares(map[int64]int, map[string]int) {}

// shareSource is fakeSource remembering the last shares it was told.
type shareSource struct {
	fakeSource
	mu   sync.Mutex
	runs map[int64]int
	apps map[string]int
}

func (s *shareSource) SetShares(runs map[int64]int, apps map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs, s.apps = runs, apps
}

func (s *shareSource) shares() (map[int64]int, map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs, s.apps
}

// Each beat counts the live instances per run and per app, itself
// included; an instance that stops beating drops out after three missed
// beats.
func TestBeatSharesRunsAndApps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{others: []pushd.Instance{
			{Owner: "b#1", SeenAt: time.Now(), Runs: []pushd.RunProgress{{RunID: 1, App: "iOS"}, {RunID: 3, App: "iOS"}}},
			{Owner: "c#1", SeenAt: time.Now(), Runs: []pushd.RunProgress{{RunID: 3, App: "Android"}}},
		}}
		src := &shareSource{fakeSource: fakeSource{start: time.Now()}}
		b := New(st, src, pushd.Instance{Owner: "a#1"}, Options{})
		b.Start(t.Context())
		defer b.Stop(context.Background())
		synctest.Wait()
		runs, apps := src.shares()
		if runs[1] != 2 || runs[2] != 1 || runs[3] != 2 || apps["iOS"] != 2 || apps["Android"] != 1 {
			t.Errorf("shares %v %v; want run 1 on 2 instances, run 2 on 1, run 3 on 2, iOS on 2, Android on 1", runs, apps)
		}
		// b and c stop beating; after 15 s they no longer count.
		time.Sleep(16 * time.Second)
		synctest.Wait()
		runs, apps = src.shares()
		if runs[1] != 1 || runs[3] != 0 || apps["iOS"] != 1 || apps["Android"] != 0 {
			t.Errorf("shares after the others died %v %v; want only this instance", runs, apps)
		}
	})
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
