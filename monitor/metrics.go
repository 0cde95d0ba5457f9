// Package monitor tells people how pushd is doing: Prometheus metrics,
// liveness and readiness, served on the [Server] listen address.
package monitor

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/campaign"
	"github.com/pushd/pushd/providers"
)

// Metrics are pushd's Prometheus metrics. It implements the runners' and
// the scheduler's observer interfaces. Safe for concurrent use.
type Metrics struct {
	reg         *prometheus.Registry
	sends       *prometheus.CounterVec
	capped      *prometheus.CounterVec
	ledgerWaits *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	dbWrite     *prometheus.HistogramVec
	lag         *prometheus.HistogramVec
	dbErrors    prometheus.Counter
	reloads     *prometheus.CounterVec
	campaigns   *prometheus.GaugeVec
	// connEvents counts provider connection events.
	connEvents *prometheus.CounterVec
	// delivered caches, per app and provider, the children that every
	// delivered push updates: resolving them by label values costs a hash
	// and a lock each, and these two calls were 5% of pushd's CPU while
	// sending.
	delivered sync.Map // appKind -> *deliveredObs
}

type appKind struct {
	app  string
	kind pushd.PushType
}

type deliveredObs struct {
	sent    prometheus.Counter
	latency prometheus.Observer
}

// AppSource returns the current apps; it follows reloads.
type AppSource func() map[string]*campaign.App

// NewMetrics registers pushd's metrics. apps feeds the in-flight and token
// refresh gauges at scrape time.
func NewMetrics(apps AppSource) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushd_sends_total",
			Help: "Provider answers by app, provider, outcome (sent, failed, invalid, retried, expired, held, error) and reason. A push's last answer, when its tries ran out, counts as failed.",
		}, []string{"app", "provider", "outcome", "reason"}),
		ledgerWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushd_ledger_waits_total",
			Help: "Times a run stopped taking users on until a ledger write went in: the database was slower than sending.",
		}, []string{"app"}),
		capped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushd_capped_total",
			Help: "Users a campaign left out because they had reached the app's frequency_cap (recorded as capped, never sent).",
		}, []string{"app"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pushd_provider_latency_seconds",
			Help:    "Time from sending a push to the provider's answer.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"app", "provider"}),
		dbWrite: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pushd_ledger_write_seconds",
			Help:    "Time to record a flush of outcomes (one transaction) in the database.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
		}, []string{"app"}),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pushd_scheduler_lag_seconds",
			Help:    "How late a run started after its scheduled time.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2, 5, 30, 300, 3600},
		}, []string{"app"}),
		dbErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushd_ledger_write_errors_total",
			Help: "Failed ledger writes (database away); sending pauses meanwhile.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushd_config_reloads_total",
			Help: "Config reloads by result (ok, rejected).",
		}, []string{"result"}),
		connEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushd_connection_events_total",
			Help: "Provider connection events by app, provider and event (connected, dial_failed, goaway, lost).",
		}, []string{"app", "provider", "event"}),
		campaigns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pushd_campaigns",
			Help: "Campaign rows by status, as of the last scheduler pass.",
		}, []string{"status"}),
	}
	reg.MustRegister(m.sends, m.capped, m.ledgerWaits, m.latency, m.dbWrite, m.lag, m.dbErrors, m.reloads, m.campaigns, m.connEvents,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&appCollector{apps: apps})
	return m
}

// Registry is the registry to serve.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

var _ campaign.Observer = (*Metrics)(nil)

