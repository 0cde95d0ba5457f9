package pushsim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The Google OAuth2 token endpoint, for the JWT-bearer grant that
// service-account keys use.

const (
	jwtBearerGrant       = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	scopeMessaging       = "https://www.googleapis.com/auth/firebase.messaging"
	scopeCloudPlatform   = "https://www.googleapis.com/auth/cloud-platform"
	assertionMaxLifetime = time.Hour
	accessTokenPrefix    = "ya29.pushsim-"
	// accessTokensMax bounds the issued-token table; expired ones are
	// pruned when it fills.
	accessTokensMax = 10000
)

// Google's answers.
const (
	msgBadTimes = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."
	msgBadSig   = "Invalid JWT Signature."
)

// oauthError is an RFC 6749 error answer.
type oauthError struct {
	status      int
	code        string // "error"
	description string // "error_description"
}

func invalidGrant(desc string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_grant", desc}
}

// accessTokens are the tokens the endpoint issued, with their expiry.
type accessTokens struct {
	mu sync.RWMutex
	m  map[string]time.Time
}

func (a *accessTokens) init() { a.m = make(map[string]time.Time) }

func (a *accessTokens) issue(ttl time.Duration, now time.Time) string {
	var b [32]byte
	rand.Read(b[:])
	tok := accessTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.m) >= accessTokensMax {
		for k, exp := range a.m {
			if !now.Before(exp) {
				delete(a.m, k)
			}
		}
	}
	a.m[tok] = now.Add(ttl)
	return tok
}

// revokeAll forgets every issued token.
func (a *accessTokens) revokeAll() {
	a.mu.Lock()
	clear(a.m)
	a.mu.Unlock()
}

// valid reports whether an Authorization header carries a live token.
func (a *accessTokens) valid(auth string, now time.Time) bool {
	const scheme = "Bearer "
	if len(auth) <= len(scheme) || !strings.EqualFold(auth[:len(scheme)], scheme) {
		return false
	}
	a.mu.RLock()
	exp, ok := a.m[auth[len(scheme):]]
	a.mu.RUnlock()
	return ok && now.Before(exp)
}

// oauthClaims are the claims of a service-account assertion.
type oauthClaims struct {
	Iss   string `json:"iss"`
	Scope string `json:"scope"`
	Aud   string `json:"aud"`
	Iat   *int64 `json:"iat"`
	Exp   *int64 `json:"exp"`
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, f *faultState) {
	s.stats.tokenReqs.Add(1)
	tok, oerr := s.issueToken(r, f)
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.log.Debug("token request", "issued", oerr == nil)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
	var body []byte
	status := http.StatusOK
	if oerr != nil {
		s.stats.tokensRej.Add(1)
		status = oerr.status
		body, _ = json.Marshal(map[string]string{"error": oerr.code, "error_description": oerr.description})
	} else {
		s.stats.tokensIssued.Add(1)
		body = []byte(`{"access_token":"` + tok + `","expires_in":` +
			strconv.Itoa(int(s.opts.AccessTokenTTL/time.Second)) + `,"token_type":"Bearer"}`)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// issueToken checks a token request and returns a new access token.
func (s *Server) issueToken(r *http.Request, f *faultState) (string, *oauthError) {
	if r.Method != http.MethodPost {
		return "", &oauthError{http.StatusMethodNotAllowed, "invalid_request", "Method " + r.Method + " is not allowed: use POST."}
	}
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/x-www-form-urlencoded" {
		return "", &oauthError{http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded."}
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return "", &oauthError{http.StatusBadRequest, "invalid_request", "Could not read the form body."}
	}
	switch gt := r.PostForm.Get("grant_type"); gt {
	case jwtBearerGrant:
	case "":
		return "", &oauthError{http.StatusBadRequest, "invalid_request", "Missing required parameter: grant_type"}
	default:
		return "", &oauthError{http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: " + gt}
	}
	if f.TokenEndpointUnavailable {
		return "", &oauthError{http.StatusServiceUnavailable, "backend_error", "Backend error, please retry."}
	}
	if f.RejectServiceAccount {
		return "", invalidGrant("Invalid grant: account not found")
	}
	assertion := r.PostForm.Get("assertion")
	if assertion == "" {
		return "", &oauthError{http.StatusBadRequest, "invalid_request", "Missing required parameter: assertion"}
	}
	t, err := parseJWT(assertion)
	if err != nil {
		return "", invalidGrant("Invalid JWT: " + err.Error())
	}
	if t.header.Kid != s.mat.sa.PrivateKeyID || !t.verifyRS256(s.mat.saKey) {
		return "", invalidGrant(msgBadSig)
	}
	var c oauthClaims
	if err := json.Unmarshal(t.claims, &c); err != nil {
		return "", invalidGrant("Invalid JWT: claims are not a JSON object.")
	}
	if c.Iss != s.files.ClientEmail {
		return "", invalidGrant("Invalid email or User ID")
	}
	if c.Aud != s.files.TokenURI {
		return "", invalidGrant("Invalid JWT: Failed audience check. The expected audience is " + s.files.TokenURI + ".")
	}
	scopes := strings.Fields(c.Scope)
	if !slices.Contains(scopes, scopeMessaging) && !slices.Contains(scopes, scopeCloudPlatform) {
		return "", &oauthError{http.StatusBadRequest, "invalid_scope", "Invalid OAuth scope or ID token audience provided."}
	}
	now := s.now()
	if c.Iat == nil || c.Exp == nil {
		return "", invalidGrant(msgBadTimes)
	}
	iat, exp := time.Unix(*c.Iat, 0), time.Unix(*c.Exp, 0)
	if iat.After(now.Add(clockSkew)) || !exp.After(now) || !exp.After(iat) || exp.Sub(iat) > assertionMaxLifetime {
		return "", invalidGrant(msgBadTimes)
	}
	return s.oauth.issue(s.opts.AccessTokenTTL, now), nil
}

// RevokeAccessTokens makes every access token issued so far unacceptable
// to FCM, which answers 401 UNAUTHENTICATED, as Google does when it
// revokes tokens before their expiry. Tokens issued later work.
func (s *Server) RevokeAccessTokens() { s.oauth.revokeAll() }
