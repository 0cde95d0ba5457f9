package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const unitFile = "../../packaging/pushd.service"

// verifyUnit runs `systemd-analyze verify` on unit, installed as
// pushd.service in a temporary directory with ExecStart pointing at the
// test's pushd binary (the real path, /usr/local/bin/pushd, need not exist
// here). It returns every problem reported about the unit.
func verifyUnit(t *testing.T, tool, unit string) []string {
	t.Helper()
	unit = strings.ReplaceAll(unit, "/usr/local/bin/pushd ", pushdBinary(t)+" ")
	path := filepath.Join(t.TempDir(), "pushd.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "verify", "--man=no", path).CombinedOutput()
	var problems []string
	for _, line := range strings.Split(string(out), "\n") {
		// Warnings such as "Unknown key" leave the exit status 0: any line
		// about the unit is a problem.
		if strings.Contains(line, "pushd.service") {
			problems = append(problems, line)
		}
	}
	if err != nil && len(problems) == 0 {
		problems = append(problems, "systemd-analyze verify: "+err.Error()+": "+string(out))
	}
	return problems
}

// TestSystemdUnit checks packaging/pushd.service with systemd-analyze
// verify, when the tool is installed, and the settings the daemon and the
// docs rely on.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	unit := string(data)
	// Some settings may be given more than once; each value counts.
	settings := map[string][]string{}
	for _, line := range strings.Split(unit, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			settings[k] = append(settings[k], v)
		}
	}
	for k, want := range map[string]string{
		"Type":                    "notify",
		"ExecStart":               "/usr/local/bin/pushd run -config /etc/pushd/config.ini",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
		"WatchdogSec":             "30s",
		"Restart":                 "on-failure",
		"DynamicUser":             "yes",
		"User":                    "pushd",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"NoNewPrivileges":         "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelLogs":       "yes",
		"ProtectControlGroups":    "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"RestrictNamespaces":      "yes",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"SystemCallArchitectures": "native",
		"SystemCallFilter":        "@system-service",
		"CapabilityBoundingSet":   "",
	} {
		if got := settings[k]; !slices.Contains(got, want) {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	// The stop timeout must leave room for the default shutdown_timeout
	// (30s) and the recording that follows it.
	if d, err := time.ParseDuration(strings.Join(settings["TimeoutStopSec"], "")); err != nil || d < 60*time.Second {
		t.Errorf("TimeoutStopSec=%q, want at least 60s", settings["TimeoutStopSec"])
	}

	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	if problems := verifyUnit(t, tool, unit); len(problems) > 0 {
		t.Errorf("systemd-analyze verify %s:\n%s", unitFile, strings.Join(problems, "\n"))
	}
	// The check itself must catch a broken unit.
	broken := strings.Replace(unit, "Type=notify", "Type=notifi\nRestartSecs=5s", 1)
	if problems := verifyUnit(t, tool, broken); len(problems) < 2 {
		t.Errorf("systemd-analyze verify of a broken unit found %q, want the bad Type and the unknown key", problems)
	}
}
