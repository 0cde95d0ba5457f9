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
	static http.Header
	// getBody is built once so that giving each request a replayable body
	// costs no closure per send. transport.Pool resends from the payload
	// bytes; GetBody is for any other RoundTripper given as
	// Options.Transport, which may resend a request cut off by GOAWAY.
	getBody func() (io.ReadCloser, error)
	// auth caches static plus the authorization header of one provider
	// token generation. The transport only reads request headers, so every
	// request of a generation shares the same map.
	auth atomic.Pointer[authHeaders]
}

type authHeaders struct {
	tok *providerToken
	h   http.Header
}

// PayloadSize is the size in bytes of the rendered JSON payload.
func (p *prepared) PayloadSize() int { return len(p.payload) }

// headers returns the request headers for a send carrying tok.
func (p *prepared) headers(tok *providerToken) http.Header {
	if a := p.auth.Load(); a != nil && a.tok == tok {
		return a.h
	}
	h := p.static.Clone()
	h["Authorization"] = []string{tok.bearer}
	p.auth.Store(&authHeaders{tok: tok, h: h})
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

// Prepare renders n once for a campaign run: the JSON payload
//
//	{"aps":{"alert":{"title":..,"body":..},"badge":N,"sound":".."}, <custom keys>}
//
// and the header values that are the same for every recipient. Custom data
// keys are written at the top level in sorted order with their JSON types.
// An empty title or body is left out of the alert, a nil Badge leaves the
// badge alone, and an empty Sound plays none.
//
// Its errors describe a problem with the campaign's content, in words for
// the people who wrote it: no title and no body, a custom key "aps", a value
// that is not JSON, a collapse id over MaxCollapseIDSize bytes, or a payload
// over MaxPayloadSize bytes (wrapping providers.ErrPayloadTooLarge).
func (c *Client) Prepare(n pushd.Notification) (providers.Prepared, error) {
	payload, err := renderPayload(n)
	if err != nil {
		return nil, err
	}
	if err := checkCollapseID(n.CollapseID); err != nil {
		return nil, err
	}
	h := http.Header{
		"Apns-Topic":     {c.topic},
		"Apns-Push-Type": {"alert"},
		"Apns-Priority":  {"10"},
	}
	if !n.Expiration.IsZero() {
		// An absolute UNIX time in seconds, not a number of seconds from now.
		h["Apns-Expiration"] = []string{strconv.FormatInt(n.Expiration.Unix(), 10)}
	}
	if n.CollapseID != "" {
		h["Apns-Collapse-Id"] = []string{n.CollapseID}
	}
	p := &prepared{client: c, payload: payload, expiration: n.Expiration, static: h}
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

// renderPayload builds the APNs JSON payload of n and checks its size.
func renderPayload(n pushd.Notification) ([]byte, error) {
	if n.Title == "" && n.Body == "" {
		return nil, errors.New("the notification has neither a title nor a body; add at least one")
	}
	if n.Badge != nil && *n.Badge < 0 {
		return nil, fmt.Errorf("the badge is %d, but it must be 0 (to clear it) or more", *n.Badge)
	}
	keys := make([]string, 0, len(n.Data))
	for k := range n.Data {
		if k == "aps" {
			return nil, errors.New(`the custom data key "aps" is reserved by Apple for the notification itself; rename it`)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)

	var b bytes.Buffer
	b.WriteString(`{"aps":{"alert":{`)
	if n.Title != "" {
		b.WriteString(`"title":`)
		writeString(&b, n.Title)
	}
	if n.Body != "" {
		if n.Title != "" {
			b.WriteByte(',')
		}
		b.WriteString(`"body":`)
		writeString(&b, n.Body)
	}
	b.WriteByte('}')
	if n.Badge != nil {
		b.WriteString(`,"badge":`)
		b.WriteString(strconv.Itoa(*n.Badge))
	}
	if n.Sound != "" {
		b.WriteString(`,"sound":`)
		writeString(&b, n.Sound)
	}
	b.WriteByte('}')
	for _, k := range keys {
		v := n.Data[k]
		if !utf8.Valid(v) {
			return nil, fmt.Errorf("the custom data value of %q contains text that is not valid UTF-8", k)
		}
		b.WriteByte(',')
		writeString(&b, k)
		b.WriteByte(':')
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
	if b.Len() > MaxPayloadSize {
		return nil, fmt.Errorf("the notification is %d bytes, but Apple allows at most %d; shorten the title, body or custom data: %w",
			b.Len(), MaxPayloadSize, providers.ErrPayloadTooLarge)
	}
	return bytes.Clone(b.Bytes()), nil
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
