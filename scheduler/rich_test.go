package scheduler

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/campaign"
)

// TestPlanContent checks the content columns when a row arrives: each
// mistake fails the row naming the column, and a good row's snapshot
// carries the rich fields, the translations and whether it is personal.
func TestPlanContent(t *testing.T) {
	t.Parallel()
	apps := map[string]*campaign.App{"MyApp": campaign.NewApp("MyApp", pushd.APNs, fakeSender{}, campaign.AppOptions{})}
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	base := func() *pushd.Campaign {
		return &pushd.Campaign{ID: 42, App: "MyApp", Title: "Sale", Body: "50% off", ScheduledAt: now, Status: pushd.Scheduled}
	}
	score := 1.5
	for _, tc := range []struct {
		edit   func(c *pushd.Campaign)
		reason string
	}{
		{func(c *pushd.Campaign) { c.Title = "Hi {{ name | nosuch }}" }, `title: the filter "nosuch" is not available`},
		{func(c *pushd.Campaign) { c.Body = "{% for x in y %}{% endfor %}" }, "body: {% for %} is not available"},
		{func(c *pushd.Campaign) { c.Translations = []pushd.Translation{{Locale: "fr", Body: "{% if %}"}} }, "campaign_translations (fr) body"},
		{func(c *pushd.Campaign) { c.Translations = []pushd.Translation{{Locale: "123", Body: "b"}} }, "locale '123' is not a BCP 47 locale"},
		{func(c *pushd.Campaign) { c.Priority = "urgent" }, "priority 'urgent' is not high or normal"},
		{func(c *pushd.Campaign) { c.InterruptionLevel = "loud" }, "interruption_level 'loud' is not passive, active"},
		{func(c *pushd.Campaign) { c.RelevanceScore = &score }, "relevance_score 1.5 is out of range"},
		{func(c *pushd.Campaign) { c.ImageURL = "http://cdn.example.com/a.jpg" }, "image_url 'http://cdn.example.com/a.jpg' is not an https URL"},
		{func(c *pushd.Campaign) { c.Link = "sale/42" }, "link 'sale/42' is not a link the app can open"},
		{func(c *pushd.Campaign) { c.Overrides = `{"apns": {"aps": {}}, "web": {}}` }, `overrides may only have the keys "apns" and "fcm"`},
		{func(c *pushd.Campaign) { c.Overrides = `{"apns": [1]}` }, "overrides.apns must be a JSON object"},
		{func(c *pushd.Campaign) { c.Overrides = `{"apns": {}` }, "overrides is not a JSON object"},
		{func(c *pushd.Campaign) { c.Body = "{{ x | append: '" + strings.Repeat("y", 4050) + "' }}" }, "4096"},
		{func(c *pushd.Campaign) { c.HoldoutPercent = 51 }, "holdout_percent 51 is out of range: use 0 to 50"},
		{func(c *pushd.Campaign) { c.Variants = []pushd.Variant{{Name: "A", Weight: 1, Body: "a"}} }, "campaign_variants has one row (A)"},
		{func(c *pushd.Campaign) {
			c.Variants = []pushd.Variant{{Name: "A", Weight: 1, Body: "a"}, {Name: "B B", Weight: 1, Body: "b"}}
		}, "name 'B B' must be 1 to 32 letters"},
		{func(c *pushd.Campaign) {
			c.Variants = []pushd.Variant{{Name: "A", Weight: 0, Body: "a"}, {Name: "B", Weight: 1, Body: "b"}}
		}, "campaign_variants (A): weight 0 is out of range"},
		{func(c *pushd.Campaign) {
			c.Variants = []pushd.Variant{{Name: "A", Weight: 1, Body: "{% if %}"}, {Name: "B", Weight: 1, Body: "b"}}
		}, "campaign_variants (A) body"},
		{func(c *pushd.Campaign) {
			c.Variants = []pushd.Variant{{Name: "A", Weight: 1, Body: "a"}, {Name: "B", Weight: 1, Body: "b"}}
			c.Translations = []pushd.Translation{{Locale: "fr", Body: "b"}}
		}, "both campaign_variants and campaign_translations"},
	} {
		c := base()
		tc.edit(c)
		d := Plan(c, apps, now)
		if d.Action != pushd.Fail || !strings.Contains(d.Reason, tc.reason) {
			t.Errorf("decision %v %q, want a failure containing %q", d.Action, d.Reason, tc.reason)
		}
	}

	c := base()
	c.Title, c.Subtitle, c.ImageURL, c.Link, c.Priority = "Hi {{ first_name | default: 'there' }}", "today", "https://cdn.example.com/a.jpg", "myapp://sale", "Normal"
	c.Overrides = `{"apns": {"aps": {"sound": {"critical": 1}}}}`
	c.Translations = []pushd.Translation{{Locale: "fr", Title: "Salut", Body: "b"}}
	d := Plan(c, apps, now)
	if d.Action != pushd.Start || len(d.Runs) != 1 || !d.Runs[0].UserData {
		t.Fatalf("decision %+v, want a start that reads user data", d)
	}
	var n pushd.Notification
	if err := json.Unmarshal(d.Runs[0].Notification, &n); err != nil {
		t.Fatal(err)
	}
	if !n.Templated || len(n.Translations) != 1 || n.Subtitle != "today" || n.ImageURL != c.ImageURL || n.Link != c.Link ||
		n.Priority != pushd.Normal || string(n.Overrides.APNs) != `{"aps":{"sound":{"critical":1}}}` {
		t.Errorf("snapshot %+v", n)
	}
	plain := Plan(base(), apps, now)
	if plain.Action != pushd.Start || plain.Runs[0].UserData {
		t.Errorf("a plain campaign reads user data: %+v", plain)
	}
}
