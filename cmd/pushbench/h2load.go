package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// h2loadMaxRequests caps the requests of one ceiling measurement: the
// ceiling is a rate, and ten million requests would take minutes.
const h2loadMaxRequests = 1_000_000

// h2loadMaxURIs caps the lines of the APNs URI file. h2load holds every URI
// in memory (a million cost it 1.3 GB) and cycles through them; pushsim
// keeps no state per ordinary token, so repeating tokens costs it nothing
// more, and the HPACK table (4 KiB) cannot tell 100k paths from 1M.
const h2loadMaxURIs = 100_000

// findH2load returns the path of h2load, installing Debian's nghttp2-client
// with apt-get if it is missing and we are root. note says why it is
// unavailable otherwise.
func findH2load(ctx context.Context, logf func(string, ...any)) (path, note string) {
	if p, err := exec.LookPath("h2load"); err == nil {
		return p, ""
	}
	if os.Geteuid() != 0 {
		return "", "h2load is not installed and pushbench is not root: no ceiling (apt-get install nghttp2-client)"
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", "h2load is not installed and there is no apt-get: no ceiling (install nghttp2's h2load)"
	}
	logf("installing h2load (apt-get install nghttp2-client)")
	install := func() error {
		c := exec.CommandContext(ctx, "apt-get", "install", "-y", "-q", "nghttp2-client")
		c.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := c.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, lastLines(out, 3))
		}
		return nil
	}
	if err := install(); err != nil {
		exec.CommandContext(ctx, "apt-get", "update", "-q").Run()
		if err := install(); err != nil {
			return "", "could not install nghttp2-client: no ceiling: " + err.Error()
		}
	}
	if p, err := exec.LookPath("h2load"); err == nil {
		return p, ""
	}
	return "", "nghttp2-client installed but h2load is not on the PATH: no ceiling"
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// ceilingShape is what makes the h2load requests look like pushd's: the
// same headers, an equal payload, a valid credential.
type ceilingShape struct {
	scheduled time.Time // the campaign's scheduled_at: the expiration is a day later
	collapse  string    // pushd's per-run collapse id, pushd-<campaign>-<occurrence>
}

