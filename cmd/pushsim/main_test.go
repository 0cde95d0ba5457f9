package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-dir", dir, "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0",
			"-bundle-id", "com.example.a, com.example.b", "-fail-rate", "0.5"}, pw, io.Discard)
		pw.Close()
	}()

	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, pr)
	}()
	var line string
	select {
	case line = <-lines:
	case err := <-done:
		t.Fatalf("run ended before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no ready line")
	}
	fields := map[string]string{}
	for _, f := range strings.Fields(line)[2:] {
		k, v, _ := strings.Cut(f, "=")
		fields[k] = v
	}
	if !strings.HasPrefix(line, "pushsim ready ") || !strings.HasPrefix(fields["url"], "https://127.0.0.1:") {
		t.Fatalf("ready line %q", line)
	}
	var cfg struct {
		URL  string `json:"url"`
		APNs struct {
			BundleIDs []string `json:"bundle_ids"`
		} `json:"apns"`
	}
	data, err := os.ReadFile(fields["config"])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &cfg); err != nil || cfg.URL != fields["url"] || len(cfg.APNs.BundleIDs) != 2 {
		t.Errorf("pushsim.json %s (%v), want url %s and 2 bundle ids", data, err, fields["url"])
	}
	resp, err := http.Get(fields["admin_url"] + "/faults")
	if err != nil {
		t.Fatal(err)
	}
	var faults struct {
		FailRate float64 `json:"fail_rate"`
	}
	json.NewDecoder(resp.Body).Decode(&faults)
	resp.Body.Close()
	if faults.FailRate != 0.5 {
		t.Errorf("fail_rate %v, want 0.5 from the flag", faults.FailRate)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop after cancel")
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-dir", t.TempDir(), "-fail-rate", "2"},
		{"-dir", t.TempDir(), "extra"},
		{"-bogus"},
	} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) succeeded, want an error", args)
		}
	}
}
