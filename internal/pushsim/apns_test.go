package pushsim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const devToken = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"

var lowerUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestAPNsDelivers(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})

	req := e.apnsRequest(devToken, alertBody)
	req.Header.Set("apns-id", "123e4567-e89b-12d3-a456-426614174000")
	req.Header.Set("apns-expiration", "0")
	req.Header.Set("apns-collapse-id", "news")
	r := e.do(req)
	if r.status != http.StatusOK || len(r.body) != 0 {
		t.Fatalf("got %d %q, want 200 and an empty body", r.status, r.body)
	}
	if got := r.header.Get("apns-id"); got != "123e4567-e89b-12d3-a456-426614174000" {
		t.Errorf("apns-id %q, want the request's echoed", got)
	}

	r = e.pushAPNs(devToken)
	if r.status != http.StatusOK {
		t.Fatalf("second push: %d %s", r.status, r.body)
	}
	if got := r.header.Get("apns-id"); !lowerUUID.MatchString(got) {
		t.Errorf("generated apns-id %q, want a lowercase v4 UUID", got)
	}

	ds := e.s.Deliveries()
	if len(ds) != 1 {
		t.Fatalf("deliveries %+v, want one record", ds)
	}
	d := ds[0]
	if d.Token != devToken || d.Provider != "apns" || d.Count != 2 {
		t.Errorf("delivery %+v, want token %s, apns, count 2", d, devToken)
	}
	if d.Topic != testBundle || d.PushType != "alert" || d.Priority != "10" || string(d.Payload) != alertBody {
		t.Errorf("delivery %+v: want the second request's headers and body", d)
	}
	if d.Expiration != "" || d.CollapseID != "" {
		t.Errorf("delivery keeps expiration %q, collapse id %q from the first push; want the last push's (none)", d.Expiration, d.CollapseID)
	}
	st := e.s.Stats()
	if st.APNs.Requests != 2 || st.APNs.Delivered != 2 || st.APNs.ByStatus["200"] != 2 {
		t.Errorf("stats %+v, want 2 requests, 2 delivered, 2×200", st.APNs)
	}
	if st.Connections != 1 {
		t.Errorf("connections %d, want 1: the client reuses its connection", st.Connections)
	}
}

