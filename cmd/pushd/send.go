package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/campaign"
	"github.com/pushd/pushd/config"
	"github.com/pushd/pushd/providers"
	"github.com/pushd/pushd/providers/apns"
	"github.com/pushd/pushd/providers/fcm"
)

// sendTimeout bounds `pushd send` as a whole: the access token, the
// connection and the answer.
const sendTimeout = time.Minute

// cmdSend sends one test push through the app's real provider client and
// prints the provider's answer in words. It exits 0 only when the push was
// delivered (or, with -dry-run, validated).
func cmdSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pushd send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfigPath, "path of config.ini")
	appName := fs.String("app", "", "the app's section name in config.ini (required)")
	token := fs.String("token", "", "the device token to send to (required)")
	title := fs.String("title", "", "the notification's title")
	body := fs.String("body", "", "the notification's text")
	data := fs.String("data", "", `custom key/values as a JSON object, e.g. {"screen": "sale"}`)
	sound := fs.String("sound", "", "a sound name, e.g. default; empty is silent")
	dryRun := fs.Bool("dry-run", false, "FCM: validate_only, nothing is delivered; APNs: check the token and print the request, send nothing")
	var badge *int
	fs.Func("badge", "the number on the app icon; 0 clears it; unset leaves it alone", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil {
			return errors.New("must be a whole number")
		}
		badge = &n
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return errReported
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pushd send: unexpected argument %q\n", fs.Arg(0))
		return errReported
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if *appName == "" {
		fmt.Fprintf(stderr, "pushd send: -app is required: one of %s\n", strings.Join(cfg.AppNames(), ", "))
		return errReported
	}
	a, ok := cfg.Apps[*appName]
	if !ok {
		fmt.Fprintf(stderr, "pushd send: unknown app %q: %s has %s\n", *appName, cfg.Path, strings.Join(cfg.AppNames(), ", "))
		return errReported
	}
	tok := strings.TrimSpace(*token)
	if tok == "" {
		fmt.Fprintln(stderr, "pushd send: -token is required: the device token of the phone to send to")
		return errReported
	}
	fields, err := campaign.ParseData(*data)
	if err != nil {
		fmt.Fprintf(stderr, "pushd send: -data: %v\n", err)
		return errReported
	}
	n := pushd.Notification{Title: *title, Body: *body, Data: fields, Badge: badge, Sound: *sound}
	n.Expiration = time.Now().Add(time.Hour)

	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var (
		sender  campaign.Sender
		kind    pushd.PushType
		capture *captureTransport
	)
	var o senderOptions
	switch {
	case *dryRun && a.PushType == pushd.APNs:
		capture = &captureTransport{}
		o.transport = capture
	case *dryRun && a.PushType == pushd.FCM:
		o.validateOnly = true
	}
	sender, kind, err = newSender(cfg, a, log, o)
	if err != nil {
		fmt.Fprintf(stderr, "pushd send: %s [%s]: %v\n", cfg.Path, a.Name, err)
		return errReported
	}
	if c, ok := sender.(closer); ok {
		defer c.Close()
	}
	fmt.Fprintln(stdout, describeApp(a))
	fmt.Fprintln(stdout, "token", shortToken(tok))

	p, err := sender.Prepare(n)
	if err != nil {
		fmt.Fprintf(stdout, "not sent: the notification cannot be sent as written: %v\n", err)
		return errReported
	}
	if err := sender.ValidateToken(tok); err != nil {
		fmt.Fprintf(stdout, "not sent: this is not an %s device token: %v\n", kind, err)
		return errReported
	}
	sctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	res, err := sender.Send(sctx, p, tok)
	if capture != nil && errors.Is(err, errDryRun) {
		fmt.Fprintf(stdout, "validated: the token is well-formed and the notification renders (%d of %d bytes); nothing was sent\n",
			p.PayloadSize(), apns.MaxPayloadSize)
		fmt.Fprintln(stdout, "APNs has no dry run, so Apple has not checked the token, the key or the bundle id. pushd would send:")
		fmt.Fprintln(stdout)
		capture.print(stdout)
		return nil
	}
	if err != nil {
		fmt.Fprintf(stdout, "no answer from %s: %v\n", kind, err)
		return errReported
	}
	verdict, ok := describeResult(kind, a.Name, cfg.Path, res, *dryRun && kind == pushd.FCM)
	fmt.Fprintln(stdout, verdict)
	if !ok {
		return errReported
	}
	return nil
}

// errDryRun is what captureTransport answers instead of sending.
var errDryRun = errors.New("dry run: not sent")

// captureTransport keeps the one request it is given and sends nothing.
type captureTransport struct {
	req  *http.Request
	body []byte
}

func (c *captureTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.req = r
	if r.Body != nil {
		c.body, _ = io.ReadAll(r.Body)
		r.Body.Close()
	}
	return nil, errDryRun
}

// print writes the captured request as it would go on the wire, with the
// provider token replaced by what it says: a signed token is a credential
// for the next hour and does not belong in a terminal's scrollback.
func (c *captureTransport) print(w io.Writer) {
	fmt.Fprintf(w, "POST %s\n", c.req.URL)
	names := make([]string, 0, len(c.req.Header))
	for k := range c.req.Header {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		for _, v := range c.req.Header[k] {
			if strings.EqualFold(k, "Authorization") {
				v = describeBearer(v)
			}
			fmt.Fprintf(w, "%s: %s\n", strings.ToLower(k), v)
		}
	}
	fmt.Fprintf(w, "\n%s\n", c.body)
}

