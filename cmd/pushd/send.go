package main

import (
	"context"
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
	"github.com/pushd/pushd/providers/apns"
	"github.com/pushd/pushd/report"
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
	if a.PushType == pushd.APNs {
		// Share the daemon's provider token: a test push that signs its own
		// is a token update for Apple, and a few of them in 20 minutes make
		// APNs refuse the running campaigns (TooManyProviderTokenUpdates).
		st, err := openStore(ctx, cfg)
		if err != nil {
			fmt.Fprintf(stdout, "note: cannot reach the database (%v): this push signs a provider token of its own, "+
				"which Apple counts as a token update of key %s; more than one in 20 minutes makes APNs refuse pushes with TooManyProviderTokenUpdates\n",
				err, a.KeyID)
		} else {
			defer st.Close()
			o.share = st
		}
	}
	sender, kind, err = newSender(cfg, a, log, o)
	if err != nil {
		fmt.Fprintf(stderr, "pushd send: %s [%s]: %v\n", cfg.Path, a.Name, err)
		return errReported
	}
	if c, ok := sender.(closer); ok {
		defer c.Close()
	}
	fmt.Fprintln(stdout, report.App(a))
	fmt.Fprintln(stdout, "token", report.ShortToken(tok))

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
	if c, ok := sender.(*apns.Client); ok && o.share != nil && !errors.Is(err, errDryRun) {
		if at, shared := c.ProviderToken(); shared {
			fmt.Fprintf(stdout, "provider token: the one every pushd of key %s shares, signed %s ago\n", a.KeyID, time.Since(at).Round(time.Second))
		} else if !at.IsZero() {
			fmt.Fprintln(stdout, "provider token: signed by this command, as the database did not answer; Apple counts it as a token update")
		}
	}
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
	verdict, ok := report.Result(kind, a.Name, cfg.Path, res, *dryRun && kind == pushd.FCM)
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
				v = report.Bearer(v)
			}
			fmt.Fprintf(w, "%s: %s\n", strings.ToLower(k), v)
		}
	}
	fmt.Fprintf(w, "\n%s\n", c.body)
}
