package campaign_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/campaign"
	"github.com/pushd/pushd/providers"
)

var _ campaign.Sender = (*fakeSender)(nil)

// fakeSender is a provider that answers each token as a test tells it,
// after latency (virtual time under synctest). It is safe for concurrent
// use. Every Send and SendAsync counts as a request, whenever it comes,
// unless its context's deadline has passed by the clock: like the real
// clients, the fake writes nothing then and answers providers.ErrExpired. Tests check
// when requests were made, not only what came of them.
type fakeSender struct {
	latency  time.Duration
	maxTitle int

	mu      sync.Mutex
	answers map[string][]answer // by token; the last one repeats
	reqs    []request
	// onRequest runs after request n (from 1) is counted, outside the lock.
	onRequest func(n int, token string)
	// respond, when set, answers every request made at its time instead
	// of the answers given per token.
	respond func(token string, at time.Time) answer
	// async counts SendAsync calls; answered counts their done calls.
	async, answered int
}

// answer is what the provider says to one request.
type answer struct {
	res providers.Result
	err error
}

type request struct {
	token string
	at    time.Time
	n     pushd.Notification // what was sent
}

type prepared struct{ n pushd.Notification }

func (prepared) PayloadSize() int { return 0 }

func delivered() answer {
	return answer{res: providers.Result{Outcome: providers.Delivered, Status: 200}}
}

func retryable(after time.Duration) answer {
	return answer{res: providers.Result{Outcome: providers.Retryable, Status: 429, Reason: "TooManyRequests", RetryAfter: after}}
}

func credentialFailure(hint string) answer {
	return answer{res: providers.Result{Outcome: providers.CredentialFailure, Status: 403, Reason: "InvalidProviderToken", Hint: hint}}
}

// notSent is a request that never left: no connection to the provider.
func notSent() answer {
	return answer{err: fmt.Errorf("transport: waiting for a connection: %w", providers.ErrNotSent)}
}

func tooManyTokenUpdates() answer {
	return answer{res: providers.Result{Outcome: providers.AppThrottled, Status: 429, Reason: "TooManyProviderTokenUpdates",
		Detail: "the provider token was renewed too often"}}
}

// answer makes the provider answer token with as, in order, the last for
// every request after; tokens not given answer delivered.
func (f *fakeSender) answer(token string, as ...answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.answers == nil {
		f.answers = map[string][]answer{}
	}
	f.answers[token] = as
}

func (f *fakeSender) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

// asyncAnswered reports whether every SendAsync has had its done call.
func (f *fakeSender) asyncAnswered() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.async == f.answered
}

// Prepare refuses a title over maxTitle bytes, if set, as a provider
// refuses a payload over its limit.
func (f *fakeSender) Prepare(n pushd.Notification) (providers.Prepared, error) {
	if f.maxTitle > 0 && len(n.Title) > f.maxTitle {
		return nil, fmt.Errorf("the notification is too large: %w", providers.ErrPayloadTooLarge)
	}
	return prepared{n}, nil
}

func (f *fakeSender) ValidateToken(string) error { return nil }

// start counts a request and picks its answer.
func (f *fakeSender) start(ctx context.Context, p providers.Prepared, token string, async bool) answer {
	// By the clock, as the clients do: at the deadline's instant the
	// context may not have ended yet.
	if deadline, ok := ctx.Deadline(); ok && !time.Now().Before(deadline) {
		if async {
			f.mu.Lock()
			f.async++
			f.mu.Unlock()
		}
		return answer{err: providers.ErrExpired}
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, request{token: token, at: time.Now(), n: p.(prepared).n})
	n := len(f.reqs)
	if async {
		f.async++
	}
	a := delivered()
	if as := f.answers[token]; len(as) > 0 {
		a = as[0]
		if len(as) > 1 {
			f.answers[token] = as[1:]
		}
	}
	if f.respond != nil {
		a = f.respond(token, time.Now())
	}
	hook := f.onRequest
	f.mu.Unlock()
	if hook != nil {
		hook(n, token)
	}
	return a
}

// wait is the provider's delay; a request whose context ends first gets
// no answer.
func (f *fakeSender) wait(ctx context.Context, a answer) (providers.Result, error) {
	if a.err != nil && errors.Is(a.err, providers.ErrExpired) {
		return providers.Result{}, a.err
	}
	t := time.NewTimer(f.latency)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return providers.Result{}, ctx.Err()
	case <-t.C:
		return a.res, a.err
	}
}

func (f *fakeSender) Send(ctx context.Context, p providers.Prepared, token string) (providers.Result, error) {
	return f.wait(ctx, f.start(ctx, p, token, false))
}

// SendAsync answers on a goroutine of its own, as a connection's frame
// reader would, and calls done exactly once.
func (f *fakeSender) SendAsync(ctx context.Context, p providers.Prepared, token string, done func(providers.Result, error)) {
	a := f.start(ctx, p, token, true)
	go func() {
		res, err := f.wait(ctx, a)
		f.mu.Lock()
		f.answered++
		f.mu.Unlock()
		done(res, err)
	}()
}
