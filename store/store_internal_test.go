package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/pushd/pushd"
)

func TestUnavailable(t *testing.T) {
	t.Parallel()
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"no rows is a logic error", sql.ErrNoRows, false},
		{"a wrapped no rows", fmt.Errorf("lock run 1: %w", sql.ErrNoRows), false},
		{"a plain error", errors.New("unknown outcome"), false},
		{"cancelled", context.Canceled, false},
		{"deadline", fmt.Errorf("claim: %w", context.DeadlineExceeded), false},
		{"duplicate key", &mysql.MySQLError{Number: 1062}, false},
		{"syntax", &mysql.MySQLError{Number: 1064}, false},
		{"too many connections", &mysql.MySQLError{Number: 1040}, true},
		{"shutdown in progress", &mysql.MySQLError{Number: 1053}, true},
		{"connection killed", &mysql.MySQLError{Number: 1927}, true},
		{"dial refused", fmt.Errorf("connect: %w", dial), true},
		{"invalid connection", mysql.ErrInvalidConn, true},
		{"bad conn", driver.ErrBadConn, true},
		{"eof", io.ErrUnexpectedEOF, true},
	} {
		if got := unavailable(tc.err); got != tc.want {
			t.Errorf("%s: unavailable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
		if got := errors.Is(markUnavailable(tc.err), pushd.ErrUnavailable); got != tc.want {
			t.Errorf("%s: markUnavailable(%v) matches ErrUnavailable = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestClip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 64, ""},
		{"BadDeviceToken", 64, "BadDeviceToken"},
		{strings.Repeat("a", 64), 64, strings.Repeat("a", 64)},
		{strings.Repeat("a", 65), 64, strings.Repeat("a", 63) + "…"},
		// More bytes than n, but no more characters: kept whole.
		{strings.Repeat("é", 64), 64, strings.Repeat("é", 64)},
		{strings.Repeat("é", 65), 64, strings.Repeat("é", 63) + "…"},
		{"ab€cd", 4, "ab€…"},
		{strings.Repeat("🚀", 1001), 1000, strings.Repeat("🚀", 999) + "…"},
	} {
		got := clip(tc.in, tc.n)
		if got != tc.want {
			t.Errorf("clip(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
		if !utf8.ValidString(got) || utf8.RuneCountInString(got) > tc.n {
			t.Errorf("clip(%q, %d) = %q: not valid UTF-8 within %d characters", tc.in, tc.n, got, tc.n)
		}
	}
}
