package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pushd/pushd/internal/pushsim"
)

// benchBundleID is the APNs topic of the benchmark's iOS app.
const benchBundleID = "com.example.bench"

// sim is a pushsim process: a separate process, so that pushd's CPU time is
// its own.
type sim struct {
	cmd    *exec.Cmd
	exited chan error
	cfg    simConfig
	http   *http.Client
}

// simConfig is what pushbench reads from pushsim.json.
type simConfig struct {
	URL      string `json:"url"`
	AdminURL string `json:"admin_url"`
	CAFile   string `json:"ca_file"`
	APNs     struct {
		TeamID      string `json:"team_id"`
		KeyID       string `json:"key_id"`
		AuthKeyPath string `json:"auth_key_path"`
	} `json:"apns"`
	FCM struct {
		ProjectID          string `json:"project_id"`
		ServiceAccountFile string `json:"service_account_file"`
	} `json:"fcm"`
}

// startSim runs bin with its keys in dir, request logging off and no
// per-token delivery records, and waits for its ready line.
func startSim(ctx context.Context, bin, dir, logPath string) (*sim, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "-dir", dir, "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0",
		"-bundle-id", benchBundleID, "-project", "pushbench", "-no-delivery-log")
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pushsim: %w", err)
	}
	s := &sim{cmd: cmd, exited: make(chan error, 1), http: &http.Client{Timeout: 30 * time.Second}}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "pushsim ready ") {
				ready <- line
			}
		}
		io.Copy(io.Discard, out)
	}()
	go func() { s.exited <- cmd.Wait() }()
	select {
	case <-ready:
	case err := <-s.exited:
		return nil, fmt.Errorf("pushsim exited before it was ready (%v); see %s", err, logPath)
	case <-time.After(30 * time.Second):
		s.stop()
		return nil, fmt.Errorf("pushsim not ready after 30 s; see %s", logPath)
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
	data, err := os.ReadFile(filepath.Join(dir, "pushsim.json"))
	if err == nil {
		err = json.Unmarshal(data, &s.cfg)
	}
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("read pushsim.json: %w", err)
	}
	return s, nil
}

func (s *sim) pid() int { return s.cmd.Process.Pid }

// stop ends pushsim with SIGTERM, or SIGKILL after 10 s.
func (s *sim) stop() {
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// reset zeroes pushsim's counters and forgets the APNs provider tokens seen,
// so that each measured phase starts clean and the JWTs of earlier phases
// do not count as token churn.
func (s *sim) reset(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.AdminURL+"/reset", nil)
	if err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("pushsim reset: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("pushsim reset: %s", resp.Status)
	}
	return nil
}

// stats reads pushsim's admin /stats.
func (s *sim) stats(ctx context.Context) (pushsim.Stats, error) {
	var st pushsim.Stats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.AdminURL+"/stats", nil)
	if err != nil {
		return st, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return st, fmt.Errorf("pushsim stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("pushsim stats: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("pushsim stats: %w", err)
	}
	return st, nil
}
