package apns

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/internal/pushsim"
	"github.com/pushd/pushd/providers"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func intp(i int) *int { return &i }

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func TestPrepareRendersPayload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		n    pushd.Notification
		want string
	}{
		{"title and body", pushd.Notification{Title: "Hi", Body: "There"},
			`{"aps":{"alert":{"title":"Hi","body":"There"}}}`},
		{"body only", pushd.Notification{Body: "There"},
			`{"aps":{"alert":{"body":"There"}}}`},
		{"title only", pushd.Notification{Title: "Hi"},
			`{"aps":{"alert":{"title":"Hi"}}}`},
		{"badge nil is omitted", pushd.Notification{Body: "b", Badge: nil},
			`{"aps":{"alert":{"body":"b"}}}`},
		{"badge 0 clears", pushd.Notification{Body: "b", Badge: intp(0)},
			`{"aps":{"alert":{"body":"b"},"badge":0}}`},
		{"badge 12", pushd.Notification{Body: "b", Badge: intp(12)},
			`{"aps":{"alert":{"body":"b"},"badge":12}}`},
		{"sound", pushd.Notification{Body: "b", Sound: "chime.caf"},
			`{"aps":{"alert":{"body":"b"},"sound":"chime.caf"}}`},
		{"badge and sound", pushd.Notification{Body: "b", Badge: intp(1), Sound: "default"},
			`{"aps":{"alert":{"body":"b"},"badge":1,"sound":"default"}}`},
		// Scalars keep their JSON types; objects and arrays arrive as their
		// compact JSON text, as on FCM (docs/campaigns.md).
		{"scalars keep their JSON types, objects and arrays are JSON text, sorted", pushd.Notification{Body: "b", Data: map[string]json.RawMessage{
			"url":    raw(`"https://example.com/?a=1&b=<2>"`),
			"count":  raw(`42`),
			"ratio":  raw(`-1.5e3`),
			"flag":   raw(`true`),
			"none":   raw(`null`),
			"list":   raw(` [1, "two", {"three": 3}] `),
			"nested": raw("{\n  \"a\": {\"b\": [ ]}\n}"),
		}}, `{"aps":{"alert":{"body":"b"}},"count":42,"flag":true,"list":"[1,\"two\",{\"three\":3}]","nested":"{\"a\":{\"b\":[]}}","none":null,"ratio":-1.5e3,"url":"https://example.com/?a=1&b=<2>"}`},
		{"unicode and emoji stay UTF-8", pushd.Notification{Title: "Grüße 🎉", Body: "日本語 — ok"},
			`{"aps":{"alert":{"title":"Grüße 🎉","body":"日本語 — ok"}}}`},
		{"quotes, backslashes, newlines and HTML", pushd.Notification{Title: `"Q" \ <b>&</b>`, Body: "line1\nline2\t"},
			`{"aps":{"alert":{"title":"\"Q\" \\ <b>&</b>","body":"line1\nline2\t"}}}`},
		{"invalid UTF-8 becomes U+FFFD", pushd.Notification{Body: "a\xffb"},
			`{"aps":{"alert":{"body":"a\ufffdb"}}}`},
		{"unicode data key", pushd.Notification{Body: "b", Data: map[string]json.RawMessage{"clé": raw(`"v"`)}},
			`{"aps":{"alert":{"body":"b"}},"clé":"v"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := renderPayload(tt.n)
			if err != nil {
				t.Fatalf("renderPayload: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("payload\n got %s\nwant %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("payload is not valid JSON")
			}
		})
	}
}

func TestPrepareRejectsBadContent(t *testing.T) {
	t.Parallel()
	c := &Client{topic: testTopic}
	tests := []struct {
		name string
		n    pushd.Notification
		want string // substring of the error; "" = no error
	}{
		{"no title, no body", pushd.Notification{Sound: "x"}, "neither a title nor a body"},
		{"aps data key", pushd.Notification{Body: "b", Data: map[string]json.RawMessage{"aps": raw(`{}`)}}, `"aps" is reserved`},
		{"data not JSON", pushd.Notification{Body: "b", Data: map[string]json.RawMessage{"k": raw(`hello`)}}, "not valid JSON"},
		{"data two values", pushd.Notification{Body: "b", Data: map[string]json.RawMessage{"k": raw(`1 2`)}}, "not valid JSON"},
		{"data empty", pushd.Notification{Body: "b", Data: map[string]json.RawMessage{"k": nil}}, "not valid JSON"},
		{"data bad UTF-8", pushd.Notification{Body: "b", Data: map[string]json.RawMessage{"k": raw("\"\xff\"")}}, "UTF-8"},
		{"negative badge", pushd.Notification{Body: "b", Badge: intp(-1)}, "badge"},
		{"collapse id 64 bytes", pushd.Notification{Body: "b", CollapseID: strings.Repeat("x", 64)}, ""},
		{"collapse id 65 bytes", pushd.Notification{Body: "b", CollapseID: strings.Repeat("x", 65)}, "65 bytes long, but Apple allows at most 64"},
		{"collapse id 64 bytes of emoji", pushd.Notification{Body: "b", CollapseID: strings.Repeat("🎉", 16)}, ""},
		{"collapse id 17 emoji is 68 bytes", pushd.Notification{Body: "b", CollapseID: strings.Repeat("🎉", 17)}, "68 bytes"},
		{"collapse id with newline", pushd.Notification{Body: "b", CollapseID: "a\nb"}, "line breaks"},
	}
	for _, tt := range tests {
		_, err := c.Prepare(tt.n)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestPrepareHeaders(t *testing.T) {
	t.Parallel()
	c := &Client{topic: testTopic}
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	p, err := c.Prepare(pushd.Notification{Body: "b", Expiration: exp, CollapseID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	h := p.(*prepared).static
	if got := h.Get("Apns-Expiration"); got != "1893456000" {
		t.Errorf("apns-expiration %q, want the absolute epoch 1893456000", got)
	}
	// A deadline at the epoch itself is a real deadline, not "none".
	p, err = c.Prepare(pushd.Notification{Body: "b", Expiration: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := p.(*prepared).static["Apns-Expiration"]; !ok || got[0] != "0" {
		t.Errorf("apns-expiration %q, want 0", got)
	}
}

// payloadOfSize returns a notification whose payload is exactly n bytes,
// padded with multi-byte characters so that bytes, not runes, are counted.
func payloadOfSize(t *testing.T, n int) pushd.Notification {
	t.Helper()
	const overhead = len(`{"aps":{"alert":{"body":""}}}`)
	room := n - overhead
	body := strings.Repeat("🎉", room/4) + strings.Repeat("a", room%4)
	return pushd.Notification{Body: body}
}

func TestPayloadLimit(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	c := newTestClient(t, s, nil)

	p, err := c.Prepare(payloadOfSize(t, 4096))
	if err != nil {
		t.Fatalf("4096 bytes: %v", err)
	}
	if got := p.PayloadSize(); got != 4096 {
		t.Fatalf("PayloadSize %d, want 4096", got)
	}
	if res := mustSend(t, c, p, deviceToken(1)); res.Outcome != providers.Delivered {
		t.Fatalf("4096 bytes: %+v", res)
	}

	_, err = c.Prepare(payloadOfSize(t, 4097))
	if !errors.Is(err, providers.ErrPayloadTooLarge) {
		t.Fatalf("4097 bytes: %v, want ErrPayloadTooLarge", err)
	}
	if !strings.Contains(err.Error(), "4097") || !strings.Contains(err.Error(), "4096") {
		t.Errorf("error %q should give the size and the limit", err)
	}

	// Custom data counts too.
	n := payloadOfSize(t, 4000)
	n.Data = map[string]json.RawMessage{"big": raw(`"` + strings.Repeat("x", 100) + `"`)}
	if _, err := c.Prepare(n); !errors.Is(err, providers.ErrPayloadTooLarge) {
		t.Errorf("oversize custom data: %v", err)
	}
}

func FuzzPrepare(f *testing.F) {
	f.Add("Hello", "World", "default", "", "url", []byte(`"https://x"`), 1, true)
	f.Add("", "", "", "", "", []byte(nil), 0, false)
	f.Add("🎉", strings.Repeat("é", 2100), "", strings.Repeat("c", 64), "aps", []byte(`{}`), -1, true)
	c := &Client{topic: testTopic}
	f.Fuzz(func(t *testing.T, title, body, sound, collapse, key string, val []byte, badge int, hasBadge bool) {
		n := pushd.Notification{Title: title, Body: body, Sound: sound, CollapseID: collapse}
		if hasBadge {
			n.Badge = &badge
		}
		if key != "" || val != nil {
			n.Data = map[string]json.RawMessage{key: val, "n": raw(strconv.Itoa(badge))}
		}
		p, err := c.Prepare(n)
		if err != nil {
			if p != nil {
				t.Fatal("Prepare returned both a result and an error")
			}
			return
		}
		payload := p.(*prepared).payload
		if len(payload) > MaxPayloadSize || p.PayloadSize() != len(payload) {
			t.Fatalf("payload is %d bytes (PayloadSize %d)", len(payload), p.PayloadSize())
		}
		if len(collapse) > MaxCollapseIDSize {
			t.Fatalf("accepted a %d-byte collapse id", len(collapse))
		}
		if !utf8.Valid(payload) || !json.Valid(payload) {
			t.Fatalf("payload is not valid UTF-8 JSON: %q", payload)
		}
		var doc struct {
			APS struct {
				Alert map[string]string `json:"alert"`
				Badge *int              `json:"badge"`
				Sound string            `json:"sound"`
			} `json:"aps"`
		}
		if err := json.Unmarshal(payload, &doc); err != nil {
			t.Fatalf("payload does not decode: %v: %s", err, payload)
		}
		if utf8.ValidString(title) && doc.APS.Alert["title"] != title {
			t.Fatalf("title %q, want %q", doc.APS.Alert["title"], title)
		}
		if utf8.ValidString(body) && doc.APS.Alert["body"] != body {
			t.Fatalf("body %q, want %q", doc.APS.Alert["body"], body)
		}
		if hasBadge != (doc.APS.Badge != nil) || hasBadge && *doc.APS.Badge != badge {
			t.Fatalf("badge %v, want %v (set %v)", doc.APS.Badge, badge, hasBadge)
		}
		if key == "aps" && n.Data != nil {
			t.Fatal(`accepted a custom key "aps"`)
		}
	})
}

// TestPrepareSharesHeaders checks that a personal run's per-user Prepares
// share one header set (no map built per user, none cloned per send),
// and that a notification with other static headers gets its own.
func TestPrepareSharesHeaders(t *testing.T) {
	t.Parallel()
	c := &Client{topic: testTopic}
	exp := time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC)
	prep := func(n pushd.Notification) *prepared {
		t.Helper()
		n.Expiration = exp
		p, err := c.Prepare(n)
		if err != nil {
			t.Fatal(err)
		}
		return p.(*prepared)
	}
	anna, bob := prep(pushd.Notification{Title: "Hi Anna", CollapseID: "c1"}), prep(pushd.Notification{Title: "Hi Bob", CollapseID: "c1"})
	if anna.hs != bob.hs || string(anna.payload) == string(bob.payload) {
		t.Errorf("two users of one run: header sets %p %p, payloads %s %s", anna.hs, bob.hs, anna.payload, bob.payload)
	}
	tok := &providerToken{bearer: "bearer x"}
	if h1, h2 := anna.headers(tok), bob.headers(tok); h1.Get("Authorization") != "bearer x" || h1.Get("Apns-Collapse-Id") != "c1" {
		t.Errorf("headers %v", h1)
	} else if fmt.Sprintf("%p", h1) != fmt.Sprintf("%p", h2) {
		t.Error("the users' sends cloned the headers each")
	}
	other := prep(pushd.Notification{Title: "Hi", CollapseID: "c2"})
	silent := prep(pushd.Notification{Silent: true, CollapseID: "c1"})
	if other.hs == anna.hs || other.static.Get("Apns-Collapse-Id") != "c2" || silent.static.Get("Apns-Push-Type") != "background" {
		t.Errorf("other static headers shared: %v, %v", other.static, silent.static)
	}
	if again := prep(pushd.Notification{Title: "x", CollapseID: "c1"}); again.static.Get("Apns-Collapse-Id") != "c1" {
		t.Errorf("after a switch back: %v", again.static)
	}
}
