package apns

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// This file is a strict fake of the APNs provider API, written from Apple's
// documentation and sharing no code with the client: it verifies the
// provider token itself (ES256 as raw r||s, kid, iss, iat, no exp) and
// answers a broken request the way APNs would. Any such answer is also
// recorded as a violation, and a test fails at cleanup if the client caused
// one it did not expect.

const (
	testTeamID = "TEAM123456"
	testKeyID  = "KEY1234567"
	testTopic  = "com.example.app"
)

// fakeClock is a settable clock shared by the client and the fake server.
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

// reply is a scripted APNs answer.
type reply struct {
	status    int
	reason    string
	timestamp string // raw JSON for the timestamp field, "" for none
	header    map[string]string
	body      string // raw body; overrides reason/timestamp when set
}

// seenRequest is what the fake recorded about one accepted request.
type seenRequest struct {
	header http.Header
	body   []byte
	bearer string
}

type fakeAPNs struct {
	t     testing.TB
	srv   *httptest.Server
	key   *ecdsa.PrivateKey // the client signs with it; the fake verifies with its public half
	clock *fakeClock

	// respond, when set, may answer a request that passed every check;
	// returning nil answers 200.
	respond atomic.Pointer[func(r *http.Request, token, bearer string) *reply]

	requests atomic.Int64 // every request that reached the handler

	mu         sync.Mutex
	script     map[string]reply // by device token
	verified   map[string]bool  // JWTs whose signature checked out
	bearers    map[string]int   // accepted JWTs and how often each was used
	last       map[string]seenRequest
	violations []string
	// allowViolations is set by tests that send broken requests on purpose.
	allowViolations bool
	noRecord        bool // benchmarks: skip recording request bodies
}

func newFakeAPNs(t testing.TB) *fakeAPNs {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAPNs{
		t:        t,
		key:      key,
		clock:    newFakeClock(),
		script:   map[string]reply{},
		verified: map[string]bool{},
		bearers:  map[string]int{},
		last:     map[string]seenRequest{},
	}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.EnableHTTP2 = true
	f.srv.StartTLS()
	t.Cleanup(func() {
		f.srv.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.allowViolations && len(f.violations) > 0 {
			t.Errorf("fake APNs saw %d bad requests, first: %s", len(f.violations), f.violations[0])
		}
	})
	return f
}

// roots trusts the fake's certificate.
func (f *fakeAPNs) roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(f.srv.Certificate())
	return p
}

func (f *fakeAPNs) setReply(token string, r reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script[token] = r
}

func (f *fakeAPNs) setRespond(fn func(r *http.Request, token, bearer string) *reply) {
	f.respond.Store(&fn)
}

func (f *fakeAPNs) lastRequest(token string) (seenRequest, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.last[token]
	return r, ok
}

func (f *fakeAPNs) distinctBearers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.bearers)
}

func (f *fakeAPNs) violationCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.violations)
}

// reject answers like APNs and records the violation.
func (f *fakeAPNs) reject(w http.ResponseWriter, status int, reason, why string) {
	f.mu.Lock()
	f.violations = append(f.violations, fmt.Sprintf("%d %s: %s", status, reason, why))
	f.mu.Unlock()
	writeReply(w, reply{status: status, reason: reason})
}

