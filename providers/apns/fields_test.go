package apns

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/internal/pushsim"
	"github.com/pushd/pushd/providers"
)

func floatp(f float64) *float64 { return &f }

// decodeJSON decodes b keeping numbers as written, so that 1 and 1.0 differ.
func decodeJSON(t testing.TB, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	if dec.More() {
		t.Fatalf("trailing data after JSON: %s", b)
	}
	return v
}

// checkJSON compares got with want as parsed JSON structures.
func checkJSON(t testing.TB, got []byte, want string) {
	t.Helper()
	if g, w := decodeJSON(t, got), decodeJSON(t, []byte(want)); !reflect.DeepEqual(g, w) {
		t.Errorf("payload\n got %s\nwant %s", got, want)
	}
}

// TestPrepareMapsFields checks each Notification field against the payload
// and headers documented in docs/payloads.md.
func TestPrepareMapsFields(t *testing.T) {
	t.Parallel()
	c := &Client{topic: testTopic}
	tests := []struct {
		name               string
		n                  pushd.Notification
		want               string
		pushType, priority string
	}{
		{"subtitle", pushd.Notification{Title: "T", Subtitle: "S", Body: "B"},
			`{"aps":{"alert":{"title":"T","subtitle":"S","body":"B"}}}`, "alert", "10"},
		{"subtitle alone does not need a title", pushd.Notification{Subtitle: "S", Body: "B"},
			`{"aps":{"alert":{"subtitle":"S","body":"B"}}}`, "alert", "10"},
		{"image_url", pushd.Notification{Body: "B", ImageURL: "https://img.example/a.png?x=1&y=2"},
			`{"aps":{"alert":{"body":"B"},"mutable-content":1},"image_url":"https://img.example/a.png?x=1&y=2"}`, "alert", "10"},
		{"link", pushd.Notification{Body: "B", Link: "app://sale/42"},
			`{"aps":{"alert":{"body":"B"}},"link":"app://sale/42"}`, "alert", "10"},
		{"category", pushd.Notification{Body: "B", Category: "SALE"},
			`{"aps":{"alert":{"body":"B"},"category":"SALE"}}`, "alert", "10"},
		{"thread_id", pushd.Notification{Body: "B", ThreadID: "t-1"},
			`{"aps":{"alert":{"body":"B"},"thread-id":"t-1"}}`, "alert", "10"},
		{"channel_id is Android only", pushd.Notification{Body: "B", ChannelID: "promo"},
			`{"aps":{"alert":{"body":"B"}}}`, "alert", "10"},
		{"interruption_level passive", pushd.Notification{Body: "B", InterruptionLevel: "passive"},
			`{"aps":{"alert":{"body":"B"},"interruption-level":"passive"}}`, "alert", "10"},
		{"interruption_level time-sensitive", pushd.Notification{Body: "B", InterruptionLevel: "time-sensitive"},
			`{"aps":{"alert":{"body":"B"},"interruption-level":"time-sensitive"}}`, "alert", "10"},
		{"relevance_score 0.25", pushd.Notification{Body: "B", RelevanceScore: floatp(0.25)},
			`{"aps":{"alert":{"body":"B"},"relevance-score":0.25}}`, "alert", "10"},
		{"relevance_score 0", pushd.Notification{Body: "B", RelevanceScore: floatp(0)},
			`{"aps":{"alert":{"body":"B"},"relevance-score":0}}`, "alert", "10"},
		{"relevance_score -0 is 0", pushd.Notification{Body: "B", RelevanceScore: floatp(math.Copysign(0, -1))},
			`{"aps":{"alert":{"body":"B"},"relevance-score":0}}`, "alert", "10"},
		{"relevance_score 1", pushd.Notification{Body: "B", RelevanceScore: floatp(1)},
			`{"aps":{"alert":{"body":"B"},"relevance-score":1}}`, "alert", "10"},
		{"relevance_score tiny, no exponent", pushd.Notification{Body: "B", RelevanceScore: floatp(1e-7)},
			`{"aps":{"alert":{"body":"B"},"relevance-score":0.0000001}}`, "alert", "10"},
		{"priority high", pushd.Notification{Body: "B", Priority: pushd.High},
			`{"aps":{"alert":{"body":"B"}}}`, "alert", "10"},
		{"priority normal", pushd.Notification{Body: "B", Priority: pushd.Normal},
			`{"aps":{"alert":{"body":"B"}}}`, "alert", "5"},
		{"silent", pushd.Notification{Silent: true},
			`{"aps":{"content-available":1}}`, "background", "5"},
		{"silent at priority high is still 5", pushd.Notification{Silent: true, Priority: pushd.High},
			`{"aps":{"content-available":1}}`, "background", "5"},
		{"silent with link and data", pushd.Notification{Silent: true, Link: "app://sync",
			Data: map[string]json.RawMessage{"n": raw(`3`), "obj": raw(`{"a": 1}`)}},
			`{"aps":{"content-available":1},"link":"app://sync","n":3,"obj":"{\"a\":1}"}`, "background", "5"},
		{"silent leaves out thread_id, relevance_score and channel_id", pushd.Notification{Silent: true,
			ThreadID: "t", RelevanceScore: floatp(0.5), ChannelID: "c"},
			`{"aps":{"content-available":1}}`, "background", "5"},
		{"everything", pushd.Notification{
			Title: "T", Subtitle: "S", Body: "B", Badge: intp(2), Sound: "default",
			ImageURL: "https://i/x.png", Link: "app://x", Category: "C", ThreadID: "th",
			ChannelID: "ch", InterruptionLevel: "critical", RelevanceScore: floatp(0.75), Priority: pushd.Normal,
			Data: map[string]json.RawMessage{"a": raw(`1`), "z": raw(`"z"`), "image": raw(`true`)},
		}, `{"aps":{"alert":{"title":"T","subtitle":"S","body":"B"},"badge":2,"sound":"default","thread-id":"th",` +
			`"category":"C","mutable-content":1,"interruption-level":"critical","relevance-score":0.75},` +
			`"a":1,"image":true,"image_url":"https://i/x.png","link":"app://x","z":"z"}`, "alert", "5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := c.Prepare(tt.n)
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			pp := p.(*prepared)
			checkJSON(t, pp.payload, tt.want)
			if got := pp.static.Get("Apns-Push-Type"); got != tt.pushType {
				t.Errorf("apns-push-type %q, want %q", got, tt.pushType)
			}
			if got := pp.static.Get("Apns-Priority"); got != tt.priority {
				t.Errorf("apns-priority %q, want %q", got, tt.priority)
			}
		})
	}
}

