package pushsim

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Tests of the checks and the scripting the providers' client tests rely
// on (see "Checks the client tests rely on" in the package doc).

func TestAPNsStricterChecks(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	now := e.now()
	tests := []struct {
		name       string
		body       string
		edit       func(h http.Header)
		wantStatus int
		wantReason string
	}{
		{"expiration in an hour", "", func(h http.Header) { h.Set("apns-expiration", strconv.FormatInt(now.Add(time.Hour).Unix(), 10)) }, 200, ""},
		{"expiration within the skew", "", func(h http.Header) { h.Set("apns-expiration", strconv.FormatInt(now.Add(-30*time.Second).Unix(), 10)) }, 200, ""},
		{"relative expiration", "", func(h http.Header) { h.Set("apns-expiration", "3600") }, 400, "BadExpirationDate"},
		{"expiration passed", "", func(h http.Header) { h.Set("apns-expiration", strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)) }, 400, "BadExpirationDate"},
		{"expiration in milliseconds", "", func(h http.Header) {
			h.Set("apns-expiration", strconv.FormatInt(now.Add(time.Hour).UnixMilli(), 10))
		}, 400, "BadExpirationDate"},
		{"empty collapse id", "", func(h http.Header) { h.Set("apns-collapse-id", "") }, 400, "BadCollapseId"},
		{"badge number", `{"aps":{"badge":3,"sound":{"critical":1,"name":"x"},"alert":"hi","relevance-score":0.5}}`, nil, 200, ""},
		{"badge string", `{"aps":{"badge":"3"}}`, nil, 400, "BadPayload"},
		{"negative badge", `{"aps":{"badge":-1}}`, nil, 400, "BadPayload"},
		{"sound number", `{"aps":{"sound":1}}`, nil, 400, "BadPayload"},
		{"alert array", `{"aps":{"alert":["x"]}}`, nil, 400, "BadPayload"},
		{"content-available true", `{"aps":{"content-available":true}}`, nil, 400, "BadPayload"},
		{"undocumented aps key", `{"aps":{"alert":"x","my-key":[1]}}`, nil, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			body := tt.body
			if body == "" {
				body = alertBody
			}
			req := e.apnsRequest(devToken, body)
			if tt.edit != nil {
				tt.edit(req.Header)
			}
			r := e.do(req)
			if r.status != tt.wantStatus || tt.wantReason != "" && r.reason(t) != tt.wantReason {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tt.wantStatus, tt.wantReason)
			}
		})
	}
}

func TestAPNsProviderTokenWithExp(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	f := e.s.Files()
	jwt := signES256(t, e.apns, map[string]string{"alg": "ES256", "kid": f.KeyID},
		map[string]any{"iss": f.TeamID, "iat": e.now().Unix(), "exp": e.now().Add(time.Hour).Unix()})
	req := e.apnsRequest(devToken, alertBody)
	req.Header.Set("authorization", "bearer "+jwt)
	if r := e.do(req); r.status != 403 || r.reason(t) != "InvalidProviderToken" {
		t.Fatalf("got %d %s, want 403 InvalidProviderToken", r.status, r.body)
	}
}

func TestExpireProviderTokens(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	if r := e.pushAPNs(devToken); r.status != 200 {
		t.Fatalf("before: %d %s", r.status, r.body)
	}
	e.s.ExpireProviderTokens()
	for range 2 {
		if r := e.pushAPNs(devToken); r.status != 403 || r.reason(t) != "ExpiredProviderToken" {
			t.Fatalf("old token: %d %s, want 403 ExpiredProviderToken", r.status, r.body)
		}
	}
	e.jwt = e.signAPNs(e.s.Files().KeyID, e.s.Files().TeamID, e.now())
	if r := e.pushAPNs(devToken); r.status != 200 {
		t.Fatalf("new token: %d %s, want 200", r.status, r.body)
	}
}

