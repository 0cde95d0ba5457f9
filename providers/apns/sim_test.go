package apns

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/pushsim"
)

// The tests talk to internal/pushsim, the strict APNs simulator the
// end-to-end tests use too. It shares no code with this package: it
// verifies the provider token (ES256 as raw r||s, kid, iss, iat, no exp,
// churn) and every header and the payload, and answers a broken request as
// APNs would.

const testTopic = "com.example.app"

// simDir holds the simulator's keys and certificates, made once per test
// binary so that every test's simulator reuses them.
var simDir = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "pushsim-apns-")
	if err != nil {
		return "", err
	}
	s, err := pushsim.Start(pushsim.Options{Dir: dir, BundleIDs: []string{testTopic}})
	if err != nil {
		return "", err
	}
	return dir, s.Close()
})

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, err := simDir(); err == nil {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// sim is a simulator for one test, sharing a settable clock with its
// clients.
type sim struct {
	*pushsim.Server
	clock *fakeClock
	key   *ecdsa.PrivateKey
	roots *x509.CertPool

	mu      sync.Mutex
	expects map[string]bool
}

// newSim starts a simulator whose clock is the test clock unless opts.Now
// is set. At cleanup the test fails if the simulator rejected a request
// for a reason the test did not expect.
func newSim(t testing.TB, opts pushsim.Options) *sim {
	t.Helper()
	dir, err := simDir()
	if err != nil {
		t.Fatal(err)
	}
	s := &sim{clock: newFakeClock(), expects: map[string]bool{}}
	opts.Dir = dir
	opts.BundleIDs = []string{testTopic}
	if opts.Now == nil {
		opts.Now = s.clock.Now
	}
	s.Server, err = pushsim.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for reason, n := range s.Stats().APNs.ByReason {
			if !s.expects[reason] {
				t.Errorf("pushsim rejected %d requests: %s", n, reason)
			}
		}
	})
	s.key = readKey(t, s.Files().AuthKeyFile)
	s.roots = x509.NewCertPool()
	ca, err := os.ReadFile(s.Files().CAFile)
	if err != nil || !s.roots.AppendCertsFromPEM(ca) {
		t.Fatalf("%s: %v", s.Files().CAFile, err)
	}
	return s
}

// expect declares rejections the test causes on purpose.
func (s *sim) expect(reasons ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range reasons {
		s.expects[r] = true
	}
}

// delivery returns what the simulator recorded for token.
func (s *sim) delivery(t testing.TB, token string) pushsim.Delivery {
	t.Helper()
	for _, d := range s.Deliveries() {
		if d.Provider == pushsim.ProviderAPNs && d.Token == token {
			return d
		}
	}
	t.Fatalf("pushsim recorded no delivery to %s", token)
	return pushsim.Delivery{}
}

// requests is how many APNs requests reached the simulator.
func (s *sim) requests() int { return s.Stats().APNs.Requests }

func readKey(t testing.TB, path string) *ecdsa.PrivateKey {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("%s: %T, want ECDSA", path, k)
	}
	return ek
}

// newTestClient returns a client of s, trusting its CA and sharing its
// clock. mod may change the options first.
func newTestClient(t testing.TB, s *sim, mod func(*Options)) *Client {
	t.Helper()
	f := s.Files()
	opts := Options{
		Endpoint:    s.URL(),
		Environment: Development,
		BundleID:    testTopic,
		TeamID:      f.TeamID,
		KeyID:       f.KeyID,
		Key:         s.key,
		RootCAs:     s.roots,
		Now:         s.clock.Now,
	}
	if mod != nil {
		mod(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// deviceToken returns a well-formed 64-hex-digit device token that pushsim
// delivers (its prefix selects no scripted behaviour).
func deviceToken(i int) string { return fmt.Sprintf("%064x", i) }

// slowToken is a device token pushsim answers only after SlowDelay.
func slowToken(i int) string { return pushsim.PrefixSlow + deviceToken(i)[4:] }

// fakeClock is a settable clock shared by the client and the simulator.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now().Truncate(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
