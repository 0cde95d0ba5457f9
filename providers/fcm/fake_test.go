package fcm

// A strict fake of Google's token endpoint and the FCM v1 messages:send
// method, served over real HTTP/2 with TLS. It shares no code with the client:
// it verifies the RS256 assertion with crypto/rsa and decodes messages into
// its own copy of the v1 shape with unknown fields disallowed, so a client
// that drifts from the protocol fails here.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	fakeProject = "demo-project"
	fakeEmail   = "pushd@demo-project.iam.gserviceaccount.com"
	fakeKeyID   = "0123456789abcdef0123456789abcdef01234567"
	fakeScope   = "https://www.googleapis.com/auth/firebase.messaging"
)

// testKey is made once per test binary: RSA key generation is slow.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// canned is a scripted answer of messages:send.
type canned struct {
	status int
	header http.Header
	body   string
}

type fakeFCM struct {
	t   testing.TB
	srv *httptest.Server
	key *rsa.PrivateKey

	tokenReqs atomic.Int64 // requests to the token endpoint
	sendReqs  atomic.Int64 // requests to messages:send

	mu           sync.Mutex
	issued       map[string]bool // access tokens that messages:send accepts
	nTokens      int
	tokenAnswer  *canned // when set, the token endpoint answers this
	rejectBearer bool    // answer 401 UNAUTHENTICATED to every send
	script       map[string]canned
	lastRaw      []byte        // raw body of the last accepted send
	last         *fakeRequest  // last accepted send
	hold         bool          // sends wait until the client gives up
	held         chan struct{} // told of each held send
}

func newFake(t testing.TB) *fakeFCM {
	f := &fakeFCM{t: t, key: testKey(), issued: map[string]bool{}, script: map[string]canned{}, held: make(chan struct{}, 16)}
	f.srv = httptest.NewUnstartedServer(f)
	f.srv.EnableHTTP2 = true
	// Handshakes cut off when a test closes its client are expected: keep
	// them in the test's log rather than on stderr.
	f.srv.Config.ErrorLog = log.New(testWriter{t}, "fake FCM: ", 0)
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeFCM) tokenURL() string { return f.srv.URL + "/token" }

// serviceAccount returns a key file like the one the Firebase console hands
// out, with token_uri pointing at the fake.
func (f *fakeFCM) serviceAccount(tokenURI string) []byte { return keyFile(f.t, tokenURI) }

// keyFile returns a service-account key file for testKey.
func keyFile(t testing.TB, tokenURI string) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(testKey())
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]string{
		"type":                        "service_account",
		"project_id":                  fakeProject,
		"private_key_id":              fakeKeyID,
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                fakeEmail,
		"client_id":                   "109876543210987654321",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   tokenURI,
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"universe_domain":             "googleapis.com",
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// offlineClient returns a client for tests that never send.
func offlineClient(t testing.TB, validateOnly bool) *Client {
	t.Helper()
	c, err := New(Options{
		ProjectID:          fakeProject,
		ServiceAccountJSON: keyFile(t, "https://127.0.0.1:9/token"),
		ValidateOnly:       validateOnly,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// options returns client options that reach the fake through the real
// HTTP/2 connection pool.
func (f *fakeFCM) options() Options {
	roots := x509.NewCertPool()
	roots.AddCert(f.srv.Certificate())
	return Options{
		Endpoint:           f.srv.URL,
		ProjectID:          fakeProject,
		ServiceAccountJSON: f.serviceAccount(f.tokenURL()),
		RootCAs:            roots,
		RequestTimeout:     10 * time.Second,
	}
}

func (f *fakeFCM) client(opts Options) *Client {
	f.t.Helper()
	c, err := New(opts)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(c.Close)
	return c
}

// answer scripts the answer to sends to a device token.
func (f *fakeFCM) answer(token string, a canned) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script[token] = a
}

// revokeAll makes every access token issued so far unacceptable.
func (f *fakeFCM) revokeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.issued)
}

func (f *fakeFCM) lastRequest() *fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func (f *fakeFCM) lastBody() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return string(f.lastRaw)
}

