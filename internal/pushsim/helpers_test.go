package pushsim

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// The helpers here speak the protocols by hand, from the providers'
// documentation, so that the tests do not share code with the simulator.

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a running simulator plus an HTTP/2 client that trusts its CA.
type env struct {
	t      testing.TB
	s      *Server
	client *http.Client
	clock  *fakeClock
	apns   *ecdsa.PrivateKey
	sa     *rsa.PrivateKey
	saKID  string
	jwt    string // a valid APNs provider token
}

// start runs a simulator with a fake clock (unless opts.Now is set) in a
// fresh directory.
func start(t testing.TB, opts Options) *env {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	e := &env{t: t}
	if opts.Now == nil {
		e.clock = newFakeClock()
		opts.Now = e.clock.Now
	}
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	e.s = s
	e.client = &http.Client{Transport: h2Transport(t, s.Files().CAFile), Timeout: 30 * time.Second}
	t.Cleanup(e.client.CloseIdleConnections)
	e.apns = readECKey(t, s.Files().AuthKeyFile)
	e.sa, e.saKID = readServiceAccount(t, s.Files().ServiceAccountFile)
	e.jwt = e.signAPNs(s.Files().KeyID, s.Files().TeamID, e.now())
	return e
}

// with returns e reporting to t, for subtests.
func (e *env) with(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

func (e *env) now() time.Time {
	if e.clock != nil {
		return e.clock.Now()
	}
	return time.Now()
}

// h2Transport is an HTTP/2-only transport trusting the CA in caFile.
func h2Transport(t testing.TB, caFile string) *http2.Transport {
	t.Helper()
	pool := x509.NewCertPool()
	pemData, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	if !pool.AppendCertsFromPEM(pemData) {
		t.Fatalf("%s: no certificates", caFile)
	}
	return &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
}

func readECKey(t testing.TB, path string) *ecdsa.PrivateKey {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("%s: want a PEM PRIVATE KEY block", path)
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

func readServiceAccount(t testing.TB, path string) (*rsa.PrivateKey, string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sa struct {
		PrivateKey   string `json:"private_key"`
		PrivateKeyID string `json:"private_key_id"`
	}
	if err := json.Unmarshal(data, &sa); err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(sa.PrivateKey))
	if block == nil {
		t.Fatal("service account: no PEM private_key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PrivateKey), sa.PrivateKeyID
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signES256 makes a compact JWS with a raw r||s signature.
func signES256(t testing.TB, key *ecdsa.PrivateKey, header, claims any) string {
	t.Helper()
	in := b64(mustJSON(t, header)) + "." + b64(mustJSON(t, claims))
	h := sha256.Sum256([]byte(in))
	r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return in + "." + b64(sig)
}

func signRS256(t testing.TB, key *rsa.PrivateKey, header, claims any) string {
	t.Helper()
	in := b64(mustJSON(t, header)) + "." + b64(mustJSON(t, claims))
	h := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + b64(sig)
}

// signAPNs makes a provider token as Apple describes it.
func (e *env) signAPNs(kid, iss string, iat time.Time) string {
	return signES256(e.t, e.apns, map[string]string{"alg": "ES256", "kid": kid},
		map[string]any{"iss": iss, "iat": iat.Unix()})
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) reason(t *testing.T) string {
	t.Helper()
	var b struct {
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return b.Reason
}

func (e *env) do(req *http.Request) response {
	e.t.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.ProtoMajor != 2 {
		e.t.Fatalf("answered over %s, want HTTP/2", resp.Proto)
	}
	return response{resp.StatusCode, resp.Header, body}
}

const testBundle = "com.example.demo"

// apnsRequest is a valid alert push to token.
func (e *env) apnsRequest(token, body string) *http.Request {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.s.URL()+"/3/device/"+token, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("authorization", "bearer "+e.jwt)
	req.Header.Set("apns-topic", testBundle)
	req.Header.Set("apns-push-type", "alert")
	req.Header.Set("apns-priority", "10")
	return req
}

const alertBody = `{"aps":{"alert":{"title":"Hi","body":"there"}}}`

func (e *env) pushAPNs(token string) response {
	e.t.Helper()
	return e.do(e.apnsRequest(token, alertBody))
}

// accessToken gets an FCM access token with a hand-signed assertion.
func (e *env) accessToken() string {
	e.t.Helper()
	resp := e.postToken(e.assertion(nil))
	if resp.status != http.StatusOK {
		e.t.Fatalf("token endpoint: %d %s", resp.status, resp.body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		TokenType   string `json:"token_type"`
	}
	if err := json.Unmarshal(resp.body, &tok); err != nil {
		e.t.Fatal(err)
	}
	if tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.ExpiresIn <= 0 {
		e.t.Fatalf("token answer %s", resp.body)
	}
	return tok.AccessToken
}

// assertion signs a service-account JWT; edit changes header or claims.
func (e *env) assertion(edit func(header, claims map[string]any)) string {
	now := e.now()
	header := map[string]any{"alg": "RS256", "typ": "JWT", "kid": e.saKID}
	claims := map[string]any{
		"iss":   e.s.Files().ClientEmail,
		"scope": "https://www.googleapis.com/auth/firebase.messaging",
		"aud":   e.s.Files().TokenURI,
		"iat":   now.Unix(),
		"exp":   now.Add(time.Hour).Unix(),
	}
	key := e.sa
	if edit != nil {
		edit(header, claims)
		if k, ok := header["_key"].(*rsa.PrivateKey); ok {
			key = k
			delete(header, "_key")
		}
	}
	return signRS256(e.t, key, header, claims)
}

func (e *env) postToken(assertion string) response {
	e.t.Helper()
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {assertion}}
	return e.postForm(form)
}

func (e *env) postForm(form url.Values) response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.s.URL()+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.do(req)
}

// fcmRequest posts body to the messages:send endpoint of project.
func (e *env) fcmRequest(project, accessToken, body string) *http.Request {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.s.URL()+"/v1/projects/"+project+"/messages:send", bytes.NewReader([]byte(body)))
	if err != nil {
		e.t.Fatal(err)
	}
	if accessToken != "" {
		req.Header.Set("Authorization", "Bearer "+accessToken)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

// fcmAnswer is Google's error shape, or the success name.
type fcmAnswer struct {
	Name  string `json:"name"`
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			Type      string `json:"@type"`
			ErrorCode string `json:"errorCode"`
		} `json:"details"`
	} `json:"error"`
}

func (a fcmAnswer) errorCode() string {
	for _, d := range a.Error.Details {
		if d.Type == "type.googleapis.com/google.firebase.fcm.v1.FcmError" {
			return d.ErrorCode
		}
	}
	return ""
}

func decodeFCM(t testing.TB, r response) fcmAnswer {
	t.Helper()
	var a fcmAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	if r.status != http.StatusOK && a.Error.Code != r.status {
		t.Errorf("error.code %d, HTTP status %d", a.Error.Code, r.status)
	}
	return a
}

func (e *env) sendFCM(accessToken, body string) (response, fcmAnswer) {
	e.t.Helper()
	r := e.do(e.fcmRequest(e.s.Files().ProjectID, accessToken, body))
	return r, decodeFCM(e.t, r)
}

func fcmToken(token string) string {
	return `{"message":{"token":"` + token + `","notification":{"title":"Hi","body":"there"}}}`
}
