package pushsim

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// jwt is a parsed, not yet verified, compact JWS.
type jwt struct {
	header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	claims []byte // JSON
	signed string // "header.claims", the signing input
	sig    []byte
}

var errMalformedJWT = errors.New("malformed JWT")

func parseJWT(s string) (*jwt, error) {
	h, rest, ok := strings.Cut(s, ".")
	if !ok {
		return nil, errMalformedJWT
	}
	c, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sig, ".") {
		return nil, errMalformedJWT
	}
	t := &jwt{signed: s[:len(h)+1+len(c)]}
	hb, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return nil, errMalformedJWT
	}
	if err := json.Unmarshal(hb, &t.header); err != nil {
		return nil, errMalformedJWT
	}
	if t.claims, err = base64.RawURLEncoding.DecodeString(c); err != nil {
		return nil, errMalformedJWT
	}
	if t.sig, err = base64.RawURLEncoding.DecodeString(sig); err != nil {
		return nil, errMalformedJWT
	}
	return t, nil
}

// verifyES256 checks a raw r||s P-256 signature, as JWS requires (not ASN.1).
func (t *jwt) verifyES256(pub *ecdsa.PublicKey) bool {
	if t.header.Alg != "ES256" || len(t.sig) != 64 {
		return false
	}
	h := sha256.Sum256([]byte(t.signed))
	r := new(big.Int).SetBytes(t.sig[:32])
	s := new(big.Int).SetBytes(t.sig[32:])
	return ecdsa.Verify(pub, h[:], r, s)
}

// verifyRS256 checks an RSASSA-PKCS1-v1_5 SHA-256 signature.
func (t *jwt) verifyRS256(pub *rsa.PublicKey) bool {
	if t.header.Alg != "RS256" {
		return false
	}
	h := sha256.Sum256([]byte(t.signed))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], t.sig) == nil
}

// APNs provider-token rules.
const (
	providerTokenMaxAge = time.Hour
	clockSkew           = time.Minute
	// More than churnLimit distinct tokens within churnWindow is
	// TooManyProviderTokenUpdates: Apple wants a refresh at most every 20 min.
	churnLimit  = 3
	churnWindow = 20 * time.Minute
	// jwtCacheMax bounds the cache against clients that sign per request.
	jwtCacheMax = 10000
)

// jwtCache remembers the verdict on each distinct APNs bearer string, so
// the signature is checked once per token, not per request.
type jwtCache struct {
	mu     sync.RWMutex
	m      map[string]*providerToken
	recent []time.Time // first sight of each valid token within churnWindow
}

// providerToken is the time-independent verdict on one APNs JWT.
type providerToken struct {
	invalid bool        // malformed, wrong alg, kid or iss, an exp, or bad signature
	iat     time.Time   // issued at
	churn   bool        // arrived as one update too many
	expired atomic.Bool // set by Server.ExpireProviderTokens
}

func (c *jwtCache) init() { c.m = make(map[string]*providerToken) }

func (c *jwtCache) reset() {
	c.mu.Lock()
	c.m = make(map[string]*providerToken)
	c.recent = nil
	c.mu.Unlock()
}

// apnsClaims are the claims APNs reads.
type apnsClaims struct {
	Iss string          `json:"iss"`
	Iat *int64          `json:"iat"`
	Exp json.RawMessage `json:"exp"` // must be absent
}

// providerToken returns the verdict on bearer, verifying it on first sight.
func (s *Server) providerToken(bearer string, now time.Time) *providerToken {
	c := &s.apnsJWT
	c.mu.RLock()
	pt := c.m[bearer]
	c.mu.RUnlock()
	if pt != nil {
		return pt
	}
	pt = s.verifyProviderToken(bearer)

	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[bearer]; old != nil {
		return old // another request verified it meanwhile
	}
	if len(c.m) >= jwtCacheMax {
		c.m = make(map[string]*providerToken)
	}
	c.m[bearer] = pt
	s.stats.jwtDistinct.Add(1)
	if pt.invalid {
		return pt
	}
	s.stats.jwtVerified.Add(1)
	keep := c.recent[:0]
	for _, t := range c.recent {
		if now.Sub(t) < churnWindow {
			keep = append(keep, t)
		}
	}
	c.recent = append(keep, now)
	pt.churn = len(keep) >= churnLimit
	return pt
}

func (s *Server) verifyProviderToken(bearer string) *providerToken {
	bad := &providerToken{invalid: true}
	t, err := parseJWT(bearer)
	if err != nil || t.header.Alg != "ES256" || t.header.Kid != s.opts.KeyID {
		return bad
	}
	var cl apnsClaims
	// Apple's provider tokens carry no exp: their age comes from iat. A
	// token with one was made by a generic JWT helper and is refused.
	if err := json.Unmarshal(t.claims, &cl); err != nil || cl.Iss != s.opts.TeamID || cl.Exp != nil {
		return bad
	}
	if !t.verifyES256(s.mat.apnsKey) {
		return bad
	}
	// A token without iat is treated as issued at the epoch: expired.
	var iat int64
	if cl.Iat != nil {
		iat = *cl.Iat
	}
	return &providerToken{iat: time.Unix(iat, 0)}
}

// ExpireProviderTokens makes every APNs provider token seen so far get 403
// ExpiredProviderToken from now on, as Apple answers once a token is an
// hour old; tokens first seen later are judged as usual. Tests use it to
// age a client's token without moving the clock the client signs with.
func (s *Server) ExpireProviderTokens() {
	c := &s.apnsJWT
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, pt := range c.m {
		pt.expired.Store(true)
	}
}
