package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/pushsim"
)

// userIDs maps each token of an app to its users.id.
func (e *env) userIDs(app string) map[string]int64 {
	e.t.Helper()
	rows, err := e.db.Query(`SELECT id, push_token FROM users WHERE app = ?`, app)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id int64
		var tok string
		if err := rows.Scan(&id, &tok); err != nil {
			e.t.Fatal(err)
		}
		out[tok] = id
	}
	return out
}

func (e *env) exec(stmts ...string) {
	e.t.Helper()
	for _, q := range stmts {
		if _, err := e.db.Exec(q); err != nil {
			e.t.Fatalf("%s: %v", q, err)
		}
	}
}

// A campaign for two apps, a segment and an exclusion reaches exactly the
// segment's users of both apps, once each, counted on pushsim's side; a
// missing segment fails its row on arrival; with frequency_cap = 1/24h a
// second campaign to the same users is capped, one that ignores the cap
// reaches everyone, and with 2/24h two concurrent campaigns on two
// instances never push a user more than twice in all.
func TestAudiences(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{Faults: pushsim.Faults{Latency: 2 * time.Millisecond}})
	e.setKey("IOS", "frequency_cap", "1/24h")
	e.setKey("Android", "frequency_cap", "2/24h")
	e.users("IOS", 300, func(i int) string { return iosToken("", i) }, "NOW(3) - INTERVAL 1 DAY")
	e.users("Android", 200, func(i int) string { return fcmToken("a-", i) }, "NOW(3) - INTERVAL 1 DAY")
	e.exec(
		// Every third user of each app, an id that is nobody, and NULL.
		`CREATE TABLE segment_vip (user_id BIGINT)`,
		`INSERT INTO segment_vip SELECT id FROM users WHERE id % 3 = 0`,
		`INSERT INTO segment_vip VALUES (987654321), (NULL)`,
		// Ten of them asked for no marketing.
		`CREATE VIEW segment_optout AS SELECT id AS user_id FROM users WHERE id % 3 = 0 AND app = 'IOS' ORDER BY id LIMIT 10`,
	)
	ios, android := e.userIDs("IOS"), e.userIDs("Android")
	optout := map[int64]bool{}
	for _, id := range e.ids(`SELECT user_id FROM segment_optout`) {
		optout[id] = true
	}
	inVIP := func(id int64) bool { return id%3 == 0 && !optout[id] }

	missing := e.campaign("IOS", time.Now().Add(time.Hour), map[string]any{"segment": "recent_buyers"})
	at := time.Now().Add(2 * time.Second)
	vip := e.campaign("IOS,Android", at, map[string]any{"segment": "vip", "exclude_segment": "optout",
		"expires_at": at.Add(time.Hour).UTC()})
	d := e.start()
	defer d.stop(t)

	r := e.waitStatus(missing, 30*time.Second, "failed")
	if !strings.Contains(r.Reason, "segment 'recent_buyers' does not exist: create a table or view named segment_recent_buyers") {
		t.Errorf("missing segment: %q", r.Reason)
	}
	r = e.waitStatus(vip, time.Minute, "done", "failed", "expired")
	var wantIOS, wantAndroid int
	for _, id := range ios {
		if inVIP(id) {
			wantIOS++
		}
	}
	for _, id := range android {
		if inVIP(id) {
			wantAndroid++
		}
	}
	if r.Status != "done" || r.Targeted != wantIOS+wantAndroid || r.Sent != wantIOS+wantAndroid {
		t.Errorf("vip row %+v, want done with %d+%d targeted and sent", r, wantIOS, wantAndroid)
	}
	if n := e.count(`SELECT COUNT(*) FROM pushd_runs WHERE campaign_id = ? AND sent = (CASE app WHEN 'IOS' THEN ? ELSE ? END)`,
		vip, wantIOS, wantAndroid); n != 2 {
		t.Errorf("%d of the vip campaign's runs have their app's count; want both", n)
	}
	check := func(what string, provider string, ids map[string]int64, want func(id int64) int) {
		t.Helper()
		got := e.delivered(provider)
		for tok, id := range ids {
			if n := got[tok].Count; n != want(id) {
				t.Errorf("%s: user %d got %d pushes, want %d", what, id, n, want(id))
			}
		}
	}
	one := func(id int64) int {
		if inVIP(id) {
			return 1
		}
		return 0
	}
	check("vip campaign", pushsim.ProviderAPNs, ios, one)
	check("vip campaign", pushsim.ProviderFCM, android, one)

	// IOS allows 1 push a day: the vip users are capped now.
	all := e.campaign("IOS", time.Now(), nil)
	r = e.waitStatus(all, time.Minute, "done", "failed", "expired")
	if capped := e.count(`SELECT capped FROM campaigns WHERE id = ?`, all); r.Status != "done" || capped != wantIOS || r.Sent != 300-wantIOS {
		t.Errorf("capped campaign: %+v capped %d; want %d capped, %d sent", r, capped, wantIOS, 300-wantIOS)
	}
	if n := e.count(`SELECT COUNT(*) FROM pushd_deliveries d JOIN pushd_runs r ON r.id = d.run_id WHERE r.campaign_id = ? AND d.outcome = 'capped'`, all); n != wantIOS {
		t.Errorf("ledger has %d capped outcomes, want %d", n, wantIOS)
	}
	check("after the capped campaign", pushsim.ProviderAPNs, ios, func(int64) int { return 1 })
	urgent := e.campaign("IOS", time.Now(), map[string]any{"ignore_frequency_cap": 1})
	if r := e.waitStatus(urgent, time.Minute, "done", "failed", "expired"); r.Sent != 300 {
		t.Errorf("ignore_frequency_cap campaign: %+v, want 300 sent", r)
	}
	check("after the urgent campaign", pushsim.ProviderAPNs, ios, func(int64) int { return 2 })

	// Android allows 2 a day; the vip users had one. Two campaigns at once,
	// on two instances: every user ends with exactly 2.
	d2 := e.start()
	defer d2.stop(t)
	at = time.Now().Add(time.Second)
	c1 := e.campaign("Android", at, map[string]any{"batch_size": 7})
	c2 := e.campaign("Android", at, map[string]any{"batch_size": 11})
	r1 := e.waitStatus(c1, time.Minute, "done", "failed", "expired")
	r2 := e.waitStatus(c2, time.Minute, "done", "failed", "expired")
	capped := e.count(`SELECT SUM(capped) FROM campaigns WHERE id IN (?, ?)`, c1, c2)
	if r1.Sent+r2.Sent != 400-wantAndroid || capped != wantAndroid {
		t.Errorf("two concurrent Android campaigns sent %d+%d and capped %d; want %d sent, %d capped", r1.Sent, r2.Sent, capped, 400-wantAndroid, wantAndroid)
	}
	check("two concurrent capped campaigns", pushsim.ProviderFCM, android, func(int64) int { return 2 })
}

