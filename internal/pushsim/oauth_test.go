package pushsim

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

func TestOAuthRejects(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	set := func(k string, v any) func(h, c map[string]any) {
		return func(h, c map[string]any) { c[k] = v }
	}
	now := e.now()
	tests := []struct {
		name      string
		form      url.Values // replaces the form when set
		edit      func(header, claims map[string]any)
		wantError string // "" for success
	}{
		{name: "good"},
		{name: "cloud-platform scope", edit: set("scope", "https://www.googleapis.com/auth/cloud-platform")},
		{name: "several scopes", edit: set("scope", "openid https://www.googleapis.com/auth/firebase.messaging")},
		{name: "no grant type", form: url.Values{"assertion": {"x"}}, wantError: "invalid_request"},
		{name: "other grant type", form: url.Values{"grant_type": {"client_credentials"}}, wantError: "unsupported_grant_type"},
		{name: "no assertion", form: url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}}, wantError: "invalid_request"},
		{name: "garbage assertion", form: url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {"abc"}}, wantError: "invalid_grant"},
		{name: "wrong kid", edit: func(h, c map[string]any) { h["kid"] = "0123" }, wantError: "invalid_grant"},
		{name: "other key", edit: func(h, c map[string]any) { h["_key"] = otherKey }, wantError: "invalid_grant"},
		{name: "ES256 header", edit: func(h, c map[string]any) { h["alg"] = "ES256" }, wantError: "invalid_grant"},
		{name: "wrong issuer", edit: set("iss", "mallory@evil.iam.gserviceaccount.com"), wantError: "invalid_grant"},
		{name: "Google's audience", edit: set("aud", "https://oauth2.googleapis.com/token"), wantError: "invalid_grant"},
		{name: "no scope", edit: func(h, c map[string]any) { delete(c, "scope") }, wantError: "invalid_scope"},
		{name: "other scope", edit: set("scope", "https://www.googleapis.com/auth/userinfo.email"), wantError: "invalid_scope"},
		{name: "iat in the future", edit: func(h, c map[string]any) {
			c["iat"] = now.Add(5 * time.Minute).Unix()
			c["exp"] = now.Add(65 * time.Minute).Unix()
		}, wantError: "invalid_grant"},
		{name: "expired", edit: func(h, c map[string]any) {
			c["iat"] = now.Add(-2 * time.Hour).Unix()
			c["exp"] = now.Add(-time.Hour).Unix()
		}, wantError: "invalid_grant"},
		{name: "lives over an hour", edit: set("exp", now.Add(time.Hour+time.Second).Unix()), wantError: "invalid_grant"},
		{name: "no exp", edit: func(h, c map[string]any) { delete(c, "exp") }, wantError: "invalid_grant"},
	}
	rejected := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			var r response
			if tt.form != nil {
				r = e.postForm(tt.form)
			} else {
				r = e.postToken(e.assertion(tt.edit))
			}
			var b struct {
				AccessToken string `json:"access_token"`
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if err := json.Unmarshal(r.body, &b); err != nil {
				t.Fatalf("body %q: %v", r.body, err)
			}
			if tt.wantError == "" {
				if r.status != 200 || b.AccessToken == "" {
					t.Fatalf("got %d %s, want a token", r.status, r.body)
				}
				if got, _ := e.sendFCM(b.AccessToken, fcmToken(fcmDevToken)); got.status != 200 {
					t.Errorf("FCM with the issued token: %d %s", got.status, got.body)
				}
				return
			}
			rejected++
			if r.status != 400 || b.Error != tt.wantError || b.Description == "" {
				t.Errorf("got %d %s, want 400 %s with a description", r.status, r.body, tt.wantError)
			}
		})
	}
	st := e.s.Stats().OAuth
	if st.TokenRequests != len(tests) || st.Rejected != rejected || st.TokensIssued != len(tests)-rejected {
		t.Errorf("oauth stats %+v, want %d requests, %d rejected", st, len(tests), rejected)
	}
}

func TestOAuthRejectServiceAccount(t *testing.T) {
	t.Parallel()
	e := start(t, Options{Faults: Faults{RejectServiceAccount: true}})
	r := e.postToken(e.assertion(nil))
	var b struct{ Error string }
	json.Unmarshal(r.body, &b)
	if r.status != 400 || b.Error != "invalid_grant" {
		t.Fatalf("got %d %s, want 400 invalid_grant", r.status, r.body)
	}
	e.s.SetFaults(Faults{})
	e.accessToken() // fails the test unless a token is issued
}

// TestOAuthGoogleClient drives the endpoint with the client pushd uses:
// golang.org/x/oauth2/google reading service-account.json.
func TestOAuthGoogleClient(t *testing.T) {
	t.Parallel()
	// The real client signs with the wall clock.
	e := start(t, Options{Now: time.Now})
	key, err := os.ReadFile(e.s.Files().ServiceAccountFile)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := google.JWTConfigFromJSON(key, "https://www.googleapis.com/auth/firebase.messaging")
	if err != nil {
		t.Fatal(err)
	}
	if conf.TokenURL != e.s.URL()+"/token" {
		t.Fatalf("token_uri %q, want %q", conf.TokenURL, e.s.URL()+"/token")
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, e.client)
	ts := conf.TokenSource(ctx)
	tok, err := ts.Token()
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	if !tok.Valid() || tok.TokenType != "Bearer" || time.Until(tok.Expiry) < 50*time.Minute {
		t.Fatalf("token %+v, want a bearer token valid about an hour", tok)
	}

	hc := &http.Client{Transport: &oauth2.Transport{Source: ts, Base: e.client.Transport}}
	for range 3 {
		resp, err := hc.Do(e.fcmRequest(e.s.Files().ProjectID, "", fcmToken(fcmDevToken)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("FCM through oauth2.Transport: %d", resp.StatusCode)
		}
	}
	if st := e.s.Stats(); st.OAuth.TokensIssued != 1 || st.FCM.Delivered != 3 {
		t.Errorf("stats %+v, want 1 token issued (the client caches it) and 3 delivered", st)
	}
}
