package fcm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/pushd/pushd/providers"
	"github.com/pushd/pushd/providers/transport"
)

// maxTokenLen bounds a registration token; real ones are about 160 bytes.
const maxTokenLen = 4096

// requestHeader returns the header of every send made with accessToken.
func requestHeader(accessToken string) http.Header {
	return http.Header{
		"Authorization": {"Bearer " + accessToken},
		"Content-Type":  {"application/json; charset=UTF-8"},
	}
}

// ValidateToken reports whether token can be an FCM registration token. The
// error wraps providers.ErrTokenMalformed for an empty token, one longer than
// 4096 bytes, or one with a character outside [A-Za-z0-9_\-:.].
func (c *Client) ValidateToken(token string) error {
	switch {
	case token == "":
		return fmt.Errorf("fcm: %w: empty", providers.ErrTokenMalformed)
	case len(token) > maxTokenLen:
		return fmt.Errorf("fcm: %w: %d bytes, at most %d", providers.ErrTokenMalformed, len(token), maxTokenLen)
	}
	for i := 0; i < len(token); i++ {
		if !tokenByte(token[i]) {
			return fmt.Errorf("fcm: %w: byte %q at %d", providers.ErrTokenMalformed, token[i], i)
		}
	}
	return nil
}

func tokenByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
		b == '_' || b == '-' || b == ':' || b == '.'
}

func validToken(token string) bool {
	if token == "" || len(token) > maxTokenLen {
		return false
	}
	for i := 0; i < len(token); i++ {
		if !tokenByte(token[i]) {
			return false
		}
	}
	return true
}

// Send posts p to one device. It returns an error only when it got no answer
// from Google (dial failure, timeout, reset, cancelled ctx, token endpoint
// unreachable: retry those; an error matching providers.ErrNotSent means the
// push certainly did not leave), or one wrapping providers.ErrExpired when p's
// deadline has passed, in which case nothing is sent. Every answer, including
// a rejection, is a Result.
//
// A token that fails ValidateToken is not sent; Send answers TokenInvalid
// with Reason "MALFORMED_TOKEN", as FCM would. When FCM answers 401
// UNAUTHENTICATED, Send fetches a new access token and posts once more.
// Each HTTP request is bounded by Options.RequestTimeout.
func (c *Client) Send(ctx context.Context, p providers.Prepared, token string) (providers.Result, error) {
	return providers.Await(func(done func(providers.Result, error)) { c.SendAsync(ctx, p, token, done) })
}

// SendAsync is Send without the wait: it returns once the request is
// written (or queued to be), and done gets what Send would have returned,
// exactly once. done may run on the transport's frame reader, which reads
// no further answer until it returns, so it must be quick and must not
// block. SendAsync itself may block while it fetches an access token; a
// forced refresh after UNAUTHENTICATED, and its retry, run on a goroutine
// of their own.
func (c *Client) SendAsync(ctx context.Context, p providers.Prepared, token string, done func(providers.Result, error)) {
	m, ok := p.(*message)
	if !ok || m.client != c {
		done(providers.Result{}, fmt.Errorf("fcm send: %T was not prepared by this client", p))
		return
	}
	if c.closed.Load() {
		done(providers.Result{}, errClosed)
		return
	}
	if !validToken(token) {
		done(providers.Result{Outcome: providers.TokenInvalid, Reason: "MALFORMED_TOKEN", Detail: c.ValidateToken(token).Error()}, nil)
		return
	}
	if _, err := m.ttl(c.now()); err != nil {
		done(providers.Result{}, err)
		return
	}
	cred, rejected, err := c.auth.credential(ctx)
	if err != nil && ctx.Err() == nil {
		// No access token, so the push never left: the token endpoint
		// or the network is down, which is no fault of the push.
		err = fmt.Errorf("%w: %w", providers.ErrNotSent, err)
	}
	if err != nil || rejected != nil {
		done(deref(rejected), err)
		return
	}
	c.post(ctx, m, token, cred, func(res providers.Result, err error) {
		if err != nil || res.Reason != codeUnauthenticated {
			done(res, err)
			return
		}
		go func() {
			cred, rejected, err := c.auth.refresh(ctx, cred)
			if err != nil || rejected != nil {
				done(deref(rejected), err)
				return
			}
			c.post(ctx, m, token, cred, done)
		}()
	})
}

func deref(r *providers.Result) providers.Result {
	if r == nil {
		return providers.Result{}
	}
	return *r
}

// post makes one request; done gets its answer.
func (c *Client) post(ctx context.Context, m *message, token string, cred *credential, done func(providers.Result, error)) {
	// The ttl is taken at the moment of sending, so a message that waited
	// for a token or a retry does not outlive its deadline.
	ttl, err := m.ttl(c.now())
	if err != nil {
		done(providers.Result{}, err)
		return
	}
	req := c.newRequest(ctx, m.render(token, ttl), cred)
	c.rt.Go(req, func(resp *http.Response, err error) { done(c.result(resp, err)) })
}

// result reads an answer into a Result.
func (c *Client) result(resp *http.Response, err error) (providers.Result, error) {
	if err != nil {
		if errors.Is(err, transport.ErrNotSent) {
			err = fmt.Errorf("%w: %w", providers.ErrNotSent, err)
		}
		return providers.Result{}, fmt.Errorf("fcm send: %w", err)
	}
	defer resp.Body.Close()
	buf := getBuffer()
	defer putBuffer(buf)
	body, err := readBody(resp.Body, *buf)
	*buf = body
	if err != nil && !errors.Is(err, errBodyTooLarge) {
		// The status is an answer; classify on it and whatever arrived.
		// Treating it as "no answer" would resend a message that Google may
		// have accepted.
		c.log.Warn("fcm response body cut short", "status", resp.StatusCode, "error", err)
	}
	return classify(resp.StatusCode, resp.Header, body, c.now()), nil
}

// newRequest builds the POST without parsing the URL again: a copy of the
// template with its own header, body and context.
func (c *Client) newRequest(ctx context.Context, body []byte, cred *credential) *http.Request {
	req := c.reqTemplate.WithContext(ctx)
	req.Header = cred.header
	rb := &requestBody{data: body}
	rb.Reset(body)
	req.Body = rb
	req.GetBody = rb.replay
	req.ContentLength = int64(len(body))
	return req
}

// requestBody is a request body that can be replayed. transport.Pool
// resends from Payload's bytes; GetBody is for any other RoundTripper given
// as Options.Transport, which may resend a request that a GOAWAY or a dead
// connection cut off.
type requestBody struct {
	bytes.Reader
	data []byte
}

func (*requestBody) Close() error { return nil }

// Payload lets transport.Pool send the body without copying it.
func (b *requestBody) Payload() []byte { return b.data }

func (b *requestBody) replay() (io.ReadCloser, error) {
	r := &requestBody{data: b.data}
	r.Reset(b.data)
	return r, nil
}
