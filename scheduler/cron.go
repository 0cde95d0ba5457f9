package scheduler

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is a recurrence: the next activation strictly after t, or the
// zero time for none. A robfig/cron schedule is one.
type Schedule interface {
	Next(t time.Time) time.Time
}

// cronExample closes every cron error: the form staff most often want.
const cronExample = `example: "0 9 * * MON" for Mondays at 09:00, "30 18 * * *" for every day at 18:30`

// cronFields name the five fields and what each takes.
var cronFields = [5]struct{ name, takes string }{
	{"the minute", "0-59"},
	{"the hour", "0-23"},
	{"the day of the month", "1-31"},
	{"the month", "1-12 or JAN-DEC"},
	{"the day of the week", "0-6 (0 is Sunday) or SUN-SAT"},
}

// ParseCron parses a campaign's cron column: five fields (minute hour
// day-of-month month day-of-week) or a descriptor such as @daily, evaluated
// in the configured time zone. Its error names the field at fault in
// marketing's words, never the parser's.
func ParseCron(spec string) (Schedule, error) {
	sched, err := cron.ParseStandard(spec)
	if err == nil {
		return sched, nil
	}
	return nil, fmt.Errorf("cron %q is not valid: %s; %s", spec, cronProblem(spec), cronExample)
}

// cronProblem says what is wrong with a spec the parser refused.
func cronProblem(spec string) string {
	s := strings.TrimSpace(spec)
	if strings.HasPrefix(s, "@") {
		return fmt.Sprintf("%q is not a known shortcut: use @hourly, @daily, @weekly, @monthly, @yearly or @every 2h",
			strings.Fields(s)[0])
	}
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return "it is empty: write NULL for a campaign that runs once"
	}
	if zone, ok := strings.CutPrefix(fields[0], "TZ="); ok || strings.HasPrefix(fields[0], "CRON_TZ=") {
		zone = strings.TrimPrefix(zone, "CRON_TZ=")
		if _, err := time.LoadLocation(zone); err != nil {
			return fmt.Sprintf("the time zone %q is not known: use an IANA name such as Europe/Paris, or leave the prefix out for the [Server] timezone", zone)
		}
		fields = fields[1:]
	}
	if len(fields) != 5 {
		return fmt.Sprintf("it has %d fields, but needs 5 separated by spaces: minute, hour, day of the month, month, day of the week",
			len(fields))
	}
	for i, f := range fields {
		probe := []string{"*", "*", "*", "*", "*"}
		probe[i] = f
		if _, err := cron.ParseStandard(strings.Join(probe, " ")); err != nil {
			return fmt.Sprintf("%s %q must be %s (lists such as 1,15 and ranges such as 1-5 work too)",
				cronFields[i].name, f, cronFields[i].takes)
		}
	}
	return "the fields do not make a schedule together"
}
