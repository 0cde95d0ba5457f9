package apns

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/providers"
)

// MaxPayloadSize is the largest alert payload APNs accepts, in bytes. A
// larger one is answered 413 PayloadTooLarge, so Prepare refuses it first.
const MaxPayloadSize = 4096

// MaxCollapseIDSize is the longest apns-collapse-id APNs accepts, in bytes.
const MaxCollapseIDSize = 64

// prepared is a Notification rendered once per campaign run: the payload and
// every header value that does not change between recipients. It is
// immutable apart from the cached header set, and safe for concurrent Sends.
type prepared struct {
	client     *Client
	payload    []byte
	expiration time.Time
	// static holds the headers that are the same for every send of the run;
	// the authorization header is added per token generation in headers.
	// Both live in hs, which the users of a personal run share.
	static http.Header
	hs     *headerSet
	// getBody is built once so that giving each request a replayable body
	// costs no closure per send. transport.Pool resends from the payload
	// bytes; GetBody is for any other RoundTripper given as
	// Options.Transport, which may resend a request cut off by GOAWAY.
	getBody func() (io.ReadCloser, error)
}

// headerSet is the static headers of a run and their copy with the
// authorization of one provider token generation, which auth caches. The
// transport only reads request headers, so every request of a generation
// shares the same map, across the users of a personal run too: Prepare
// reuses the client's last set when its key matches, so a per-user
// Prepare builds no header map and a send clones none.
type headerSet struct {
	key    headerKey
	static http.Header
	auth   atomic.Pointer[authHeaders]
}

// headerKey is what the static headers depend on besides the topic.
type headerKey struct {
	pushType, priority, collapseID string
	expiration                     int64
}

type authHeaders struct {
	tok *providerToken
	h   http.Header
}

// PayloadSize is the size in bytes of the rendered JSON payload.
func (p *prepared) PayloadSize() int { return len(p.payload) }

// headers returns the request headers for a send carrying tok.
func (p *prepared) headers(tok *providerToken) http.Header {
	if a := p.hs.auth.Load(); a != nil && a.tok == tok {
		return a.h
	}
	h := p.static.Clone()
	h["Authorization"] = []string{tok.bearer}
	p.hs.auth.Store(&authHeaders{tok: tok, h: h})
	return h
}

// payloadBody is a request body over a shared, never modified payload.
type payloadBody struct {
	b   []byte
	off int
}

func (r *payloadBody) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

func (r *payloadBody) Close() error { return nil }

// Payload lets transport.Pool send the body without copying it.
func (r *payloadBody) Payload() []byte { return r.b[r.off:] }