// violation records a protocol violation by the client: the test fails, and
// the client gets an answer it maps to no happy outcome.
func (f *fakeFCM) violation(w http.ResponseWriter, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	f.t.Errorf("fake FCM: protocol violation: %s", msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, `{"error":{"code":400,"message":%q,"status":"FAILED_PRECONDITION"}}`, "fake: "+msg)
}

func (f *fakeFCM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/token":
		f.serveToken(w, r)
	case strings.HasPrefix(r.URL.Path, "/v1/"):
		f.serveSend(w, r)
	default:
		f.violation(w, "unexpected %s %s", r.Method, r.URL.Path)
	}
}

// ---- token endpoint ----

func (f *fakeFCM) serveToken(w http.ResponseWriter, r *http.Request) {
	f.tokenReqs.Add(1)
	if r.Method != http.MethodPost {
		f.violation(w, "token: method %s", r.Method)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		f.violation(w, "token: Content-Type %q", ct)
		return
	}
	if err := r.ParseForm(); err != nil {
		f.violation(w, "token: form: %v", err)
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		f.violation(w, "token: grant_type %q", g)
		return
	}
	if err := f.verifyAssertion(r.PostForm.Get("assertion")); err != nil {
		f.violation(w, "token: assertion: %v", err)
		return
	}

	f.mu.Lock()
	if a := f.tokenAnswer; a != nil {
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
		return
	}
	f.nTokens++
	tok := fmt.Sprintf("ya29.fake-access-token-%d", f.nTokens)
	f.issued[tok] = true
	f.mu.Unlock()

	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	fmt.Fprintf(w, `{"access_token":%q,"expires_in":3599,"token_type":"Bearer"}`, tok)
}

func (f *fakeFCM) verifyAssertion(jwt string) error {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return fmt.Errorf("%d parts, want 3", len(parts))
	}
	var raw [3][]byte
	for i, p := range parts {
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil {
			return fmt.Errorf("part %d: %v", i, err)
		}
		raw[i] = b
	}
	var hdr struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
		Kid string `json:"kid"`
	}
	if err := strictDecode(raw[0], &hdr); err != nil {
		return fmt.Errorf("header: %v", err)
	}
	if hdr.Alg != "RS256" || hdr.Kid != fakeKeyID {
		return fmt.Errorf("header alg %q kid %q, want RS256 %q", hdr.Alg, hdr.Kid, fakeKeyID)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&f.key.PublicKey, crypto.SHA256, sum[:], raw[2]); err != nil {
		return fmt.Errorf("signature: %v", err)
	}
	var cl struct {
		Iss   string `json:"iss"`
		Scope string `json:"scope"`
		Aud   string `json:"aud"`
		Iat   int64  `json:"iat"`
		Exp   int64  `json:"exp"`
	}
	if err := strictDecode(raw[1], &cl); err != nil {
		return fmt.Errorf("claims: %v", err)
	}
	now := time.Now().Unix()
	switch {
	case cl.Iss != fakeEmail:
		return fmt.Errorf("iss %q", cl.Iss)
	case cl.Scope != fakeScope:
		return fmt.Errorf("scope %q", cl.Scope)
	case cl.Aud != f.tokenURL():
		return fmt.Errorf("aud %q, want the token_uri %q", cl.Aud, f.tokenURL())
	case cl.Iat == 0 || cl.Iat > now+60:
		return fmt.Errorf("iat %d is in the future (now %d)", cl.Iat, now)
	case cl.Exp <= now:
		return fmt.Errorf("exp %d has passed", cl.Exp)
	case cl.Exp <= cl.Iat || cl.Exp-cl.Iat > 3600:
		return fmt.Errorf("exp-iat = %d s, want 1..3600", cl.Exp-cl.Iat)
	}
	return nil
}

