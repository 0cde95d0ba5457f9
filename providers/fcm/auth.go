package fcm

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushd/pushd/providers"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"golang.org/x/oauth2/jwt"
)

// scope is the OAuth2 scope FCM v1 requires.
const scope = "https://www.googleapis.com/auth/firebase.messaging"

// Hints for a campaign's status_reason when the credentials are at fault.
const (
	hintServiceAccount = "Google rejected the service account key: check service_account_file"
	hintAccessToken    = "FCM rejected the service account's access token: check service_account_file and that the Firebase Cloud Messaging API is enabled for project_id"
)

// credential is an access token with the request header that carries it,
// built once per token so that a send allocates nothing for auth. The header
// is shared by all requests made with the token: a RoundTripper must not
// modify the request (net/http's contract), so no one writes to it.
type credential struct {
	tok    *oauth2.Token
	header http.Header
	src    oauth2.TokenSource // the source that produced tok
}

// auth hands out access tokens for the service account.
//
// golang.org/x/oauth2 does the work: jwt.Config signs the RS256 assertion,
// posts it to the key file's token_uri and its TokenSource caches the token
// until shortly before expiry. auth adds three things: a lock-free fast path,
// honouring the sender's context while a fetch is under way (the fetch itself
// runs on a long-lived context so that one cancelled send cannot fail it for
// everybody), and a forced refresh when FCM rejects a token early.
type auth struct {
	cfg     *jwt.Config
	ctx     context.Context // long-lived; carries the token HTTP client
	cancel  context.CancelFunc
	fetches atomic.Uint64
	log     *slog.Logger

	cur atomic.Pointer[credential] // last token handed out; nil before the first

	mu  sync.Mutex // guards src
	src oauth2.TokenSource
}

func newAuth(keyJSON []byte, rt http.RoundTripper, timeout time.Duration, log *slog.Logger) (*auth, error) {
	if len(keyJSON) == 0 {
		return nil, errors.New("fcm: service_account_file is empty: download a key for the service account from the Firebase console")
	}
	cfg, err := google.JWTConfigFromJSON(keyJSON, scope)
	if err != nil {
		return nil, fmt.Errorf("fcm: service_account_file: %w", err)
	}
	if cfg.Email == "" {
		return nil, errors.New("fcm: service_account_file: client_email is missing: download a new key file")
	}
	// x/oauth2 only parses the key when it first signs; parse it now so that
	// a broken key file fails at startup, not as a retried send error.
	if err := checkRSAKey(cfg.PrivateKey); err != nil {
		return nil, fmt.Errorf("fcm: service_account_file: private_key: %w", err)
	}
	a := &auth{cfg: cfg, log: log}
	hc := &http.Client{Transport: countingTransport{next: rt, n: &a.fetches}, Timeout: timeout}
	a.ctx, a.cancel = context.WithCancel(context.WithValue(context.Background(), oauth2.HTTPClient, hc))
	a.src = cfg.TokenSource(a.ctx)
	return a, nil
}

func (a *auth) close() { a.cancel() }

// credential returns a valid access token, fetching one if needed. A non-nil
// Result means the token endpoint rejected the service account.
func (a *auth) credential(ctx context.Context) (*credential, *providers.Result, error) {
	if c := a.cur.Load(); c != nil && c.tok.Valid() {
		return c, nil, nil
	}
	a.mu.Lock()
	src := a.src
	a.mu.Unlock()
	return a.fetch(ctx, src)
}

// refresh replaces a token FCM rejected although it had not expired (revoked,
// or the clock is off). Concurrent refreshes of the same stale token fetch
// once.
func (a *auth) refresh(ctx context.Context, stale *credential) (*credential, *providers.Result, error) {
	a.mu.Lock()
	replaced := a.src == stale.src
	if replaced {
		// A new TokenSource starts with an empty cache: its first Token call
		// fetches.
		a.src = a.cfg.TokenSource(a.ctx)
	}
	src := a.src
	a.mu.Unlock()
	if replaced {
		a.log.Warn("fcm rejected the access token before its expiry; fetching a new one", "expiry", stale.tok.Expiry)
	}
	return a.fetch(ctx, src)
}

// fetch calls src.Token, which may post to the token endpoint, and waits for
// it no longer than ctx allows. The fetch goes on without the caller and
// fills the cache for the next send.
func (a *auth) fetch(ctx context.Context, src oauth2.TokenSource) (*credential, *providers.Result, error) {
	type answer struct {
		c   *credential
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		tok, err := src.Token()
		if err != nil {
			ch <- answer{err: err}
			return
		}
		ch <- answer{c: a.store(src, tok)}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			if res, ok := tokenRejection(r.err); ok {
				return nil, &res, nil
			}
			return nil, nil, fmt.Errorf("fcm: get access token: %w", r.err)
		}
		return r.c, nil, nil
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("fcm: get access token: %w", ctx.Err())
	}
}

// store makes tok the current credential unless a refresh replaced src
// meanwhile, and returns the credential for tok.
func (a *auth) store(src oauth2.TokenSource, tok *oauth2.Token) *credential {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.cur.Load(); c != nil && c.tok == tok {
		return c
	}
	c := &credential{tok: tok, header: requestHeader(tok.AccessToken), src: src}
	if src == a.src {
		a.cur.Store(c)
	}
	return c
}

// tokenRejection turns a 4xx answer of the token endpoint (invalid_grant: a
// deleted or disabled key, a wrong client_email) into a CredentialFailure.
// Throttling and everything else stay errors, to be retried.
func tokenRejection(err error) (providers.Result, bool) {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil {
		return providers.Result{}, false
	}
	status := re.Response.StatusCode
	if status < 400 || status > 499 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout {
		return providers.Result{}, false
	}
	res := providers.Result{
		Outcome: providers.CredentialFailure,
		Status:  status,
		Reason:  re.ErrorCode,
		Detail:  re.ErrorDescription,
		Hint:    hintServiceAccount,
	}
	if res.Reason == "" {
		// x/oauth2/jwt leaves the RFC 6749 fields empty; read them here.
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(re.Body, &body) == nil {
			res.Reason, res.Detail = body.Error, body.Description
		}
	}
	if res.Reason == "" {
		res.Reason = http.StatusText(status)
	}
	res.Detail = truncate(res.Detail, maxDetail)
	return res, true
}

// countingTransport counts successful token exchanges for TokenRefreshes.
type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Uint64
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err == nil && resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		t.n.Add(1)
	}
	return resp, err
}

// checkRSAKey parses the key as x/oauth2 will: PEM (or bare DER), PKCS#8 or
// PKCS#1, RSA only.
func checkRSAKey(key []byte) error {
	der := key
	if block, _ := pem.Decode(key); block != nil {
		der = block.Bytes
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		k, err = x509.ParsePKCS1PrivateKey(der)
		if err != nil {
			return errors.New("not a PEM RSA private key: download a new key file")
		}
	}
	if _, ok := k.(*rsa.PrivateKey); !ok {
		return fmt.Errorf("a %T, want an RSA key: download a new key file", k)
	}
	return nil
}
