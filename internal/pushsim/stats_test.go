package pushsim

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"
)

func TestStatsFirstAndLastOK(t *testing.T) {
	t.Parallel()
	e := start(t, Options{NoDeliveryLog: true})
	if st := e.s.Stats(); !st.APNs.FirstAt.IsZero() || !st.APNs.LastAt.IsZero() {
		t.Fatalf("before any answer: first %v, last %v; want zero", st.APNs.FirstAt, st.APNs.LastAt)
	}

	if r := e.pushAPNs("dead" + devToken[4:]); r.status != http.StatusGone {
		t.Fatalf("dead token: %d, want 410", r.status)
	}
	if st := e.s.Stats(); !st.APNs.FirstAt.IsZero() {
		t.Errorf("after a 410 only: first %v, want zero (only 200s count)", st.APNs.FirstAt)
	}

	t0 := e.now()
	if r := e.pushAPNs(devToken); r.status != http.StatusOK {
		t.Fatalf("push: %d %s", r.status, r.body)
	}
	e.clock.Advance(1500 * time.Millisecond)
	if r := e.pushAPNs("dead" + devToken[4:]); r.status != http.StatusGone {
		t.Fatalf("dead token: %d, want 410", r.status)
	}
	if st := e.s.Stats(); !st.APNs.FirstAt.Equal(t0) || !st.APNs.LastAt.Equal(t0) {
		t.Errorf("after one 200 and a later 410: first %v, last %v; want both %v", st.APNs.FirstAt, st.APNs.LastAt, t0)
	}
	e.clock.Advance(time.Second)
	t2 := e.now()
	if r := e.pushAPNs(devToken); r.status != http.StatusOK {
		t.Fatalf("push: %d %s", r.status, r.body)
	}
	st := e.s.Stats()
	if !st.APNs.FirstAt.Equal(t0) || !st.APNs.LastAt.Equal(t2) {
		t.Errorf("first %v, last %v; want %v and %v", st.APNs.FirstAt, st.APNs.LastAt, t0, t2)
	}
	if !st.FCM.FirstAt.IsZero() || !st.FCM.LastAt.IsZero() {
		t.Errorf("fcm first %v, last %v; want zero: providers are counted apart", st.FCM.FirstAt, st.FCM.LastAt)
	}

	e.clock.Advance(time.Second)
	t3 := e.now()
	if r, _ := e.sendFCM(e.accessToken(), fcmToken(fcmDevToken)); r.status != http.StatusOK {
		t.Fatalf("fcm send: %d %s", r.status, r.body)
	}
	st = e.s.Stats()
	if !st.FCM.FirstAt.Equal(t3) || !st.FCM.LastAt.Equal(t3) {
		t.Errorf("fcm first %v, last %v; want both %v", st.FCM.FirstAt, st.FCM.LastAt, t3)
	}

	var got struct {
		APNs struct {
			FirstAt time.Time `json:"first_at"`
			LastAt  time.Time `json:"last_at"`
		} `json:"apns"`
	}
	if err := json.Unmarshal(mustJSON(t, st), &got); err != nil {
		t.Fatal(err)
	}
	if !got.APNs.FirstAt.Equal(t0) || !got.APNs.LastAt.Equal(t2) {
		t.Errorf("JSON first_at %v, last_at %v; want %v and %v", got.APNs.FirstAt, got.APNs.LastAt, t0, t2)
	}

	e.s.Reset()
	if st := e.s.Stats(); !st.APNs.FirstAt.IsZero() || !st.APNs.LastAt.IsZero() || !st.FCM.LastAt.IsZero() {
		t.Errorf("after Reset: apns %v..%v, fcm last %v; want zero", st.APNs.FirstAt, st.APNs.LastAt, st.FCM.LastAt)
	}
}

// TestStatsFirstAndLastOKConcurrent offers times in random order from many
// goroutines: the earliest and the latest must win.
func TestStatsFirstAndLastOKConcurrent(t *testing.T) {
	t.Parallel()
	const n = 8000
	times := make([]int64, n)
	for i := range times {
		times[i] = int64(1_000_000 + i)
	}
	rand.Shuffle(n, func(i, j int) { times[i], times[j] = times[j], times[i] })
	var p providerStats
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				p.answeredOK(times[i])
			}
		})
	}
	wg.Wait()
	st := p.snapshot()
	if got, want := st.FirstAt.UnixNano(), int64(1_000_000); got != want {
		t.Errorf("first %d, want %d", got, want)
	}
	if got, want := st.LastAt.UnixNano(), int64(1_000_000+n-1); got != want {
		t.Errorf("last %d, want %d", got, want)
	}
}
