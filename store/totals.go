package store

import (
	"context"
	"fmt"
)

// Totals summarise the campaigns table for health, metrics and the
// service manager's status line.
type Totals struct {
	ByStatus map[string]int
	// Sent and Targeted add up the campaigns now running.
	Sent, Targeted int64
}

// CampaignTotals counts campaigns by status and sums the running ones'
// progress.
func (s *Store) CampaignTotals(ctx context.Context) (Totals, error) {
	t := Totals{ByStatus: map[string]int{}}
	rows, err := s.db.QueryContext(ctx, `SELECT status, COUNT(*), SUM(IF(status = 'running', sent, 0)),
		SUM(IF(status = 'running', targeted, 0)) FROM campaigns GROUP BY status`)
	if err != nil {
		return t, fmt.Errorf("count campaigns: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			status         string
			n              int
			sent, targeted int64
		)
		if err := rows.Scan(&status, &n, &sent, &targeted); err != nil {
			return t, err
		}
		t.ByStatus[status] = n
		t.Sent += sent
		t.Targeted += targeted
	}
	return t, rows.Err()
}
