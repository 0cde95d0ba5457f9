package fcm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/providers"
)

// Limits of the v1 API.
const (
	// MaxPayload is the FCM limit in bytes on the compact JSON of a message's
	// notification plus its data.
	MaxPayload = 4096
	// MaxTTL is the longest android.ttl FCM accepts.
	MaxTTL = 4 * 7 * 24 * time.Hour
	// maxCollapseID is the APNs limit on apns-collapse-id, in bytes.
	maxCollapseID = 64
)

const maxTTLSeconds = int64(MaxTTL / time.Second)

// message is a Notification rendered once per campaign run into a byte
// template. A send splices in the only two parts that vary, the device token
// and android.ttl:
//
//	head + token + mid [+ ttl seconds + tail]
//
// tail is nil when the notification has no deadline: then the message has no
// ttl and FCM's default (4 weeks) applies.
type message struct {
	client     *Client
	head       []byte // `{"message":{"token":"`
	mid        []byte // `","notification":…,"android":{"ttl":"`
	tail       []byte // `s","priority":…}}}`
	expiration time.Time
	size       int
}

// PayloadSize is the size in bytes of the notification and data JSON, the
// part FCM limits to MaxPayload.
func (m *message) PayloadSize() int { return m.size }

// reservedData explains the data keys FCM refuses.
const reservedData = `keys "from", "notification", "message_type" and any key starting with "google" or "gcm" are reserved by Firebase`

// Prepare renders n for FCM, once per campaign run. The error says what to
// fix in words fit for the campaign's author; it wraps
// providers.ErrPayloadTooLarge when notification and data exceed MaxPayload
// bytes.
//
// Data values become strings, as FCM requires: a JSON string is unquoted, a
// number keeps its literal text ("1.50"), true and false become "true" and
// "false", null becomes "", and an object or array becomes its compact JSON
// text. Keys are sent in sorted order.
func (c *Client) Prepare(n pushd.Notification) (providers.Prepared, error) {
	if n.Title == "" && n.Body == "" {
		return nil, errors.New("the notification has neither a title nor a body; FCM needs at least one")
	}
	// Invalid UTF-8 would be sent as U+FFFD, three bytes each, and could
	// push the id past the limit after this check.
	if !utf8.ValidString(n.CollapseID) {
		return nil, errors.New("collapse_id is not valid UTF-8")
	}
	if len(n.CollapseID) > maxCollapseID {
		return nil, fmt.Errorf("collapse_id is %d bytes; at most %d are allowed", len(n.CollapseID), maxCollapseID)
	}
	if n.Badge != nil && *n.Badge < 0 {
		return nil, fmt.Errorf("badge %d is negative: use 0 to clear the badge, or NULL to leave it alone", *n.Badge)
	}

	notification := []byte{'{'}
	if n.Title != "" {
		notification = appendString(append(notification, `"title":`...), n.Title)
	}
	if n.Body != "" {
		if n.Title != "" {
			notification = append(notification, ',')
		}
		notification = appendString(append(notification, `"body":`...), n.Body)
	}
	notification = append(notification, '}')

	data, err := renderData(n.Data)
	if err != nil {
		return nil, err
	}
	size := len(notification) + len(data)
	if size > MaxPayload {
		return nil, fmt.Errorf("the notification is too large (%w): its text (%d bytes) and data (%d bytes) add up to %d bytes, FCM allows %d; shorten the text or the data",
			providers.ErrPayloadTooLarge, len(notification), len(data), size, MaxPayload)
	}

	m := &message{client: c, expiration: n.Expiration, size: size}
	var b []byte
	if c.validateOnly {
		b = append(b, `{"validate_only":true,"message":{"token":"`...)
	} else {
		b = append(b, `{"message":{"token":"`...)
	}
	m.head, b = b, nil

	b = append(b, `","notification":`...)
	b = append(b, notification...)
	if len(data) > 0 {
		b = append(b, `,"data":`...)
		b = append(b, data...)
	}
	b = append(b, `,"android":{`...)
	if !n.Expiration.IsZero() {
		b = append(b, `"ttl":"`...)
		m.mid, b = b, []byte(`s",`)
	}
	b = append(b, `"priority":"high"`...)
	if n.CollapseID != "" || n.Sound != "" {
		b = append(b, `,"notification":{`...)
		if n.CollapseID != "" {
			b = appendString(append(b, `"tag":`...), n.CollapseID)
		}
		if n.Sound != "" {
			if n.CollapseID != "" {
				b = append(b, ',')
			}
			b = appendString(append(b, `"sound":`...), n.Sound)
		}
		b = append(b, '}')
	}
	b = append(b, `},"apns":{"headers":{`...)
	if !n.Expiration.IsZero() {
		b = append(b, `"apns-expiration":"`...)
		b = strconv.AppendInt(b, n.Expiration.Unix(), 10)
		b = append(b, `",`...)
	}
	if n.CollapseID != "" {
		b = appendString(append(b, `"apns-collapse-id":`...), n.CollapseID)
		b = append(b, ',')
	}
	b = append(b, `"apns-priority":"10"}`...)
	if n.Badge != nil || n.Sound != "" {
		b = append(b, `,"payload":{"aps":{`...)
		if n.Badge != nil {
			b = strconv.AppendInt(append(b, `"badge":`...), int64(*n.Badge), 10)
		}
		if n.Sound != "" {
			if n.Badge != nil {
				b = append(b, ',')
			}
			b = appendString(append(b, `"sound":`...), n.Sound)
		}
		b = append(b, `}}`...)
	}
	b = append(b, `}}}`...)
	if m.mid == nil {
		m.mid = b
	} else {
		m.tail = b
	}
	return m, nil
}