// TestPrepareKeyOrder pins the byte order of the keys: aps first, in the
// order of Apple's table, then the other keys sorted.
func TestPrepareKeyOrder(t *testing.T) {
	t.Parallel()
	n := pushd.Notification{
		Title: "T", Subtitle: "S", Body: "B", Badge: intp(0), Sound: "s", ThreadID: "th", Category: "C",
		ImageURL: "https://i", InterruptionLevel: "active", RelevanceScore: floatp(0.5), Link: "l",
		Data: map[string]json.RawMessage{"zz": raw(`1`), "aa": raw(`2`), "j": raw(`3`)},
	}
	want := `{"aps":{"alert":{"title":"T","subtitle":"S","body":"B"},"badge":0,"sound":"s","thread-id":"th","category":"C",` +
		`"mutable-content":1,"interruption-level":"active","relevance-score":0.5},"aa":2,"image_url":"https://i","j":3,"link":"l","zz":1}`
	for range 3 {
		got, err := renderPayload(n)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("payload\n got %s\nwant %s", got, want)
		}
	}
}

func TestPrepareRejectsBadFields(t *testing.T) {
	t.Parallel()
	c := &Client{topic: testTopic}
	silent := "a silent push shows nothing"
	tests := []struct {
		name string
		n    pushd.Notification
		want []string // substrings of the error; nil = no error
	}{
		{"interruption level unknown", pushd.Notification{Body: "b", InterruptionLevel: "urgent"}, []string{`"urgent"`, "passive, active, time-sensitive or critical"}},
		{"interruption level is case-sensitive", pushd.Notification{Body: "b", InterruptionLevel: "Active"}, []string{`"Active"`}},
		{"relevance score below 0", pushd.Notification{Body: "b", RelevanceScore: floatp(-0.1)}, []string{"-0.1", "from 0 to 1"}},
		{"relevance score above 1", pushd.Notification{Body: "b", RelevanceScore: floatp(1.01)}, []string{"1.01", "from 0 to 1"}},
		{"relevance score NaN", pushd.Notification{Body: "b", RelevanceScore: floatp(math.NaN())}, []string{"from 0 to 1"}},
		{"relevance score infinite", pushd.Notification{Body: "b", RelevanceScore: floatp(math.Inf(1))}, []string{"from 0 to 1"}},
		{"unknown priority", pushd.Notification{Body: "b", Priority: "urgent"}, []string{`"urgent"`, "high", "normal"}},
		{"image_url not https", pushd.Notification{Body: "b", ImageURL: "http://i/x.png"}, []string{`"http://i/x.png"`, "https"}},
		{"image_url relative", pushd.Notification{Body: "b", ImageURL: "/img/x.png"}, []string{"https"}},
		{"image_url without host", pushd.Notification{Body: "b", ImageURL: "https:///x.png"}, []string{"https"}},
		{"data key image_url with an image", pushd.Notification{Body: "b", ImageURL: "https://i",
			Data: map[string]json.RawMessage{"image_url": raw(`"x"`)}}, []string{`"image_url"`, "rename"}},
		{"data key link with a link", pushd.Notification{Body: "b", Link: "app://x",
			Data: map[string]json.RawMessage{"link": raw(`"x"`)}}, []string{`"link"`, "rename"}},
		{"data key aps when silent", pushd.Notification{Silent: true, Data: map[string]json.RawMessage{"aps": raw(`{}`)}}, []string{`"aps" is reserved`}},
		{"alert still needs a title or body", pushd.Notification{Subtitle: "s"}, []string{"neither a title nor a body"}},

		{"silent with title", pushd.Notification{Silent: true, Title: "t"}, []string{silent, "sets title:", "set silent to 0"}},
		{"silent with body", pushd.Notification{Silent: true, Body: "b"}, []string{silent, "sets body:"}},
		{"silent with subtitle", pushd.Notification{Silent: true, Subtitle: "s"}, []string{silent, "sets subtitle:"}},
		{"silent with sound", pushd.Notification{Silent: true, Sound: "default"}, []string{silent, "sets sound:"}},
		{"silent with badge 0", pushd.Notification{Silent: true, Badge: intp(0)}, []string{silent, "sets badge:"}},
		{"silent with image_url", pushd.Notification{Silent: true, ImageURL: "https://i"}, []string{silent, "sets image_url:"}},
		{"silent with category", pushd.Notification{Silent: true, Category: "c"}, []string{silent, "sets category:"}},
		{"silent with interruption_level", pushd.Notification{Silent: true, InterruptionLevel: "passive"}, []string{silent, "sets interruption_level:"}},
		{"silent with several", pushd.Notification{Silent: true, Title: "t", Body: "b", Sound: "s"}, []string{silent, "sets title, body, sound:"}},

		{"silent alone", pushd.Notification{Silent: true}, nil},
		{"image_url with upper-case scheme", pushd.Notification{Body: "b", ImageURL: "HTTPS://i.example/x.png"}, nil},
		{"silent with link, data and collapse id", pushd.Notification{Silent: true, Link: "l", CollapseID: "c",
			Data: map[string]json.RawMessage{"k": raw(`"v"`)}}, nil},
		{"data key image_url without an image", pushd.Notification{Body: "b", Data: map[string]json.RawMessage{"image_url": raw(`"x"`)}}, nil},
		{"data key link without a link", pushd.Notification{Body: "b", Data: map[string]json.RawMessage{"link": raw(`"x"`)}}, nil},
	}
	for _, tt := range tests {
		_, err := c.Prepare(tt.n)
		if tt.want == nil {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q, want one containing %q", tt.name, err, w)
			}
		}
	}
}

