// Command pushbench measures pushd end to end on this machine: the real
// `pushd run` against pushsim (a separate process) and MariaDB, and the
// ceiling, h2load driving the same pushsim with the same requests.
//
//	pushbench [-n 100000] [-batch 5000] [-concurrency 2000] [-connections 2]
//	          [-provider apns|fcm|both] [-runs 3]
//	          [-dsn root@tcp(127.0.0.1:3306)/test] [-pushd PATH]
//	          [-h2load=true] [-cpuprofile DIR] [-idle-wait 2m] [-keep] [-kill9]
//
// Each run gets a fresh database with N users seeded from MariaDB's
// Sequence engine, a campaign due 2 s ahead, and a fresh pushd process. It
// prints the figures of every run, their median, minimum and maximum, and
// one JSON line. It asserts nothing about timings; it exits 1 only if pushd
// did not deliver every push, or something could not run. See
// docs/performance.md for the method.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pushd/pushd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "pushbench:", err)
		}
		os.Exit(1)
	}
}

// Provider choices.
const (
	providerAPNs = "apns"
	providerFCM  = "fcm"
	providerBoth = "both"
)

type options struct {
	n, batch, concurrency, connections, runs int
	provider, dsn, pushd, cpuprofile         string
	h2load, keep                             bool
	idleWait                                 time.Duration
	// segmentOf, when set, seeds that many users and sends to a segment of
	// n of them (every segmentOf/n-th id).
	segmentOf int
	// capped sets frequency_cap = 1/24h on the apps: every push of the run
	// is checked and reserved, and none is capped (the users had none).
	capped bool
	// localTime sends the campaign with local_time = 1 to users with no
	// zone: one send time, so the figure is the cost of the grouping.
	localTime bool
	// pushIDs gives the apps api_keys: each push carries a signed push id.
	pushIDs bool
	// content is "" for a plain campaign, "attributes" for a plain
	// campaign to users who have locale and attributes, or "template" for
	// a templated, translated campaign to them.
	content string
	// bufferPoolMiB, when set, resizes InnoDB's buffer pool for the bench
	// and restores it afterwards.
	bufferPoolMiB int
	// kill9 kills pushd halfway through each run and counts duplicates.
	kill9 bool
}

