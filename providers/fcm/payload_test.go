package fcm

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/providers"
)

func raw(s string) json.RawMessage { return json.RawMessage(s) }

// renderFor prepares n and renders the body a send with ttl would post.
func renderFor(t *testing.T, c *Client, n pushd.Notification, ttl int64) (string, error) {
	t.Helper()
	p, err := c.Prepare(n)
	if err != nil {
		return "", err
	}
	return string(p.(*message).render("tok", ttl)), nil
}

func TestPrepareRendersV1Message(t *testing.T) {
	t.Parallel()
	zero := 0
	deadline := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name         string
		validateOnly bool
		n            pushd.Notification
		want         string
	}{
		{
			name: "everything",
			n: pushd.Notification{
				Title: "Sale", Body: `50% off <today> & "now"`, Badge: &zero, Sound: "chime.caf", CollapseID: "sale",
				Data: map[string]json.RawMessage{"b": raw("2"), "a": raw(`"x"`)}, Expiration: deadline,
			},
			want: `{"message":{"token":"tok","notification":{"title":"Sale","body":"50% off <today> & \"now\""},"data":{"a":"x","b":"2"},` +
				`"android":{"ttl":"3600s","priority":"HIGH","notification":{"tag":"sale","sound":"chime.caf"}},` +
				`"apns":{"headers":{"apns-expiration":"1893553445","apns-collapse-id":"sale","apns-priority":"10"},"payload":{"aps":{"badge":0,"sound":"chime.caf"}}}}}`,
		},
		{
			name: "body only, no deadline",
			n:    pushd.Notification{Body: "Hi"},
			want: `{"message":{"token":"tok","notification":{"body":"Hi"},"android":{"priority":"HIGH"},"apns":{"headers":{"apns-priority":"10"}}}}`,
		},
		{
			name: "title and badge",
			n:    pushd.Notification{Title: "Hi", Badge: &zero},
			want: `{"message":{"token":"tok","notification":{"title":"Hi"},"android":{"priority":"HIGH"},"apns":{"headers":{"apns-priority":"10"},"payload":{"aps":{"badge":0}}}}}`,
		},
		{
			name: "collapse id without sound",
			n:    pushd.Notification{Title: "Hi", CollapseID: "c"},
			want: `{"message":{"token":"tok","notification":{"title":"Hi"},"android":{"priority":"HIGH","notification":{"tag":"c"}},"apns":{"headers":{"apns-collapse-id":"c","apns-priority":"10"}}}}`,
		},
		{
			name:         "validate_only",
			validateOnly: true,
			n:            pushd.Notification{Title: "Hi", Expiration: deadline},
			want:         `{"validate_only":true,"message":{"token":"tok","notification":{"title":"Hi"},"android":{"ttl":"3600s","priority":"HIGH"},"apns":{"headers":{"apns-expiration":"1893553445","apns-priority":"10"}}}}`,
		},
		{
			name: "unicode and emoji pass through, controls are escaped",
			n:    pushd.Notification{Title: "Grüße 🎉 日本", Body: "line1\nline2\t\u0001\\"},
			want: `{"message":{"token":"tok","notification":{"title":"Grüße 🎉 日本","body":"line1\nline2\t\u0001\\"},"android":{"priority":"HIGH"},"apns":{"headers":{"apns-priority":"10"}}}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := renderFor(t, offlineClient(t, tt.validateOnly), tt.n, 3600)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("body\n got %s\nwant %s", got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Error("body is not valid JSON")
			}
		})
	}
}

func TestDataValuesBecomeStrings(t *testing.T) {
	t.Parallel()
	c := offlineClient(t, false)
	tests := []struct {
		in   string
		want string
	}{
		{`"text"`, "text"},
		{`""`, ""},
		{`"caf\u00e9 \"q\""`, `café "q"`},
		{`"🎉"`, "🎉"},
		{`42`, "42"},
		{`1.50`, "1.50"},
		{`-1e3`, "-1e3"},
		{`0`, "0"},
		{`true`, "true"},
		{`false`, "false"},
		{`null`, ""},
		{` { "a" : [1, 2, {"b": null}] } `, `{"a":[1,2,{"b":null}]}`},
		{`[ ]`, `[]`},
		{`{"html":"<b>&</b>"}`, `{"html":"<b>&</b>"}`},
	}
	for _, tt := range tests {
		body, err := renderFor(t, c, pushd.Notification{Title: "t", Data: map[string]json.RawMessage{"v": raw(tt.in)}}, 0)
		if err != nil {
			t.Errorf("data %s: %v", tt.in, err)
			continue
		}
		var got struct {
			Message struct {
				Data map[string]string `json:"data"`
			} `json:"message"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("data %s: body %s: %v", tt.in, body, err)
		}
		if got.Message.Data["v"] != tt.want {
			t.Errorf("data %s = %q, want %q", tt.in, got.Message.Data["v"], tt.want)
		}
	}
}