func (e *env) ids(q string, args ...any) []int64 {
	e.t.Helper()
	rows, err := e.db.Query(q, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, id)
	}
	return out
}

// kill -9 mid-run of a segment campaign, the segment changed, and a
// restart: exactly the members at the start get the push (a few twice,
// within the in-flight window), nobody added to the segment meanwhile.
func TestSegmentSurvivesKillNine(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{Faults: pushsim.Faults{Latency: 30 * time.Millisecond}})
	const users, batch = 12000, 200
	e.users("IOS", users, func(i int) string { return iosToken("", i) }, "NOW(3) - INTERVAL 1 DAY")
	e.exec(`CREATE TABLE segment_half (user_id BIGINT PRIMARY KEY)`, `INSERT INTO segment_half SELECT id FROM users WHERE id % 2 = 0`)
	members := map[int64]bool{}
	for _, id := range e.ids(`SELECT user_id FROM segment_half`) {
		members[id] = true
	}
	id := e.campaign("IOS", time.Now(), map[string]any{"segment": "half", "batch_size": batch, "expires_at": time.Now().Add(time.Hour).UTC()})
	d := e.start()
	waitFor(t, time.Minute, "a fifth of the campaign sent", func() bool { return e.row(id).Sent >= len(members)/5 })
	d.kill9(t)
	e.exec(`DELETE FROM segment_half WHERE user_id % 4 = 0`, `INSERT INTO segment_half SELECT id FROM users WHERE id % 2 = 1`)
	d = e.start()
	defer d.stop(t)
	r := e.waitStatus(id, 2*time.Minute, "done", "failed", "expired")
	if r.Status != "done" || r.Sent != len(members) {
		t.Errorf("row %+v, want done with %d sent", r, len(members))
	}
	if n := e.count(`SELECT COUNT(*) FROM pushd_deliveries d JOIN pushd_runs r ON r.id = d.run_id WHERE r.campaign_id = ?`, id); n != len(members) {
		t.Errorf("ledger has %d outcomes, want %d", n, len(members))
	}
	got := e.delivered(pushsim.ProviderAPNs)
	dups := 0
	for tok, uid := range e.userIDs("IOS") {
		n := got[tok].Count
		switch {
		case members[uid] && n == 0:
			t.Errorf("member %d got nothing", uid)
		case !members[uid] && n > 0:
			t.Errorf("user %d, added to the segment after the start, got %d pushes", uid, n)
		case n > 1:
			dups += n - 1
		}
	}
	if dups > 3*batch {
		t.Errorf("%d duplicates, more than the three batches a runner holds (%d)", dups, 3*batch)
	}
	t.Logf("%d members, %d duplicates after the kill", len(members), dups)
}

