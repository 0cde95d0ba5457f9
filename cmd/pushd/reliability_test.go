package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/campaign"
	"github.com/pushd/pushd/internal/dbtest"
	"github.com/pushd/pushd/internal/pushsim"
)

// duplicates counts tokens pushsim delivered more than once, and checks
// that every one of the first n tokens was delivered.
func (e *env) duplicates(n int) int {
	e.t.Helper()
	got := e.delivered(pushsim.ProviderAPNs)
	dups := 0
	for i := 0; i < n; i++ {
		dl, ok := got[iosToken("", i)]
		if !ok {
			e.t.Fatalf("token %d was never delivered", i)
		}
		if dl.Count > 1 {
			dups += dl.Count - 1
		}
	}
	return dups
}

// kill9 kills a pushd the hard way.
func (d *proc) kill9(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGKILL)
	err := <-d.exited
	d.exited <- err
}

// TestInstancesShareARun runs three pushd processes on one 100k-user
// campaign: the batches are shared and nobody gets the campaign twice.
func TestInstancesShareARun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{NoDeliveryLog: false, Faults: pushsim.Faults{Latency: 5 * time.Millisecond}})
	const users = 100000
	e.users("IOS", users, func(i int) string { return iosToken("", i) }, "NOW(3) - INTERVAL 1 DAY")
	procs := []*proc{e.start(), e.start(), e.start()}
	id := e.campaign("IOS", time.Now().Add(time.Second), map[string]any{"batch_size": 500})
	r := e.waitStatus(id, 4*time.Minute, "done", "failed", "expired")
	for _, p := range procs {
		p.stop(t)
	}
	if r.Status != "done" || r.Sent != users || r.Targeted != users {
		t.Fatalf("row %+v, want done with %d targeted and sent", r, users)
	}
	if dups := e.duplicates(users); dups != 0 {
		t.Fatalf("%d duplicate deliveries with three instances, want 0", dups)
	}
	owners := e.count(`SELECT COUNT(DISTINCT owner) FROM pushd_batches`)
	if owners < 2 {
		t.Errorf("batches were sent by %d instance(s); want them shared", owners)
	}
	t.Logf("%d batches shared by %d instances", e.count(`SELECT COUNT(*) FROM pushd_batches`), owners)
}

// TestKillNineResumes kills pushd with SIGKILL mid-run and restarts it: the
// run completes, every targeted user has exactly one outcome, and the
// duplicates pushsim saw stay within what could have been in flight.
func TestKillNineResumes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		batch any // nil: the app's batch_size (pushd.DefaultBatchSize)
		// bound is the most a kill -9 may duplicate.
		bound int
	}{
		// A runner works on at most three batches (campaign.Options.Outstanding).
		{name: "batch 200", batch: 200, bound: 3 * 200},
		// Whatever the batch size: the app's concurrency, and at most
		// MaxUnrecorded more users of the run not yet in the ledger.
		{name: "default batch", batch: nil, bound: pushd.DefaultConcurrency + campaign.MaxUnrecorded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "", pushsim.Options{Faults: pushsim.Faults{Latency: 30 * time.Millisecond}})
			const users = 30000
			e.users("IOS", users, func(i int) string { return iosToken("", i) }, "NOW(3) - INTERVAL 1 DAY")
			id := e.campaign("IOS", time.Now(), map[string]any{"batch_size": tc.batch, "expires_at": time.Now().Add(time.Hour).UTC()})

			d := e.start()
			waitFor(t, time.Minute, "a third of the run", func() bool { return e.row(id).Sent >= users/3 })
			d.kill9(t)
			// Only users of batches claimed at the kill can be sent twice: those
			// without an outcome in the ledger.
			atRisk := e.count(`SELECT COALESCE(SUM(b.size), 0) - (SELECT COUNT(*) FROM pushd_deliveries d JOIN pushd_batches b2
				ON d.run_id = b2.run_id AND d.user_id > b2.after_user_id AND d.user_id <= b2.last_user_id AND b2.status = 'claimed')
				FROM pushd_batches b WHERE b.status = 'claimed'`)

			d = e.start()
			r := e.waitStatus(id, 2*time.Minute, "done", "failed", "expired")
			d.stop(t)
			if r.Status != "done" || r.Sent != users {
				t.Fatalf("after kill -9 and restart: %+v, want done with %d sent", r, users)
			}
			if n := e.count(`SELECT COUNT(*) FROM pushd_deliveries d JOIN campaigns c ON c.current_run_id = d.run_id WHERE c.id = ?`, id); n != users {
				t.Fatalf("ledger has %d outcomes, want exactly %d", n, users)
			}
			dups := e.duplicates(users)
			t.Logf("kill -9: %d duplicates; %d users were in claimed batches without an outcome", dups, atRisk)
			if dups > atRisk || dups > tc.bound {
				t.Fatalf("%d duplicates, more than the %d users at risk or the bound of %d", dups, atRisk, tc.bound)
			}
		})
	}
}

