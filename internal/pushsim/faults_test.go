package pushsim

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

func TestFaultsFailRate(t *testing.T) {
	t.Parallel()
	run := func(f Faults) []int {
		e := start(t, Options{Faults: f})
		var statuses []int
		for range 400 {
			statuses = append(statuses, e.pushAPNs(devToken).status)
		}
		return statuses
	}
	share := func(statuses []int, status int) float64 {
		n := 0
		for _, s := range statuses {
			if s == status {
				n++
			}
		}
		return float64(n) / float64(len(statuses))
	}

	a := run(Faults{FailRate: 0.3, ThrottleRate: 0.1, Seed: 42})
	if got := share(a, 503); got < 0.22 || got > 0.38 {
		t.Errorf("503 share %.2f, want about 0.3", got)
	}
	if got := share(a, 429); got < 0.05 || got > 0.16 {
		t.Errorf("429 share %.2f, want about 0.1", got)
	}
	if got := share(a, 200); got < 0.5 || got > 0.7 {
		t.Errorf("200 share %.2f, want about 0.6", got)
	}
	if b := run(Faults{FailRate: 0.3, ThrottleRate: 0.1, Seed: 42}); !slices.Equal(a, b) {
		t.Error("same seed, different statuses: want a repeatable run")
	}
	if c := run(Faults{FailRate: 0.3, ThrottleRate: 0.1, Seed: 43}); slices.Equal(a, c) {
		t.Error("different seeds, same statuses")
	}
}

func TestFaultsFCM(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	tok := e.accessToken()
	e.s.SetFaults(Faults{FailRate: 1, RetryAfter: 30})
	r, a := e.sendFCM(tok, fcmToken(fcmDevToken))
	if r.status != 503 || a.errorCode() != "UNAVAILABLE" || r.header.Get("Retry-After") != "30" {
		t.Errorf("FailRate 1: %d %s Retry-After %q, want 503 UNAVAILABLE, Retry-After 30", r.status, r.body, r.header.Get("Retry-After"))
	}
	e.s.SetFaults(Faults{ThrottleRate: 1})
	r, a = e.sendFCM(tok, fcmToken(fcmDevToken))
	if r.status != 429 || a.errorCode() != "QUOTA_EXCEEDED" || a.Error.Status != "RESOURCE_EXHAUSTED" || r.header.Get("Retry-After") != "1" {
		t.Errorf("ThrottleRate 1: %d %s Retry-After %q, want 429 QUOTA_EXCEEDED, default Retry-After 1", r.status, r.body, r.header.Get("Retry-After"))
	}
	// Faults hit only otherwise good requests.
	r, _ = e.sendFCM(tok, `{"message":{}}`)
	if r.status != 400 {
		t.Errorf("bad message under ThrottleRate 1: %d, want 400", r.status)
	}
	if st := e.s.Stats().FCM; st.ByReason["UNAVAILABLE"] != 1 || st.ByReason["QUOTA_EXCEEDED"] != 1 || st.Delivered != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestFaultsExpiredProviderTokenOnce(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	if r := e.pushAPNs(devToken); r.status != 200 {
		t.Fatalf("before the fault: %d %s", r.status, r.body)
	}
	e.s.SetFaults(Faults{ExpiredProviderTokenOnce: true})

	// A request with a bad token does not use the fault up.
	req := e.apnsRequest(devToken, alertBody)
	req.Header.Set("authorization", "bearer x.y.z")
	if r := e.do(req); r.status != 403 || r.reason(t) != "InvalidProviderToken" {
		t.Fatalf("bad token: %d %s, want InvalidProviderToken", r.status, r.body)
	}
	if r := e.pushAPNs(devToken); r.status != 403 || r.reason(t) != "ExpiredProviderToken" {
		t.Fatalf("first request: %d %s, want 403 ExpiredProviderToken", r.status, r.body)
	}
	for i := range 3 {
		if r := e.pushAPNs(devToken); r.status != 200 {
			t.Fatalf("request %d after the fault: %d %s, want 200", i+2, r.status, r.body)
		}
	}
	if e.s.currentFaults().ExpiredProviderTokenOnce {
		t.Error("fault still armed after it fired")
	}
}

func TestFaultsInvalidProviderToken(t *testing.T) {
	t.Parallel()
	e := start(t, Options{Faults: Faults{InvalidProviderToken: true}})
	if r := e.pushAPNs(devToken); r.status != 403 || r.reason(t) != "InvalidProviderToken" {
		t.Fatalf("got %d %s, want 403 InvalidProviderToken", r.status, r.body)
	}
	e.s.SetFaults(Faults{})
	if r := e.pushAPNs(devToken); r.status != 200 {
		t.Fatalf("after clearing: %d %s", r.status, r.body)
	}
}

func TestFaultsLatency(t *testing.T) {
	t.Parallel()
	const latency = 120 * time.Millisecond
	e := start(t, Options{Faults: Faults{Latency: latency}})
	begin := time.Now()
	if r := e.pushAPNs(devToken); r.status != 200 {
		t.Fatalf("got %d", r.status)
	}
	if d := time.Since(begin); d < latency {
		t.Errorf("answered after %v, want at least %v", d, latency)
	}
}

func TestFaultsValidate(t *testing.T) {
	t.Parallel()
	bad := []Faults{
		{FailRate: -0.1},
		{FailRate: 1.1},
		{ThrottleRate: 2},
		{FailRate: 0.6, ThrottleRate: 0.6},
		{RetryAfter: -1},
		{Latency: -time.Second},
		{GoAwayAfter: -1},
	}
	for _, f := range bad {
		if f.Validate() == nil {
			t.Errorf("Validate(%+v) = nil, want an error", f)
		}
		if _, err := Start(Options{Dir: t.TempDir(), Faults: f}); err == nil {
			t.Errorf("Start with %+v succeeded, want an error", f)
		}
	}
	if err := (Faults{FailRate: 0.5, ThrottleRate: 0.5, GoAwayAfter: 3}).Validate(); err != nil {
		t.Errorf("Validate of good faults: %v", err)
	}
}

func TestGoAwayAfterReconnects(t *testing.T) {
	t.Parallel()
	e := start(t, Options{Faults: Faults{GoAwayAfter: 3}})
	for i := range 10 {
		if r := e.pushAPNs(devToken); r.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i+1, r.status, r.body)
		}
	}
	st := e.s.Stats()
	if st.GoAways < 3 || st.Connections < 3 {
		t.Errorf("goaways %d, connections %d: want at least 3 each for 10 requests at 3 per connection", st.GoAways, st.Connections)
	}
	if st.APNs.Delivered != 10 {
		t.Errorf("delivered %d, want 10", st.APNs.Delivered)
	}
}