func writeReply(w http.ResponseWriter, r reply) {
	for k, v := range r.header {
		w.Header().Set(k, v)
	}
	if r.status == http.StatusOK {
		w.WriteHeader(http.StatusOK)
		return
	}
	body := r.body
	if body == "" {
		body = `{"reason":"` + r.reason + `"`
		if r.timestamp != "" {
			body += `,"timestamp":` + r.timestamp
		}
		body += "}"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(r.status)
	io.WriteString(w, body)
}

func (f *fakeAPNs) serve(w http.ResponseWriter, r *http.Request) {
	n := f.requests.Add(1)
	now := f.clock.Now()
	if r.ProtoMajor != 2 {
		f.reject(w, http.StatusBadRequest, "NotHTTP2", r.Proto)
		return
	}
	if r.Method != http.MethodPost {
		f.reject(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method)
		return
	}
	token, ok := strings.CutPrefix(r.URL.Path, "/3/device/")
	if !ok {
		f.reject(w, http.StatusNotFound, "BadPath", r.URL.Path)
		return
	}
	if token == "" {
		f.reject(w, http.StatusBadRequest, "MissingDeviceToken", "")
		return
	}
	if _, err := hex.DecodeString(token); err != nil || len(token) > 200 {
		f.reject(w, http.StatusBadRequest, "BadDeviceToken", "token "+strconv.Quote(token))
		return
	}
	for k, v := range r.Header {
		if strings.HasPrefix(strings.ToLower(k), "apns-") && len(v) > 1 || k == "Authorization" && len(v) > 1 {
			f.reject(w, http.StatusBadRequest, "DuplicateHeaders", k)
			return
		}
	}

	auth := r.Header.Get("Authorization")
	if auth == "" {
		f.reject(w, http.StatusForbidden, "MissingProviderToken", "no authorization header")
		return
	}
	jwtStr, ok := strings.CutPrefix(auth, "bearer ")
	if !ok || jwtStr == "" {
		f.reject(w, http.StatusForbidden, "InvalidProviderToken", "authorization "+strconv.Quote(auth))
		return
	}
	iat, err := f.verifyJWT(jwtStr)
	if err != nil {
		f.reject(w, http.StatusForbidden, "InvalidProviderToken", err.Error())
		return
	}
	if age := now.Sub(time.Unix(iat, 0)); age > time.Hour {
		f.reject(w, http.StatusForbidden, "ExpiredProviderToken", "token is "+age.String()+" old")
		return
	} else if age < -time.Minute {
		f.reject(w, http.StatusForbidden, "InvalidProviderToken", "iat is in the future by "+(-age).String())
		return
	}

	switch topic := r.Header.Get("Apns-Topic"); {
	case topic == "":
		f.reject(w, http.StatusBadRequest, "MissingTopic", "")
		return
	case topic != testTopic:
		f.reject(w, http.StatusBadRequest, "BadTopic", topic)
		return
	}
	if pt := r.Header.Get("Apns-Push-Type"); pt != "alert" {
		f.reject(w, http.StatusBadRequest, "InvalidPushType", strconv.Quote(pt))
		return
	}
	if p := r.Header.Get("Apns-Priority"); p != "10" {
		f.reject(w, http.StatusBadRequest, "BadPriority", strconv.Quote(p))
		return
	}
	if vs, ok := r.Header["Apns-Expiration"]; ok {
		exp, err := strconv.ParseInt(vs[0], 10, 64)
		// An absolute epoch in seconds: not in the past (a relative "seconds
		// from now" value would be in 1970) and not beyond Apple's 30 days.
		if err != nil || exp < now.Unix()-5 || exp > now.Add(31*24*time.Hour).Unix() {
			f.reject(w, http.StatusBadRequest, "BadExpirationDate", strconv.Quote(vs[0]))
			return
		}
	}
	if id := r.Header.Get("Apns-Collapse-Id"); len(id) > 64 {
		f.reject(w, http.StatusBadRequest, "BadCollapseId", strconv.Itoa(len(id))+" bytes")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8192))
	if err != nil {
		f.reject(w, http.StatusBadRequest, "BodyReadFailed", err.Error())
		return
	}
	if len(body) == 0 {
		f.reject(w, http.StatusBadRequest, "PayloadEmpty", "")
		return
	}
	if len(body) > 4096 {
		f.reject(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge", strconv.Itoa(len(body))+" bytes")
		return
	}
	var payload struct {
		APS map[string]json.RawMessage `json:"aps"`
	}
	if err := json.Unmarshal(body, &payload); err != nil || payload.APS == nil {
		f.reject(w, http.StatusBadRequest, "BadPayload", fmt.Sprintf("%v: %q", err, body))
		return
	}

	f.mu.Lock()
	f.bearers[jwtStr]++
	if !f.noRecord {
		f.last[token] = seenRequest{header: r.Header.Clone(), body: body, bearer: jwtStr}
	}
	scripted, hasScript := f.script[token]
	f.mu.Unlock()

	if fn := f.respond.Load(); fn != nil {
		if rep := (*fn)(r, token, jwtStr); rep != nil {
			writeReply(w, *rep)
			return
		}
	}
	if hasScript {
		writeReply(w, scripted)
		return
	}
	w.Header().Set("Apns-Id", fmt.Sprintf("0a1b2c3d-0000-4000-8000-%012x", n))
	w.WriteHeader(http.StatusOK)
}

// verifyJWT checks an APNs provider token and returns its iat. The
// signature is verified once per distinct token, as Apple caches too.
func (f *fakeAPNs) verifyJWT(tok string) (iat int64, err error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return 0, fmt.Errorf("JWT has %d parts", len(parts))
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return 0, fmt.Errorf("JWT header: %v", err)
	}
	var hdr map[string]any
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return 0, fmt.Errorf("JWT header: %v", err)
	}
	if hdr["alg"] != "ES256" {
		return 0, fmt.Errorf("JWT alg %v, want ES256", hdr["alg"])
	}
	if hdr["kid"] != testKeyID {
		return 0, fmt.Errorf("JWT kid %v, want %s", hdr["kid"], testKeyID)
	}
	cb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return 0, fmt.Errorf("JWT claims: %v", err)
	}
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(cb, &claims); err != nil {
		return 0, fmt.Errorf("JWT claims: %v", err)
	}
	if string(claims["iss"]) != `"`+testTeamID+`"` {
		return 0, fmt.Errorf("JWT iss %s, want %s", claims["iss"], testTeamID)
	}
	if _, ok := claims["exp"]; ok {
		return 0, fmt.Errorf("JWT has exp; APNs tokens have none")
	}
	iat, err = strconv.ParseInt(string(claims["iat"]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("JWT iat %s is not integer seconds", claims["iat"])
	}

	f.mu.Lock()
	ok := f.verified[tok]
	f.mu.Unlock()
	if ok {
		return iat, nil
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return 0, fmt.Errorf("JWT signature: %v", err)
	}
	if len(sig) != 64 {
		return 0, fmt.Errorf("JWT signature is %d bytes, want 64 (raw r||s)", len(sig))
	}
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(&f.key.PublicKey, digest[:], r, s) {
		return 0, fmt.Errorf("JWT signature does not verify")
	}
	f.mu.Lock()
	f.verified[tok] = true
	f.mu.Unlock()
	return iat, nil
}

// deviceToken returns a well-formed 64-hex-digit device token.
func deviceToken(i int) string { return fmt.Sprintf("%064x", i) }

// newTestClient returns a client of f, trusting its certificate and
// sharing its clock. mod may change the options first.
func newTestClient(t testing.TB, f *fakeAPNs, mod func(*Options)) *Client {
	t.Helper()
	opts := Options{
		Endpoint:    f.srv.URL,
		Environment: Development,
		BundleID:    testTopic,
		TeamID:      testTeamID,
		KeyID:       testKeyID,
		Key:         f.key,
		RootCAs:     f.roots(),
		Now:         f.clock.Now,
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