func TestReservedDataKeys(t *testing.T) {
	t.Parallel()
	c := offlineClient(t, false)
	for _, k := range []string{"from", "notification", "message_type", "google", "google.c.a.e", "gcm", "gcm.notification.body", "GoogleAnalytics", "From", ""} {
		_, err := c.Prepare(pushd.Notification{Title: "t", Data: map[string]json.RawMessage{k: raw(`"v"`)}})
		if err == nil {
			t.Errorf("data key %q accepted", k)
			continue
		}
		if k != "" && (!strings.Contains(err.Error(), fmt.Sprintf("%q", k)) || !strings.Contains(err.Error(), "reserved")) {
			t.Errorf("data key %q: error %q should name the key and say it is reserved", k, err)
		}
	}
	for _, k := range []string{"fromage", "from_screen", "googly", "my_google", "gc", "message", "notification_id", "キー"} {
		if _, err := c.Prepare(pushd.Notification{Title: "t", Data: map[string]json.RawMessage{k: raw(`"v"`)}}); err != nil {
			t.Errorf("data key %q: %v", k, err)
		}
	}
}

func TestPrepareRejects(t *testing.T) {
	t.Parallel()
	c := offlineClient(t, false)
	neg := -1
	tests := []struct {
		name string
		n    pushd.Notification
		want string
	}{
		{"no title or body", pushd.Notification{Sound: "default"}, "neither a title nor a body"},
		{"collapse id of 65 bytes", pushd.Notification{Title: "t", CollapseID: strings.Repeat("c", 65)}, "collapse_id is 65 bytes"},
		{"negative badge", pushd.Notification{Title: "t", Badge: &neg}, "badge"},
		{"data not JSON", pushd.Notification{Title: "t", Data: map[string]json.RawMessage{"k": raw(`hello`)}}, `the data value of "k"`},
		{"data truncated", pushd.Notification{Title: "t", Data: map[string]json.RawMessage{"k": raw(`{"a":`)}}, "not valid JSON"},
		{"data empty", pushd.Notification{Title: "t", Data: map[string]json.RawMessage{"k": nil}}, "empty"},
	}
	for _, tt := range tests {
		_, err := c.Prepare(tt.n)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Prepare error %v, want one mentioning %q", tt.name, err, tt.want)
		}
	}
	if _, err := c.Prepare(pushd.Notification{Title: "t", CollapseID: strings.Repeat("c", 64)}); err != nil {
		t.Errorf("collapse id of 64 bytes: %v", err)
	}
}

