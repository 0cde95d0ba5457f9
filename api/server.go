package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/pushid"
)

// Store is what the API needs of the database. Register and RecordOpens
// take batches (see batcher) and answer each item in order.
type Store interface {
	Register(ctx context.Context, ins []pushd.Installation) ([]pushd.Registered, error)
	Unregister(ctx context.Context, app, installationID string, at time.Time) (id int64, found bool, err error)
	RecordOpens(ctx context.Context, opens []pushd.PushOpen, at time.Time) ([]pushd.Opened, error)
}

// errClosed answers requests that arrive while the API shuts down.
var errClosed = errors.New("the device API is shutting down")

// Batches: two writers, each committing up to batchMax requests at once.
// Measured with cmd/apibench on 2 cores: 2 × 512 gave 5,300 PUT/s at p99
// 28 ms; 4 × 256 4,000/s at p99 59 ms; 8 × 64 2,750/s at p99 75 ms (more
// writers meant more lock waits and smaller commits).
const (
	batchWriters = 2
	batchMax     = 512
)

// App is one app as the API knows it: its provider (for the token's shape)
// and its keys.
type App struct {
	Name string
	Kind pushd.PushType
	Keys []string
}

// Options are the API's settings.
type Options struct {
	// RateLimit is the requests per second each key may make; 0 is
	// unlimited. The burst is a second's worth.
	RateLimit float64
	// Timeout bounds each request's database work (default 10 s).
	Timeout time.Duration
	Logger  *slog.Logger
	Now     func() time.Time
	// PushIDs checks the push ids that opens quote; nil turns opens off
	// (404).
	PushIDs *pushid.Signer
}

type appEntry struct {
	name string
	kind pushd.PushType
	keys [][]byte
}

// Server is the device API's http.Handler. It is safe for concurrent use,
// and SetApps may change the apps and keys while it serves.
type Server struct {
	store Store
	o     Options
	mux   *http.ServeMux
	apps  atomic.Pointer[map[string]*appEntry]
	// limiters holds a rate.Limiter per key; keys removed by a reload
	// keep theirs, unused, until the process ends (a handful of keys).
	limiters sync.Map
	register *batcher[pushd.Installation, pushd.Registered]
	opens    *batcher[pushd.PushOpen, pushd.Opened]
}

// New returns the API over st for apps.
func New(st Store, apps []App, o Options) *Server {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{store: st, o: o, mux: http.NewServeMux()}
	s.register = newBatcher(batchWriters, batchMax, st.Register)
	s.opens = newBatcher(batchWriters, batchMax, func(ctx context.Context, opens []pushd.PushOpen) ([]pushd.Opened, error) {
		return st.RecordOpens(ctx, opens, s.o.Now())
	})
	s.SetApps(apps)
	// Go's ServeMux answers a known path with another method 405 and an
	// Allow header listing the methods it has.
	s.mux.HandleFunc("PUT /v1/apps/{app}/installations/{installation_id}", s.putInstallation)
	s.mux.HandleFunc("DELETE /v1/apps/{app}/installations/{installation_id}", s.deleteInstallation)
	if o.PushIDs != nil {
		s.mux.HandleFunc("POST /v1/apps/{app}/opens", s.postOpen)
	}
	return s
}

// Close stops the writers after their current batches; call it once the
// HTTP server has stopped.
func (s *Server) Close() {
	s.register.close()
	s.opens.close()
}

// SetApps replaces the apps and their keys (a config reload).
func (s *Server) SetApps(apps []App) {
	m := make(map[string]*appEntry, len(apps))
	for _, a := range apps {
		e := &appEntry{name: a.Name, kind: a.Kind}
		for _, k := range a.Keys {
			e.keys = append(e.keys, []byte(k))
		}
		m[a.Name] = e
	}
	s.apps.Store(&m)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r) // which sets the path values
		return
	}
	// No route: the mux answers 404, or 405 with Allow for a known path;
	// the same in JSON.
	rec := &statusRecorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	if allow := rec.header.Get("Allow"); rec.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", allow)
		fail(w, http.StatusMethodNotAllowed, "method_not_allowed", "", "this endpoint takes "+allow)
		return
	}
	fail(w, http.StatusNotFound, "not_found", "", "no such endpoint: see docs/api.md")
}

// statusRecorder keeps the status and headers of the mux's own answer.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header         { return r.header }
func (r *statusRecorder) Write(p []byte) (int, error) { return len(p), nil }
func (r *statusRecorder) WriteHeader(status int)      { r.status = status }

// admit checks what every request needs before its body is read: a known
// app, one of its keys, and the key's rate. It answers the request itself
// when it returns nil.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) *appEntry {
	app := (*s.apps.Load())[r.PathValue("app")]
	if app == nil {
		fail(w, http.StatusNotFound, "unknown_app", "app", "no app of this name: use the app's section name in pushd's config.ini")
		return nil
	}
	key, ok := bearer(r)
	if !ok || !app.hasKey(key) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pushd"`)
		fail(w, http.StatusUnauthorized, "unauthorized", "", "send the app's API key as Authorization: Bearer <key>")
		return nil
	}
	if s.o.RateLimit > 0 {
		l, ok := s.limiters.Load(string(key))
		if !ok {
			l, _ = s.limiters.LoadOrStore(string(key), rate.NewLimiter(rate.Limit(s.o.RateLimit), max(1, int(s.o.RateLimit))))
		}
		now := s.o.Now()
		res := l.(*rate.Limiter).ReserveN(now, 1)
		if d := res.DelayFrom(now); !res.OK() || d > 0 {
			res.Cancel()
			retryAfter(w, d)
			fail(w, http.StatusTooManyRequests, "rate_limited", "", "this key made too many requests: retry after the Retry-After seconds")
			return nil
		}
	}
	return app
}

