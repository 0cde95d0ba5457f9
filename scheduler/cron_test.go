package scheduler

import (
	"strings"
	"testing"
)

// Cron errors name the field at fault and what it takes, never the
// parser's words.
func TestParseCronReasons(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ spec, want string }{
		{"0 9 * *", "it has 4 fields, but needs 5"},
		{"0 9 * * MON extra", "it has 6 fields"},
		{"0 25 * * *", `the hour "25" must be 0-23`},
		{"0 9 32 * *", `the day of the month "32" must be 1-31`},
		{"0 9 * JANUARY *", `the month "JANUARY" must be 1-12 or JAN-DEC`},
		{"0 9 * * MONDAY", `the day of the week "MONDAY" must be 0-6`},
		{"@fortnightly", `"@fortnightly" is not a known shortcut`},
		{"TZ=Mars/Olympus 0 9 * * *", `the time zone "Mars/Olympus" is not known`},
		{"TZ=Europe/Paris 0 9 * *", "it has 4 fields"},
	} {
		_, err := ParseCron(tc.spec)
		if err == nil {
			t.Errorf("ParseCron(%q) = nil error", tc.spec)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want) || !strings.Contains(msg, `example: "0 9 * * MON"`) {
			t.Errorf("ParseCron(%q) = %q, want %q and an example", tc.spec, msg, tc.want)
		}
		for _, internal := range []string{"strconv", "failed to parse", "syntax"} {
			if strings.Contains(msg, internal) {
				t.Errorf("ParseCron(%q) = %q speaks the parser's words (%q)", tc.spec, msg, internal)
			}
		}
	}
	for _, ok := range []string{"0 9 * * MON", "*/15 8-18 * * MON-FRI", "@daily", "@every 2h", "0 9 1,15 * *", "TZ=Asia/Tokyo 0 9 * * *"} {
		if _, err := ParseCron(ok); err != nil {
			t.Errorf("ParseCron(%q) = %v", ok, err)
		}
	}
}
