package campaign

import (
	"fmt"
	"strconv"
	"time"
)

// Feasibility says, when a campaign of n users sent at perMinute cannot
// finish within window, how long it takes and about how many users the
// deadline will leave unreached; "" when it can.
func Feasibility(n int64, perMinute float64, window time.Duration) string {
	if n <= 0 || perMinute <= 0 || window <= 0 {
		return ""
	}
	takes := time.Duration(float64(n) / perMinute * float64(time.Minute))
	if takes <= window {
		return ""
	}
	reach := int64(perMinute * window.Minutes())
	return fmt.Sprintf("at %s per minute, %s users take %s; the deadline allows %s, so about %s will expire",
		num(int64(perMinute)), num(n), words(takes), words(window), num(n-reach))
}

// words writes a duration as staff read it: 4 h 10 min, 2 h, 45 min.
func words(d time.Duration) string {
	d = d.Round(time.Minute)
	h, m := int(d.Hours()), int(d.Minutes())%60
	switch {
	case h == 0:
		return fmt.Sprintf("%d min", max(m, 1))
	case m == 0:
		return fmt.Sprintf("%d h", h)
	}
	return fmt.Sprintf("%d h %d min", h, m)
}

// PerMinute is the pace a run of app goes at when it is limited: the
// campaign's max_per_minute or the app's rate_limit, whichever is lower;
// 0 when neither limits it.
func PerMinute(maxPerMinute int, app *App) float64 {
	pace := float64(maxPerMinute)
	if app != nil && app.rateLimit > 0 && (pace == 0 || app.rateLimit*60 < pace) {
		pace = app.rateLimit * 60
	}
	return pace
}

// num writes n with thousands separators, as staff read counts: 250,000.
func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}
