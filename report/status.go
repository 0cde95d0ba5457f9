// Package report words what pushd's commands show a person: the table of
// `pushd status` and the verdicts of `pushd send`. Its functions read no
// clock, no database and no network, so tests can pin every line.
package report

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pushd/pushd"
)

// ANSI escapes: cursor home, then clear the screen.
const ansiClearScreen = "\x1b[H\x1b[2J"

// Watch writes a frame every interval until ctx ends, which is not an
// error, or a write fails (the reader of a pipe went away). On a terminal
// each frame replaces the previous one; in a pipe or a file the frames
// follow each other, so a log of them stays readable.
func Watch(ctx context.Context, w io.Writer, interval time.Duration, tty bool, frame func(context.Context) []byte) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for first := true; ; first = false {
		out := frame(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var b bytes.Buffer
		if tty {
			b.WriteString(ansiClearScreen)
		} else if !first {
			b.WriteByte('\n')
		}
		b.Write(out)
		if _, err := w.Write(b.Bytes()); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// StatusView is everything one frame of `pushd status` shows. Rendering it
// reads no clock and no database, so a test can pin every line.
type StatusView struct {
	Database  string
	Loc       *time.Location // zone of the DATETIME columns, for display
	Now       time.Time
	Counts    map[string]int // every campaign, by status
	Campaigns []pushd.CampaignStatus
	// Instances are the pushd processes seen lately; the live ones' pace
	// gives the running campaigns' rate and ETA.
	Instances []pushd.Instance
}

// pace is a run's recent pace, summed over the live instances working on it.
type pace struct {
	sent, outcomes float64
	working        bool // some live instance works on the run
}

// paces sums the live instances' heartbeats per run.
func (v StatusView) paces() map[int64]pace {
	out := map[int64]pace{}
	for _, in := range v.Instances {
		if !in.Live {
			continue
		}
		for _, r := range in.Runs {
			p := out[r.RunID]
			p.sent += r.Sent
			p.outcomes += r.Outcomes
			p.working = true
			out[r.RunID] = p
		}
	}
	return out
}

// campaignPace sums the paces of the campaign's runs (one per app).
func campaignPace(c pushd.CampaignStatus, paces map[int64]pace) pace {
	var p pace
	for _, id := range c.RunIDs() {
		q := paces[id]
		p.sent += q.sent
		p.outcomes += q.outcomes
		p.working = p.working || q.working
	}
	return p
}

// stalled reports whether c runs but no live instance works on it.
func stalled(c pushd.CampaignStatus, paces map[int64]pace) bool {
	return c.Status == pushd.Running && c.Run != nil && c.Run.Status == pushd.Running && !campaignPace(c, paces).working
}

// Layout of the table.
const (
	statusBarWidth    = 20
	statusReasonWidth = 60
)

// statusOrder is the order of statuses in the summary line.
var statusOrder = []pushd.Status{pushd.Running, pushd.Scheduled, pushd.Paused, pushd.Failed, pushd.Expired, pushd.Done, pushd.Cancelled}

// Status writes the summary line, the campaign table and the full
// text of every reason the table had to cut.
func Status(w io.Writer, v StatusView) {
	loc := v.Loc
	if loc == nil {
		loc = time.UTC
	}
	now := v.Now.In(loc)
	var parts []string
	total := 0
	for _, s := range statusOrder {
		if n := v.Counts[string(s)]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %s", Num(int64(n)), s))
			total += n
		}
	}
	summary := "no campaigns"
	if total > 0 {
		summary = strings.Join(parts, ", ")
	}
	fmt.Fprintf(w, "pushd campaigns in database %s at %s %s: %s\n", v.Database, now.Format(time.DateTime), statusZone(now), summary)

	paces := v.paces()
	var running, sent, targeted int64
	var rate float64
	for _, c := range v.Campaigns {
		if c.Status == pushd.Running {
			running++
			sent += c.Sent
			targeted += c.Targeted
			rate += campaignPace(c, paces).sent
		}
	}
	if running > 0 {
		fmt.Fprintf(w, "sending: %s/%s sent in %d running campaign%s, %s\n",
			Num(sent), Num(targeted), running, statusPlural(running), statusRateText(rate))
	}
	if len(v.Campaigns) == 0 {
		statusInstances(w, v)
		return
	}
	fmt.Fprintln(w)

	// CAPPED and SKIPPED only when some campaign has them: most setups use
	// neither frequency caps nor local time.
	var anyCapped, anySkipped bool
	for _, c := range v.Campaigns {
		anyCapped = anyCapped || c.Capped > 0
		anySkipped = anySkipped || c.Skipped > 0
	}
	header := []string{"ID", "APP", "STATUS", "PROGRESS", "SENT/TARGETED", "FAILED", "INVALID", "EXPIRED"}
	if anyCapped {
		header = append(header, "CAPPED")
	}
	if anySkipped {
		header = append(header, "SKIPPED")
	}
	header = append(header, "RATE", "ETA", "NEXT RUN", "REASON")
	right := map[int]bool{0: true}
	for i := 4; i < len(header)-2; i++ {
		right[i] = true
	}
	optional := func(cells []string, capped, skipped string) []string {
		out := cells[:8:8]
		if anyCapped {
			out = append(out, capped)
		}
		if anySkipped {
			out = append(out, skipped)
		}
		return append(out, cells[8:]...)
	}
	rows := [][]string{header}
	type longReason struct {
		id     int64
		reason string
	}
	var cut []longReason
	lateETA := false
	var stalls []int64
	for _, c := range v.Campaigns {
		if stalled(c, paces) {
			stalls = append(stalls, c.ID)
		}
		reason := statusOneLine(c.Reason)
		short := statusTruncate(reason, statusReasonWidth)
		if short != reason {
			cut = append(cut, longReason{c.ID, reason})
		}
		eta, late := statusETA(c, v.Now, paces)
		lateETA = lateETA || late
		rows = append(rows, optional([]string{
			strconv.FormatInt(c.ID, 10),
			c.App,
			string(c.Status),
			statusProgressCell(c),
			statusCountsCell(c),
			statusCountCell(c, c.Failed),
			statusCountCell(c, c.Invalid),
			statusCountCell(c, c.Expired),
			statusRateCell(c, v.Now, paces),
			eta,
			statusNextRunCell(c, v.Now, loc),
			short,
		}, statusCountCell(c, c.Capped), statusCountCell(c, c.Skipped)))
		// A campaign of several apps: a line per app under it.
		for _, a := range c.Apps {
			ac := pushd.CampaignStatus{ID: c.ID, App: a.App, Status: a.Status, Targeted: a.Targeted, Sent: a.Sent, Failed: a.Failed,
				Invalid: a.Invalid, Expired: a.Expired, Capped: a.Capped, Skipped: a.Skipped, Run: c.Run, Runs: a.RunIDs}
			rate := "-"
			if p := campaignPace(ac, paces); p.working && a.Status == pushd.Running {
				rate = statusRateText(p.sent)
			}
			rows = append(rows, optional([]string{"", "  " + a.App, string(a.Status), statusProgressCell(ac), statusCountsCell(ac),
				Num(a.Failed), Num(a.Invalid), Num(a.Expired), rate, "", "", ""}, Num(a.Capped), Num(a.Skipped)))
		}
	}
	statusTable(w, rows, right)
	statusLocales(w, v.Campaigns)
	statusVariants(w, v.Campaigns)
	if lateETA {
		fmt.Fprintln(w, "\n* at this rate the run ends after its deadline; users not reached by then count as expired")
	}
	if len(stalls) > 0 {
		ids := make([]string, len(stalls))
		for i, id := range stalls {
			ids[i] = strconv.FormatInt(id, 10)
		}
		what := "campaign " + ids[0] + " is"
		if len(ids) > 1 {
			what = "campaigns " + strings.Join(ids, ", ") + " are"
		}
		fmt.Fprintf(w, "\nstalled: %s running, but no live pushd works on it; start pushd and it goes on where it stopped\n", what)
	}
	if len(cut) > 0 {
		fmt.Fprintln(w, "\nReasons in full:")
		for _, l := range cut {
			fmt.Fprintf(w, "  %d: %s\n", l.id, l.reason)
		}
	}
	statusInstances(w, v)
}

// statusInstances lists the pushd processes seen lately: the live ones
// with what they work on, then the ones gone.
func statusInstances(w io.Writer, v StatusView) {
	live := 0
	for _, in := range v.Instances {
		if in.Live {
			live++
		}
	}
	switch {
	case len(v.Instances) == 0:
		fmt.Fprintln(w, "\npushd instances: none has run in the last day; is pushd started?")
		return
	case live == 0:
		fmt.Fprintln(w, "\npushd instances: none live; is pushd started?")
	default:
		fmt.Fprintf(w, "\npushd instances: %d live\n", live)
	}
	for _, in := range v.Instances {
		where := fmt.Sprintf("%s (host %s, pid %d, %s)", in.InstanceID, in.Host, in.PID, in.Version)
		if !in.Live {
			fmt.Fprintf(w, "  %s: gone, last seen %s ago\n", where, statusDuration(v.Now.Sub(in.SeenAt)))
			continue
		}
		runs := "no campaign"
		if len(in.Runs) > 0 {
			ids := make([]string, len(in.Runs))
			for i, r := range in.Runs {
				ids[i] = strconv.FormatInt(r.RunID, 10)
			}
			runs = "runs " + strings.Join(ids, ", ")
		}
		fmt.Fprintf(w, "  %s: up %s, working on %s\n", where, statusDuration(v.Now.Sub(in.StartedAt)), runs)
	}
}

// statusTable writes rows in columns two spaces apart, the columns in right
// aligned to the right, and no trailing spaces.
func statusTable(w io.Writer, rows [][]string, right map[int]bool) {
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, cell := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		b.Reset()
		for i, cell := range r {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell))
			if right[i] {
				b.WriteString(pad + cell)
			} else {
				b.WriteString(cell + pad)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// statusProcessed is how many users of the current run have an outcome.
func statusProcessed(c pushd.CampaignStatus) int64 {
	return c.Sent + c.Failed + c.Invalid + c.Expired + c.Capped + c.Skipped + c.HeldOut
}

// statusProgressCell is a bar and a percentage of the audience with an outcome.
func statusProgressCell(c pushd.CampaignStatus) string {
	if c.Run == nil {
		return "-"
	}
	if c.Targeted <= 0 {
		if c.Status == pushd.Running {
			return "counting the audience"
		}
		if statusProcessed(c) == 0 {
			return "no users"
		}
		return "-"
	}
	done := min(statusProcessed(c), c.Targeted)
	fill := int(done * statusBarWidth / c.Targeted)
	pct := done * 100 / c.Targeted
	return "[" + strings.Repeat("#", fill) + strings.Repeat(".", statusBarWidth-fill) + "] " + fmt.Sprintf("%3d%%", pct)
}

func statusCountsCell(c pushd.CampaignStatus) string {
	if c.Run == nil {
		if c.Status == pushd.Scheduled && c.Targeted > 0 {
			return "~" + Num(c.Targeted) // the estimate of the reach
		}
		return "-"
	}
	if c.Targeted <= 0 && c.Status == pushd.Running {
		return Num(c.Sent) + "/?" // the audience is being counted
	}
	return Num(c.Sent) + "/" + Num(c.Targeted)
}

func statusCountCell(c pushd.CampaignStatus, n int64) string {
	if c.Run == nil {
		return "-"
	}
	return Num(n)
}

// statusElapsed is how long the current run has been going: until now while
// it runs, until it finished once it has. Paused and failed runs have no
// meaningful rate.
func statusElapsed(c pushd.CampaignStatus, now time.Time) (time.Duration, bool) {
	if c.Run == nil {
		return 0, false
	}
	end := now
	switch {
	case c.Status == pushd.Running && c.Run.Status == pushd.Running:
	case c.Run.FinishedAt != nil:
		end = *c.Run.FinishedAt
	default:
		return 0, false
	}
	d := end.Sub(c.Run.StartedAt)
	return d, d > 0
}

// statusSendRate is pushes sent per second: for a running campaign, the
// live instances' pace over the last half minute; for a finished run, its
// average over the run.
func statusSendRate(c pushd.CampaignStatus, now time.Time, paces map[int64]pace) (float64, bool) {
	if c.Status == pushd.Running {
		p := campaignPace(c, paces)
		if c.Run == nil || !p.working {
			return 0, false
		}
		return p.sent, true
	}
	d, ok := statusElapsed(c, now)
	if !ok {
		return 0, false
	}
	return float64(c.Sent) / d.Seconds(), true
}

func statusRateCell(c pushd.CampaignStatus, now time.Time, paces map[int64]pace) string {
	if stalled(c, paces) {
		return "stalled"
	}
	r, ok := statusSendRate(c, now, paces)
	if !ok {
		return "-"
	}
	return statusRateText(r)
}

// statusETA estimates when a running campaign is done, and whether that is
// after its deadline. It divides the users left by the recent pace at
// which users got an outcome of any kind (not only sent): a dead token
// uses up the audience as a delivered push does, so with many of them the
// sent rate alone would promise too late an end.
func statusETA(c pushd.CampaignStatus, now time.Time, paces map[int64]pace) (string, bool) {
	if c.Status != pushd.Running || c.Targeted <= 0 || c.Run == nil {
		return "-", false
	}
	left := c.Targeted - statusProcessed(c)
	if left <= 0 {
		return "0s", false
	}
	p := campaignPace(c, paces)
	if p.outcomes <= 0 {
		return "-", false
	}
	eta := time.Duration(float64(left) / p.outcomes * float64(time.Second))
	if now.Add(eta).After(c.Run.Deadline) {
		return statusDuration(eta) + "*", true
	}
	return statusDuration(eta), false
}

// statusNextRunCell is when a scheduled campaign starts, or when a running
// recurring one runs next. A paused or failed campaign's next_run_at is the
// run it would resume, not a future run, so it is not shown.
func statusNextRunCell(c pushd.CampaignStatus, now time.Time, loc *time.Location) string {
	var at time.Time
	switch {
	case c.Status == pushd.Scheduled && c.NextRunAt != nil:
		at = *c.NextRunAt
	case c.Status == pushd.Scheduled:
		at = c.ScheduledAt
	case c.Status == pushd.Running && c.NextRunAt != nil:
		at = *c.NextRunAt
	default:
		return "-"
	}
	when := at.In(loc).Format("2006-01-02 15:04")
	switch d := at.Sub(now); {
	case d >= time.Minute:
		return when + " (in " + statusDuration(d) + ")"
	case d > -time.Minute:
		return when + " (now)"
	default:
		return when + " (" + statusDuration(-d) + " late)"
	}
}

// statusDuration writes d roughly, as a person reads it: 45s, 4m05s, 12m,
// 3h05m, 2d03h.
func statusDuration(d time.Duration) string {
	d = d.Round(time.Second)
	s := int64(d / time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", s)
	case d < 10*time.Minute:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case d < time.Hour:
		return fmt.Sprintf("%dm", s/60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}

// statusRateText writes pushes per second: one decimal below 10, whole numbers
// with Num separators above.
func statusRateText(r float64) string {
	if r < 10 {
		return strconv.FormatFloat(r, 'f', 1, 64) + "/s"
	}
	return Num(int64(r+0.5)) + "/s"
}

// Num writes n with a comma every three digits: 1,000,000.
func Num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

func statusPlural(n int64) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// statusZone is the zone abbreviation, or the UTC offset when the zone has no
// abbreviation.
func statusZone(t time.Time) string {
	name, _ := t.Zone()
	if name == "" {
		return t.Format("-07:00")
	}
	return name
}

// statusOneLine turns line breaks, tabs and other control characters into
// spaces, so a reason cannot break the table.
func statusOneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
}

// statusTruncate cuts s to at most n runes, at a word boundary when one is
// reasonably near, and marks the cut with "…".
func statusTruncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	cut := r[:n-1]
	// Unless the cut already falls between two words, back up to the last
	// space, if it is in the last third.
	for i := len(cut) - 1; r[len(cut)] != ' ' && i >= n*2/3; i-- {
		if cut[i] == ' ' {
			cut = cut[:i]
			break
		}
	}
	return strings.TrimRight(string(cut), " ,;:") + "…"
}

// statusLocales lists, for campaigns with translations, how many users
// were sent each one, most first.
func statusLocales(w io.Writer, cs []pushd.CampaignStatus) {
	first := true
	for _, c := range cs {
		if len(c.Locales) == 0 {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nSent per translation:")
			first = false
		}
		locales := slices.SortedFunc(maps.Keys(c.Locales), func(a, b string) int {
			return cmp.Or(cmp.Compare(c.Locales[b], c.Locales[a]), cmp.Compare(a, b))
		})
		parts := make([]string, len(locales))
		for i, l := range locales {
			name := l
			if l == "" {
				name = "campaign text"
			}
			parts[i] = name + " " + Num(c.Locales[l])
		}
		fmt.Fprintf(w, "  %d: %s\n", c.ID, strings.Join(parts, " · "))
	}
}

// statusVariants lists, for campaigns with variants, each one's sent,
// opened and open rate, and whether the best two rates differ by more than
// chance (a two-proportion z-test at 95%).
func statusVariants(w io.Writer, cs []pushd.CampaignStatus) {
	first := true
	for _, c := range cs {
		if len(c.Variants) == 0 {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nVariants (sent, opened, open rate; two-proportion z-test at 95%):")
			first = false
		}
		parts := make([]string, 0, len(c.Variants)+1)
		for _, v := range c.Variants {
			parts = append(parts, fmt.Sprintf("%s %s sent, %s opened (%s)", v.Name, Num(v.Sent), Num(v.Opened), rate(v.Opened, v.Sent)))
		}
		if c.HeldOut > 0 {
			parts = append(parts, "held out "+Num(c.HeldOut))
		}
		fmt.Fprintf(w, "  %d: %s\n", c.ID, strings.Join(parts, " · "))
		if verdict := compareVariants(c.Variants); verdict != "" {
			fmt.Fprintf(w, "      %s\n", verdict)
		}
	}
}

func rate(opened, sent int64) string {
	if sent == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(opened)/float64(sent))
}

// compareVariants says whether the two best open rates differ beyond
// chance.
func compareVariants(vs []pushd.VariantStat) string {
	sorted := slices.Clone(vs)
	slices.SortStableFunc(sorted, func(a, b pushd.VariantStat) int {
		return cmp.Compare(openRate(b), openRate(a))
	})
	if len(sorted) < 2 || sorted[1].Sent == 0 {
		return ""
	}
	a, b := sorted[0], sorted[1]
	z := TwoProportionZ(a.Opened, a.Sent, b.Opened, b.Sent)
	if math.Abs(z) >= 1.96 {
		return fmt.Sprintf("%s's open rate is higher than %s's beyond chance (z = %.2f)", a.Name, b.Name, z)
	}
	return fmt.Sprintf("%s and %s: the difference may be chance so far (z = %.2f, needs 1.96)", a.Name, b.Name, z)
}

func openRate(v pushd.VariantStat) float64 {
	if v.Sent == 0 {
		return 0
	}
	return float64(v.Opened) / float64(v.Sent)
}

// TwoProportionZ is the pooled two-proportion z statistic of x1 of n1
// against x2 of n2; 0 when it is undefined.
func TwoProportionZ(x1, n1, x2, n2 int64) float64 {
	if n1 == 0 || n2 == 0 {
		return 0
	}
	p1, p2 := float64(x1)/float64(n1), float64(x2)/float64(n2)
	p := float64(x1+x2) / float64(n1+n2)
	se := math.Sqrt(p * (1 - p) * (1/float64(n1) + 1/float64(n2)))
	if se == 0 {
		return 0
	}
	return (p1 - p2) / se
}