// The SQL recipes of docs/campaigns.md run as written, and their campaigns
// reach whom the recipe says. The app names are the env's, and the
// campaigns' start is brought forward so that the test need not wait.
// docSQL returns the SQL blocks of a section of docs/campaigns.md, each as
// the match of its fence and its text.
func docSQL(t *testing.T, heading string) [][]string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/campaigns.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(doc)[strings.Index(string(doc), heading):]
	section = section[:strings.Index(section[3:], "\n## ")+3]
	return regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(section, -1)
}

func TestCampaignRecipes(t *testing.T) {
	t.Parallel()
	blocks := docSQL(t, "## Everyday recipes")
	if len(blocks) != 4 {
		t.Fatalf("found %d SQL recipes, want 4", len(blocks))
	}

	e := newEnv(t, "", pushsim.Options{})
	e.users("IOS", 1100, func(i int) string { return iosToken("", i) }, "NOW(3) - INTERVAL 1 DAY")      // ids 1..1100
	e.users("Android", 100, func(i int) string { return fcmToken("r-", i) }, "NOW(3) - INTERVAL 1 DAY") // 1101..1200
	// Campaigns 41 and 42 went out earlier: 41 was sent to users 1..600,
	// and 42 failed for users 10..19 and expired for 20..24.
	e.exec(
		`INSERT INTO campaigns (id, app, title, body, scheduled_at, status) VALUES (41, 'IOS', 'a', 'b', NOW() - INTERVAL 1 DAY, 'done'),
			(42, 'IOS', 'a', 'b', NOW() - INTERVAL 1 DAY, 'done')`,
		`INSERT INTO pushd_runs (id, campaign_id, occurrence, app, status, notification, scheduled_for, deadline, batch_size, max_user_id, cursor_user_id, started_at)
			VALUES (41, 41, 1, 'IOS', 'done', '{}', NOW(), NOW(), 1000, 1100, 1100, NOW()), (42, 42, 1, 'IOS', 'done', '{}', NOW(), NOW(), 1000, 1100, 1100, NOW())`,
		`INSERT INTO pushd_deliveries (run_id, user_id, outcome) SELECT 41, id, 'sent' FROM users WHERE id <= 600`,
		`INSERT INTO pushd_deliveries (run_id, user_id, outcome) SELECT 42, id, CASE WHEN id BETWEEN 10 AND 19 THEN 'failed'
			WHEN id BETWEEN 20 AND 24 THEN 'expired' ELSE 'sent' END FROM users WHERE app = 'IOS'`,
	)
	first := e.count(`SELECT MAX(id) FROM campaigns`) + 1
	for _, b := range blocks {
		sql := strings.NewReplacer("'MyiOSApp,MyAndroidApp'", "'IOS,Android'", "'MyiOSApp'", "'IOS'").Replace(b[1])
		for _, stmt := range strings.Split(sql, ";\n") {
			if strings.TrimSpace(stmt) != "" {
				e.exec(stmt)
			}
		}
	}
	e.exec(fmt.Sprintf(`UPDATE campaigns SET scheduled_at = NOW() WHERE id >= %d`, first))
	d := e.start()
	defer d.stop(t)
	want := []struct {
		what string
		sent int
	}{
		{"the test list", 2},
		{"the retry of 42", 15},
		{"everyone but the receivers of 41", 500},
		{"both apps", 1200},
	}
	for i, w := range want {
		r := e.waitStatus(int64(first+i), time.Minute, "done", "failed", "expired")
		if r.Status != "done" || r.Sent != w.sent {
			t.Errorf("recipe %q: %+v, want done with %d sent", w.what, r, w.sent)
		}
	}
	ios := e.userIDs("IOS")
	got := e.delivered(pushsim.ProviderAPNs)
	for tok, id := range ios {
		want := 1 // the campaign to both apps
		switch {
		case id == 1001 || id == 1002:
			want++
		}
		if id >= 10 && id <= 24 {
			want++
		}
		if id > 600 {
			want++
		}
		if got[tok].Count != want {
			t.Errorf("user %d got %d pushes, want %d", id, got[tok].Count, want)
		}
	}
}
