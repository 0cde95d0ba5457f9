package apns

import (
	"context"
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

// TokenShare keeps one provider token per (team, key) for every process
// that sends with that key. Apple counts token updates per team and key,
// not per process or connection: two processes that each sign their own,
// or a restart that signs a new one, are two updates, and more than one in
// 20 minutes draws 429 TooManyProviderTokenUpdates. *store.Store is one.
type TokenShare interface {
	// ShareToken returns the stored token of (teamID, keyID) if keep
	// accepts it (by its JWT and when it was issued); otherwise it stores
	// the token mint returns and returns that. It holds a lock meanwhile,
	// so that of several processes renewing at once exactly one mints and
	// the others get its token.
	ShareToken(ctx context.Context, teamID, keyID string, keep func(jwt string, issuedAt time.Time) bool,
		mint func() (jwt string, issuedAt time.Time, err error)) (jwt string, issuedAt time.Time, err error)
}

// shareTimeout bounds one ShareToken call, made on a sender's goroutine.
const shareTimeout = 5 * time.Second

// shareRetry is how long a client that could not reach its TokenShare
// keeps its own token before asking again.
const shareRetry = 30 * time.Second

// providerToken is one signed generation of the provider token. It is
// immutable once published, so requests read it without locking.
type providerToken struct {
	// bearer is the full authorization header value, "bearer <jwt>".
	bearer   string
	signedAt time.Time
	// forced is set when this generation was signed because APNs answered
	// ExpiredProviderToken rather than because it aged out.
	forced bool
	// local is set on a token this process signed while its TokenShare was
	// unreachable: it is offered to the share at the next chance.
	local bool
}

// jwt is the token without the "bearer " prefix.
func (t *providerToken) jwt() string { return t.bearer[len("bearer "):] }

// tokenSource signs the ES256 provider token, or adopts the one its
// TokenShare holds, and shares one generation between all requests and
// connections until it is refresh old.
//
// Reads are lock-free (an atomic pointer). Refreshes take mu and re-check,
// so however many senders notice a stale token at once, exactly one of them
// renews it and the rest reuse the result.
type tokenSource struct {
	teamID, keyID string
	key           *ecdsa.PrivateKey
	refresh       time.Duration
	now           func() time.Time
	logger        *slog.Logger
	// share, when set, is where the token comes from; nil signs locally.
	share TokenShare

	cur    atomic.Pointer[providerToken]
	mu     sync.Mutex // serialises renewals
	signed atomic.Uint64
	// retryShareAt is when (UnixNano) to offer a local token to the share
	// again after the share failed.
	retryShareAt atomic.Int64
	// sharedOK reports the last answer of the share (for status lines).
	sharedOK atomic.Bool
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

// current returns the token to send now, renewing it first if it is
// refresh old (or, after the share failed, when it may be asked again).
func (s *tokenSource) current(now time.Time) (*providerToken, error) {
	if t := s.cur.Load(); s.usable(t, now) {
		return t, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now = s.now()
	// Another sender may have renewed while we waited for the lock.
	t := s.cur.Load()
	if s.usable(t, now) {
		return t, nil
	}
	if s.share == nil {
		return s.signLocked(false)
	}
	return s.shareLocked(t, false, func(_ string, issuedAt time.Time) bool { return now.Sub(issuedAt) < s.refresh })
}

// usable reports whether t may be sent at now without asking anyone.
func (s *tokenSource) usable(t *providerToken, now time.Time) bool {
	return t != nil && now.Sub(t.signedAt) < s.refresh && (!t.local || now.UnixNano() < s.retryShareAt.Load())
}

// shareLocked asks the share for the token, offering mine if it is a young
// local one, or else a freshly signed one, should the stored one not be
// kept. forced says mine was refused as expired: the new one is marked so,
// and mine is never kept. When the share cannot be reached it keeps mine
// while Apple still takes it, else signs one of its own, and offers it to
// the share again after shareRetry. s.mu must be held.
func (s *tokenSource) shareLocked(mine *providerToken, forced bool, keep func(string, time.Time) bool) (*providerToken, error) {
	now := s.now()
	var minted *providerToken
	mint := func() (string, time.Time, error) {
		if !forced && mine != nil && mine.local && now.Sub(mine.signedAt) < s.refresh {
			minted = mine // offered as is: signing another would be one more update
			return mine.jwt(), mine.signedAt, nil
		}
		t, err := s.sign(forced)
		if err != nil {
			return "", time.Time{}, err
		}
		minted = t
		return t.jwt(), t.signedAt, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), shareTimeout)
	jwt, issuedAt, err := s.share.ShareToken(ctx, s.teamID, s.keyID, keep, mint)
	cancel()
	if err == nil {
		s.sharedOK.Store(true)
		t := minted
		if t == nil || t.jwt() != jwt {
			t = &providerToken{bearer: "bearer " + jwt, signedAt: issuedAt}
			s.logger.Info("adopted the shared APNs provider token", "provider", "apns", "key_id", s.keyID,
				"team_id", s.teamID, "age", now.Sub(issuedAt).Round(time.Second))
		} else {
			t = &providerToken{bearer: t.bearer, signedAt: t.signedAt, forced: t.forced}
			if minted != mine {
				s.published(t)
			}
		}
		s.cur.Store(t)
		return t, nil
	}
	if s.sharedOK.Swap(false) || mine == nil || !mine.local {
		s.logger.Warn("cannot reach the database to share the APNs provider token; using a token of this process's own, which Apple counts as a token update",
			"provider", "apns", "key_id", s.keyID, "team_id", s.teamID, "error", err)
	}
	s.retryShareAt.Store(now.Add(shareRetry).UnixNano())
	if !forced && mine != nil && now.Sub(mine.signedAt) < maxTokenRefresh {
		if !mine.local {
			mine = &providerToken{bearer: mine.bearer, signedAt: mine.signedAt, forced: mine.forced, local: true}
			s.cur.Store(mine)
		}
		return mine, nil
	}
	t, err := s.sign(forced)
	if err != nil {
		return nil, err
	}
	t.local = true
	s.published(t)
	s.cur.Store(t)
	return t, nil
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
//
// With a share, the failed token is replaced there too, unless another
// process already did: then its token is adopted.
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
	if s.share != nil {
		stale := failed.jwt()
		t, err := s.shareLocked(failed, true, func(jwt string, _ time.Time) bool { return jwt != stale })
		if err != nil {
			return nil, false, err
		}
		return t, t.jwt() != stale, nil
	}
	t, err := s.signLocked(true)
	if err != nil {
		return nil, false, err
	}
	return t, true, nil
}

// signLocked signs and publishes a new generation. s.mu must be held.
func (s *tokenSource) signLocked(forced bool) (*providerToken, error) {
	t, err := s.sign(forced)
	if err != nil {
		return nil, err
	}
	s.published(t)
	s.cur.Store(t)
	return t, nil
}

// sign signs a generation without publishing it.
func (s *tokenSource) sign(forced bool) (*providerToken, error) {
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
	return &providerToken{bearer: "bearer " + signed, signedAt: now, forced: forced}, nil
}

// published counts and logs a generation this process signed and will send.
func (s *tokenSource) published(t *providerToken) {
	n := s.signed.Add(1)
	s.logger.Info("signed APNs provider token",
		"provider", "apns", "key_id", s.keyID, "team_id", s.teamID,
		"generation", n, "forced", t.forced, "shared", s.share != nil && !t.local)
}
