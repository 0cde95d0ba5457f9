// Package dbtest gives tests a database of their own on a real MySQL or
// MariaDB server.
//
// The server comes from PUSHD_TEST_DSN (a go-sql-driver DSN), by default
// root@tcp(127.0.0.1:3306)/test. Each call creates a fresh database that is
// dropped when the test ends.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/pushd/pushd/store"
)

// EnvVar names the environment variable holding the server's DSN.
const EnvVar = "PUSHD_TEST_DSN"

// DefaultDSN is used when EnvVar is unset.
const DefaultDSN = "root@tcp(127.0.0.1:3306)/test"

// Options creates a fresh, empty database and returns options to reach it.
func Options(t testing.TB) store.Options {
	t.Helper()
	dsn := os.Getenv(EnvVar)
	if dsn == "" {
		dsn = DefaultDSN
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("%s: %v", EnvVar, err)
	}
	admin, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	var b [6]byte
	rand.Read(b[:])
	name := "pushd_t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4"); err != nil {
		t.Fatalf("create test database (is MariaDB running? set %s): %v", EnvVar, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	o := store.Options{User: cfg.User, Password: cfg.Passwd, Database: name, Location: time.UTC, MaxOpenConns: 16}
	if cfg.Net == "unix" {
		o.Socket = cfg.Addr
	} else {
		host, port, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			t.Fatalf("%s address %q: %v", EnvVar, cfg.Addr, err)
		}
		o.Host = host
		o.Port, _ = strconv.Atoi(port)
	}
	return o
}

// Open returns a migrated store on a fresh database.
func Open(t testing.TB) *store.Store {
	t.Helper()
	o := Options(t)
	ctx := context.Background()
	st, err := store.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}
