package main

import (
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/pushd/pushd"
)

// h2loadOutput is the summary of a real h2load 1.52 run against pushsim.
const h2loadOutput = `starting benchmark...
spawning thread #0: 2 total client(s). 100000 total requests
TLS Protocol: TLSv1.3
Cipher: TLS_AES_128_GCM_SHA256
Server Temp Key: X25519 253 bits
Application protocol: h2
progress: 10% done
progress: 100% done

finished in 2.46s, 40650.41 req/s, 1.48MB/s
requests: 100000 total, 100000 started, 100000 done, 99998 succeeded, 2 failed, 0 errored, 0 timeout
status codes: 99998 2xx, 0 3xx, 2 4xx, 0 5xx
traffic: 3.63MB (3810022) total, 1.29MB (1352950) headers (space savings 89.31%), 0B (0) data
                     min         max         mean         sd        +/- sd
time for request:     3.91ms     76.13ms     48.15ms      7.02ms    82.43%
`

func TestParseH2load(t *testing.T) {
	t.Parallel()
	r, err := parseH2load([]byte(h2loadOutput))
	if err != nil {
		t.Fatal(err)
	}
	want := h2loadResult{Requests: 100000, Succeeded: 99998, Status2xx: 99998, Elapsed: 2460 * time.Millisecond, ReqPerSec: 40650.41}
	if r != want {
		t.Errorf("got %+v\nwant %+v", r, want)
	}

	ms := strings.Replace(h2loadOutput, "finished in 2.46s", "finished in 812.50ms", 1)
	if r, err := parseH2load([]byte(ms)); err != nil || r.Elapsed != 812500*time.Microsecond {
		t.Errorf("ms: elapsed %v, %v; want 812.5ms", r.Elapsed, err)
	}
	for _, drop := range []string{"finished in", "requests:", "status codes:"} {
		var kept []string
		for line := range strings.SplitSeq(h2loadOutput, "\n") {
			if !strings.HasPrefix(line, drop) {
				kept = append(kept, line)
			}
		}
		if _, err := parseH2load([]byte(strings.Join(kept, "\n"))); err == nil {
			t.Errorf("without the %q line: no error", drop)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	// The command name holds a space and a parenthesis; utime 250, stime 50.
	line := "4242 (push d) x) S 1 4242 4242 0 -1 4194560 9 0 0 0 250 50 0 0 20 0 12 0 100 1000 200 18446744073709551615\n"
	got, err := parseProcStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if want := ticks(300); got != want {
		t.Errorf("cpu %v, want %v (300 ticks)", got, want)
	}
	if _, err := parseProcStat([]byte("4242 (pushd) S 1 2")); err == nil {
		t.Error("short line: no error")
	}
}

func TestParseStatusKB(t *testing.T) {
	t.Parallel()
	status := "Name:\tpushd\nVmPeak:\t  900000 kB\nVmHWM:\t   45440 kB\nVmRSS:\t   40000 kB\n"
	got, err := parseStatusKB([]byte(status), "VmHWM")
	if err != nil || got != 45440*1024 {
		t.Errorf("VmHWM %d, %v; want %d", got, err, 45440*1024)
	}
	if _, err := parseStatusKB([]byte(status), "VmSwap"); err == nil {
		t.Error("missing key: no error")
	}
}

func TestParseMachineStat(t *testing.T) {
	t.Parallel()
	// user nice system idle iowait irq softirq steal guest guest_nice
	stat := "cpu  1000 10 300 5000 70 0 20 5 400 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"
	got, err := parseMachineStat([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if want := ticks(1000 + 10 + 300 + 0 + 20 + 5); got != want {
		t.Errorf("busy %v, want %v: idle, iowait and guest (already in user) left out", got, want)
	}
}

func TestMedian(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median(nil) is not NaN")
	}
	in := []float64{3, 1, 2}
	median(in)
	if in[0] != 3 {
		t.Error("median sorted its argument")
	}
}

func TestParseOptions(t *testing.T) {
	t.Parallel()
	o, err := parseOptions(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.n != 100_000 || o.batch != pushd.DefaultBatchSize || o.concurrency != pushd.DefaultConcurrency || o.connections != 2 || o.provider != "apns" || o.runs != 3 || !o.h2load {
		t.Errorf("defaults %+v", o)
	}
	for _, args := range [][]string{
		{"-provider", "gcm"},
		{"-n", "1", "-provider", "both"},
		{"-batch", "0"},
		{"-connections", "17"},
		{"-runs", "0"},
		{"-kill9", "-segment-of", "200000"},
		{"extra"},
	} {
		if _, err := parseOptions(args, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	o, err = parseOptions([]string{"-provider", "both", "-n", "11"}, io.Discard)
	if err != nil || len(o.providers()) != 2 {
		t.Errorf("both: %v, providers %v", err, o.providers())
	}
}

func TestConfigINI(t *testing.T) {
	t.Parallel()
	b := &bench{
		o:   options{batch: 5000, concurrency: 2000, connections: 4},
		srv: &server{cfg: mustParseDSN(t, "root@tcp(127.0.0.1:3306)/")},
		sim: &sim{cfg: simConfig{URL: "https://127.0.0.1:9443", CAFile: "/sim/ca.pem"}},
	}
	ini := b.configINI("pushbench_1_ab")
	for _, want := range []string{
		"listen = off\n", "log_level = warn\n", "ca_file = /sim/ca.pem\n", "host = 127.0.0.1\nport = 3306\n",
		"database = pushbench_1_ab\n", "[IOS]\npush_type = APNs\n", "[Android]\npush_type = FCM\n",
		"batch_size = 5000\nconcurrency = 2000\nconnections = 4\n", "endpoint = https://127.0.0.1:9443\n",
	} {
		if !strings.Contains(ini, want) {
			t.Errorf("config.ini lacks %q:\n%s", want, ini)
		}
	}
}

func mustParseDSN(t *testing.T, dsn string) *mysql.Config {
	t.Helper()
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
