package store

import (
	"database/sql/driver"
	"fmt"
	"io"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// Any error the server sends about the LOAD statement means "use INSERT",
// whatever its number (ProxySQL's 1047 was missed once); deadlocks and lock
// waits are left to inTx, and connection trouble is not a refusal.
func TestLocalInfileRefused(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&mysql.MySQLError{Number: 1148}, true},
		{&mysql.MySQLError{Number: 3948}, true},
		{&mysql.MySQLError{Number: 4166}, true},
		{fmt.Errorf("record outcomes of run 1: %w", &mysql.MySQLError{Number: 1047}), true},
		{&mysql.MySQLError{Number: 1083}, true},
		{&mysql.MySQLError{Number: 1213}, false},
		{&mysql.MySQLError{Number: 1205}, false},
		{driver.ErrBadConn, false},
		{io.ErrUnexpectedEOF, false},
		{nil, false},
	} {
		if got := localInfileRefused(c.err); got != c.want {
			t.Errorf("localInfileRefused(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