// renderData renders the data map as a compact JSON object of strings, or
// nothing when it is empty.
func renderData(data map[string]json.RawMessage) ([]byte, error) {
	if len(data) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, len(data))
	for k := range data {
		if err := checkDataKey(k); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b := []byte{'{'}
	for i, k := range keys {
		v, err := dataString(data[k])
		if err != nil {
			return nil, fmt.Errorf("the data value of %q: %w", k, err)
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, v)
	}
	return append(b, '}'), nil
}

// checkDataKey rejects the keys FCM reserves. The match ignores case: a key
// that FCM might refuse is better caught before the run than by a 400 for
// every recipient.
func checkDataKey(k string) error {
	if k == "" {
		return errors.New("data has an empty key; give every value a name")
	}
	l := strings.ToLower(k)
	if l == "from" || l == "notification" || l == "message_type" ||
		strings.HasPrefix(l, "google") || strings.HasPrefix(l, "gcm") {
		return fmt.Errorf("data key %q cannot be used: %s; rename it", k, reservedData)
	}
	return nil
}

// dataString converts one raw JSON data value to the string FCM carries.
func dataString(raw json.RawMessage) (string, error) {
	v := bytes.Trim(raw, " \t\r\n") // JSON whitespace only
	if len(v) == 0 {
		return "", errors.New(`the value is empty; write "" for an empty text`)
	}
	if !json.Valid(v) {
		return "", fmt.Errorf("the value %.40q is not valid JSON; put text in double quotes", v)
	}
	switch v[0] {
	case '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", err
		}
		return s, nil
	case 'n': // null
		return "", nil
	case '{', '[':
		var buf bytes.Buffer
		if err := json.Compact(&buf, v); err != nil {
			return "", err
		}
		return buf.String(), nil
	default: // a number, true or false: keep the literal text
		return string(v), nil
	}
}

// ttl returns the android.ttl in whole seconds for a send at now: the time
// left until the deadline, rounded down and capped at MaxTTL. With less than
// a second left the message is not sent ("0s" means now or never, which is
// not what a deadline asks for).
func (m *message) ttl(now time.Time) (int64, error) {
	if m.expiration.IsZero() {
		return 0, nil
	}
	secs := int64(m.expiration.Sub(now) / time.Second)
	if secs <= 0 {
		return 0, fmt.Errorf("fcm send: %w (deadline %s)", providers.ErrExpired, m.expiration.UTC().Format(time.RFC3339))
	}
	return min(secs, maxTTLSeconds), nil
}

// render returns the request body for token with the given ttl. token must
// have passed validToken: it is spliced in without escaping.
func (m *message) render(token string, ttl int64) []byte {
	n := len(m.head) + len(token) + len(m.mid)
	if m.tail != nil {
		n += 20 + len(m.tail)
	}
	b := make([]byte, 0, n)
	b = append(b, m.head...)
	b = append(b, token...)
	b = append(b, m.mid...)
	if m.tail != nil {
		b = strconv.AppendInt(b, ttl, 10)
		b = append(b, m.tail...)
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Unlike encoding/json it leaves <,
// > and & alone, which would cost 5 bytes each of the 4096; like it, it turns
// invalid UTF-8 into U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