// TestKillOneOfTwo kills one of two instances mid-run; the other takes its
// batches over within the lease period and finishes the run.
func TestKillOneOfTwo(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{Faults: pushsim.Faults{Latency: 20 * time.Millisecond}})
	const users = 30000
	e.users("IOS", users, func(i int) string { return iosToken("", i) }, "NOW(3) - INTERVAL 1 DAY")
	a, b := e.start(), e.start()
	id := e.campaign("IOS", time.Now().Add(time.Second), map[string]any{"batch_size": 200})
	waitFor(t, time.Minute, "a quarter of the run", func() bool { return e.row(id).Sent >= users/4 })
	dead := fmt.Sprintf("%%:%d#%%", a.cmd.Process.Pid)
	a.kill9(t)
	killed := time.Now()
	held := e.count(`SELECT COUNT(*) FROM pushd_batches WHERE owner LIKE ? AND status = 'claimed'`, dead)
	waitFor(t, time.Minute, "the dead instance's batches to be taken over", func() bool {
		return e.count(`SELECT COUNT(*) FROM pushd_batches WHERE owner LIKE ? AND status = 'claimed'`, dead) == 0
	})
	takeover := time.Since(killed)
	r := e.waitStatus(id, 2*time.Minute, "done", "failed", "expired")
	took := time.Since(killed)
	b.stop(t)
	// lease_duration is 5 s in these tests; a claim happens at least every
	// poll (200 ms) while batches are open.
	if held > 0 && takeover > 5*time.Second+2*time.Second {
		t.Errorf("the dead instance's %d batches were taken over after %v, more than one lease period", held, takeover)
	}
	t.Logf("dead instance held %d batches; taken over %v after the kill", held, takeover.Round(time.Millisecond))
	if r.Status != "done" || r.Sent != users {
		t.Fatalf("survivor left %+v, want done with %d sent", r, users)
	}
	dups := e.duplicates(users)
	t.Logf("one of two killed: run finished %v after the kill, %d duplicates", took.Round(time.Millisecond), dups)
	if dups > 3*200 {
		t.Fatalf("%d duplicates, more than the three batches the dead instance could hold", dups)
	}
}

// TestDatabaseOutage stops the database for 30 s in the middle of a run:
// pushd pauses sending while it cannot record outcomes, says so, does not
// crash, and finishes the run once the database is back, with nobody
// receiving the campaign twice.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	db := dbtest.StartPrivate(t)
	e := newEnvOn(t, db.Options(), "", pushsim.Options{Faults: pushsim.Faults{Latency: 20 * time.Millisecond}})
	const users = 40000
	e.users("IOS", users, func(i int) string { return iosToken("", i) }, "NOW(3) - INTERVAL 1 DAY")
	id := e.campaign("IOS", time.Now(), map[string]any{"batch_size": 200, "expires_at": time.Now().Add(time.Hour).UTC()})
	d := e.start()
	waitFor(t, time.Minute, "a fifth of the run", func() bool { return e.row(id).Sent >= users/5 })

	db.Stop()
	down := time.Now()
	// Sending must stop once the lease can no longer be renewed: after the
	// local lease margin (lease_duration 5 s in these tests) nothing more
	// goes out until the database is back. These sleeps are not waits for
	// an event: 8 s is the bound under test (no event says "sending has
	// stopped for good"), and the 30 s outage is the stimulus.
	time.Sleep(8 * time.Second)
	paused := e.sim.Stats().APNs.Requests
	time.Sleep(30*time.Second - time.Since(down))
	during := e.sim.Stats().APNs.Requests - paused
	select {
	case err := <-d.exited:
		t.Fatalf("pushd exited during the outage: %v", err)
	default:
	}
	db.Start()
	back := time.Now()
	r := e.waitStatus(id, 3*time.Minute, "done", "failed", "expired")
	catchUp := time.Since(back)
	d.stop(t)
	if during != 0 {
		t.Errorf("%d requests sent while outcomes could not be recorded, want 0", during)
	}
	if r.Status != "done" || r.Sent != users {
		t.Fatalf("after the outage: %+v, want done with %d sent", r, users)
	}
	if dups := e.duplicates(users); dups != 0 {
		t.Fatalf("%d duplicates after a database outage, want 0", dups)
	}
	if !strings.Contains(d.log.String(), "sending paused until the database is back") {
		t.Error("the log does not say that sending paused")
	}
	t.Logf("database down 30 s: 0 sends while down, run finished %v after it came back", catchUp.Round(time.Millisecond))
}