func TestScriptAPNs(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	e.s.Script(ProviderAPNs, devToken, Answer{Status: 429, Header: http.Header{"Retry-After": {"120"}}, Body: `{"reason":"TooManyRequests"}`})

	r := e.pushAPNs(devToken)
	if r.status != 429 || r.header.Get("Retry-After") != "120" || string(r.body) != `{"reason":"TooManyRequests"}` {
		t.Fatalf("got %d %v %s, want the scripted answer", r.status, r.header, r.body)
	}
	if !lowerUUID.MatchString(r.header.Get("apns-id")) {
		t.Errorf("apns-id %q, want one generated", r.header.Get("apns-id"))
	}
	// A request the simulator rejects is not scripted.
	req := e.apnsRequest(devToken, alertBody)
	req.Header.Del("apns-topic")
	if r := e.do(req); r.status != 400 || r.reason(t) != "MissingTopic" {
		t.Fatalf("invalid request: %d %s, want 400 MissingTopic", r.status, r.body)
	}
	// Other tokens are not scripted.
	if r := e.pushAPNs(devToken[:60] + "0000"); r.status != 200 {
		t.Fatalf("other token: %d %s", r.status, r.body)
	}

	e.s.Script(ProviderAPNs, devToken, Answer{Reset: true})
	resp, err := e.client.Do(e.apnsRequest(devToken, alertBody))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("reset stream: got %d, want an error", resp.StatusCode)
	}

	st := e.s.Stats().APNs
	if st.Scripted != 2 || st.ByStatus["429"] != 1 || st.ByReason["MissingTopic"] != 1 || len(st.ByReason) != 1 || st.Delivered != 1 {
		t.Errorf("stats %+v: want 2 scripted, one 429 without a reason, one MissingTopic, one delivery", st)
	}
	e.s.Reset()
	if r := e.pushAPNs(devToken); r.status != 200 {
		t.Fatalf("after Reset: %d %s, want the script gone", r.status, r.body)
	}
}

func TestScriptFCM(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	tok := e.accessToken()
	e.s.Script(ProviderFCM, fcmDevToken, Answer{Status: 502, Header: http.Header{"Content-Type": {"text/html"}}, Body: "<html>Bad Gateway</html>"})
	r := e.do(e.fcmRequest(e.s.Files().ProjectID, tok, fcmToken(fcmDevToken)))
	if r.status != 502 || r.header.Get("Content-Type") != "text/html" || string(r.body) != "<html>Bad Gateway</html>" {
		t.Fatalf("got %d %v %s, want the scripted answer", r.status, r.header, r.body)
	}
	// Still type-checked first.
	r, a := e.sendFCM(tok, `{"message":{"token":"`+fcmDevToken+`","data":{"n":1}}}`)
	if r.status != 400 || a.Error.Status != "INVALID_ARGUMENT" {
		t.Fatalf("bad message: %d %s, want INVALID_ARGUMENT", r.status, r.body)
	}
	if st := e.s.Stats().FCM; st.Scripted != 1 || st.Delivered != 0 {
		t.Errorf("stats %+v: want 1 scripted, none delivered", st)
	}
}