// providers lists the single providers of o.provider.
func (o options) providers() []string {
	if o.provider == providerBoth {
		return []string{providerAPNs, providerFCM}
	}
	return []string{o.provider}
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("pushbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.n, "n", 100_000, "users in the audience (for both: half APNs, half FCM)")
	fs.IntVar(&o.batch, "batch", pushd.DefaultBatchSize, "batch_size of the apps")
	fs.IntVar(&o.concurrency, "concurrency", pushd.DefaultConcurrency, "concurrency of the apps (requests in flight)")
	fs.IntVar(&o.connections, "connections", 2, "HTTP/2 connections per app (and h2load -c)")
	fs.StringVar(&o.provider, "provider", providerAPNs, "apns, fcm or both")
	fs.IntVar(&o.runs, "runs", 3, "runs, each on a fresh database and pushd")
	fs.IntVar(&o.segmentOf, "segment-of", 0, "seed this many users and send to a segment of -n of them (0: no segment)")
	fs.BoolVar(&o.localTime, "local-time", false, "send with local_time = 1 (the users have no timezone: one send time; measures the grouping's cost)")
	fs.BoolVar(&o.pushIDs, "push-ids", false, "give the apps api_keys (the device API): every push carries a signed push_id, so it is prepared per user")
	fs.StringVar(&o.content, "content", "", "attributes: users have locale and attributes, the campaign is plain; template: the campaign's title and body are Liquid templates with a translation (measures personal content's cost)")
	fs.IntVar(&o.bufferPoolMiB, "buffer-pool-mib", 0, "resize MariaDB's innodb_buffer_pool_size for the bench, and restore it after (0: leave it)")
	fs.BoolVar(&o.capped, "cap", false, "set frequency_cap = 1/24h on the apps (nobody is capped; measures the check's cost)")
	fs.StringVar(&o.dsn, "dsn", "root@tcp(127.0.0.1:3306)/test", "MariaDB server (go-sql-driver DSN; pushbench creates and drops databases pushbench_*)")
	fs.StringVar(&o.pushd, "pushd", "", "pushd binary (default: build ./cmd/pushd, without -race)")
	fs.BoolVar(&o.h2load, "h2load", true, "measure the ceiling with h2load after each run")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write pushd's CPU profile of each run into this directory (PUSHD_CPUPROFILE)")
	fs.BoolVar(&o.kill9, "kill9", false, "kill pushd with SIGKILL when half the audience is delivered, start it again, and count the duplicates (the speed figures then include the restart, so no ceiling is measured)")
	fs.BoolVar(&o.keep, "keep", false, "keep the databases and the work directory")
	fs.DurationVar(&o.idleWait, "idle-wait", 2*time.Minute, "before pushd starts and before the ceiling, wait up to this long for other work on the machine to drop below 0.3 cores (0: don't wait)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.kill9 {
		o.h2load = false // the run's rate includes the restart: no ratio
	}
	if o.content != "" && o.content != contentAttributes && o.content != contentTemplate {
		return o, fmt.Errorf("-content %q: want attributes or template", o.content)
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.provider != providerAPNs && o.provider != providerFCM && o.provider != providerBoth:
		return o, fmt.Errorf("-provider %q: want apns, fcm or both", o.provider)
	case o.n < len(o.providers()):
		return o, fmt.Errorf("-n %d: want at least one user per provider", o.n)
	case o.batch < 1 || o.batch > 100_000:
		return o, fmt.Errorf("-batch %d: want 1..100000 (pushd's range)", o.batch)
	case o.concurrency < 1 || o.concurrency > 20_000:
		return o, fmt.Errorf("-concurrency %d: want 1..20000 (pushd's range)", o.concurrency)
	case o.connections < 1 || o.connections > 16:
		return o, fmt.Errorf("-connections %d: want 1..16 (pushd's range)", o.connections)
	case o.runs < 1:
		return o, fmt.Errorf("-runs %d: want at least 1", o.runs)
	case o.kill9 && o.segmentOf != 0:
		return o, errors.New("-kill9 counts duplicates over the whole audience: not with -segment-of")
	case o.segmentOf != 0 && (o.segmentOf < o.n || o.provider == providerBoth):
		return o, fmt.Errorf("-segment-of %d: want at least -n users, and one provider", o.segmentOf)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "pushbench: "+format+"\n", a...)
	}

	work, err := os.MkdirTemp("", "pushbench-")
	if err != nil {
		return err
	}
	if o.keep {
		logf("work directory %s (kept)", work)
	} else {
		defer os.RemoveAll(work)
	}
	if o.cpuprofile != "" {
		if o.cpuprofile, err = filepath.Abs(o.cpuprofile); err == nil {
			err = os.MkdirAll(o.cpuprofile, 0o755)
		}
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
	}

	root, err := moduleRoot()
	if err != nil {
		return err
	}
	bin := filepath.Join(work, "bin")
	version := gitDescribe(root)
	if o.pushd == "" {
		logf("building pushd and pushsim (%s)", version)
		o.pushd = filepath.Join(bin, "pushd")
		if err := goBuild(ctx, root, o.pushd, "./cmd/pushd"); err != nil {
			return err
		}
	} else {
		if o.pushd, err = filepath.Abs(o.pushd); err != nil {
			return err
		}
		version = "binary " + o.pushd
		logf("building pushsim; pushd is %s", o.pushd)
	}
	simBin := filepath.Join(bin, "pushsim")
	if err := goBuild(ctx, root, simBin, "./cmd/pushsim"); err != nil {
		return err
	}

	srv, err := openServer(ctx, o.dsn)
	if err != nil {
		return err
	}
	defer srv.close()
	if o.bufferPoolMiB > 0 {
		restore, err := srv.resizeBufferPool(ctx, int64(o.bufferPoolMiB)<<20)
		if err != nil {
			return err
		}
		defer restore()
	}
	info, err := srv.info(ctx)
	if err != nil {
		return err
	}
	if info.Local {
		if err := checkDisk(info.datadir, o.n); err != nil {
			return err
		}
	}

	h2loadBin, h2loadNote := "", "disabled by -h2load=false"
	if o.h2load {
		h2loadBin, h2loadNote = findH2load(ctx, logf)
		if h2loadNote != "" {
			logf("%s", h2loadNote)
		}
	}

	s, err := startSim(ctx, simBin, filepath.Join(work, "sim"), filepath.Join(work, "pushsim.log"))
	if err != nil {
		return err
	}
	defer s.stop()

	rep := report{
		Options: reportOptions{N: o.n, Provider: o.provider, Batch: o.batch, Concurrency: o.concurrency, Connections: o.connections, Runs: o.runs,
			SegmentOf: o.segmentOf, Capped: o.capped, LocalTime: o.localTime, Content: o.content, PushIDs: o.pushIDs, Kill9: o.kill9},
		Pushd:      version,
		Machine:    describeMachine(),
		Server:     info,
		H2loadNote: h2loadNote,
		LoadStart:  loadAvg(),
	}
	b := &bench{o: o, srv: srv, info: info, sim: s, work: work, h2load: h2loadBin, logf: logf}
	for i := 1; i <= o.runs; i++ {
		r, err := b.runOnce(ctx, i)
		if err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
		logf("run %d: %s", i, r.oneLine())
		rep.Runs = append(rep.Runs, r)
	}
	rep.LoadEnd = loadAvg()
	rep.summarise()
	if err := rep.print(stdout); err != nil {
		return err
	}
	if len(rep.Problems) > 0 {
		return fmt.Errorf("pushd did not deliver every push: %s", strings.Join(rep.Problems, "; "))
	}
	return nil
}

// moduleRoot is the directory of the go.mod that holds ./cmd/pushd.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the pushd module: run pushbench from the repository (make bench)")
	}
	return filepath.Dir(mod), nil
}

func goBuild(ctx context.Context, root, out, pkg string) error {
	c := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	c.Dir = root
	if b, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// gitDescribe names the source pushd was built from; "-dirty" means the
// working tree had changes.
func gitDescribe(root string) string {
	out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown source"
	}
	return "git " + strings.TrimSpace(string(out))
}
