package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/pushsim"
)

// TestPersonalCampaigns runs the SQL of docs/campaigns.md, "Personal,
// translated, rich and silent pushes", for an APNs and an FCM app, and
// checks on pushsim's side what each user's phone received: their name or
// the default, their language with fallback, the rich fields, silent
// pushes and overrides; and that a broken template fails its row on
// arrival.
func TestPersonalCampaigns(t *testing.T) {
	t.Parallel()
	blocks := docSQL(t, "## Personal, translated, rich and silent pushes")
	if len(blocks) != 7 {
		t.Fatalf("found %d SQL blocks, want 7", len(blocks))
	}

	e := newEnv(t, "", pushsim.Options{KeepPushes: 1000})
	// Users 1–3 of IOS and 4–6 of Android.
	e.exec(`INSERT INTO users (id, app, push_token, locale, attributes, registered_at) VALUES
		(1, 'IOS', '` + iosToken("", 1) + `', 'fr-CA', '{"first_name": "Anna", "plan": "gold"}', NOW(3) - INTERVAL 1 DAY),
		(2, 'IOS', '` + iosToken("", 2) + `', 'de', NULL, NOW(3) - INTERVAL 1 DAY),
		(3, 'IOS', '` + iosToken("", 3) + `', 'en', '{"first_name": "Bob", "plan": "basic"}', NOW(3) - INTERVAL 1 DAY),
		(4, 'Android', '` + fcmToken("", 4) + `', 'fr', '{"first_name": "Zoé"}', NOW(3) - INTERVAL 1 DAY),
		(5, 'Android', '` + fcmToken("", 5) + `', NULL, '{}', NOW(3) - INTERVAL 1 DAY),
		(6, 'Android', '` + fcmToken("", 6) + `', 'pt_BR', '[1]', NOW(3) - INTERVAL 1 DAY)`)
	first := int64(e.count(`SELECT COALESCE(MAX(id), 0) FROM campaigns`) + 1)
	ctx := context.Background()
	for _, b := range blocks {
		if strings.HasPrefix(strings.TrimSpace(b[1]), "SELECT") {
			continue // a query to read, run below
		}
		// One connection per block: the translation recipe keeps the
		// campaign's id in a session variable.
		conn, err := e.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sql := strings.NewReplacer("'MyiOSApp,MyAndroidApp'", "'IOS,Android'", "'MyiOSApp'", "'IOS,Android'").Replace(b[1])
		for _, stmt := range strings.Split(sql, ";\n") {
			if strings.TrimSpace(stmt) != "" {
				if _, err := conn.ExecContext(ctx, stmt); err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
			}
		}
		conn.Close()
	}
	last := int64(e.count(`SELECT MAX(id) FROM campaigns`))
	if last-first != 5 {
		t.Fatalf("the recipes made campaigns %d..%d, want 6", first, last)
	}
	bad := e.campaign("IOS", time.Now().Add(time.Hour), map[string]any{"title": "Hi {{ first_name | nosuch }}"})
	// The campaigns go one after another, so that each user's pushes can
	// be told apart by their order.
	e.exec(fmt.Sprintf(`UPDATE campaigns SET scheduled_at = NOW() + INTERVAL (id - %d) * 2 SECOND WHERE id BETWEEN %d AND %d`, first, first, last))
	d := e.start()
	defer d.stop(t)

	if r := e.waitStatus(bad, 10*time.Second, "failed"); !strings.Contains(r.Reason, `title: the filter "nosuch" is not available`) {
		t.Errorf("broken template: reason %q", r.Reason)
	}
	for id := first; id <= last; id++ {
		e.waitStatus(id, 60*time.Second, "done")
	}
	// pushes[campaign index][user id], told apart by the collapse id that
	// pushd derives per run: pushd-<campaign>-<occurrence>.
	pushes := make([]map[int]pushsim.Push, 6)
	for i := range pushes {
		pushes[i] = map[int]pushsim.Push{}
	}
	tokenUser := map[string]int{}
	for i := 1; i <= 3; i++ {
		tokenUser[iosToken("", i)] = i
	}
	for i := 4; i <= 6; i++ {
		tokenUser[fcmToken("", i)] = i
	}
	for _, p := range e.sim.Pushes() {
		var id int64
		var occ int
		if _, err := fmt.Sscanf(p.CollapseID, "pushd-%d-%d", &id, &occ); err != nil || id < first || id > last {
			t.Fatalf("a push with collapse id %q", p.CollapseID)
		}
		if _, dup := pushes[id-first][tokenUser[p.Token]]; dup {
			t.Errorf("campaign %d: user %d got two pushes", id, tokenUser[p.Token])
		}
		pushes[id-first][tokenUser[p.Token]] = p
	}
	str := func(p pushsim.Push, keys ...string) string {
		v, ok := p.Value(keys...)
		if !ok {
			return "<absent>"
		}
		return fmt.Sprint(v)
	}
	check := func(what string, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %q, want %q", what, got, want)
		}
	}

	// 0: placeholders. User 6's attributes are no object: failed alone.
	p := pushes[0]
	check("0 user 1 title", str(p[1], "aps", "alert", "title"), "Hi Anna, your cart is waiting")
	check("0 user 1 body", str(p[1], "aps", "alert", "body"), "Gold members ship free.")
	check("0 user 1 screen", str(p[1], "screen"), "cart/1")
	check("0 user 2 title", str(p[2], "aps", "alert", "title"), "Hi there, your cart is waiting")
	check("0 user 3 body", str(p[3], "aps", "alert", "body"), "Complete your order today.")
	check("0 user 4 title", str(p[4], "notification", "title"), "Hi Zoé, your cart is waiting")
	check("0 user 5 screen", str(p[5], "data", "screen"), "cart/5")
	if _, got := p[6]; got {
		t.Error("0: user 6, whose attributes are no JSON object, was sent a push")
	}
	var failed, skipped int
	var reason string
	if err := e.db.QueryRow(`SELECT failed, skipped FROM campaigns WHERE id = ?`, first).Scan(&failed, &skipped); err != nil || failed != 1 {
		t.Errorf("0: failed %d (%v), want 1", failed, err)
	}
	if err := e.db.QueryRow(`SELECT reason FROM pushd_deliveries d JOIN pushd_runs r ON r.id = d.run_id WHERE r.campaign_id = ? AND d.user_id = 6`, first).
		Scan(&reason); err != nil || !strings.Contains(reason, "attributes are not a JSON object") {
		t.Errorf("0: user 6's reason %q (%v)", reason, err)
	}

	// 1: skip: users 2 and 5 have no first_name.
	if err := e.db.QueryRow(`SELECT skipped FROM campaigns WHERE id = ?`, first+1).Scan(&skipped); err != nil || skipped != 2 {
		t.Errorf("1: skipped %d (%v), want 2", skipped, err)
	}
	check("1 user 1 title", str(pushes[1][1], "aps", "alert", "title"), "Anna, a gift for you")
	check("1 user 4 title", str(pushes[1][4], "notification", "title"), "Zoé, a gift for you")
	for _, u := range []int{2, 5, 6} {
		if _, got := pushes[1][u]; got {
			t.Errorf("1: user %d was sent a push", u)
		}
	}

	// 2: translations, with fallback fr-CA → fr and the campaign's text.
	p = pushes[2]
	check("2 user 1 title", str(p[1], "aps", "alert", "title"), "Soldes d'hiver")
	check("2 user 1 body", str(p[1], "aps", "alert", "body"), "Bonjour Anna, tout est à -30 %")
	check("2 user 2 title", str(p[2], "aps", "alert", "title"), "Winterschlussverkauf")
	check("2 user 3 body", str(p[3], "aps", "alert", "body"), "Hi Bob, everything is 30% off")
	check("2 user 4 body", str(p[4], "notification", "body"), "Bonjour Zoé, tout est à -30 %")
	check("2 user 5 body", str(p[5], "notification", "body"), "Hi there, everything is 30% off")
	locales := map[string]int{}
	rows, err := e.db.Query(`SELECT l.locale, SUM(l.sent) FROM pushd_run_locales l JOIN pushd_runs r ON r.id = l.run_id
		WHERE r.campaign_id = ? GROUP BY l.locale`, first+2)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var l string
		var n int
		if err := rows.Scan(&l, &n); err != nil {
			t.Fatal(err)
		}
		locales[l] = n
	}
	rows.Close()
	if fmt.Sprint(locales) != fmt.Sprint(map[string]int{"": 2, "de": 1, "fr": 2}) {
		t.Errorf("2: sent per translation %v, want fr 2, de 1, campaign text 2", locales)
	}
	if out, err := e.pushd("status"); err != nil || !strings.Contains(out, fmt.Sprintf("%d: campaign text 2 · fr 2 · de 1", first+2)) {
		t.Errorf("pushd status lacks the translations (%v):\n%s", err, out)
	}

	// 3: rich.
	p = pushes[3]
	check("3 apns mutable-content", str(p[1], "aps", "mutable-content"), "1")
	check("3 apns image_url", str(p[1], "image_url"), "https://cdn.example.com/cart.jpg")
	check("3 apns link", str(p[1], "link"), "myapp://cart")
	check("3 apns subtitle", str(p[1], "aps", "alert", "subtitle"), "2 items left")
	check("3 apns category", str(p[1], "aps", "category"), "CART")
	check("3 apns thread-id", str(p[1], "aps", "thread-id"), "cart-reminders")
	check("3 apns interruption-level", str(p[1], "aps", "interruption-level"), "time-sensitive")
	check("3 apns relevance-score", str(p[1], "aps", "relevance-score"), "0.8")
	check("3 apns priority", p[1].Priority, "10")
	check("3 fcm image", str(p[4], "notification", "image"), "https://cdn.example.com/cart.jpg")
	check("3 fcm link", str(p[4], "data", "link"), "myapp://cart")
	check("3 fcm click_action", str(p[4], "android", "notification", "click_action"), "CART")
	check("3 fcm channel", str(p[4], "android", "notification", "channel_id"), "promotions")
	check("3 fcm priority", str(p[4], "android", "priority"), "HIGH")

	// 4: silent.
	p = pushes[4]
	check("4 apns push type", p[1].PushType, "background")
	check("4 apns priority", p[1].Priority, "5")
	check("4 apns aps", str(p[1], "aps"), "map[content-available:1]")
	check("4 apns data", str(p[1], "refresh"), "catalogue")
	check("4 fcm notification", str(p[4], "notification"), "<absent>")
	check("4 fcm data", str(p[4], "data", "refresh"), "catalogue")

	// 5: overrides.
	p = pushes[5]
	check("5 apns critical sound", str(p[1], "aps", "sound", "critical"), "1")
	check("5 apns alert kept", str(p[1], "aps", "alert", "title"), "Storm warning")
	check("5 fcm color", str(p[4], "android", "notification", "color"), "#ff0000")
}
