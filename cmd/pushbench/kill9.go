package main

import (
	"context"
	"fmt"
	"time"
)

// kill9Result is what a kill -9 halfway through a run duplicated.
type kill9Result struct {
	// Unrecorded is what pushsim had delivered at the kill and the ledger
	// did not hold: in flight or answered, not yet recorded. A restart
	// sends exactly these again.
	Unrecorded int `json:"unrecorded"`
	// AtRisk is the users of the batches claimed at the kill that had no
	// outcome: the most a restart could send again.
	AtRisk int `json:"at_risk"`
	// Duplicates is pushsim's deliveries beyond one per user once the
	// campaign is done (every user has one ledger outcome).
	Duplicates int `json:"duplicates"`
}

// killMidRun waits until pushsim has delivered half the audience, kills
// pushd with SIGKILL, measures what was sent and not recorded, and starts a
// new pushd that finishes the campaign.
func (b *bench) killMidRun(ctx context.Context, db *benchDB, d *pushdProc, dir, config string, i int) (*pushdProc, kill9Result, error) {
	var k kill9Result
	for {
		st, err := b.sim.stats(ctx)
		if err != nil {
			return d, k, err
		}
		if st.APNs.Delivered+st.FCM.Delivered >= b.o.n/2 {
			break
		}
		select {
		case err := <-d.exited:
			return d, k, fmt.Errorf("pushd exited before half the campaign was sent: %v", err)
		case <-ctx.Done():
			return d, k, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	d.kill()
	// Requests already in pushsim's hands are still answered (and counted)
	// after pushd is gone.
	if err := sleepUntil(ctx, time.Now().Add(500*time.Millisecond)); err != nil {
		return d, k, err
	}
	st, err := b.sim.stats(ctx)
	if err != nil {
		return d, k, err
	}
	recorded, err := db.count(ctx, "SELECT COUNT(*) FROM "+db.t("pushd_deliveries")+" WHERE outcome = 'sent'")
	if err != nil {
		return d, k, err
	}
	k.Unrecorded = st.APNs.Delivered + st.FCM.Delivered - recorded
	k.AtRisk, err = db.count(ctx, `SELECT COALESCE(SUM(b.size), 0) - (SELECT COUNT(*) FROM `+db.t("pushd_deliveries")+` d JOIN `+db.t("pushd_batches")+` b2
		ON d.run_id = b2.run_id AND d.user_id > b2.after_user_id AND d.user_id <= b2.last_user_id AND b2.status = 'claimed')
		FROM `+db.t("pushd_batches")+` b WHERE b.status = 'claimed'`)
	if err != nil {
		return d, k, err
	}
	b.logf("run %d: kill -9 at %d delivered: %d sent and not recorded, %d users at risk", i, st.APNs.Delivered+st.FCM.Delivered, k.Unrecorded, k.AtRisk)
	nd, err := b.startPushdLog(ctx, dir, config, i, "pushd-restarted.log")
	return nd, k, err
}