func TestAPNsRejects(t *testing.T) {
	t.Parallel()
	e := start(t, Options{BundleIDs: []string{testBundle, "com.example.other"}})
	big := `{"aps":{"alert":"` + strings.Repeat("x", 4100) + `"}}`
	voipOK := `{"aps":{},"x":"` + strings.Repeat("x", 5000) + `"}`
	voipBig := `{"aps":{},"x":"` + strings.Repeat("x", 5110) + `"}`

	tests := []struct {
		name       string
		path       string // default /3/device/<devToken>
		method     string
		body       string // default alertBody
		edit       func(h http.Header)
		wantStatus int
		wantReason string
	}{
		{name: "good", wantStatus: 200},
		{name: "bad path", path: "/3/devices/" + devToken, wantStatus: 404, wantReason: "BadPath"},
		{name: "root path", path: "/", wantStatus: 404, wantReason: "BadPath"},
		{name: "GET", method: http.MethodGet, body: "-", wantStatus: 405, wantReason: "MethodNotAllowed"},
		{name: "no authorization", edit: func(h http.Header) { h.Del("authorization") }, wantStatus: 403, wantReason: "MissingProviderToken"},
		{name: "duplicate topic", edit: func(h http.Header) { h.Add("apns-topic", testBundle) }, wantStatus: 400, wantReason: "DuplicateHeaders"},
		{name: "bad apns-id", edit: func(h http.Header) { h.Set("apns-id", "not-a-uuid") }, wantStatus: 400, wantReason: "BadMessageId"},
		{name: "no device token", path: "/3/device/", wantStatus: 400, wantReason: "MissingDeviceToken"},
		{name: "odd-length token", path: "/3/device/abc", wantStatus: 400, wantReason: "BadDeviceToken"},
		{name: "non-hex token", path: "/3/device/zz", wantStatus: 400, wantReason: "BadDeviceToken"},
		{name: "no topic", edit: func(h http.Header) { h.Del("apns-topic") }, wantStatus: 400, wantReason: "MissingTopic"},
		{name: "no push type", edit: func(h http.Header) { h.Del("apns-push-type") }, wantStatus: 400, wantReason: "InvalidPushType"},
		{name: "unknown push type", edit: func(h http.Header) { h.Set("apns-push-type", "banner") }, wantStatus: 400, wantReason: "InvalidPushType"},
		{name: "malformed topic", edit: func(h http.Header) { h.Set("apns-topic", "not a topic") }, wantStatus: 400, wantReason: "BadTopic"},
		{name: "foreign topic", edit: func(h http.Header) { h.Set("apns-topic", "com.example.stranger") }, wantStatus: 400, wantReason: "TopicDisallowed"},
		{name: "second bundle", edit: func(h http.Header) { h.Set("apns-topic", "com.example.other") }, wantStatus: 200},
		{name: "voip on the bare bundle id", body: `{"aps":{}}`, edit: func(h http.Header) { h.Set("apns-push-type", "voip") }, wantStatus: 400, wantReason: "TopicDisallowed"},
		{name: "alert on the voip topic", edit: func(h http.Header) { h.Set("apns-topic", testBundle+".voip") }, wantStatus: 400, wantReason: "TopicDisallowed"},
		{name: "voip topic", body: `{"aps":{}}`, edit: voip, wantStatus: 200},
		{name: "live activity topic", edit: func(h http.Header) {
			h.Set("apns-push-type", "liveactivity")
			h.Set("apns-topic", testBundle+".push-type.liveactivity")
		}, wantStatus: 200},
		{name: "complication topic", edit: func(h http.Header) {
			h.Set("apns-push-type", "complication")
			h.Set("apns-topic", testBundle+".complication")
		}, wantStatus: 200},
		{name: "priority 7", edit: func(h http.Header) { h.Set("apns-priority", "7") }, wantStatus: 400, wantReason: "BadPriority"},
		{name: "background at 10", body: `{"aps":{"content-available":1}}`, edit: func(h http.Header) { h.Set("apns-push-type", "background") }, wantStatus: 400, wantReason: "BadPriority"},
		{name: "background at 5", body: `{"aps":{"content-available":1}}`, edit: func(h http.Header) {
			h.Set("apns-push-type", "background")
			h.Set("apns-priority", "5")
		}, wantStatus: 200},
		{name: "no priority", edit: func(h http.Header) { h.Del("apns-priority") }, wantStatus: 200},
		{name: "expiration word", edit: func(h http.Header) { h.Set("apns-expiration", "tomorrow") }, wantStatus: 400, wantReason: "BadExpirationDate"},
		{name: "negative expiration", edit: func(h http.Header) { h.Set("apns-expiration", "-1") }, wantStatus: 400, wantReason: "BadExpirationDate"},
		{name: "empty expiration", edit: func(h http.Header) { h.Set("apns-expiration", "") }, wantStatus: 400, wantReason: "BadExpirationDate"},
		{name: "expiration 0", edit: func(h http.Header) { h.Set("apns-expiration", "0") }, wantStatus: 200},
		{name: "collapse id 65 bytes", edit: func(h http.Header) { h.Set("apns-collapse-id", strings.Repeat("c", 65)) }, wantStatus: 400, wantReason: "BadCollapseId"},
		{name: "collapse id 64 bytes", edit: func(h http.Header) { h.Set("apns-collapse-id", strings.Repeat("c", 64)) }, wantStatus: 200},
		{name: "empty body", body: "-", wantStatus: 400, wantReason: "PayloadEmpty"},
		{name: "alert over 4096", body: big, wantStatus: 413, wantReason: "PayloadTooLarge"},
		{name: "voip 5000", body: voipOK, edit: voip, wantStatus: 200},
		{name: "voip over 5120", body: voipBig, edit: voip, wantStatus: 413, wantReason: "PayloadTooLarge"},
		{name: "array body", body: `[]`, wantStatus: 400, wantReason: "BadPayload"},
		{name: "no aps", body: `{"alert":"x"}`, wantStatus: 400, wantReason: "BadPayload"},
		{name: "aps not a dictionary", body: `{"aps":"x"}`, wantStatus: 400, wantReason: "BadPayload"},
		{name: "not JSON", body: `{"aps":{}`, wantStatus: 400, wantReason: "BadPayload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			body := tt.body
			switch body {
			case "":
				body = alertBody
			case "-":
				body = ""
			}
			req := e.apnsRequest(devToken, body)
			if tt.path != "" {
				req.URL.Path = tt.path
			}
			if tt.method != "" {
				req.Method = tt.method
			}
			if tt.edit != nil {
				tt.edit(req.Header)
			}
			r := e.do(req)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d (%s), want %d", r.status, r.body, tt.wantStatus)
			}
			if !lowerUUID.MatchString(r.header.Get("apns-id")) {
				t.Errorf("apns-id %q, want a generated lowercase UUID", r.header.Get("apns-id"))
			}
			if tt.wantStatus == 200 {
				if len(r.body) != 0 {
					t.Errorf("body %q, want none", r.body)
				}
				return
			}
			if got := r.reason(t); got != tt.wantReason {
				t.Errorf("reason %q, want %q", got, tt.wantReason)
			}
			if r.header.Get("Retry-After") != "" {
				t.Errorf("Retry-After %q: APNs sends none", r.header.Get("Retry-After"))
			}
		})
	}
	if st := e.s.Stats().APNs; st.ByReason["BadPriority"] != 2 || st.Requests != len(tests) {
		t.Errorf("stats %+v: want %d requests, BadPriority counted twice", st, len(tests))
	}
}

