package apns

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Bounds on how often the provider token may be re-signed. Apple answers
// 429 TooManyProviderTokenUpdates to a token refreshed more often than every
// 20 minutes and 403 ExpiredProviderToken to one older than an hour; 50
// minutes leaves ten minutes for clock skew, as sideshow/apns2 does.
const (
	minTokenRefresh     = 20 * time.Minute
	maxTokenRefresh     = 50 * time.Minute
	defaultTokenRefresh = 40 * time.Minute
)

// providerToken is one signed generation of the provider token. It is
// immutable once published, so requests read it without locking.
type providerToken struct {
	// bearer is the full authorization header value, "bearer <jwt>".
	bearer   string
	signedAt time.Time
	// forced is set when this generation was signed because APNs answered
	// ExpiredProviderToken rather than because it aged out.
	forced bool
}

// tokenSource signs the ES256 provider token and shares one generation
// between all requests and connections until it is refresh old.
//
// Reads are lock-free (an atomic pointer). Refreshes take mu and re-check,
// so however many senders notice a stale token at once, exactly one of them
// signs the next generation and the rest reuse it.
type tokenSource struct {
	teamID, keyID string
	key           *ecdsa.PrivateKey
	refresh       time.Duration
	now           func() time.Time
	logger        *slog.Logger

	cur    atomic.Pointer[providerToken]
	mu     sync.Mutex // serialises signing
	signed atomic.Uint64
}

func checkKey(key *ecdsa.PrivateKey) error {
	if key == nil {
		return errors.New("no signing key")
	}
	if key.Curve != elliptic.P256() {
		return fmt.Errorf("the signing key is on curve %s, APNs needs a P-256 key (the .p8 file from Apple)", key.Curve.Params().Name)
	}
	return nil
}

// current returns the token to send now, signing a new generation first if
// the current one is refresh old.
func (s *tokenSource) current(now time.Time) (*providerToken, error) {
	if t := s.cur.Load(); t != nil && now.Sub(t.signedAt) < s.refresh {
		return t, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Another sender may have refreshed while we waited for the lock.
	if t := s.cur.Load(); t != nil && s.now().Sub(t.signedAt) < s.refresh {
		return t, nil
	}
	return s.signLocked(false)
}

// replace is called after APNs answered ExpiredProviderToken to a request
// that carried failed. It returns the token to retry with, or ok=false when
// a retry would be pointless.
//
// Only the first sender to report a given generation signs a new one; the
// others get that new generation. A generation that was itself signed
// because of ExpiredProviderToken less than minTokenRefresh ago is not
// replaced again: APNs is then rejecting fresh tokens (a wrong clock), and
// re-signing on every failure would earn TooManyProviderTokenUpdates.
func (s *tokenSource) replace(failed *providerToken) (next *providerToken, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.cur.Load()
	if cur != failed {
		return cur, cur != nil, nil
	}
	if cur.forced && s.now().Sub(cur.signedAt) < minTokenRefresh {
		return nil, false, nil
	}
	t, err := s.signLocked(true)
	if err != nil {
		return nil, false, err
	}
	return t, true, nil
}

// signLocked signs and publishes a new generation. s.mu must be held.
func (s *tokenSource) signLocked(forced bool) (*providerToken, error) {
	now := s.now()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": s.teamID,
		"iat": now.Unix(),
	})
	tok.Header["kid"] = s.keyID
	signed, err := tok.SignedString(s.key)
	if err != nil {
		// Never fall back to an empty bearer: APNs would answer every push
		// with MissingProviderToken and the cause would be lost.
		return nil, fmt.Errorf("sign APNs provider token: %w", err)
	}
	t := &providerToken{bearer: "bearer " + signed, signedAt: now, forced: forced}
	s.cur.Store(t)
	n := s.signed.Add(1)
	s.logger.Info("signed APNs provider token",
		"provider", "apns", "key_id", s.keyID, "team_id", s.teamID,
		"generation", n, "forced", forced)
	return t, nil
}
