package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/providers"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		attempts   int
		retryAfter time.Duration
		lo, hi     time.Duration
	}{
		{1, 0, 250 * time.Millisecond, 500 * time.Millisecond},
		{2, 0, 500 * time.Millisecond, time.Second},
		{4, 0, 2 * time.Second, 4 * time.Second},
		{7, 0, 15 * time.Second, 30 * time.Second},
		{20, 0, 15 * time.Second, 30 * time.Second},
		{1, 60 * time.Second, 60 * time.Second, 60 * time.Second},
		{7, 2 * time.Second, 15 * time.Second, 30 * time.Second},
	}
	for _, tt := range tests {
		for range 200 {
			if d := backoff(tt.attempts, tt.retryAfter); d < tt.lo || d > tt.hi {
				t.Fatalf("backoff(%d, %v) = %v, want within [%v, %v]", tt.attempts, tt.retryAfter, d, tt.lo, tt.hi)
			}
		}
	}
}

func TestInvalidOutcome(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	registered := now.Add(-time.Hour)
	rc := pushd.Recipient{UserID: 7, Token: "ab", RegisteredAt: registered}
	tests := []struct {
		name      string
		since     time.Time
		outcome   pushd.Outcome
		invalidAt time.Time // zero: no invalidation
	}{
		{"410 after registration invalidates from the 410 time", registered.Add(time.Minute), pushd.InvalidToken, registered.Add(time.Minute)},
		{"410 before a later registration does not", registered.Add(-time.Minute), pushd.FailedSend, time.Time{}},
		{"no timestamp invalidates from now", time.Time{}, pushd.InvalidToken, now},
	}
	for _, tt := range tests {
		o := invalidOutcome("IOS", rc, providers.Result{Outcome: providers.TokenInvalid, Status: 410, Reason: "Unregistered", InvalidSince: tt.since}, 1, now)
		if o.d.Outcome != tt.outcome || o.d.UserID != 7 {
			t.Errorf("%s: outcome %+v", tt.name, o.d)
		}
		switch {
		case tt.invalidAt.IsZero() && o.inv != nil:
			t.Errorf("%s: invalidated %+v", tt.name, o.inv)
		case !tt.invalidAt.IsZero() && (o.inv == nil || !o.inv.Since.Equal(tt.invalidAt) || o.inv.Token != "ab" || o.inv.App != "IOS"):
			t.Errorf("%s: invalidation %+v, want since %v", tt.name, o.inv, tt.invalidAt)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var _ net.Error = timeoutErr{}

func TestTransportReason(t *testing.T) {
	t.Parallel()
	for err, want := range map[error]string{
		fmt.Errorf("post: %w", context.DeadlineExceeded): "Timeout",
		fmt.Errorf("read: %w", timeoutErr{}):             "Timeout",
		errors.New("connection refused"):                 "NetworkError",
	} {
		if got := transportReason(err); got != want {
			t.Errorf("transportReason(%v) = %q, want %q", err, got, want)
		}
	}
}

func TestParseData(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		keys int
		err  string
	}{
		{"", 0, ""},
		{"  \n", 0, ""},
		{`{}`, 0, ""},
		{`{"screen": "sale", "n": 3, "nested": {"a": [1, 2]}}`, 3, ""},
		{`{"emoji": "🎉", "nul": "a\u0000b"}`, 2, ""},
		{`null`, 0, "not null"},
		{`[1, 2]`, 0, "JSON object"},
		{`"text"`, 0, "JSON object"},
		{`{"a": 1`, 0, "not valid JSON"},
		{`{"a": 1} {"b": 2}`, 0, "text after"},
		{`{'a': 1}`, 0, "not valid JSON"},
	}
	for _, tt := range tests {
		m, err := ParseData(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseData(%q) error %v, want one containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || len(m) != tt.keys {
			t.Errorf("ParseData(%q) = %d keys, %v; want %d keys", tt.in, len(m), err, tt.keys)
		}
	}
}

// FuzzParseData: the campaigns.data column is typed by hand, so any text
// must give either an object of valid JSON values or a worded error.
func FuzzParseData(f *testing.F) {
	for _, s := range []string{"", `{"a":"b"}`, `{"a":1,"b":[true,null]}`, "null", `{"a":`, "{\"\x00\":\"\xff\"}", `{"a":1}x`, strings.Repeat(`{"a":`, 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseData(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			if m != nil {
				t.Fatal("data returned with an error")
			}
			return
		}
		for k, v := range m {
			if !json.Valid(v) {
				t.Fatalf("key %q holds invalid JSON %q", k, v)
			}
		}
		if _, err := json.Marshal(m); err != nil && utf8.ValidString(s) {
			t.Fatalf("accepted data does not marshal again: %v", err)
		}
	})
}
