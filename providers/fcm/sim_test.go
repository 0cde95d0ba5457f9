package fcm

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/pushsim"
)

// The tests talk to internal/pushsim, the strict simulator of Google's
// token endpoint and FCM HTTP v1 that the end-to-end tests use too. It
// shares no code with this package: it verifies the RS256 assertion and
// type-checks the v1 message field by field, so a client that drifts from
// the protocol fails here.

const testProject = "demo-project"

// simDir holds the simulator's keys and certificates, made once per test
// binary (the RSA service-account key is slow to generate) and reused by
// every test's simulator.
var simDir = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "pushsim-fcm-")
	if err != nil {
		return "", err
	}
	s, err := pushsim.Start(pushsim.Options{Dir: dir, ProjectID: testProject})
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

// sim is a simulator for one test. Its clock is the real one, as the
// client's access-token expiry is.
type sim struct {
	*pushsim.Server
	t     testing.TB
	roots *x509.CertPool

	mu      sync.Mutex
	expects map[string]bool
}

// newSim starts a simulator. At cleanup the test fails if the simulator
// rejected a send or a token request the test did not expect.
func newSim(t testing.TB, opts pushsim.Options) *sim {
	t.Helper()
	dir, err := simDir()
	if err != nil {
		t.Fatal(err)
	}
	opts.Dir, opts.ProjectID = dir, testProject
	s := &sim{t: t, expects: map[string]bool{}}
	s.Server, err = pushsim.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		st := s.Stats()
		for reason, n := range st.FCM.ByReason {
			if !s.expects[reason] {
				t.Errorf("pushsim rejected %d sends: %s", n, reason)
			}
		}
		if n := st.OAuth.Rejected; n > 0 && !s.expects["token"] {
			t.Errorf("pushsim's token endpoint rejected %d requests", n)
		}
	})
	s.roots = x509.NewCertPool()
	ca, err := os.ReadFile(s.Files().CAFile)
	if err != nil || !s.roots.AppendCertsFromPEM(ca) {
		t.Fatalf("%s: %v", s.Files().CAFile, err)
	}
	return s
}

// expect declares rejections the test causes on purpose: FCM error codes
// or statuses, or "token" for the token endpoint.
func (s *sim) expect(reasons ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range reasons {
		s.expects[r] = true
	}
}

// options returns client options that reach s through the real HTTP/2
// connection pool.
func (s *sim) options() Options {
	return Options{
		Endpoint:           s.URL(),
		ProjectID:          testProject,
		ServiceAccountJSON: serviceAccount(s.t, s.Files().TokenURI),
		RootCAs:            s.roots,
		RequestTimeout:     10 * time.Second,
	}
}

func (s *sim) client(opts Options) *Client {
	s.t.Helper()
	c, err := New(opts)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(c.Close)
	return c
}

// sentMessage is what the tests read back from a delivered v1 message;
// pushsim has already type-checked it.
type sentMessage struct {
	Token        string `json:"token"`
	Notification *struct {
		Title string `json:"title"`
		Body  string `json:"body"`
	} `json:"notification"`
	Data    map[string]string `json:"data"`
	Android *struct {
		TTL          string           `json:"ttl"`
		Notification *json.RawMessage `json:"notification"`
	} `json:"android"`
	APNs *struct {
		Headers map[string]string `json:"headers"`
		Payload *struct {
			APS *struct {
				Alert json.RawMessage `json:"alert"`
				Badge *int            `json:"badge"`
				Sound string          `json:"sound"`
			} `json:"aps"`
		} `json:"payload"`
	} `json:"apns"`
}

// message returns the last message pushsim delivered to token.
func (s *sim) message(t testing.TB, token string) (sentMessage, pushsim.Delivery) {
	t.Helper()
	for _, d := range s.Deliveries() {
		if d.Provider == pushsim.ProviderFCM && d.Token == token {
			var m sentMessage
			if err := json.Unmarshal(d.Payload, &m); err != nil {
				t.Fatalf("delivered message %s: %v", d.Payload, err)
			}
			return m, d
		}
	}
	t.Fatalf("pushsim recorded no delivery to %.20s…", token)
	return sentMessage{}, pushsim.Delivery{}
}

// serviceAccount returns the simulator's service-account key file with
// token_uri set.
func serviceAccount(t testing.TB, tokenURI string) []byte {
	t.Helper()
	dir, err := simDir()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(dir + "/service-account.json")
	if err != nil {
		t.Fatal(err)
	}
	var sa map[string]any
	if err := json.Unmarshal(data, &sa); err != nil {
		t.Fatal(err)
	}
	sa["token_uri"] = tokenURI
	b, err := json.Marshal(sa)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// offlineClient returns a client for tests that never send.
func offlineClient(t testing.TB, validateOnly bool) *Client {
	t.Helper()
	c, err := New(Options{
		ProjectID:          testProject,
		ServiceAccountJSON: serviceAccount(t, "https://127.0.0.1:9/token"),
		ValidateOnly:       validateOnly,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// googleError renders Google's error shape, for scripted answers; fcmCode
// "" sends no FcmError detail.
func googleError(code int, status, message, fcmCode string) string {
	e := map[string]any{"code": code, "message": message, "status": status}
	if fcmCode != "" {
		e["details"] = []any{map[string]any{
			"@type":     "type.googleapis.com/google.firebase.fcm.v1.FcmError",
			"errorCode": fcmCode,
		}}
	}
	b, _ := json.MarshalIndent(map[string]any{"error": e}, "", "  ")
	return string(b)
}

// fakeClock is an injectable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

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

// background is a context for one test call, bounded so a hang fails fast.
func background(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}