func TestFCMStricterChecks(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	tok := e.accessToken()
	exp := strconv.FormatInt(e.now().Add(time.Hour).Unix(), 10)
	msg := func(extra string) string {
		return `{"message":{"token":"` + fcmDevToken + `","notification":{"title":"Hi"}` + extra + `}}`
	}
	tests := []struct {
		name, body string
		ok         bool
	}{
		{"apns headers", msg(`,"apns":{"headers":{"apns-expiration":"` + exp + `","apns-priority":"10","apns-collapse-id":"c","apns-push-type":"alert"}}`), true},
		{"relative apns-expiration", msg(`,"apns":{"headers":{"apns-expiration":"3600"}}`), false},
		{"apns-priority 7", msg(`,"apns":{"headers":{"apns-priority":"7"}}`), false},
		{"empty apns-collapse-id", msg(`,"apns":{"headers":{"apns-collapse-id":""}}`), false},
		{"65-byte apns-collapse-id", msg(`,"apns":{"headers":{"apns-collapse-id":"` + strings.Repeat("c", 65) + `"}}`), false},
		{"unknown apns header", msg(`,"apns":{"headers":{"apns-expiry":"` + exp + `"}}`), false},
		{"aps badge string", msg(`,"apns":{"payload":{"aps":{"badge":"3"}}}`), false},
		{"aps not a dictionary", msg(`,"apns":{"payload":{"aps":1}}`), false},
		{"payload without aps", msg(`,"apns":{"payload":{"custom":1}}`), true},
		{"reserved key in capitals", msg(`,"data":{"Google.x":"1"}`), false},
		{"empty data key", msg(`,"data":{"":"1"}`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			r, a := e.sendFCM(tok, tt.body)
			if (r.status == 200) != tt.ok || !tt.ok && a.Error.Status != "INVALID_ARGUMENT" {
				t.Fatalf("got %d %s, want ok=%v", r.status, r.body, tt.ok)
			}
			if err := ValidateFCMRequest([]byte(tt.body), e.now()); (err == nil) != tt.ok {
				t.Errorf("ValidateFCMRequest = %v, want ok=%v", err, tt.ok)
			}
		})
	}

	req := e.fcmRequest(e.s.Files().ProjectID, tok, msg(""))
	req.URL.RawQuery = "validate_only=true"
	if r := e.do(req); r.status != 400 {
		t.Errorf("query parameter: %d %s, want 400", r.status, r.body)
	}
}

func TestAccessTokenFaults(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	old := e.accessToken()
	e.s.RevokeAccessTokens()
	if r, _ := e.sendFCM(old, fcmToken(fcmDevToken)); r.status != 401 {
		t.Fatalf("revoked token: %d %s, want 401", r.status, r.body)
	}
	fresh := e.accessToken()
	if r, _ := e.sendFCM(fresh, fcmToken(fcmDevToken)); r.status != 200 {
		t.Fatalf("token issued after the revocation: %d %s, want 200", r.status, r.body)
	}

	e.s.SetFaults(Faults{RejectAccessTokens: true})
	if r, a := e.sendFCM(e.accessToken(), fcmToken(fcmDevToken)); r.status != 401 || a.Error.Status != "UNAUTHENTICATED" {
		t.Fatalf("RejectAccessTokens: %d %s, want 401 UNAUTHENTICATED", r.status, r.body)
	}

	e.s.SetFaults(Faults{TokenEndpointUnavailable: true})
	if r := e.postToken(e.assertion(nil)); r.status != 503 || !strings.Contains(string(r.body), "backend_error") {
		t.Fatalf("TokenEndpointUnavailable: %d %s, want 503 backend_error", r.status, r.body)
	}
}

func TestOAuthExpBeforeIat(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	now := e.now()
	a := e.assertion(func(h, c map[string]any) {
		c["iat"] = now.Add(30 * time.Second).Unix()
		c["exp"] = now.Add(10 * time.Second).Unix()
	})
	if r := e.postToken(a); r.status != 400 || !strings.Contains(string(r.body), "invalid_grant") {
		t.Fatalf("exp before iat: %d %s, want invalid_grant", r.status, r.body)
	}
}

func TestValidateFCMRequestErrors(t *testing.T) {
	t.Parallel()
	for _, body := range []string{``, `[]`, `{"message":{}}`, `{"message":{"token":"x","data":{"a":1}}}`, `{"mesage":{"token":"x"}}`} {
		if err := ValidateFCMRequest([]byte(body), time.Now()); err == nil || errors.Unwrap(err) != nil {
			t.Errorf("ValidateFCMRequest(%q) = %v, want a plain error", body, err)
		}
	}
}
