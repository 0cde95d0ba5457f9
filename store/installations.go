package store

// The device API's writes: installations registered and unregistered by
// the apps.

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pushd/pushd"
)

// UsersIsTable reports whether users is pushd's own table (not a view), as
// the device API needs.
func (s *Store) UsersIsTable(ctx context.Context) (bool, error) {
	return s.baseTable(ctx, "users")
}

// Register upserts installations in one transaction (the device API
// batches the requests that arrive while the previous batch commits, so
// that many registrations share a commit): each users row is created, or
// its token, ids, zone, locale, attributes and registered_at are replaced
// (so a token a provider had declared dead is used again). Another
// installation of the app that held a token loses it; within the batch
// the later registration of a token wins, as if they came one by one. It
// returns each row's id and whether it was created, in order, once
// durable.
func (s *Store) Register(ctx context.Context, ins []pushd.Installation) ([]pushd.Registered, error) {
	out := make([]pushd.Registered, len(ins))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		byApp := map[string][]int{}
		for i, in := range ins {
			byApp[in.App] = append(byApp[in.App], i)
		}
		// A token registered twice in the batch stays with its last
		// installation.
		rows := slices.Clone(ins)
		last := map[[2]string]int{}
		for i, in := range rows {
			k := [2]string{in.App, in.Token}
			if j, ok := last[k]; ok && rows[j].InstallationID != in.InstallationID {
				rows[j].Token = ""
			}
			last[k] = i
		}
		insts := map[string][]any{}
		for _, in := range ins {
			insts[in.App] = append(insts[in.App], in.InstallationID)
		}
		existing, err := installationRows(ctx, tx, insts, true)
		if err != nil {
			return err
		}
		// The tokens move: their old installations keep their rows,
		// without them. (The batch's own rows get theirs back below.)
		for _, app := range slices.Sorted(maps.Keys(byApp)) {
			toks := []any{app}
			for _, i := range byApp[app] {
				toks = append(toks, ins[i].Token)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE users SET push_token = '' WHERE app = ? AND push_token IN (`+placeholders(len(toks)-1)+`)`, toks...); err != nil {
				return err
			}
		}
		var q strings.Builder
		q.WriteString(`INSERT INTO users (app, installation_id, push_token, external_id, timezone, locale, attributes, registered_at) VALUES `)
		args := make([]any, 0, 8*len(rows))
		for i, in := range rows {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString(`(?, ?, ?, ?, ?, ?, ?, ?)`)
			args = append(args, in.App, in.InstallationID, in.Token, nullString(in.ExternalID), nullString(in.Timezone),
				nullString(in.Locale), nullBytes(in.Attributes), in.At)
		}
		q.WriteString(` ON DUPLICATE KEY UPDATE push_token = VALUES(push_token), external_id = VALUES(external_id),
			timezone = VALUES(timezone), locale = VALUES(locale), attributes = VALUES(attributes), registered_at = VALUES(registered_at)`)
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
		ids, err := installationRows(ctx, tx, insts, false)
		if err != nil {
			return err
		}
		seen := map[[2]string]bool{}
		for i, in := range ins {
			k := [2]string{in.App, in.InstallationID}
			_, had := existing[k]
			out[i] = pushd.Registered{ID: ids[k], Created: !had && !seen[k]}
			seen[k] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("register installations: %w", err)
	}
	return out, nil
}

func placeholders(n int) string { return "?" + strings.Repeat(", ?", n-1) }

// installationRows maps (app, installation_id) to users.id for the
// installations of each app that exist, locking their rows when lock is
// set. Apps go in sorted order, so that every batch locks in one order.
func installationRows(ctx context.Context, tx *sql.Tx, insts map[string][]any, lock bool) (map[[2]string]int64, error) {
	forUpdate := ""
	if lock {
		forUpdate = " FOR UPDATE"
	}
	out := map[[2]string]int64{}
	for _, app := range slices.Sorted(maps.Keys(insts)) {
		ids := insts[app]
		rows, err := tx.QueryContext(ctx, `SELECT installation_id, id FROM users WHERE app = ? AND installation_id IN (`+
			placeholders(len(ids))+`)`+forUpdate, append([]any{app}, ids...)...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var inst string
			var id int64
			if err := rows.Scan(&inst, &id); err != nil {
				rows.Close()
				return nil, err
			}
			out[[2]string{app, inst}] = id
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Unregister takes an installation's token away, so it gets no more
// pushes; its row stays for the ledger and the opens. It returns the row's
// id, and false when the app has no such installation.
func (s *Store) Unregister(ctx context.Context, app, installationID string, at time.Time) (int64, bool, error) {
	var id int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT id FROM users WHERE app = ? AND installation_id = ? FOR UPDATE`, app, installationID).Scan(&id)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE users SET push_token = '', registered_at = ? WHERE id = ?`, at, id)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("unregister installation: %w", err)
	}
	return id, true, nil
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// RecordOpens records a batch of opens in one transaction, each push once:
// pushd_opens gets a row per first open, and pushd_runs.opened and, for
// the current occurrence, campaigns.opened go up by the runs' first opens.
func (s *Store) RecordOpens(ctx context.Context, opens []pushd.PushOpen, at time.Time) ([]pushd.Opened, error) {
	out := make([]pushd.Opened, len(opens))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// Whose installations they are.
		insts := map[string][]any{}
		for _, o := range opens {
			insts[o.App] = append(insts[o.App], o.InstallationID)
		}
		owner, err := installationRows(ctx, tx, insts, false)
		if err != nil {
			return err
		}
		// Which pushes were sent, and which were opened before.
		var cond strings.Builder
		pairs := make([]any, 0, 2*len(opens))
		for i, o := range opens {
			if i > 0 {
				cond.WriteString(" OR ")
			}
			cond.WriteString("(d.run_id = ? AND d.user_id = ?)")
			pairs = append(pairs, o.RunID, o.UserID)
		}
		type sentPush struct {
			app                  string
			campaign, occurrence int64
		}
		sent := map[[2]int64]sentPush{}
		r, err := tx.QueryContext(ctx, `SELECT d.run_id, d.user_id, r.app, r.campaign_id, r.occurrence FROM pushd_deliveries d
			JOIN pushd_runs r ON r.id = d.run_id WHERE d.outcome = 'sent' AND (`+cond.String()+`)`, pairs...)
		if err != nil {
			return err
		}
		for r.Next() {
			var k [2]int64
			var p sentPush
			if err := r.Scan(&k[0], &k[1], &p.app, &p.campaign, &p.occurrence); err != nil {
				r.Close()
				return err
			}
			sent[k] = p
		}
		r.Close()
		if err := r.Err(); err != nil {
			return err
		}
		opened := map[[2]int64]bool{}
		r, err = tx.QueryContext(ctx, `SELECT d.run_id, d.user_id FROM pushd_opens d WHERE `+cond.String()+` FOR UPDATE`, pairs...)
		if err != nil {
			return err
		}
		for r.Next() {
			var k [2]int64
			if err := r.Scan(&k[0], &k[1]); err != nil {
				r.Close()
				return err
			}
			opened[k] = true
		}
		r.Close()
		if err := r.Err(); err != nil {
			return err
		}
		// A push of a running run may be answered by the provider (and
		// opened) before its outcome is recorded.
		running := map[int64]bool{}
		var unknown []any
		for _, o := range opens {
			if _, ok := sent[[2]int64{o.RunID, o.UserID}]; !ok {
				unknown = append(unknown, o.RunID)
			}
		}
		if len(unknown) > 0 {
			r, err := tx.QueryContext(ctx, `SELECT id FROM pushd_runs WHERE status = 'running' AND id IN (`+placeholders(len(unknown))+`)`, unknown...)
			if err != nil {
				return err
			}
			ids, err := scanIDs(r)
			if err != nil {
				return err
			}
			for _, id := range ids {
				running[id] = true
			}
		}
		var ins strings.Builder
		var insArgs []any
		perRun := map[int64]int{}
		perCampaign := map[[2]int64]int{}
		for i, o := range opens {
			k := [2]int64{o.RunID, o.UserID}
			p, ok := sent[k]
			switch {
			case !ok && running[o.RunID] && owner[[2]string{o.App, o.InstallationID}] == o.UserID:
				out[i] = pushd.NotYet
			case !ok || p.app != o.App || owner[[2]string{o.App, o.InstallationID}] != o.UserID:
				out[i] = pushd.NoPush
			case opened[k]:
				out[i] = pushd.Repeated
			default:
				out[i] = pushd.Counted
				opened[k] = true
				if ins.Len() > 0 {
					ins.WriteByte(',')
				}
				ins.WriteString("(?, ?, ?)")
				insArgs = append(insArgs, o.RunID, o.UserID, at)
				perRun[o.RunID]++
				perCampaign[[2]int64{p.campaign, p.occurrence}]++
			}
		}
		if len(insArgs) == 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO pushd_opens (run_id, user_id, opened_at) VALUES `+ins.String(), insArgs...); err != nil {
			return err
		}
		// Runs before campaigns, as every transaction locks them.
		for _, run := range slices.Sorted(maps.Keys(perRun)) {
			if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET opened = opened + ? WHERE id = ?`, perRun[run], run); err != nil {
				return err
			}
		}
		for _, c := range slices.SortedFunc(maps.Keys(perCampaign), func(a, b [2]int64) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) }) {
			n := perCampaign[c]
			if _, err := tx.ExecContext(ctx, `UPDATE campaigns SET opened = opened + ?, updated_at = updated_at WHERE id = ? AND run_count = ?`, n, c[0], c[1]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record opens: %w", err)
	}
	return out, nil
}