// Prepare renders n once for a campaign run, or once per user for a
// personalised one: the JSON payload
//
//	{"aps":{"alert":{"title":..,"subtitle":..,"body":..},"badge":N,"sound":"..",
//	        "thread-id":..,"category":..,"mutable-content":1,
//	        "interruption-level":..,"relevance-score":N},
//	 "image_url":..,"link":.., <custom keys>}
//
// and the header values that are the same for every recipient. The keys
// after aps (image_url, link and the custom data keys, written with their
// JSON types) come in sorted order. An empty field is left out, a nil Badge
// leaves the badge alone, and an empty Sound plays none. A Silent
// notification is a background push instead: apns-push-type background,
// apns-priority 5 whatever its Priority, and an aps of only
// {"content-available":1}. Otherwise apns-priority is 10 for pushd.High
// (the default) and 5 for pushd.Normal. n.Overrides.APNs is merged in last
// (see mergeOverrides) and the size limit applies to the result.
//
// Its errors describe a problem with the campaign's content, in words for
// the people who wrote it: no title and no body on an alert, a silent push
// with something to show, a custom key that pushd uses itself, a value that
// is not JSON, an image URL that is not https, an unknown priority or
// interruption level, a relevance score outside 0–1, bad overrides, a collapse id over MaxCollapseIDSize bytes, or
// a payload over MaxPayloadSize bytes (wrapping providers.ErrPayloadTooLarge).
func (c *Client) Prepare(n pushd.Notification) (providers.Prepared, error) {
	payload, err := renderPayload(n)
	if err != nil {
		return nil, err
	}
	if err := checkCollapseID(n.CollapseID); err != nil {
		return nil, err
	}
	pushType, priority := "alert", "10"
	switch {
	case n.Silent:
		// Apple refuses a background push at priority 10 and throttles
		// background pushes in any case; 5 is the only priority it takes.
		pushType, priority = "background", "5"
	case n.Priority.Effective(false) == pushd.Normal:
		priority = "5"
	}
	key := headerKey{pushType: pushType, priority: priority, collapseID: n.CollapseID}
	if !n.Expiration.IsZero() {
		key.expiration = n.Expiration.Unix()
	}
	hs := c.headerSet.Load()
	if hs == nil || hs.key != key {
		h := http.Header{
			"Apns-Topic":     {c.topic},
			"Apns-Push-Type": {pushType},
			"Apns-Priority":  {priority},
		}
		if !n.Expiration.IsZero() {
			// An absolute UNIX time in seconds, not a number of seconds from now.
			h["Apns-Expiration"] = []string{strconv.FormatInt(key.expiration, 10)}
		}
		if n.CollapseID != "" {
			h["Apns-Collapse-Id"] = []string{n.CollapseID}
		}
		hs = &headerSet{key: key, static: h}
		c.headerSet.Store(hs)
	}
	p := &prepared{client: c, payload: payload, expiration: n.Expiration, static: hs.static, hs: hs}
	p.getBody = func() (io.ReadCloser, error) { return &payloadBody{b: p.payload}, nil }
	return p, nil
}

func checkCollapseID(id string) error {
	if len(id) > MaxCollapseIDSize {
		return fmt.Errorf("the collapse id is %d bytes long, but Apple allows at most %d; shorten it", len(id), MaxCollapseIDSize)
	}
	if !httpguts.ValidHeaderFieldValue(id) {
		return errors.New("the collapse id contains line breaks or other control characters; remove them")
	}
	return nil
}

// checkContent checks the fields of n that do not depend on the rendering.
func checkContent(n pushd.Notification) error {
	if err := n.CheckFields(); err != nil {
		return err
	}
	if !n.Silent && n.Title == "" && n.Body == "" {
		return errors.New("the notification has neither a title nor a body; add at least one")
	}
	if n.Badge != nil && *n.Badge < 0 {
		return fmt.Errorf("the badge is %d, but it must be 0 (to clear it) or more", *n.Badge)
	}
	return nil
}