// hasKey compares key with each of the app's keys in constant time.
func (a *appEntry) hasKey(key []byte) bool {
	found := 0
	for _, k := range a.keys {
		found |= subtle.ConstantTimeCompare(k, key)
	}
	return found == 1
}

func bearer(r *http.Request) ([]byte, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return nil, false
	}
	return []byte(strings.TrimSpace(h[7:])), true
}

// readJSON reads a JSON request body of at most maxBody bytes, answering
// 415 or 413 itself when it returns false.
func readJSON(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		fail(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "", "send the body as JSON with Content-Type: application/json")
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		fail(w, http.StatusRequestEntityTooLarge, "body_too_large", "", "the body is over 16 KB")
		return nil, false
	}
	if err != nil {
		fail(w, http.StatusBadRequest, "bad_body", "", "the body could not be read")
		return nil, false
	}
	return body, true
}

func (s *Server) putInstallation(w http.ResponseWriter, r *http.Request) {
	app := s.admit(w, r)
	if app == nil {
		return
	}
	id := r.PathValue("installation_id")
	if err := checkInstallationID(id); err != nil {
		badRequest(w, err)
		return
	}
	body, ok := readJSON(w, r)
	if !ok {
		return
	}
	in, err := installation(app, id, body, s.o.Now())
	if err != nil {
		badRequest(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.o.Timeout)
	defer cancel()
	reg, err := s.register.do(ctx, in)
	if err != nil {
		s.storeFailed(w, "register", err)
		return
	}
	status := http.StatusOK
	if reg.Created {
		status = http.StatusCreated
	}
	writeJSON(w, status, map[string]int64{"id": reg.ID})
}

func (s *Server) deleteInstallation(w http.ResponseWriter, r *http.Request) {
	app := s.admit(w, r)
	if app == nil {
		return
	}
	id := r.PathValue("installation_id")
	if err := checkInstallationID(id); err != nil {
		badRequest(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.o.Timeout)
	defer cancel()
	userID, found, err := s.store.Unregister(ctx, app.name, id, s.o.Now())
	if err != nil {
		s.storeFailed(w, "unregister", err)
		return
	}
	if !found {
		fail(w, http.StatusNotFound, "unknown_installation", "installation_id", "the app has no installation of this id")
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"id": userID})
}

func badRequest(w http.ResponseWriter, err error) {
	var fe *fieldError
	if errors.As(err, &fe) {
		fail(w, http.StatusBadRequest, "invalid_request", fe.field, fe.message)
		return
	}
	fail(w, http.StatusBadRequest, "invalid_request", "", err.Error())
}

// storeFailed answers a request the database could not take: 503 with
// Retry-After, so that the app tries again; nothing was stored.
func (s *Server) storeFailed(w http.ResponseWriter, what string, err error) {
	s.o.Logger.Warn("device API: the database refused a request; the app is told to retry", "op", what, "error", err)
	retryAfter(w, 5*time.Second)
	fail(w, http.StatusServiceUnavailable, "unavailable", "", "the service cannot store this now: retry after the Retry-After seconds")
}

// openBody is the JSON of an open.
type openBody struct {
	Push           string `json:"push"`
	InstallationID string `json:"installation_id"`
}

func (s *Server) postOpen(w http.ResponseWriter, r *http.Request) {
	app := s.admit(w, r)
	if app == nil {
		return
	}
	body, ok := readJSON(w, r)
	if !ok {
		return
	}
	var b openBody
	if err := decode(body, &b); err != nil {
		badRequest(w, err)
		return
	}
	if err := checkInstallationID(b.InstallationID); err != nil {
		badRequest(w, err)
		return
	}
	runID, userID, err := s.o.PushIDs.Parse(b.Push)
	if err != nil {
		fail(w, http.StatusBadRequest, "invalid_request", "push", "is not the id of a push pushd sent: send the "+pushid.DataKey+" value of the push's data as it came")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.o.Timeout)
	defer cancel()
	opened, err := s.opens.do(ctx, pushd.PushOpen{App: app.name, InstallationID: b.InstallationID, RunID: runID, UserID: userID})
	switch {
	case err != nil:
		s.storeFailed(w, "open", err)
	case opened == pushd.NoPush:
		fail(w, http.StatusBadRequest, "invalid_request", "push", "no push of this id was sent to this installation")
	case opened == pushd.NotYet:
		// Sent a moment ago, its outcome not yet recorded: not lost.
		retryAfter(w, 5*time.Second)
		fail(w, http.StatusServiceUnavailable, "unavailable", "", "this push's delivery is still being recorded: retry after the Retry-After seconds")
	default:
		// A repeat is answered 200 too, so that an app may retry safely.
		writeJSON(w, http.StatusOK, map[string]bool{"counted": opened == pushd.Counted})
	}
}