func voip(h http.Header) {
	h.Set("apns-push-type", "voip")
	h.Set("apns-topic", testBundle+".voip")
}

func TestAPNsProviderTokens(t *testing.T) {
	t.Parallel()
	e := start(t, Options{TeamID: "TEAM123456", KeyID: "ABCDE12345"})
	now := e.now()
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"iss": "TEAM123456", "iat": now.Unix()}
	header := map[string]string{"alg": "ES256", "kid": "ABCDE12345"}

	tests := []struct {
		name       string
		auth       string
		wantStatus int
		wantReason string
	}{
		{"valid", "bearer " + e.jwt, 200, ""},
		{"scheme in capitals", "Bearer " + e.jwt, 200, ""},
		{"basic scheme", "basic " + e.jwt, 403, "InvalidProviderToken"},
		{"garbage", "bearer abc", 403, "InvalidProviderToken"},
		{"wrong kid", "bearer " + e.signAPNs("KEY0000009", "TEAM123456", now), 403, "InvalidProviderToken"},
		{"wrong team", "bearer " + e.signAPNs("ABCDE12345", "TEAM999999", now), 403, "InvalidProviderToken"},
		{"other key", "bearer " + signES256(t, otherKey, header, claims), 403, "InvalidProviderToken"},
		{"HS256", "bearer " + hs256Token(t, claims), 403, "InvalidProviderToken"},
		{"iat 2 minutes ahead", "bearer " + e.signAPNs("ABCDE12345", "TEAM123456", now.Add(2*time.Minute)), 403, "InvalidProviderToken"},
		{"iat 61 minutes old", "bearer " + e.signAPNs("ABCDE12345", "TEAM123456", now.Add(-61*time.Minute)), 403, "ExpiredProviderToken"},
		{"no iat", "bearer " + signES256(t, e.apns, header, map[string]any{"iss": "TEAM123456"}), 403, "ExpiredProviderToken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			req := e.apnsRequest(devToken, alertBody)
			req.Header.Set("authorization", tt.auth)
			r := e.do(req)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d (%s), want %d", r.status, r.body, tt.wantStatus)
			}
			if tt.wantReason != "" {
				if got := r.reason(t); got != tt.wantReason {
					t.Errorf("reason %q, want %q", got, tt.wantReason)
				}
			}
		})
	}

	// The valid token ages out after an hour.
	e.clock.Advance(61 * time.Minute)
	r := e.pushAPNs(devToken)
	if r.status != 403 || r.reason(t) != "ExpiredProviderToken" {
		t.Errorf("after 61 minutes: %d %s, want 403 ExpiredProviderToken", r.status, r.body)
	}
}