func TestPrepareOverrides(t *testing.T) {
	t.Parallel()
	c := &Client{topic: testTopic}
	base := pushd.Notification{Title: "T", Body: "B", Sound: "default", ImageURL: "https://i", Link: "app://x",
		Data: map[string]json.RawMessage{"k": raw(`1`)}}
	tests := []struct {
		name string
		n    pushd.Notification
		ov   string
		want string
	}{
		{"top-level keys are added and replaced", base,
			`{"new": {"deep": [1, 2]}, "k": "replaced", "image_url": "https://other"}`,
			`{"aps":{"alert":{"title":"T","body":"B"},"sound":"default","mutable-content":1},` +
				`"image_url":"https://other","k":"replaced","link":"app://x","new":{"deep":[1,2]}}`},
		{"aps is merged key by key", base,
			`{"aps": {"sound": {"critical": 1, "name": "alarm.caf", "volume": 0.5}, "target-content-id": "w1", "alert": {"title-loc-key": "K"}}}`,
			`{"aps":{"alert":{"title-loc-key":"K"},"sound":{"critical":1,"name":"alarm.caf","volume":0.5},"mutable-content":1,"target-content-id":"w1"},` +
				`"image_url":"https://i","k":1,"link":"app://x"}`},
		{"silent push gets extra aps keys", pushd.Notification{Silent: true},
			`{"aps": {"filter-criteria": "work"}, "sync": true}`,
			`{"aps":{"content-available":1,"filter-criteria":"work"},"sync":true}`},
		{"null replaces a value", base, `{"k": null}`,
			`{"aps":{"alert":{"title":"T","body":"B"},"sound":"default","mutable-content":1},"image_url":"https://i","k":null,"link":"app://x"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.n.Overrides.APNs = raw(tt.ov)
			p, err := c.Prepare(tt.n)
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			checkJSON(t, p.(*prepared).payload, tt.want)
		})
	}

	// Overrides that say nothing render exactly what no overrides render.
	plain, err := renderPayload(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, ov := range []string{"", "null", " null\n", "{}", " { } "} {
		n := base
		n.Overrides.APNs = raw(ov)
		got, err := renderPayload(n)
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("overrides %q: %s, %v; want %s", ov, got, err, plain)
		}
	}

	// The order is fixed: aps first, pushd's aps keys then the added ones
	// sorted, then every other key sorted.
	n := base
	n.Overrides.APNs = raw(`{"zz": 1, "aps": {"z-key": 1, "a-key": 2, "sound": "s"}, "a": 0}`)
	want := `{"aps":{"alert":{"title":"T","body":"B"},"sound":"s","mutable-content":1,"a-key":2,"z-key":1},"a":0,"image_url":"https://i","k":1,"link":"app://x","zz":1}`
	for range 3 {
		got, err := renderPayload(n)
		if err != nil || string(got) != want {
			t.Fatalf("payload\n got %s (%v)\nwant %s", got, err, want)
		}
	}
}

func TestPrepareRejectsBadOverrides(t *testing.T) {
	t.Parallel()
	c := &Client{topic: testTopic}
	tests := []struct {
		name, ov string
		want     []string
	}{
		{"not JSON", `{"a": }`, []string{"overrides.apns is not valid JSON"}},
		{"trailing data", `{} {}`, []string{"overrides.apns is not valid JSON"}},
		{"a list", `[1]`, []string{"overrides.apns must be a JSON object", "not a list"}},
		{"text", `"x"`, []string{"overrides.apns must be a JSON object", "not text"}},
		{"a number", `4`, []string{"overrides.apns must be a JSON object", "not a number"}},
		{"aps text", `{"aps": "x"}`, []string{"overrides.apns.aps must be a JSON object", "not text"}},
		{"aps null", `{"aps": null}`, []string{"overrides.apns.aps must be a JSON object", "not null"}},
		{"aps list", `{"aps": []}`, []string{"overrides.apns.aps must be a JSON object"}},
		{"invalid UTF-8", "{\"k\": \"\xff\"}", []string{"overrides.apns", "UTF-8"}},
	}
	for _, tt := range tests {
		_, err := c.Prepare(pushd.Notification{Body: "b", Overrides: pushd.Overrides{APNs: raw(tt.ov)}})
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q, want one containing %q", tt.name, err, w)
			}
		}
	}
}

// TestOverridesSizeLimit checks that the limit applies after the merge, both
// ways.
func TestOverridesSizeLimit(t *testing.T) {
	t.Parallel()
	c := &Client{topic: testTopic}
	n := payloadOfSize(t, 4096)
	n.Overrides.APNs = raw(`{"x": 1}`)
	if _, err := c.Prepare(n); !errors.Is(err, providers.ErrPayloadTooLarge) || !strings.Contains(err.Error(), "overrides.apns") {
		t.Errorf("4096 bytes plus an override: %v, want ErrPayloadTooLarge naming overrides.apns", err)
	}
	// Too large before the merge, small enough after it.
	n = pushd.Notification{Body: "b", Data: map[string]json.RawMessage{"big": raw(`"` + strings.Repeat("x", 5000) + `"`)}}
	n.Overrides.APNs = raw(`{"big": "small"}`)
	p, err := c.Prepare(n)
	if err != nil {
		t.Fatalf("override shrinking the payload: %v", err)
	}
	checkJSON(t, p.(*prepared).payload, `{"aps":{"alert":{"body":"b"}},"big":"small"}`)
}

// TestFieldsOverTheWire sends the new kinds of push to pushsim, which checks
// the headers against the payload and the types of the aps keys.
func TestFieldsOverTheWire(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	c := newTestClient(t, s, nil)
	tests := []struct {
		n                  pushd.Notification
		pushType, priority string
	}{
		{pushd.Notification{Silent: true, Priority: pushd.High, Link: "app://sync", Data: map[string]json.RawMessage{"k": raw(`"v"`)}}, "background", "5"},
		{pushd.Notification{Title: "T", Subtitle: "S", Body: "B", ImageURL: "https://i", Link: "l", Category: "C", ThreadID: "th",
			InterruptionLevel: "time-sensitive", RelevanceScore: floatp(0.3), Priority: pushd.Normal}, "alert", "5"},
		{pushd.Notification{Body: "B", RelevanceScore: floatp(1), Overrides: pushd.Overrides{APNs: raw(`{"aps":{"target-content-id":"w"}}`)}}, "alert", "10"},
	}
	for i, tt := range tests {
		tok := deviceToken(100 + i)
		p := mustPrepare(t, c, tt.n)
		if res := mustSend(t, c, p, tok); res.Outcome != providers.Delivered {
			t.Fatalf("%d: %+v", i, res)
		}
		d := s.delivery(t, tok)
		if d.PushType != tt.pushType || d.Priority != tt.priority {
			t.Errorf("%d: push type %q priority %q, want %q %q", i, d.PushType, d.Priority, tt.pushType, tt.priority)
		}
		if !bytes.Equal(d.Payload, p.(*prepared).payload) {
			t.Errorf("%d: pushsim got %s, want %s", i, d.Payload, p.(*prepared).payload)
		}
	}
}

// FuzzPrepareOverrides checks that whatever overrides.apns holds, Prepare
// refuses it or merges it as documented: valid JSON within the limit, each
// override key holding the override's value, pushd's other keys kept.
func FuzzPrepareOverrides(f *testing.F) {
	f.Add([]byte(`{"aps":{"sound":"x","new":1},"k":{"a":[1,2]}}`), false)
	f.Add([]byte(`{"aps":{}}`), true)
	f.Add([]byte(`{"aps":null}`), false)
	f.Add([]byte(`{"aps":{"alert":"x"},"aps":{"badge":1}}`), false)
	f.Add([]byte(`null`), false)
	f.Add([]byte(`[]`), true)
	f.Add([]byte(`{"link":"\u00e9","image_url":1}`), false)
	c := &Client{topic: testTopic}
	f.Fuzz(func(t *testing.T, ov []byte, silent bool) {
		n := pushd.Notification{Title: "T", Body: "B", Sound: "s", Link: "app://x", ImageURL: "https://i",
			Data: map[string]json.RawMessage{"k": raw(`"v"`)}, Overrides: pushd.Overrides{APNs: ov}}
		if silent {
			n = pushd.Notification{Silent: true, Link: "app://x", Data: n.Data, Overrides: n.Overrides}
		}
		p, err := c.Prepare(n)
		if err != nil {
			if p != nil {
				t.Fatal("Prepare returned both a result and an error")
			}
			return
		}
		payload := p.(*prepared).payload
		if len(payload) > MaxPayloadSize || !json.Valid(payload) {
			t.Fatalf("payload of %d bytes, valid %v: %s", len(payload), json.Valid(payload), payload)
		}
		plainN := n
		plainN.Overrides = pushd.Overrides{}
		plain, err := renderPayload(plainN)
		if err != nil {
			t.Fatal(err)
		}
		got := decodeJSON(t, payload).(map[string]any)
		wantTop := decodeJSON(t, plain).(map[string]any)
		wantAPS := wantTop["aps"].(map[string]any)
		if hasOverrides(ov) {
			// Apply the documented merge with encoding/json, key by key in
			// the order written, later keys winning.
			var ms []member
			ms, err = members(ov)
			if err != nil {
				t.Fatalf("accepted overrides that are not an object: %s", ov)
			}
			for _, m := range ms {
				v := decodeJSON(t, m.val)
				if m.key != "aps" {
					wantTop[m.key] = v
					continue
				}
				o, ok := v.(map[string]any)
				if !ok {
					t.Fatalf("accepted overrides.apns.aps that is not an object: %s", ov)
				}
				for k, v := range o {
					wantAPS[k] = v
				}
			}
		}
		if !reflect.DeepEqual(got, wantTop) {
			t.Fatalf("merged\n got %s\nwant %v\noverrides %s", payload, wantTop, ov)
		}
		if !bytes.HasPrefix(payload, []byte(`{"aps":{`)) {
			t.Fatalf("aps is not first: %s", payload)
		}
	})
}

func BenchmarkPrepareOverrides(b *testing.B) {
	c := &Client{topic: testTopic}
	n := benchNotification
	n.Data = map[string]json.RawMessage{"deeplink": json.RawMessage(`"app://sale/2026"`), "campaign": json.RawMessage(`1234`)}
	n.Overrides.APNs = raw(`{"aps":{"target-content-id":"sale"},"extra":{"a":1}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Prepare(n); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzPrepareFields checks that whatever the new fields hold, Prepare
// refuses the notification or renders what docs/payloads.md says: a
// silent push is a background push at priority 5 whose aps is only
// content-available, and an alert carries each field under its key.
func FuzzPrepareFields(f *testing.F) {
	f.Add("T", "S", "B", "https://i.example/x.png", "app://x", "C", "th", "passive", 0.5, true, "normal", false)
	f.Add("", "", "", "", "l", "", "t", "", 1.0, false, "", true)
	f.Add("", "", "", "", "", "", "", "", 0.0, false, "high", true)
	c := &Client{topic: testTopic}
	f.Fuzz(func(t *testing.T, title, subtitle, body, image, link, category, thread, level string, score float64, hasScore bool, priority string, silent bool) {
		n := pushd.Notification{Title: title, Subtitle: subtitle, Body: body, ImageURL: image, Link: link, Category: category,
			ThreadID: thread, InterruptionLevel: level, Priority: pushd.Priority(priority), Silent: silent}
		if hasScore {
			n.RelevanceScore = &score
		}
		p, err := c.Prepare(n)
		if err != nil {
			if p != nil {
				t.Fatal("Prepare returned both a result and an error")
			}
			return
		}
		pp := p.(*prepared)
		if len(pp.payload) > MaxPayloadSize || !utf8.Valid(pp.payload) || !json.Valid(pp.payload) {
			t.Fatalf("payload of %d bytes is not valid UTF-8 JSON: %q", len(pp.payload), pp.payload)
		}
		var doc struct {
			APS      map[string]any `json:"aps"`
			ImageURL *string        `json:"image_url"`
			Link     *string        `json:"link"`
		}
		if err := json.Unmarshal(pp.payload, &doc); err != nil {
			t.Fatal(err)
		}
		pushType, prio := pp.static.Get("Apns-Push-Type"), pp.static.Get("Apns-Priority")
		if silent {
			if pushType != "background" || prio != "5" || !reflect.DeepEqual(doc.APS, map[string]any{"content-available": 1.0}) {
				t.Fatalf("silent push: %s %s %s", pushType, prio, pp.payload)
			}
		} else {
			wantPrio := map[pushd.Priority]string{pushd.High: "10", pushd.Normal: "5"}[n.Priority.Effective(false)]
			if pushType != "alert" || prio != wantPrio || doc.APS["alert"] == nil {
				t.Fatalf("alert: %s %s %s", pushType, prio, pp.payload)
			}
			alert := doc.APS["alert"].(map[string]any)
			for k, v := range map[string]string{"title": title, "subtitle": subtitle, "body": body} {
				if got, _ := alert[k].(string); utf8.ValidString(v) && got != v {
					t.Fatalf("alert.%s %q, want %q", k, got, v)
				}
			}
			if (image != "") != (doc.APS["mutable-content"] == 1.0) || (image != "") != (doc.ImageURL != nil) {
				t.Fatalf("image_url %q: %s", image, pp.payload)
			}
			if level != "" && doc.APS["interruption-level"] != level {
				t.Fatalf("interruption level %q accepted as %v", level, doc.APS["interruption-level"])
			}
			if hasScore && (doc.APS["relevance-score"] != score || score < 0 || score > 1) {
				t.Fatalf("relevance score %v accepted as %v", score, doc.APS["relevance-score"])
			}
		}
		if (link != "") != (doc.Link != nil) || link != "" && utf8.ValidString(link) && *doc.Link != link {
			t.Fatalf("link %q: %s", link, pp.payload)
		}
	})
}
