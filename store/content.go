package store

// The content of campaigns beyond their row: translations, the users'
// locale and attributes that templates read, and the count of users each
// translation reached.

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/pushd/pushd"
)

// loadTranslations reads the campaign_translations and campaign_variants
// rows of cs into them.
func loadTranslations(ctx context.Context, q querier, cs ...*pushd.Campaign) error {
	if len(cs) == 0 {
		return nil
	}
	byID := make(map[int64]*pushd.Campaign, len(cs))
	args := make([]any, 0, len(cs))
	for _, c := range cs {
		byID[c.ID] = c
		c.Translations = nil
		args = append(args, c.ID)
	}
	rows, err := q.QueryContext(ctx, `SELECT campaign_id, locale, title, body, COALESCE(subtitle, '')
		FROM campaign_translations WHERE campaign_id IN (?`+strings.Repeat(",?", len(cs)-1)+`) ORDER BY campaign_id, locale`, args...)
	if err != nil {
		return fmt.Errorf("read campaign_translations: %w", markUnavailable(err))
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id int64
			t  pushd.Translation
		)
		if err := rows.Scan(&id, &t.Locale, &t.Title, &t.Body, &t.Subtitle); err != nil {
			return fmt.Errorf("read campaign_translations: %w", err)
		}
		byID[id].Translations = append(byID[id].Translations, t)
	}
	if err := rows.Err(); err != nil {
		return markUnavailable(err)
	}
	rows.Close()
	for _, c := range cs {
		c.Variants = nil
	}
	vrows, err := q.QueryContext(ctx, `SELECT campaign_id, name, weight, title, body, COALESCE(subtitle, ''), COALESCE(image_url, ''), COALESCE(link, '')
		FROM campaign_variants WHERE campaign_id IN (?`+strings.Repeat(",?", len(cs)-1)+`) ORDER BY campaign_id, name`, args...)
	if err != nil {
		return fmt.Errorf("read campaign_variants: %w", markUnavailable(err))
	}
	defer vrows.Close()
	for vrows.Next() {
		var (
			id int64
			v  pushd.Variant
		)
		if err := vrows.Scan(&id, &v.Name, &v.Weight, &v.Title, &v.Body, &v.Subtitle, &v.ImageURL, &v.Link); err != nil {
			return fmt.Errorf("read campaign_variants: %w", err)
		}
		byID[id].Variants = append(byID[id].Variants, v)
	}
	return markUnavailable(vrows.Err())
}

// UserColumns says which optional columns the users table or view has.
type UserColumns struct {
	Locale, Attributes bool
}

// UserColumns reports which of users' optional columns exist.
func (s *Store) UserColumns(ctx context.Context) (UserColumns, error) {
	have, err := s.columns(ctx, "users")
	if err != nil {
		return UserColumns{}, fmt.Errorf("read the columns of users: %w", err)
	}
	return UserColumns{Locale: have["locale"], Attributes: have["attributes"]}, nil
}

// userData is the SELECT list of a user's locale and attributes, read
// from x, or NULL for a column the users view lacks. The columns are
// looked up once per process.
func (s *Store) userData(ctx context.Context, x string) (string, error) {
	cols := s.userCols.Load()
	if cols == nil {
		c, err := s.UserColumns(ctx)
		if err != nil {
			return "", err
		}
		s.userCols.Store(&c)
		cols = &c
	}
	out := `, NULL`
	if cols.Locale {
		out = `, ` + x + `.locale`
	}
	if cols.Attributes {
		return out + `, ` + x + `.attributes`, nil
	}
	return out + `, NULL`, nil
}

// recordLocales adds the sent deliveries of a flush to their translations'
// counts, in the flush's transaction.
func recordLocales(ctx context.Context, tx *sql.Tx, runID int64, ds []pushd.Delivery) error {
	counts := map[string]int{}
	for _, d := range ds {
		if d.Outcome == pushd.Sent {
			counts[d.Locale]++
		}
	}
	if len(counts) == 0 {
		return nil
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO pushd_run_locales (run_id, locale, sent) VALUES `)
	args := make([]any, 0, 3*len(counts))
	for l, n := range counts {
		if len(args) > 0 {
			q.WriteByte(',')
		}
		q.WriteString(`(?, ?, ?)`)
		args = append(args, runID, l, n)
	}
	q.WriteString(` ON DUPLICATE KEY UPDATE sent = sent + VALUES(sent)`)
	if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
		return fmt.Errorf("count translations sent: %w", err)
	}
	return nil
}

// campaignLocales fills in the per-translation counts of the campaigns'
// current occurrences, in one query.
func (s *Store) campaignLocales(ctx context.Context, cs []pushd.CampaignStatus) error {
	args, byID := started(cs)
	if len(args) == 0 {
		return nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT r.campaign_id, l.locale, SUM(l.sent) FROM pushd_run_locales l
		JOIN pushd_runs r ON r.id = l.run_id
		JOIN campaigns c ON c.id = r.campaign_id AND c.run_count = r.occurrence
		WHERE r.campaign_id IN (?`+strings.Repeat(",?", len(args)-1)+`) GROUP BY r.campaign_id, l.locale`, args...)
	if err != nil {
		return fmt.Errorf("read pushd_run_locales: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id     int64
			locale string
			n      int64
		)
		if err := rows.Scan(&id, &locale, &n); err != nil {
			return err
		}
		c := byID[id]
		if c.Locales == nil {
			c.Locales = map[string]int64{}
		}
		c.Locales[locale] = n
	}
	return rows.Err()
}

// campaignVariants fills in the per-variant figures of the current
// occurrences of campaigns that have variants: sent and opened users per
// variant, read from the ledger and pushd_opens (a scan of the
// occurrence's ledger rows, done only for such campaigns).
func (s *Store) campaignVariants(ctx context.Context, cs []pushd.CampaignStatus) error {
	args, byID := started(cs)
	if len(args) == 0 {
		return nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT campaign_id FROM campaign_variants WHERE campaign_id IN (?`+strings.Repeat(",?", len(args)-1)+`)`, args...)
	if err != nil {
		return fmt.Errorf("read campaign_variants: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		c := byID[id]
		r, err := s.db.QueryContext(ctx, `SELECT d.variant, SUM(d.outcome = 'sent'), COUNT(o.user_id)
			FROM pushd_runs r JOIN pushd_deliveries d ON d.run_id = r.id
			LEFT JOIN pushd_opens o ON o.run_id = d.run_id AND o.user_id = d.user_id
			WHERE r.campaign_id = ? AND r.occurrence = ? AND d.variant <> '' GROUP BY d.variant ORDER BY d.variant`, id, c.Run.Occurrence)
		if err != nil {
			return fmt.Errorf("read variant figures: %w", err)
		}
		for r.Next() {
			var v pushd.VariantStat
			if err := r.Scan(&v.Name, &v.Sent, &v.Opened); err != nil {
				r.Close()
				return err
			}
			c.Variants = append(c.Variants, v)
		}
		r.Close()
		if err := r.Err(); err != nil {
			return err
		}
	}
	return nil
}

// started lists the ids of the campaigns that have run (as query
// arguments) and maps them to their entries.
func started(cs []pushd.CampaignStatus) ([]any, map[int64]*pushd.CampaignStatus) {
	var args []any
	byID := map[int64]*pushd.CampaignStatus{}
	for i := range cs {
		if c := &cs[i]; c.Run != nil {
			args = append(args, c.ID)
			byID[c.ID] = c
		}
	}
	return args, byID
}
