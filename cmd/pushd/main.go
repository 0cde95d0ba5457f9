// Command pushd sends scheduled push-notification campaigns from MySQL
// through APNs and FCM. See README.md for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	stopProfile := startCPUProfile(os.Getenv("PUSHD_CPUPROFILE"))
	err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	if err != nil {
		if !errors.Is(err, errReported) {
			fmt.Fprintln(os.Stderr, "pushd:", err)
		}
		os.Exit(1)
	}
}

// startCPUProfile writes a CPU profile to path until the returned function
// is called, for cmd/pushbench; an empty path profiles nothing.
func startCPUProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pushd: PUSHD_CPUPROFILE:", err)
		os.Exit(1)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// errReported means the command already printed what went wrong.
var errReported = errors.New("reported")

const usage = `usage: pushd <command> [flags]

commands:
  run      -config PATH   run the daemon in the foreground, logging to stderr
  migrate  -config PATH   create or upgrade pushd's tables
  check    -config PATH   validate the config, keys, database and schema
  send     -config PATH -app NAME -token TOKEN -title T -body B
           [-data JSON] [-badge N] [-sound S] [-dry-run]
                          send one test push and print the provider's answer
  status   -config PATH [-watch] [-n 20]
                          show running and recent campaigns, with progress
  version                 print the version

The default config PATH is /etc/pushd/config.ini.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errReported
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], stderr)
	case "migrate":
		return cmdMigrate(ctx, args[1:], stdout, stderr)
	case "check":
		return cmdCheck(ctx, args[1:], stdout, stderr)
	case "send":
		return cmdSend(ctx, args[1:], stdout, stderr)
	case "status":
		return cmdStatus(ctx, args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "pushd: unknown command %q\n\n%s", args[0], usage)
	return errReported
}
