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
		m.Sent("IOS", pushd.APNs, ok, nil, 10*time.Millisecond)
	}
	m.Sent("Android", pushd.FCM, ok, nil, 2*time.Second)
	m.Sent("IOS", pushd.APNs, providers.Result{Outcome: providers.TokenInvalid, Reason: "BadDeviceToken"}, nil, time.Millisecond)
	m.Sent("IOS", pushd.APNs, providers.Result{}, errors.New("reset"), time.Millisecond)

	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"IOS", "APNs", "sent", ""}, 3},
		{[]string{"Android", "FCM", "sent", ""}, 1},
		{[]string{"IOS", "APNs", "invalid", "BadDeviceToken"}, 1},
		{[]string{"IOS", "APNs", "error", "network"}, 1},
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
	}{{"IOS", pushd.APNs, 4, 0.031}, {"Android", pushd.FCM, 1, 2}} {
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