func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// ---- messages:send ----

// fakeRequest is the v1 send request, as documented at
// firebase.google.com/docs/reference/fcm/rest/v1/projects.messages.
type fakeRequest struct {
	ValidateOnly *bool        `json:"validate_only"`
	Message      *fakeMessage `json:"message"`
}

type fakeMessage struct {
	Token        string `json:"token"`
	Topic        string `json:"topic"`
	Condition    string `json:"condition"`
	Notification *struct {
		Title string `json:"title"`
		Body  string `json:"body"`
		Image string `json:"image"`
	} `json:"notification"`
	Data    map[string]string `json:"data"` // strings only, as FCM
	Android *struct {
		CollapseKey           string                   `json:"collapse_key"`
		Priority              string                   `json:"priority"`
		TTL                   string                   `json:"ttl"`
		RestrictedPackageName string                   `json:"restricted_package_name"`
		Notification          *fakeAndroidNotification `json:"notification"`
	} `json:"android"`
	APNs *struct {
		Headers map[string]string `json:"headers"`
		Payload *struct {
			Aps *struct {
				Alert            json.RawMessage `json:"alert"`
				Badge            *int            `json:"badge"`
				Sound            string          `json:"sound"`
				ThreadID         string          `json:"thread-id"`
				Category         string          `json:"category"`
				ContentAvailable int             `json:"content-available"`
				MutableContent   int             `json:"mutable-content"`
			} `json:"aps"`
		} `json:"payload"`
	} `json:"apns"`
}

type fakeAndroidNotification struct {
	Title       string `json:"title"`
	Body        string `json:"body"`
	Icon        string `json:"icon"`
	Color       string `json:"color"`
	Sound       string `json:"sound"`
	Tag         string `json:"tag"`
	ClickAction string `json:"click_action"`
	ChannelID   string `json:"channel_id"`
}

var ttlPattern = regexp.MustCompile(`^([0-9]+)(\.[0-9]{1,9})?s$`)

func (f *fakeFCM) serveSend(w http.ResponseWriter, r *http.Request) {
	f.sendReqs.Add(1)
	if r.ProtoMajor != 2 {
		f.violation(w, "send over %s, want HTTP/2", r.Proto)
		return
	}
	if r.Method != http.MethodPost {
		f.violation(w, "send: method %s", r.Method)
		return
	}
	if r.URL.Path != "/v1/projects/"+fakeProject+"/messages:send" || r.URL.RawQuery != "" {
		// What Google answers for a project that does not exist.
		writeGoogleError(w, http.StatusNotFound, "NOT_FOUND", "Requested entity was not found.", "")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		f.violation(w, "send: Content-Type %q", ct)
		return
	}
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	ok = ok && f.issued[bearer] && !f.rejectBearer
	f.mu.Unlock()
	if !ok {
		writeGoogleError(w, http.StatusUnauthorized, "UNAUTHENTICATED",
			"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.", "")
		return
	}

	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		f.violation(w, "send: read body: %v", err)
		return
	}
	if r.ContentLength != int64(len(body)) {
		f.violation(w, "send: Content-Length %d for a %d-byte body", r.ContentLength, len(body))
		return
	}
	var req fakeRequest
	if err := strictDecode(body, &req); err != nil {
		f.violation(w, "send: body is not a v1 send request: %v\n%s", err, body)
		return
	}
	if problem := checkMessage(body, &req); problem != "" {
		f.violation(w, "send: %s\n%s", problem, body)
		return
	}

	f.mu.Lock()
	f.last = &req
	f.lastRaw = body
	a, scripted := f.script[req.Message.Token]
	hold := f.hold
	f.mu.Unlock()

	if hold {
		select {
		case f.held <- struct{}{}:
		default:
		}
		<-r.Context().Done()
		return
	}
	if scripted {
		for k, v := range a.header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	fmt.Fprintf(w, "{\n  \"name\": \"projects/%s/messages/0:%d%%31bd1c9631bd1c96\"\n}\n", fakeProject, f.sendReqs.Load())
}

