package main

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/internal/pushsim"
	"github.com/pushd/pushd/report"
)

// TestVariantsAndHoldout runs a campaign with two variants and a 10%
// holdout, killed -9 mid-run and restarted: every user's push (before and
// after the kill) carries the text of the variant the stable hash gives
// them and the ledger records it, holdout users receive nothing and are
// held_out in the ledger, and the split follows the weights.
func TestVariantsAndHoldout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{KeepPushes: 20000, Faults: pushsim.Faults{Latency: 20 * time.Millisecond}})
	const users, batch = 6000, 200
	e.users("IOS", users, func(i int) string { return iosToken("", i) }, "NOW(3) - INTERVAL 1 DAY")
	id := e.campaign("IOS", time.Now().Add(time.Hour), map[string]any{"holdout_percent": 10, "batch_size": batch,
		"expires_at": time.Now().Add(2 * time.Hour).UTC()})
	e.exec(fmt.Sprintf(`INSERT INTO campaign_variants (campaign_id, name, weight, title, body) VALUES
		(%d, 'A', 3, 'Title A', 'Body A'), (%d, 'B', 1, 'Title B for {{ id }}', 'Body B')`, id, id),
		fmt.Sprintf(`UPDATE campaigns SET scheduled_at = NOW() WHERE id = %d`, id))
	d := e.start()
	waitFor(t, time.Minute, "a fifth of the campaign sent", func() bool { return e.row(id).Sent >= users/5 })
	d.kill9(t)
	d = e.start()
	defer d.stop(t)
	r := e.waitStatus(id, 2*time.Minute, "done", "failed", "expired")
	if r.Status != "done" {
		t.Fatalf("row %+v", r)
	}
	variants := []pushd.Variant{{Name: "A", Weight: 3}, {Name: "B", Weight: 1}}
	titles := map[string]string{}
	for _, p := range e.sim.Pushes() {
		v, _ := p.Value("aps", "alert", "title")
		titles[p.Token], _ = v.(string)
	}
	ledger := map[int64][2]string{}
	rows, err := e.db.Query(`SELECT d.user_id, d.outcome, d.variant FROM pushd_deliveries d JOIN pushd_runs r ON r.id = d.run_id WHERE r.campaign_id = ?`, id)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var uid int64
		var o, v string
		rows.Scan(&uid, &o, &v)
		ledger[uid] = [2]string{o, v}
	}
	rows.Close()
	count := map[string]int{}
	for tok, uid := range e.userIDs("IOS") {
		name, held := pushd.Assign(id, uid, 10, variants)
		got := ledger[uid]
		switch {
		case held:
			count["held"]++
			if got[0] != "held_out" || titles[tok] != "" {
				t.Errorf("holdout user %d: ledger %v, received %q", uid, got, titles[tok])
			}
		default:
			count[name]++
			want := "Title A"
			if name == "B" {
				want = fmt.Sprintf("Title B for %d", uid)
			}
			if got != [2]string{"sent", name} || titles[tok] != want {
				t.Errorf("user %d of variant %s: ledger %v, received %q", uid, name, got, titles[tok])
			}
		}
	}
	within := func(what string, got int, p float64, n int) {
		if sd := math.Sqrt(float64(n) * p * (1 - p)); math.Abs(float64(got)-p*float64(n)) > 5*sd {
			t.Errorf("%s: %d of %d, want about %.0f", what, got, n, p*float64(n))
		}
	}
	within("held out", count["held"], 0.1, users)
	within("variant A", count["A"], 0.75, users-count["held"])
	var heldOut, sent int
	e.db.QueryRow(`SELECT held_out, sent FROM campaigns WHERE id = ?`, id).Scan(&heldOut, &sent)
	if heldOut != count["held"] || sent != users-count["held"] {
		t.Errorf("row held_out %d sent %d, want %d and %d", heldOut, sent, count["held"], users-count["held"])
	}
	if out, err := e.pushd("status"); err != nil || !strings.Contains(out, fmt.Sprintf("%d: A %s sent", id, report.Num(int64(count["A"])))) || !strings.Contains(out, "held out") {
		t.Errorf("status (%v):\n%s", err, out)
	}
	t.Logf("split %v", count)
}