func TestPayloadLimit(t *testing.T) {
	t.Parallel()
	c := offlineClient(t, false)
	// `{"title":""}` is 12 bytes, `{"body":"hi"}` 13 and `{"k":""}` 8.
	emoji := strings.Repeat("🎉", 1021)  // 4084 bytes
	quotes := strings.Repeat(`"`, 2042) // 4084 bytes once escaped
	tests := []struct {
		name string
		n    pushd.Notification
		size int
	}{
		{"ascii title at the limit", pushd.Notification{Title: strings.Repeat("a", 4084)}, 4096},
		{"ascii title over", pushd.Notification{Title: strings.Repeat("a", 4085)}, 4097},
		{"emoji counted in bytes, at the limit", pushd.Notification{Title: emoji}, 4096},
		{"emoji counted in bytes, over", pushd.Notification{Title: emoji + "a"}, 4097},
		{"escapes count, at the limit", pushd.Notification{Title: quotes}, 4096},
		{"escapes count, over", pushd.Notification{Title: quotes + "a"}, 4097},
		{"data counts, at the limit", pushd.Notification{Body: "hi", Data: map[string]json.RawMessage{"k": raw(`"` + strings.Repeat("v", 4075) + `"`)}}, 4096},
		{"data counts, over", pushd.Notification{Body: "hi", Data: map[string]json.RawMessage{"k": raw(`"` + strings.Repeat("v", 4076) + `"`)}}, 4097},
		{"data measured after conversion", pushd.Notification{Body: "hi", Data: map[string]json.RawMessage{"k": raw(strings.Repeat(" ", 5000) + "null")}}, 21},
	}
	for _, tt := range tests {
		p, err := c.Prepare(tt.n)
		if tt.size > MaxPayload {
			if !errors.Is(err, providers.ErrPayloadTooLarge) || !strings.Contains(err.Error(), fmt.Sprint(tt.size)) {
				t.Errorf("%s: Prepare error %v, want ErrPayloadTooLarge naming %d bytes", tt.name, err, tt.size)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if p.PayloadSize() != tt.size {
			t.Errorf("%s: PayloadSize = %d, want %d", tt.name, p.PayloadSize(), tt.size)
		}
	}
}

func TestTTLAtSendTime(t *testing.T) {
	t.Parallel()
	c := offlineClient(t, false)
	now := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)
	week := 7 * 24 * time.Hour
	tests := []struct {
		left    time.Duration
		want    int64
		expired bool
	}{
		{90*time.Second + 700*time.Millisecond, 90, false},
		{time.Second, 1, false},
		{999 * time.Millisecond, 0, true},
		{0, 0, true},
		{-5 * time.Second, 0, true},
		{time.Hour, 3600, false},
		{4 * week, 2419200, false},
		{4*week + 500*time.Millisecond, 2419200, false},
		{5 * week, 2419200, false},
		{100 * 365 * 24 * time.Hour, 2419200, false},
	}
	for _, tt := range tests {
		p, err := c.Prepare(pushd.Notification{Title: "t", Expiration: now.Add(tt.left)})
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.(*message).ttl(now)
		if tt.expired {
			if !errors.Is(err, providers.ErrExpired) {
				t.Errorf("%v left: ttl = %d, %v; want ErrExpired", tt.left, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%v left: ttl = %d, %v; want %d", tt.left, got, err, tt.want)
		}
		body := string(p.(*message).render("tok", got))
		if want := fmt.Sprintf(`"ttl":"%ds"`, tt.want); !strings.Contains(body, want) {
			t.Errorf("%v left: body %s lacks %s", tt.left, body, want)
		}
	}

	// No deadline: no ttl, no apns-expiration, never expired.
	p, _ := c.Prepare(pushd.Notification{Title: "t"})
	if _, err := p.(*message).ttl(now.Add(100 * 365 * 24 * time.Hour)); err != nil {
		t.Errorf("no deadline: %v", err)
	}
	if body := string(p.(*message).render("tok", 0)); strings.Contains(body, "ttl") || strings.Contains(body, "apns-expiration") {
		t.Errorf("no deadline: body %s", body)
	}
}

func TestAppendStringRoundTrips(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "nl\n cr\r tab\t", "\x00\x01\x1f\x7f", "<>&", "é 🎉 日本", "\u2028\u2029", "bad \xff utf8 \xc3", "\xed\xa0\x80"} {
		b := appendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Errorf("appendString(%q) = %s: %v", s, b, err)
			continue
		}
		// encoding/json's own view of the string, invalid UTF-8 replaced.
		ref, _ := json.Marshal(s)
		var want string
		json.Unmarshal(ref, &want)
		if got != want {
			t.Errorf("appendString(%q) decodes to %q, want %q", s, got, want)
		}
	}
}

func TestValidateToken(t *testing.T) {
	t.Parallel()
	c := offlineClient(t, false)
	for _, tok := range []string{deviceToken, "a", "A-b_c:d.e", strings.Repeat("x", 4096)} {
		if err := c.ValidateToken(tok); err != nil {
			t.Errorf("ValidateToken(%.20q): %v", tok, err)
		}
	}
	for _, tok := range []string{"", strings.Repeat("x", 4097), "has space", `quo"te`, "back\\slash", "slash/", "nul\x00", "é", "plus+", "tok\n"} {
		if err := c.ValidateToken(tok); !errors.Is(err, providers.ErrTokenMalformed) {
			t.Errorf("ValidateToken(%.20q) = %v, want ErrTokenMalformed", tok, err)
		}
	}
}