// hs256Token is a token with a symmetric algorithm APNs does not accept.
func hs256Token(t *testing.T, claims any) string {
	return b64(mustJSON(t, map[string]string{"alg": "HS256", "kid": "ABCDE12345"})) + "." +
		b64(mustJSON(t, claims)) + "." + b64(make([]byte, 32))
}

func TestAPNsVerifiesEachTokenOnce(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			resp, err := e.client.Do(e.apnsRequest(devToken, alertBody))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	if j := e.s.Stats().APNsJWT; j.DistinctTokens != 1 || j.Verified != 1 {
		t.Errorf("apns_jwt %+v, want 1 distinct token verified once", j)
	}
}

func TestAPNsTokenChurn(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	ids := e.s.Files()
	push := func(jwt string) response {
		req := e.apnsRequest(devToken, alertBody)
		req.Header.Set("authorization", "bearer "+jwt)
		return e.do(req)
	}
	var tokens []string
	for i := range 3 {
		e.clock.Advance(time.Second) // distinct iat, so distinct tokens
		tok := e.signAPNs(ids.KeyID, ids.TeamID, e.now())
		tokens = append(tokens, tok)
		if r := push(tok); r.status != 200 {
			t.Fatalf("token %d: %d %s, want 200", i+1, r.status, r.body)
		}
	}
	e.clock.Advance(time.Second)
	fourth := e.signAPNs(ids.KeyID, ids.TeamID, e.now())
	r := push(fourth)
	if r.status != 429 || r.reason(t) != "TooManyProviderTokenUpdates" {
		t.Fatalf("fourth token within 20 minutes: %d %s, want 429 TooManyProviderTokenUpdates", r.status, r.body)
	}
	if r := push(tokens[0]); r.status != 200 {
		t.Errorf("first token after the churn: %d %s, want it still accepted", r.status, r.body)
	}
	if j := e.s.Stats().APNsJWT; j.DistinctTokens != 4 || j.Verified != 4 {
		t.Errorf("apns_jwt %+v, want 4 distinct, 4 verified", j)
	}

	// A client that refreshes every 20 minutes is fine.
	e.clock.Advance(20 * time.Minute)
	if r := push(e.signAPNs(ids.KeyID, ids.TeamID, e.now())); r.status != 200 {
		t.Errorf("new token 20 minutes later: %d %s, want 200", r.status, r.body)
	}
}

func TestAPNsSignedPerRequest(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	ids := e.s.Files()
	var statuses []int
	for range 6 {
		e.clock.Advance(time.Second)
		req := e.apnsRequest(devToken, alertBody)
		req.Header.Set("authorization", "bearer "+e.signAPNs(ids.KeyID, ids.TeamID, e.now()))
		statuses = append(statuses, e.do(req).status)
	}
	want := []int{200, 200, 200, 429, 429, 429}
	for i := range want {
		if statuses[i] != want[i] {
			t.Fatalf("statuses %v, want %v", statuses, want)
		}
	}
	e.s.Reset()
	if r := e.pushAPNs(devToken); r.status != 200 {
		t.Errorf("after Reset: %d %s, want the churn window cleared", r.status, r.body)
	}
}

func TestAPNsDeadTimestamp(t *testing.T) {
	t.Parallel()
	e := start(t, Options{DeadSince: 90 * time.Minute})
	r := e.pushAPNs("dead" + devToken[4:])
	var b struct {
		Reason    string `json:"reason"`
		Timestamp int64  `json:"timestamp"`
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatal(err)
	}
	want := e.now().Add(-90 * time.Minute).UnixMilli()
	if r.status != 410 || b.Reason != "Unregistered" || b.Timestamp != want {
		t.Errorf("got %d %s, want 410 Unregistered with timestamp %d (ms)", r.status, r.body, want)
	}
}