// h2loadResult is one h2load process's figures.
type h2loadResult struct {
	Provider  string        `json:"provider"`
	Requests  int           `json:"requests"`
	Succeeded int           `json:"succeeded"`
	Status2xx int           `json:"status_2xx"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	ReqPerSec float64       `json:"req_per_s"`
	CPU       time.Duration `json:"cpu_ns"` // h2load's own user+system time
}

// h2loadRun drives pushsim with h2load for the providers of the run (both at
// once for "both") and returns the combined rate: all requests over the
// longest elapsed time.
func h2loadRun(ctx context.Context, bin, dir string, s *sim, providers []string, n, conns, streams int, shape ceilingShape) (float64, []h2loadResult, error) {
	per := n / len(providers)
	var cmds []*exec.Cmd
	for _, p := range providers {
		args, err := h2loadArgs(ctx, dir, s, p, min(per, h2loadMaxRequests), conns, streams, shape)
		if err != nil {
			return 0, nil, err
		}
		cmds = append(cmds, exec.CommandContext(ctx, bin, args...))
	}
	results := make([]h2loadResult, len(cmds))
	errs := make([]error, len(cmds))
	var wg sync.WaitGroup
	for i, c := range cmds {
		wg.Go(func() {
			var out bytes.Buffer
			c.Stdout, c.Stderr = &out, &out
			if err := c.Run(); err != nil {
				errs[i] = fmt.Errorf("h2load %s: %w: %s", providers[i], err, lastLines(out.Bytes(), 5))
				return
			}
			r, err := parseH2load(out.Bytes())
			if err != nil {
				errs[i] = fmt.Errorf("h2load %s: %w\n%s", providers[i], err, out.String())
				return
			}
			r.Provider = providers[i]
			r.CPU = c.ProcessState.UserTime() + c.ProcessState.SystemTime()
			results[i] = r
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, nil, err
	}
	var total int
	var longest time.Duration
	for _, r := range results {
		if r.Status2xx != r.Requests {
			return 0, results, fmt.Errorf("h2load %s: %d of %d requests answered 2xx: the request shape is wrong", r.Provider, r.Status2xx, r.Requests)
		}
		total += r.Requests
		longest = max(longest, r.Elapsed)
	}
	return float64(total) / longest.Seconds(), results, nil
}

// h2loadArgs writes the body (and for APNs the URI file, one device path per
// token, as h2load needs distinct paths for distinct tokens) and returns the
// command line for n requests.
func h2loadArgs(ctx context.Context, dir string, s *sim, provider string, n, conns, streams int, shape ceilingShape) ([]string, error) {
	expiration := strconv.FormatInt(shape.scheduled.Add(24*time.Hour).Unix(), 10)
	args := []string{"-n", strconv.Itoa(n), "-c", strconv.Itoa(conns), "-m", strconv.Itoa(streams), "-t", "1"}
	body := filepath.Join(dir, provider+"-body.json")
	switch provider {
	case providerAPNs:
		jwt, err := signAPNsJWT(s.cfg.APNs.AuthKeyPath, s.cfg.APNs.KeyID, s.cfg.APNs.TeamID, time.Now())
		if err != nil {
			return nil, err
		}
		payload := `{"aps":{"alert":{"title":` + jsonString(campaignTitle) + `,"body":` + jsonString(campaignBody) + `}}}`
		if err := os.WriteFile(body, []byte(payload), 0o600); err != nil {
			return nil, err
		}
		uris := filepath.Join(dir, "apns-uris.txt")
		if err := writeAPNsURIs(uris, s.cfg.URL, min(n, h2loadMaxURIs)); err != nil {
			return nil, err
		}
		// pushd's APNs connections ask for answers without HPACK
		// indexing (transport.Options.UniqueAnswers); so does h2load.
		args = append(args, "-d", body, "-i", uris, "--header-table-size=0",
			"-H", "authorization: bearer "+jwt,
			"-H", "apns-topic: "+benchBundleID,
			"-H", "apns-push-type: alert",
			"-H", "apns-priority: 10",
			"-H", "apns-expiration: "+expiration,
			"-H", "apns-collapse-id: "+shape.collapse)
	case providerFCM:
		tok, err := fcmAccessToken(ctx, s.cfg.FCM.ServiceAccountFile, s.cfg.CAFile)
		if err != nil {
			return nil, err
		}
		ttl := strconv.Itoa(int(24 * time.Hour / time.Second))
		msg := `{"message":{"token":"bench-1:APA91b","notification":{"title":` + jsonString(campaignTitle) + `,"body":` + jsonString(campaignBody) +
			`},"android":{"ttl":"` + ttl + `s","priority":"high","notification":{"tag":` + jsonString(shape.collapse) +
			`}},"apns":{"headers":{"apns-expiration":"` + expiration + `","apns-collapse-id":` + jsonString(shape.collapse) + `,"apns-priority":"10"}}}}`
		if err := os.WriteFile(body, []byte(msg), 0o600); err != nil {
			return nil, err
		}
		args = append(args, "-d", body,
			"-H", "authorization: Bearer "+tok,
			"-H", "content-type: application/json; charset=UTF-8",
			s.cfg.URL+"/v1/projects/"+s.cfg.FCM.ProjectID+"/messages:send")
	default:
		return nil, fmt.Errorf("provider %q", provider)
	}
	return args, nil
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// writeAPNsURIs writes n device URIs whose tokens are the seeded ones:
// LPAD(HEX(seq), 64, '0') for seq 1..n.
func writeAPNsURIs(path, base string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(w, "%s/3/device/%064X\n", base, i)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// signAPNsJWT signs an APNs provider token (ES256, raw r||s) with the .p8
// key at path.
func signAPNsJWT(path, keyID, teamID string, now time.Time) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return "", fmt.Errorf("%s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return "", fmt.Errorf("%s: %T, want an ECDSA key", path, k)
	}
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "ES256", "kid": keyID})
	claims, _ := json.Marshal(map[string]any{"iss": teamID, "iat": now.Unix()})
	in := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	h := sha256.Sum256([]byte(in))
	r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return in + "." + enc.EncodeToString(sig), nil
}

// fcmAccessToken does the OAuth exchange against pushsim's token endpoint
// (the token_uri of its service-account.json), trusting pushsim's CA.
func fcmAccessToken(ctx context.Context, saFile, caFile string) (string, error) {
	sa, err := os.ReadFile(saFile)
	if err != nil {
		return "", err
	}
	cfg, err := google.JWTConfigFromJSON(sa, "https://www.googleapis.com/auth/firebase.messaging")
	if err != nil {
		return "", err
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return "", err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return "", fmt.Errorf("%s: no certificate", caFile)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
	}}
	tok, err := cfg.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, hc)).Token()
	if err != nil {
		return "", fmt.Errorf("fcm access token from pushsim: %w", err)
	}
	return tok.AccessToken, nil
}

var (
	h2Finished = regexp.MustCompile(`(?m)^finished in ([0-9.]+)(ms|us|s), ([0-9.]+) req/s`)
	h2Requests = regexp.MustCompile(`(?m)^requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded`)
	h2Status   = regexp.MustCompile(`(?m)^status codes: (\d+) 2xx`)
)

// parseH2load reads h2load's summary: "finished in X, Y req/s", the
// requests line and the status-code line.
func parseH2load(out []byte) (h2loadResult, error) {
	var r h2loadResult
	m := h2Finished.FindSubmatch(out)
	if m == nil {
		return r, errors.New(`no "finished in" line`)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		return r, err
	}
	unit := map[string]time.Duration{"s": time.Second, "ms": time.Millisecond, "us": time.Microsecond}[string(m[2])]
	r.Elapsed = time.Duration(v * float64(unit))
	if r.ReqPerSec, err = strconv.ParseFloat(string(m[3]), 64); err != nil {
		return r, err
	}
	m = h2Requests.FindSubmatch(out)
	if m == nil {
		return r, errors.New("no requests line")
	}
	r.Requests, _ = strconv.Atoi(string(m[1]))
	r.Succeeded, _ = strconv.Atoi(string(m[2]))
	if m = h2Status.FindSubmatch(out); m == nil {
		return r, errors.New("no status codes line")
	}
	r.Status2xx, _ = strconv.Atoi(string(m[1]))
	return r, nil
}