// renderPayload builds the APNs JSON payload of n, merges its overrides and
// checks the size.
func renderPayload(n pushd.Notification) ([]byte, error) {
	if err := checkContent(n); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(n.Data)+2)
	for k := range n.Data {
		switch {
		case k == "aps":
			return nil, errors.New(`the custom data key "aps" is reserved by Apple for the notification itself; rename it`)
		case k == "image_url" && n.ImageURL != "":
			return nil, errors.New(`the custom data key "image_url" clashes with the notification's image, which pushd sends under that key; rename the key or leave image_url empty`)
		case k == "link" && n.Link != "":
			return nil, errors.New(`the custom data key "link" clashes with the notification's link, which pushd sends under that key; rename the key or leave link empty`)
		}
		keys = append(keys, k)
	}
	if n.ImageURL != "" {
		keys = append(keys, "image_url")
	}
	if n.Link != "" {
		keys = append(keys, "link")
	}
	slices.Sort(keys)

	// One allocation for the usual payload instead of a few as it grows.
	size := 160 + len(n.Title) + len(n.Subtitle) + len(n.Body) + len(n.Sound) + len(n.ThreadID) +
		len(n.Category) + len(n.ImageURL) + len(n.Link) + len(n.InterruptionLevel)
	for k, v := range n.Data {
		size += len(k) + len(v) + 4
	}
	var b bytes.Buffer
	b.Grow(min(size, 2*MaxPayloadSize))
	b.WriteString(`{"aps":{`)
	if n.Silent {
		b.WriteString(`"content-available":1`)
	} else {
		writeAPS(&b, n)
	}
	b.WriteByte('}')
	for _, k := range keys {
		b.WriteByte(',')
		writeString(&b, k)
		b.WriteByte(':')
		switch {
		case k == "image_url" && n.ImageURL != "":
			writeString(&b, n.ImageURL)
			continue
		case k == "link" && n.Link != "":
			writeString(&b, n.Link)
			continue
		}
		v := n.Data[k]
		if !utf8.Valid(v) {
			return nil, fmt.Errorf("the custom data value of %q contains text that is not valid UTF-8", k)
		}
		if t := bytes.TrimLeft(v, " \t\r\n"); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
			// An object or array arrives as its JSON text, as FCM (whose
			// data values are strings) must carry it: the app reads it the
			// same way on both platforms.
			var c bytes.Buffer
			if err := json.Compact(&c, v); err != nil {
				return nil, fmt.Errorf("the custom data value of %q is not valid JSON (text must be in double quotes): %v", k, err)
			}
			writeString(&b, c.String())
			continue
		}
		if err := json.Compact(&b, v); err != nil {
			return nil, fmt.Errorf("the custom data value of %q is not valid JSON (text must be in double quotes): %v", k, err)
		}
	}
	b.WriteByte('}')

	payload := b.Bytes()
	hint := "the title, body or custom data"
	if hasOverrides(n.Overrides.APNs) {
		var err error
		if payload, err = mergeOverrides(payload, n.Overrides.APNs); err != nil {
			return nil, err
		}
		hint = "the title, body, custom data or overrides.apns"
	}
	if len(payload) > MaxPayloadSize {
		return nil, fmt.Errorf("the notification is %d bytes, but Apple allows at most %d; shorten %s: %w",
			len(payload), MaxPayloadSize, hint, providers.ErrPayloadTooLarge)
	}
	return bytes.Clone(payload), nil
}

// writeAPS writes the members of an alert's aps dictionary, in the order of
// Apple's table in "Generating a remote notification".
func writeAPS(b *bytes.Buffer, n pushd.Notification) {
	b.WriteString(`"alert":{`)
	sep := false
	for _, f := range [...]struct{ key, val string }{
		{`"title":`, n.Title}, {`"subtitle":`, n.Subtitle}, {`"body":`, n.Body},
	} {
		if f.val == "" {
			continue
		}
		if sep {
			b.WriteByte(',')
		}
		b.WriteString(f.key)
		writeString(b, f.val)
		sep = true
	}
	b.WriteByte('}')
	if n.Badge != nil {
		b.WriteString(`,"badge":`)
		b.WriteString(strconv.Itoa(*n.Badge))
	}
	if n.Sound != "" {
		b.WriteString(`,"sound":`)
		writeString(b, n.Sound)
	}
	if n.ThreadID != "" {
		b.WriteString(`,"thread-id":`)
		writeString(b, n.ThreadID)
	}
	if n.Category != "" {
		b.WriteString(`,"category":`)
		writeString(b, n.Category)
	}
	if n.ImageURL != "" {
		// The app's notification service extension downloads the image;
		// the system only runs it for mutable content.
		b.WriteString(`,"mutable-content":1`)
	}
	if n.InterruptionLevel != "" {
		b.WriteString(`,"interruption-level":`)
		writeString(b, n.InterruptionLevel)
	}
	if n.RelevanceScore != nil {
		b.WriteString(`,"relevance-score":`)
		s := *n.RelevanceScore
		if s == 0 {
			s = 0 // not -0
		}
		var num [32]byte
		b.Write(strconv.AppendFloat(num[:0], s, 'f', -1, 64))
	}
}

// writeString writes s as a JSON string. Unlike json.Marshal it leaves <, >
// and & as they are: escaping them would only make the payload bigger.
// Invalid UTF-8 becomes U+FFFD.
func writeString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // a string always encodes
	b.Truncate(b.Len() - 1) // Encode adds a newline
}
