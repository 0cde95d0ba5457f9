package campaign_test

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/campaign"
	"github.com/pushd/pushd/internal/memstore"
)

// TestRunnerRendersPerUser runs a campaign with a template and a
// translation: each user gets their own text, a user the template skips
// is recorded skipped, and a user whose attributes are broken or whose
// rendered notification the provider refuses fails alone.
func TestRunnerRendersPerUser(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := memstore.New(nil)
		users := []pushd.Recipient{
			{UserID: 1, Token: token(1), Attributes: []byte(`{"first_name":"Anna"}`)},
			{UserID: 2, Token: token(2)},
			{UserID: 3, Token: token(3), Locale: "fr_CA", Attributes: []byte(`{"first_name":"Zoé"}`)},
			{UserID: 4, Token: token(4), Attributes: []byte(`{"vip":false}`)},
			{UserID: 5, Token: token(5), Attributes: []byte(`[1]`)},
			{UserID: 6, Token: token(6), Attributes: []byte(`{"first_name":"` + strings.Repeat("x", 100) + `"}`)},
		}
		st.AddUsers(appName, users...)
		snd := &fakeSender{maxTitle: 60}
		app := campaign.NewApp(appName, pushd.APNs, snd, campaign.AppOptions{})
		now := time.Now()
		id := st.AddCampaign(pushd.Campaign{App: appName, ScheduledAt: now})
		n := `{"title":"{% if vip == false %}{% skip %}{% endif %}Hi {{ first_name | default: \"there\" }}","body":"b","templated":true,
			"translations":[{"locale":"fr","title":"Salut {{ first_name | default: \"toi\" }}","body":"fb"}]}`
		start := pushd.Decision{Action: pushd.Start, Runs: []pushd.NewRun{{App: appName, ScheduledFor: now, Deadline: now.Add(time.Hour),
			BatchSize: 10, Notification: []byte(n), UserData: true}}}
		_, runIDs, err := st.Decide(t.Context(), id, now, func(*pushd.Campaign) pushd.Decision { return start })
		if err != nil {
			t.Fatal(err)
		}
		r := campaign.NewRunner(st.Run(runIDs[0]).Run, app, st, campaign.Options{Owner: "a", Lease: lease})
		if err := r.Run(t.Context(), nil); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, q := range snd.requests() {
			got[q.token] = q.n.Title + "/" + q.n.Body
		}
		want := map[string]string{token(1): "Hi Anna/b", token(2): "Hi there/b", token(3): "Salut Zoé/fb"}
		if len(got) != len(want) {
			t.Errorf("sent %v, want %v", got, want)
		}
		for tok, w := range want {
			if got[tok] != w {
				t.Errorf("%s got %q, want %q", tok, got[tok], w)
			}
		}
		out := st.Outcomes(runIDs[0])
		for id, w := range map[int64]struct {
			o      pushd.Outcome
			reason string
		}{
			1: {pushd.Sent, ""}, 2: {pushd.Sent, ""}, 3: {pushd.Sent, ""},
			4: {pushd.Skipped, "template skip"},
			5: {pushd.FailedSend, "attributes are not a JSON object"},
			6: {pushd.FailedSend, "the notification is too large"},
		} {
			if d := out[id]; d.Outcome != w.o || !strings.HasPrefix(d.Reason, w.reason) || len(d.Reason) > 64 {
				t.Errorf("user %d: %s %q, want %s %q", id, d.Outcome, d.Reason, w.o, w.reason)
			}
		}
		if d := out[3]; d.Locale != "fr" {
			t.Errorf("user 3 counted for locale %q, want fr", d.Locale)
		}
		if c := st.Run(runIDs[0]).Counts; c.Sent != 3 || c.Skipped != 1 || c.Failed != 2 {
			t.Errorf("counts %+v, want 3 sent, 1 skipped, 2 failed", c)
		}
	})
}
