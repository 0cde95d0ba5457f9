package monitor

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/providers"
)

// Delivered pushes take a cached path; each app and provider must still
// count on its own series, next to the answers that take the slow path.
func TestSentCountsEachAppAndOutcome(t *testing.T) {
	m := NewMetrics(nil)
	ok := providers.Result{Outcome: providers.Delivered, Status: 200}
	for range 3 {
		m.Sent("IOS", pushd.APNs, ok, nil, 10*time.Millisecond, true)
	}
	m.Sent("Android", pushd.FCM, ok, nil, 2*time.Second, true)
	m.Sent("IOS", pushd.APNs, providers.Result{Outcome: providers.TokenInvalid, Reason: "BadDeviceToken"}, nil, time.Millisecond, true)
	m.Sent("IOS", pushd.APNs, providers.Result{}, errors.New("reset"), time.Millisecond, false)
	// A push's retries run out: its last answer is a failure, not a retry
	// (the failure-ratio query in docs/monitoring.md reads this label).
	busy := providers.Result{Outcome: providers.Retryable, Status: 503, Reason: "ServiceUnavailable"}
	m.Sent("IOS", pushd.APNs, busy, nil, time.Millisecond, false)
	m.Sent("IOS", pushd.APNs, busy, nil, time.Millisecond, true)
	m.Sent("IOS", pushd.APNs, providers.Result{}, errors.New("reset"), time.Millisecond, true)
	m.Sent("IOS", pushd.APNs, providers.Result{Outcome: providers.AppThrottled, Status: 429, Reason: "TooManyProviderTokenUpdates"}, nil, time.Millisecond, false)

	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"IOS", "APNs", "sent", ""}, 3},
		{[]string{"Android", "FCM", "sent", ""}, 1},
		{[]string{"IOS", "APNs", "invalid", "BadDeviceToken"}, 1},
		{[]string{"IOS", "APNs", "error", "network"}, 1},
		{[]string{"IOS", "APNs", "retried", "ServiceUnavailable"}, 1},
		{[]string{"IOS", "APNs", "failed", "ServiceUnavailable"}, 1},
		{[]string{"IOS", "APNs", "failed", "network"}, 1},
		{[]string{"IOS", "APNs", "held", "TooManyProviderTokenUpdates"}, 1},
	} {
		if got := testutil.ToFloat64(m.sends.WithLabelValues(c.labels...)); got != c.want {
			t.Errorf("pushd_sends_total%v = %v, want %v", c.labels, got, c.want)
		}
	}
	// Answers are timed; a network error has no answer to time.
	if n := testutil.CollectAndCount(m.latency); n != 2 {
		t.Errorf("latency series = %d, want 2", n)
	}
	for _, c := range []struct {
		app   string
		kind  pushd.PushType
		count uint64
		sum   float64
	}{{"IOS", pushd.APNs, 7, 0.034}, {"Android", pushd.FCM, 1, 2}} {
		var d dto.Metric
		if err := m.latency.WithLabelValues(c.app, string(c.kind)).(prometheus.Metric).Write(&d); err != nil {
			t.Fatal(err)
		}
		h := d.GetHistogram()
		if h.GetSampleCount() != c.count || math.Abs(h.GetSampleSum()-c.sum) > 1e-9 {
			t.Errorf("latency of %s: count %d sum %v, want %d and %v", c.app, h.GetSampleCount(), h.GetSampleSum(), c.count, c.sum)
		}
	}
}

// Users left out under a frequency cap count per app, apart from provider
// answers (they never reach a provider, and would skew failure ratios).
func TestCappedCountsPerApp(t *testing.T) {
	m := NewMetrics(nil)
	m.Capped("IOS", 30)
	m.Capped("IOS", 5)
	m.Capped("Android", 2)
	if got := testutil.ToFloat64(m.capped.WithLabelValues("IOS")); got != 35 {
		t.Errorf("pushd_capped_total{app=IOS} = %v, want 35", got)
	}
	if got := testutil.ToFloat64(m.capped.WithLabelValues("Android")); got != 2 {
		t.Errorf("pushd_capped_total{app=Android} = %v, want 2", got)
	}
	if n := testutil.CollectAndCount(m.sends); n != 0 {
		t.Errorf("capped users made %d pushd_sends_total series", n)
	}
}

func TestLedgerWaitsCounted(t *testing.T) {
	t.Parallel()
	m := NewMetrics(nil)
	m.LedgerWait("IOS")
	m.LedgerWait("IOS")
	if got := testutil.ToFloat64(m.ledgerWaits.WithLabelValues("IOS")); got != 2 {
		t.Errorf("pushd_ledger_waits_total{app=IOS} = %v, want 2", got)
	}
}
