package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pushd/pushd/heartbeat"
	"github.com/pushd/pushd/report"
	"github.com/pushd/pushd/store"
)

// statusRefresh is how often `pushd status -watch` redraws.
const statusRefresh = 2 * time.Second

// cmdStatus prints a table of the running and the most recent campaigns,
// once or, with -watch, every statusRefresh until interrupted.
func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pushd status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfigPath, "path of config.ini")
	watch := fs.Bool("watch", false, "redraw every 2 s until interrupted (Ctrl-C)")
	n := fs.Int("n", 20, "how many recent campaigns to show besides the running ones, which are always shown")
	if err := fs.Parse(args); err != nil {
		return errReported
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pushd status: unexpected argument %q\n", fs.Arg(0))
		return errReported
	}
	if *n < 1 {
		fmt.Fprintf(stderr, "pushd status: -n %d: must be 1 or more\n", *n)
		return errReported
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		return err
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := store.Open(octx, storeOptions(cfg))
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.CheckSchema(octx); err != nil {
		return fmt.Errorf("database %s: %w", cfg.Database.Name, err)
	}
	frame := func(ctx context.Context) ([]byte, error) {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		v := report.StatusView{Database: cfg.Database.Name, Loc: cfg.Server.TimeZone}
		var err error
		if v.Campaigns, err = st.RecentCampaigns(qctx, *n); err != nil {
			return nil, err
		}
		tot, err := st.CampaignTotals(qctx)
		if err != nil {
			return nil, err
		}
		v.Counts = tot.ByStatus
		// Three missed heartbeats make an instance gone.
		if v.Instances, err = st.Instances(qctx, 3*heartbeat.DefaultEvery); err != nil {
			return nil, err
		}
		v.Now = time.Now()
		var b bytes.Buffer
		report.Status(&b, v)
		return b.Bytes(), nil
	}
	if !*watch {
		out, err := frame(ctx)
		if err != nil {
			return err
		}
		_, err = stdout.Write(out)
		return err
	}
	wctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return report.Watch(wctx, stdout, statusRefresh, report.IsTerminal(stdout), func(ctx context.Context) []byte {
		out, err := frame(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// The database may be away for a moment: say so and keep going.
			return fmt.Appendf(nil, "%s: cannot read the campaigns: %v (retrying every %s)\n",
				time.Now().In(cfg.Server.TimeZone).Format(time.DateTime), err, statusRefresh)
		}
		return out
	})
}
