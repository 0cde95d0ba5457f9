package apns

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// memShare is a TokenShare in memory: one row per key under one lock, as
// the database's row lock gives. It counts mints and can be made to fail.
type memShare struct {
	mu       sync.Mutex
	jwt      string
	issuedAt time.Time
	mints    int
	down     bool
}

var errShareDown = errors.New("database unreachable")

func (m *memShare) ShareToken(_ context.Context, _, _ string, keep func(string, time.Time) bool,
	mint func() (string, time.Time, error)) (string, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return "", time.Time{}, errShareDown
	}
	if m.jwt != "" && keep(m.jwt, m.issuedAt) {
		return m.jwt, m.issuedAt, nil
	}
	jwt, at, err := mint()
	if err != nil {
		return "", time.Time{}, err
	}
	m.jwt, m.issuedAt = jwt, at
	m.mints++
	return jwt, at, nil
}

// process is one pushd process's token source for the key.
func process(t *testing.T, key *ecdsa.PrivateKey, share TokenShare, clock *fakeClock) *tokenSource {
	t.Helper()
	return &tokenSource{teamID: "TEAM123456", keyID: "KEY1234567", key: key, refresh: defaultTokenRefresh,
		now: clock.Now, logger: slog.New(slog.DiscardHandler), share: share}
}

func shareKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustCurrent(t *testing.T, s *tokenSource, clock *fakeClock) *providerToken {
	t.Helper()
	tok, err := s.current(clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Several processes, restarts and test sends all send one token per
// refresh period: Apple sees one update, not one per process.
func TestProcessesShareOneToken(t *testing.T) {
	t.Parallel()
	key := shareKey(t)
	share := &memShare{}
	clock := &fakeClock{t: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}
	a, b := process(t, key, share, clock), process(t, key, share, clock)
	first := mustCurrent(t, a, clock).bearer
	if got := mustCurrent(t, b, clock).bearer; got != first {
		t.Fatal("a second process signed a token of its own")
	}
	// A restart and a `pushd send` 10 minutes later adopt it too.
	clock.Advance(10 * time.Minute)
	for range 3 {
		if got := mustCurrent(t, process(t, key, share, clock), clock).bearer; got != first {
			t.Fatal("a restarted process signed a token of its own")
		}
	}
	if share.mints != 1 || a.signed.Load()+b.signed.Load() != 1 {
		t.Fatalf("mints %d, signed by a %d and b %d; want one token in all", share.mints, a.signed.Load(), b.signed.Load())
	}

	// At the refresh age exactly one renews; the other adopts the new one.
	clock.Advance(defaultTokenRefresh - 10*time.Minute)
	var wg sync.WaitGroup
	got := make([]string, 2)
	for i, p := range []*tokenSource{a, b} {
		wg.Go(func() { got[i] = mustCurrent(t, p, clock).bearer })
	}
	wg.Wait()
	if got[0] != got[1] || got[0] == first {
		t.Fatal("after the refresh age the processes do not send one new token")
	}
	if share.mints != 2 {
		t.Fatalf("%d mints after one renewal, want 2", share.mints)
	}
}

// Without the database a process keeps its token while Apple takes it,
// signs its own only when it has none fit to send, and offers that one to
// the share when the database is back instead of signing another.
func TestShareUnreachable(t *testing.T) {
	t.Parallel()
	key := shareKey(t)
	share := &memShare{}
	clock := &fakeClock{t: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}
	a := process(t, key, share, clock)
	shared := mustCurrent(t, a, clock).bearer

	share.down = true
	clock.Advance(defaultTokenRefresh) // due for renewal, but the share is away
	if got := mustCurrent(t, a, clock); got.bearer != shared || !got.local {
		t.Fatal("a process that cannot reach the share gave up a token Apple still accepts")
	}
	// A process started meanwhile has no token: it signs its own.
	b := process(t, key, share, clock)
	own := mustCurrent(t, b, clock)
	if own.bearer == shared || !own.local || b.signed.Load() != 1 {
		t.Fatal("a new process without the share did not sign its own token")
	}
	// Past 50 minutes the old token is not sent any more.
	clock.Advance(maxTokenRefresh - defaultTokenRefresh)
	if got := mustCurrent(t, a, clock); got.bearer == shared {
		t.Fatal("a token of 50 minutes was still sent")
	}

	share.down = false
	clock.Advance(shareRetry)
	adopted := mustCurrent(t, b, clock)
	if adopted.local || adopted.bearer != own.bearer {
		t.Fatal("the local token was not offered to the share when it came back")
	}
	if got := mustCurrent(t, a, clock); got.bearer != own.bearer {
		t.Fatal("a process did not adopt the token another offered to the share")
	}
	if b.signed.Load() != 1 {
		t.Fatalf("b signed %d tokens, want 1: offering its own must not sign another", b.signed.Load())
	}
}

// After ExpiredProviderToken one process replaces the shared token; the
// others, reporting the same stale token, adopt the replacement.
func TestReplaceSharedToken(t *testing.T) {
	t.Parallel()
	key := shareKey(t)
	share := &memShare{}
	clock := &fakeClock{t: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}
	a, b := process(t, key, share, clock), process(t, key, share, clock)
	stale := mustCurrent(t, a, clock)
	staleB := mustCurrent(t, b, clock)
	next, ok, err := a.replace(stale)
	if err != nil || !ok || next.bearer == stale.bearer || !next.forced {
		t.Fatalf("replace = %v, %v, %v; want a new forced token", next, ok, err)
	}
	nextB, ok, err := b.replace(staleB)
	if err != nil || !ok || nextB.bearer != next.bearer {
		t.Fatalf("the second process's replace = %v, %v, %v; want the first's replacement", nextB, ok, err)
	}
	if share.mints != 2 {
		t.Fatalf("%d mints, want 2 (the first token and one replacement)", share.mints)
	}
}
