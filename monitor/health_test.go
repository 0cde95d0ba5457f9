package monitor

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/campaign"
	"github.com/pushd/pushd/providers"
)

type nopSender struct{}

func (nopSender) Prepare(pushd.Notification) (providers.Prepared, error) { return nil, nil }
func (nopSender) ValidateToken(string) error                             { return nil }
func (nopSender) Send(context.Context, providers.Prepared, string) (providers.Result, error) {
	return providers.Result{}, nil
}
func (nopSender) SendAsync(_ context.Context, _ providers.Prepared, _ string, done func(providers.Result, error)) {
	done(providers.Result{}, nil)
}

func TestReadiness(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	apps := map[string]*campaign.App{"IOS": campaign.NewApp("IOS", pushd.APNs, nopSender{}, campaign.AppOptions{})}
	h := NewHealth(func() map[string]*campaign.App { return apps }, time.Second, clock)
	m := NewMetrics(func() map[string]*campaign.App { return apps })
	srv := httptest.NewServer(Handler(h, m))
	defer srv.Close()
	get := func(path string) (int, string) {
		res, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}

	h.Tick(nil, 2)
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, `"ready": true`) || !strings.Contains(body, `"running_runs": 2`) {
		t.Fatalf("healthy: %d %s", code, body)
	}
	h.Tick(errors.New("connection refused"), 0)
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "unreachable since") {
		t.Fatalf("database down: %d %s", code, body)
	}
	h.Tick(nil, 0)
	h.ConfigRejected(errors.New("config.ini [IOS] batch_size = \"0\": out of range"))
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "previous config in force") {
		t.Fatalf("reload rejected: %d %s", code, body)
	}
	h.ConfigRejected(nil)
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("after a good reload: %d", code)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
	now = now.Add(4 * time.Minute) // no scheduler pass for 4 minutes
	if code, body := get("/healthz"); code != 503 || !strings.Contains(body, "stalled") {
		t.Fatalf("stalled loop: %d %s", code, body)
	}
}