// checkMessage checks what the JSON shape cannot: returns a description of
// the first problem, or "".
func checkMessage(body []byte, req *fakeRequest) string {
	m := req.Message
	if m == nil {
		return "no message"
	}
	targets := 0
	for _, t := range []string{m.Token, m.Topic, m.Condition} {
		if t != "" {
			targets++
		}
	}
	if targets != 1 || m.Token == "" {
		return "want exactly one target, a token"
	}
	if m.Notification == nil || m.Notification.Title == "" && m.Notification.Body == "" {
		return "notification without title or body"
	}
	for k := range m.Data {
		l := strings.ToLower(k)
		if k == "" || l == "from" || l == "notification" || l == "message_type" || strings.HasPrefix(l, "google") || strings.HasPrefix(l, "gcm") {
			return fmt.Sprintf("reserved data key %q", k)
		}
	}
	if m.Data != nil && len(m.Data) == 0 {
		return `empty "data" object; omit it`
	}
	if a := m.Android; a != nil {
		if a.Priority != "" && a.Priority != "normal" && a.Priority != "high" {
			return fmt.Sprintf("android.priority %q", a.Priority)
		}
		if a.TTL != "" {
			sm := ttlPattern.FindStringSubmatch(a.TTL)
			if sm == nil {
				return fmt.Sprintf("android.ttl %q is not a duration like \"3.5s\"", a.TTL)
			}
			secs, _ := strconv.ParseInt(sm[1], 10, 64)
			if secs > 2419200 || secs == 2419200 && sm[2] != "" {
				return fmt.Sprintf("android.ttl %q is over 4 weeks", a.TTL)
			}
			if secs == 0 && strings.Trim(sm[2], ".0") == "" {
				return `android.ttl "0s": now or never`
			}
		}
		if n := a.Notification; n != nil && *n == (fakeAndroidNotification{}) {
			return "empty android.notification; omit it"
		}
	}
	if a := m.APNs; a != nil {
		for k, v := range a.Headers {
			switch k {
			case "apns-expiration":
				if _, err := strconv.ParseInt(v, 10, 64); err != nil {
					return fmt.Sprintf("apns-expiration %q is not UNIX seconds", v)
				}
			case "apns-priority":
				if v != "10" && v != "5" && v != "1" {
					return fmt.Sprintf("apns-priority %q", v)
				}
			case "apns-collapse-id":
				if v == "" || len(v) > 64 {
					return fmt.Sprintf("apns-collapse-id of %d bytes", len(v))
				}
			case "apns-push-type", "apns-topic", "apns-id":
			default:
				return fmt.Sprintf("unknown APNs header %q", k)
			}
		}
		if p := a.Payload; p != nil && (p.Aps == nil || p.Aps.Badge == nil && p.Aps.Sound == "" && p.Aps.Alert == nil) {
			return "empty apns.payload; omit it"
		}
	}
	// The 4096-byte limit on notification + data, measured on their compact
	// JSON.
	var parts struct {
		Message struct {
			Notification json.RawMessage `json:"notification"`
			Data         json.RawMessage `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(body, &parts); err != nil {
		return err.Error()
	}
	size := 0
	for _, raw := range []json.RawMessage{parts.Message.Notification, parts.Message.Data} {
		if len(raw) > 0 {
			var buf bytes.Buffer
			if err := json.Compact(&buf, raw); err != nil {
				return err.Error()
			}
			size += buf.Len()
		}
	}
	if size > 4096 {
		return fmt.Sprintf("notification + data is %d bytes, over 4096", size)
	}
	return ""
}

// googleError renders Google's error shape; fcmCode "" sends no FcmError
// detail.
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

func writeGoogleError(w http.ResponseWriter, code int, status, message, fcmCode string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	io.WriteString(w, googleError(code, status, message, fcmCode))
}

// testWriter writes to a test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
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
