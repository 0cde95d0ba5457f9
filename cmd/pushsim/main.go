// Command pushsim runs the APNs/FCM simulator (internal/pushsim) until
// SIGINT or SIGTERM, for manual runs, demos and benchmarks of pushd.
//
//	pushsim -dir DIR [-listen 127.0.0.1:8443] [-admin 127.0.0.1:8444]
//	        [-bundle-id com.example.demo,...] [-project pushd-demo]
//	        [-fail-rate F] [-throttle-rate F] [-latency D] [-goaway-after N]
//	        [-no-delivery-log] [-v]
//
// Once ready it prints one line with the URLs and the path of pushsim.json,
// which describes everything a client needs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/pushd/pushd/internal/pushsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "pushsim:", err)
		}
		os.Exit(1)
	}
}

// run starts the simulator from the command line in args, prints the ready
// line to stdout and serves until ctx ends. Logs and usage go to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pushsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		opts      pushsim.Options
		faults    pushsim.Faults
		bundleIDs string
		verbose   bool
	)
	fs.StringVar(&opts.Dir, "dir", "", "directory for keys, certificates and pushsim.json (required; reused across runs)")
	fs.StringVar(&opts.Addr, "listen", "127.0.0.1:8443", "TLS address of APNs, FCM and the token endpoint")
	fs.StringVar(&opts.AdminAddr, "admin", "127.0.0.1:8444", "plain-HTTP admin address")
	fs.StringVar(&bundleIDs, "bundle-id", "com.example.demo", "comma-separated bundle ids APNs accepts")
	fs.StringVar(&opts.ProjectID, "project", "pushd-demo", "FCM project id")
	fs.Float64Var(&faults.FailRate, "fail-rate", 0, "fraction of good requests answered 503")
	fs.Float64Var(&faults.ThrottleRate, "throttle-rate", 0, "fraction of good requests answered 429")
	fs.DurationVar(&faults.Latency, "latency", 0, "latency added to every request")
	fs.IntVar(&faults.GoAwayAfter, "goaway-after", 0, "send GOAWAY after every N requests on a connection (0: never)")
	fs.BoolVar(&opts.NoDeliveryLog, "no-delivery-log", false, "keep no per-token records (for benchmarks)")
	fs.BoolVar(&verbose, "v", false, "log every request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if opts.Dir == "" {
		return errors.New("-dir is required: the directory for keys, certificates and pushsim.json")
	}
	for _, b := range strings.Split(bundleIDs, ",") {
		if b = strings.TrimSpace(b); b != "" {
			opts.BundleIDs = append(opts.BundleIDs, b)
		}
	}
	if err := faults.Validate(); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	opts.Faults = faults
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	s, err := pushsim.Start(opts)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(stdout, "pushsim ready url=%s admin_url=%s config=%s\n", s.URL(), s.AdminURL(), s.Files().ConfigFile)
	<-ctx.Done()
	return s.Close()
}