// describeBearer replaces an APNs provider token by its header and claims.
func describeBearer(v string) string {
	jwt, ok := strings.CutPrefix(v, "bearer ")
	parts := strings.Split(jwt, ".")
	if !ok || len(parts) != 3 {
		return "bearer <hidden>"
	}
	var head struct{ Alg, Kid string }
	var claims struct {
		Iss string
		Iat int64
	}
	h, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cl, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil || json.Unmarshal(h, &head) != nil || json.Unmarshal(cl, &claims) != nil {
		return "bearer <hidden>"
	}
	return fmt.Sprintf("bearer <%s token signed with key %s for team %s at %s, hidden>", head.Alg, head.Kid, claims.Iss,
		time.Unix(claims.Iat, 0).UTC().Format(time.DateTime+" UTC"))
}

// describeApp is the first line `pushd send` prints: where the push goes.
func describeApp(a *config.App) string {
	switch a.PushType {
	case pushd.APNs:
		endpoint := a.Endpoint
		if endpoint == "" {
			endpoint = apns.DevelopmentEndpoint
			if a.Environment == apns.Production {
				endpoint = apns.ProductionEndpoint
			}
		}
		return fmt.Sprintf("app %s: APNs %s, bundle_id %s, key %s of team %s, at %s", a.Name, a.Environment, a.BundleID, a.KeyID, a.TeamID, endpoint)
	case pushd.FCM:
		endpoint := a.Endpoint
		if endpoint == "" {
			endpoint = fcm.DefaultEndpoint
		}
		return fmt.Sprintf("app %s: FCM project %s, service account %s, at %s", a.Name, a.ProjectID, a.ClientEmail, endpoint)
	}
	return "app " + a.Name
}

// shortToken shows the ends of a long token, which is enough to tell two
// apart and keeps the line short.
func shortToken(t string) string {
	if len(t) <= 24 {
		return t
	}
	return fmt.Sprintf("%s…%s (%d characters)", t[:12], t[len(t)-8:], len(t))
}

// explanations say what a provider's reason means, for the person holding
// the test phone. Reasons not listed are explained by the provider's own
// detail text.
var explanations = map[string]string{
	// APNs.
	apns.ReasonBadDeviceToken:         "the token is not valid for this app and environment: a development (sandbox) token sent to production or the other way round, a token of another app, or a mistyped one",
	apns.ReasonDeviceTokenNotForTopic: "the token belongs to another app: it was registered under a different bundle id",
	apns.ReasonUnregistered:           "the token is no longer active: the app was uninstalled, or the phone stopped accepting its pushes",
	apns.ReasonExpiredToken:           "the token has expired: open the app so that it registers a new one",
	apns.ReasonPayloadTooLarge:        "the notification is over 4 KB: shorten the title, body or data",
	apns.ReasonTooManyRequests:        "too many pushes to this phone in a short time: wait a minute and try again",
	// Every `pushd send` signs a provider token of its own.
	apns.ReasonTooManyProviderTokenUpdates: "Apple saw too many new provider tokens for this key: every pushd send signs one, and Apple wants at most one every 20 minutes; wait, and send test pushes less often",
	// FCM.
	"UNREGISTERED":       "the token is no longer registered: the app was uninstalled, or the token expired or was replaced",
	"SENDER_ID_MISMATCH": "the token belongs to another Firebase project, not the one of this app's service account",
	"QUOTA_EXCEEDED":     "the Firebase project's sending quota is used up for now: wait and try again",
	"UNAVAILABLE":        "FCM is unavailable for a moment: try again",
	"INTERNAL":           "FCM had an internal error: try again",
	"MALFORMED_TOKEN":    "this is not an FCM registration token",
}

// describeResult words a provider's answer for a person, and says whether
// it counts as success: delivered, or accepted by a validate-only send.
func describeResult(kind pushd.PushType, app, cfgPath string, res providers.Result, validateOnly bool) (string, bool) {
	what := explanations[res.Reason]
	if what == "" {
		what = res.Detail
	} else if res.Detail != "" && kind == pushd.FCM && !strings.EqualFold(res.Detail, what) {
		what += " (Google says: " + res.Detail + ")"
	}
	reason := res.Reason
	if reason == "" {
		reason = fmt.Sprintf("HTTP %d", res.Status)
	}
	if what != "" {
		reason += " — " + what
	}
	switch res.Outcome {
	case providers.Delivered:
		id := ""
		if res.ID != "" {
			label := "apns-id"
			if kind == pushd.FCM {
				label = "message"
			}
			id = fmt.Sprintf(" (%s %s)", label, res.ID)
		}
		if validateOnly {
			if res.ID != "" {
				id = "; message " + res.ID
			}
			return fmt.Sprintf("validated: %s accepted the push and the token without delivering it (validate_only%s)", kind, id), true
		}
		return fmt.Sprintf("delivered: %s accepted the push%s", kind, id), true
	case providers.TokenInvalid:
		return "rejected: " + reason + "\n" +
			"a campaign would count this user as invalid_tokens and skip the token until the app registers it again", false
	case providers.CredentialFailure:
		msg := fmt.Sprintf("credentials rejected: %s rejected app %s's credentials: %s", kind, app, reason)
		if res.Hint != "" {
			msg += fmt.Sprintf("\nfix: %s in [%s] of %s, then run this again", res.Hint, app, cfgPath)
		}
		return msg, false
	case providers.Retryable:
		msg := "not delivered, for now: " + reason
		if res.RetryAfter > 0 {
			msg += fmt.Sprintf("\n%s asks to wait %s before trying again", kind, res.RetryAfter)
		}
		return msg + "\na campaign would retry this push up to max_attempts times", false
	}
	return "rejected: " + reason, false
}
