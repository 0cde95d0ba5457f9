package monitor

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pushd/pushd/campaign"
)

// Health is what /healthz and /readyz report. Safe for concurrent use.
type Health struct {
	apps  AppSource
	clock func() time.Time
	// stale is how long the scheduler may go without a pass before the
	// process counts as hung.
	stale time.Duration

	mu        sync.Mutex
	lastTick  time.Time
	dbErr     error
	dbSince   time.Time
	configErr string
	running   int
}

// NewHealth returns a Health. poll is the scheduler's poll interval.
func NewHealth(apps AppSource, poll time.Duration, clock func() time.Time) *Health {
	if clock == nil {
		clock = time.Now
	}
	// A pass can wait on the database for up to its read timeout (60 s);
	// only a loop silent for longer than that is hung.
	return &Health{apps: apps, clock: clock, stale: max(10*poll, 3*time.Minute), lastTick: clock()}
}

// Tick records a scheduler pass and whether the database answered.
func (h *Health) Tick(err error, running int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.clock()
	h.lastTick, h.running = now, running
	if err != nil && h.dbErr == nil {
		h.dbSince = now
	}
	h.dbErr = err
}

// ConfigRejected records a failed reload; nil after a good one.
func (h *Health) ConfigRejected(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.configErr = ""
	if err != nil {
		h.configErr = err.Error()
	}
}

// Readiness is the /readyz body.
type Readiness struct {
	Ready       bool              `json:"ready"`
	Database    string            `json:"database"`
	Config      string            `json:"config"`
	Apps        map[string]string `json:"apps"`
	RunningRuns int               `json:"running_runs"`
	LastPass    time.Time         `json:"last_scheduler_pass"`
}

// Ready reports readiness: database reachable, config valid, no app in
// credential failure.
func (h *Health) Ready() Readiness {
	h.mu.Lock()
	r := Readiness{Ready: true, Database: "ok", Config: "ok", Apps: map[string]string{}, RunningRuns: h.running, LastPass: h.lastTick}
	if h.dbErr != nil {
		r.Ready = false
		r.Database = "unreachable since " + h.dbSince.Format(time.RFC3339) + ": " + h.dbErr.Error() + " (sending paused)"
	}
	if h.configErr != "" {
		r.Ready = false
		r.Config = "last reload rejected, previous config in force: " + h.configErr
	}
	h.mu.Unlock()
	now := h.clock()
	apps := h.apps()
	names := make([]string, 0, len(apps))
	for n := range apps {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r.Apps[n] = appState(apps[n], now)
		if r.Apps[n] != "ok" {
			r.Ready = false
		}
	}
	return r
}

func appState(a *campaign.App, now time.Time) string {
	if h, held := a.Holding(); held {
		return fmt.Sprintf("held since %s until %s: %s", h.Since.UTC().Format(time.RFC3339), h.Until.UTC().Format(time.RFC3339), h.Reason)
	}
	return "ok"
}

// Live reports whether the scheduler loop is alive.
func (h *Health) Live() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.clock().Sub(h.lastTick) < h.stale
}

// Handler serves /healthz, /readyz and /metrics.
func Handler(h *Health, m *Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !h.Live() {
			http.Error(w, "scheduler loop stalled", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		r := h.Ready()
		w.Header().Set("Content-Type", "application/json")
		if !r.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(r)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry(), promhttp.HandlerOpts{}))
	return mux
}