// Sent counts one provider answer.
func (m *Metrics) Sent(app string, kind pushd.PushType, res providers.Result, err error, took time.Duration, last bool) {
	if err == nil && res.Outcome == providers.Delivered && res.Reason == "" {
		k := appKind{app, kind}
		o, ok := m.delivered.Load(k)
		if !ok {
			o, _ = m.delivered.LoadOrStore(k, &deliveredObs{
				sent:    m.sends.WithLabelValues(app, string(kind), "sent", ""),
				latency: m.latency.WithLabelValues(app, string(kind)),
			})
		}
		d := o.(*deliveredObs)
		d.latency.Observe(took.Seconds())
		d.sent.Inc()
		return
	}
	outcome, reason := "error", "network"
	switch {
	case errors.Is(err, providers.ErrExpired) || errors.Is(err, context.DeadlineExceeded):
		outcome, reason = "expired", ""
	case err != nil:
		if last {
			outcome = "failed"
		}
	default:
		reason = res.Reason
		switch res.Outcome {
		case providers.Delivered:
			outcome = "sent"
		case providers.Rejected:
			outcome = "failed"
		case providers.TokenInvalid:
			outcome = "invalid"
		case providers.Retryable:
			outcome = "retried"
			if last {
				outcome = "failed"
			}
		case providers.CredentialFailure, providers.AppThrottled:
			outcome = "held"
		}
		m.latency.WithLabelValues(app, string(kind)).Observe(took.Seconds())
	}
	m.sends.WithLabelValues(app, string(kind), outcome, reason).Inc()
}

// ConnEvent counts one provider connection event.
func (m *Metrics) ConnEvent(app string, kind pushd.PushType, event string) {
	m.connEvents.WithLabelValues(app, string(kind), event).Inc()
}

// Recorded observes one ledger write.
func (m *Metrics) Recorded(app string, n int, took time.Duration, err error) {
	if err != nil {
		m.dbErrors.Inc()
		return
	}
	if n > 0 {
		m.dbWrite.WithLabelValues(app).Observe(took.Seconds())
	}
}

// Capped counts users left out under the app's frequency cap.
func (m *Metrics) Capped(app string, n int) {
	m.capped.WithLabelValues(app).Add(float64(n))
}

// LedgerWait counts a run's sending waiting for the ledger.
func (m *Metrics) LedgerWait(app string) {
	m.ledgerWaits.WithLabelValues(app).Inc()
}

// RunStarted observes how late a run started.
func (m *Metrics) RunStarted(app string, lag time.Duration) {
	m.lag.WithLabelValues(app).Observe(max(lag, 0).Seconds())
}

// Reloaded counts a config reload.
func (m *Metrics) Reloaded(ok bool) {
	if ok {
		m.reloads.WithLabelValues("ok").Inc()
	} else {
		m.reloads.WithLabelValues("rejected").Inc()
	}
}

// SetCampaigns publishes campaign counts by status.
func (m *Metrics) SetCampaigns(byStatus map[string]int) {
	m.campaigns.Reset()
	for s, n := range byStatus {
		m.campaigns.WithLabelValues(s).Set(float64(n))
	}
}

// appCollector reads per-app state at scrape time, so that it follows
// reloads without re-registering anything.
type appCollector struct{ apps AppSource }

var (
	inflightDesc = prometheus.NewDesc("pushd_inflight_requests", "Requests in flight to the provider.", []string{"app", "provider"}, nil)
	heldDesc     = prometheus.NewDesc("pushd_app_held",
		"1 while the provider holds the app (credentials rejected, or APNs TooManyProviderTokenUpdates): no push of it is tried.",
		[]string{"app", "provider", "reason"}, nil)
	refreshDesc = prometheus.NewDesc("pushd_auth_token_refreshes_total",
		"Provider auth tokens obtained: APNs JWTs signed, FCM OAuth access tokens fetched (per client; a reload starts a new client).", []string{"app", "provider"}, nil)
)

func (c *appCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- inflightDesc
	ch <- heldDesc
	ch <- refreshDesc
}

func (c *appCollector) Collect(ch chan<- prometheus.Metric) {
	for name, a := range c.apps() {
		ch <- prometheus.MustNewConstMetric(inflightDesc, prometheus.GaugeValue, float64(a.InFlight()), name, string(a.Kind))
		if h, held := a.Holding(); held {
			ch <- prometheus.MustNewConstMetric(heldDesc, prometheus.GaugeValue, 1, name, string(a.Kind), h.Code)
		}
		if r, ok := a.Sender.(interface{ TokenRefreshes() uint64 }); ok {
			ch <- prometheus.MustNewConstMetric(refreshDesc, prometheus.CounterValue, float64(r.TokenRefreshes()), name, string(a.Kind))
		}
	}
}
