package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/pushd/pushd"
)

// Heartbeat records that inst is alive and what it works on, stamped with
// the database's clock, and removes the rows of processes not seen for a
// day.
func (s *Store) Heartbeat(ctx context.Context, inst pushd.Instance) error {
	runs, err := json.Marshal(inst.Runs)
	if err != nil {
		return err
	}
	if inst.Runs == nil {
		runs = []byte("[]")
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO pushd_instances (owner, instance_id, host, pid, version, started_at, seen_at, runs)
		VALUES (?, ?, ?, ?, ?, ?, NOW(3), ?)
		ON DUPLICATE KEY UPDATE seen_at = NOW(3), runs = VALUES(runs), version = VALUES(version)`,
		inst.Owner, inst.InstanceID, inst.Host, inst.PID, inst.Version, inst.StartedAt, runs)
	if err == nil {
		_, err = s.db.ExecContext(ctx, `DELETE FROM pushd_instances WHERE seen_at < NOW(3) - INTERVAL 1 DAY`)
	}
	if err != nil {
		return fmt.Errorf("heartbeat: %w", markUnavailable(err))
	}
	return nil
}

// Forget removes a stopping process's heartbeat row, so that it is not
// counted live until its heartbeat goes stale.
func (s *Store) Forget(ctx context.Context, owner string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM pushd_instances WHERE owner = ?`, owner)
	return markUnavailable(err)
}

// Instances lists the processes seen within the last day, newest
// heartbeat first; Live marks those seen within live, by the database's
// clock.
func (s *Store) Instances(ctx context.Context, live time.Duration) ([]pushd.Instance, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT owner, instance_id, host, pid, version, started_at, seen_at, runs,
			seen_at >= NOW(3) - INTERVAL ? MICROSECOND
		FROM pushd_instances ORDER BY seen_at DESC, owner`, live.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", markUnavailable(err))
	}
	defer rows.Close()
	var out []pushd.Instance
	for rows.Next() {
		var (
			in   pushd.Instance
			runs sql.RawBytes
		)
		if err := rows.Scan(&in.Owner, &in.InstanceID, &in.Host, &in.PID, &in.Version, &in.StartedAt, &in.SeenAt, &runs, &in.Live); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(runs, &in.Runs); err != nil {
			return nil, fmt.Errorf("instance %s: runs %q: %w", in.Owner, runs, err)
		}
		out = append(out, in)
	}
	return out, rows.Err()
}
