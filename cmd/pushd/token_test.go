package main

import (
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/pushsim"
)

// The field trial's ops day: three `pushd send` test pushes, a daemon, a
// restart and a campaign. Apple (pushsim) refuses a fourth provider token
// within 20 minutes with TooManyProviderTokenUpdates; all of them share
// one token through the database, so the campaign is delivered in full.
func TestOneProviderTokenForEveryProcess(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{})
	for i := range 3 {
		out, err := e.send("-app", "IOS", "-token", iosToken("", i), "-title", "Test", "-body", "Test push")
		if err != nil || !strings.Contains(out, "delivered") || !strings.Contains(out, "provider token: the one every pushd of key") {
			t.Fatalf("send %d = %v:\n%s", i, err, out)
		}
	}
	d := e.start()
	waitFor(t, 30*time.Second, "pushd to start", func() bool { return strings.Contains(d.log.String(), "pushd started") })
	d.stop(t)
	d = e.start()
	const n = 2000
	e.users("IOS", n, func(i int) string { return iosToken("", 100+i) }, "NOW() - INTERVAL 1 DAY")
	id := e.campaign("IOS", time.Now(), nil)
	r := e.waitStatus(id, time.Minute, "done", "failed", "expired")
	if r.Status != "done" || r.Sent != n || r.Failed != 0 {
		t.Fatalf("campaign ended %+v, want done with %d sent", r, n)
	}
	d.stop(t)
	if s := e.sim.Stats(); s.APNsJWT.DistinctTokens != 1 {
		t.Fatalf("pushsim saw %d distinct provider tokens, want 1 for three sends, two daemons and a campaign", s.APNsJWT.DistinctTokens)
	}
	var issued int
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM pushd_provider_tokens WHERE jwt <> ''`).Scan(&issued); err != nil || issued != 1 {
		t.Fatalf("pushd_provider_tokens holds %d tokens (%v), want 1", issued, err)
	}
}
