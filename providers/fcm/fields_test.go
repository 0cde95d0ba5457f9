package fcm

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

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
func checkJSON(t testing.TB, got, want string) {
	t.Helper()
	if g, w := decodeJSON(t, []byte(got)), decodeJSON(t, []byte(want)); !reflect.DeepEqual(g, w) {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
}

// msg wraps the members of a message sent to "tok" into a request body.
func msg(members string) string { return `{"message":{"token":"tok",` + members + `}}` }

// TestPrepareMapsFields checks each Notification field against the v1
// message documented in docs/payloads.md.
func TestPrepareMapsFields(t *testing.T) {
	t.Parallel()
	c := offlineClient(t, false)
	deadline := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	two := 2
	const high = `"android":{"priority":"HIGH"}`
	const apns10 = `"apns":{"headers":{"apns-priority":"10"}`
	tests := []struct {
		name string
		n    pushd.Notification
		want string
	}{
		{"subtitle goes to iOS only", pushd.Notification{Title: "T", Subtitle: "S", Body: "B"},
			msg(`"notification":{"title":"T","body":"B"},` + high + `,` + apns10 + `,"payload":{"aps":{"alert":{"subtitle":"S"}}}}`)},
		{"image_url", pushd.Notification{Body: "B", ImageURL: "https://i/x.png?a=1&b=2"},
			msg(`"notification":{"body":"B","image":"https://i/x.png?a=1&b=2"},` + high + `,` + apns10 +
				`,"payload":{"aps":{"mutable-content":1}},"fcm_options":{"image":"https://i/x.png?a=1&b=2"}}`)},
		{"link is a data key", pushd.Notification{Body: "B", Link: "app://sale/42"},
			msg(`"notification":{"body":"B"},"data":{"link":"app://sale/42"},` + high + `,` + apns10 + `}`)},
		{"link among other data", pushd.Notification{Body: "B", Link: "app://x", Data: map[string]json.RawMessage{"a": raw(`1`), "z": raw(`"z"`)}},
			msg(`"notification":{"body":"B"},"data":{"a":"1","link":"app://x","z":"z"},` + high + `,` + apns10 + `}`)},
		{"category", pushd.Notification{Body: "B", Category: "SALE"},
			msg(`"notification":{"body":"B"},"android":{"priority":"HIGH","notification":{"click_action":"SALE"}},` + apns10 + `,"payload":{"aps":{"category":"SALE"}}}`)},
		{"thread_id", pushd.Notification{Body: "B", ThreadID: "t-1"},
			msg(`"notification":{"body":"B"},` + high + `,` + apns10 + `,"payload":{"aps":{"thread-id":"t-1"}}}`)},
		{"channel_id", pushd.Notification{Body: "B", ChannelID: "promo"},
			msg(`"notification":{"body":"B"},"android":{"priority":"HIGH","notification":{"channel_id":"promo"}},` + apns10 + `}`)},
		{"interruption_level", pushd.Notification{Body: "B", InterruptionLevel: "time-sensitive"},
			msg(`"notification":{"body":"B"},` + high + `,` + apns10 + `,"payload":{"aps":{"interruption-level":"time-sensitive"}}}`)},
		{"relevance_score", pushd.Notification{Body: "B", RelevanceScore: floatp(0.25)},
			msg(`"notification":{"body":"B"},` + high + `,` + apns10 + `,"payload":{"aps":{"relevance-score":0.25}}}`)},
		{"relevance_score -0 is 0", pushd.Notification{Body: "B", RelevanceScore: floatp(math.Copysign(0, -1))},
			msg(`"notification":{"body":"B"},` + high + `,` + apns10 + `,"payload":{"aps":{"relevance-score":0}}}`)},
		{"priority high", pushd.Notification{Body: "B", Priority: pushd.High},
			msg(`"notification":{"body":"B"},` + high + `,` + apns10 + `}`)},
		{"priority normal", pushd.Notification{Body: "B", Priority: pushd.Normal},
			msg(`"notification":{"body":"B"},"android":{"priority":"NORMAL"},"apns":{"headers":{"apns-priority":"5"}}`)},
		{"silent is a data message", pushd.Notification{Silent: true},
			msg(`"android":{"priority":"NORMAL"},"apns":{"headers":{"apns-push-type":"background","apns-priority":"5"},"payload":{"aps":{"content-available":1}}}`)},
		{"silent at priority high is 5 on iOS", pushd.Notification{Silent: true, Priority: pushd.High},
			msg(`"android":{"priority":"HIGH"},"apns":{"headers":{"apns-push-type":"background","apns-priority":"5"},"payload":{"aps":{"content-available":1}}}`)},
		{"silent with data, link, collapse id and deadline", pushd.Notification{Silent: true, Link: "app://sync", CollapseID: "c",
			Expiration: deadline, Data: map[string]json.RawMessage{"k": raw(`{"a": 1}`)}},
			msg(`"data":{"k":"{\"a\":1}","link":"app://sync"},"android":{"ttl":"3600s","priority":"NORMAL","collapse_key":"c"},` +
				`"apns":{"headers":{"apns-expiration":"1893553445","apns-collapse-id":"c","apns-push-type":"background","apns-priority":"5"},"payload":{"aps":{"content-available":1}}}`)},
		{"silent leaves out thread_id, relevance_score and channel_id", pushd.Notification{Silent: true, ThreadID: "t", RelevanceScore: floatp(1), ChannelID: "c"},
			msg(`"android":{"priority":"NORMAL"},"apns":{"headers":{"apns-push-type":"background","apns-priority":"5"},"payload":{"aps":{"content-available":1}}}`)},
		{"everything", pushd.Notification{
			Title: "T", Subtitle: "S", Body: "B", Badge: &two, Sound: "default", CollapseID: "cid", Expiration: deadline,
			ImageURL: "https://i", Link: "app://x", Category: "C", ThreadID: "th", ChannelID: "ch",
			InterruptionLevel: "critical", RelevanceScore: floatp(0.75), Priority: pushd.Normal,
			Data: map[string]json.RawMessage{"k": raw(`true`)},
		}, msg(`"notification":{"title":"T","body":"B","image":"https://i"},"data":{"k":"true","link":"app://x"},` +
			`"android":{"ttl":"3600s","priority":"NORMAL","notification":{"tag":"cid","sound":"default","click_action":"C","channel_id":"ch"}},` +
			`"apns":{"headers":{"apns-expiration":"1893553445","apns-collapse-id":"cid","apns-priority":"5"},` +
			`"payload":{"aps":{"alert":{"subtitle":"S"},"badge":2,"sound":"default","thread-id":"th","category":"C","mutable-content":1,` +
			`"interruption-level":"critical","relevance-score":0.75}},"fcm_options":{"image":"https://i"}}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := renderFor(t, c, tt.n, 3600)
			if err != nil {
				t.Fatal(err)
			}
			checkJSON(t, got, tt.want)
			if err := pushsim.ValidateFCMRequest([]byte(got), deadline.Add(-time.Hour)); err != nil {
				t.Errorf("pushsim refuses it: %v", err)
			}
			p, _ := c.Prepare(tt.n)
			if size := measuredSize(t, []byte(got)); p.PayloadSize() != size {
				t.Errorf("PayloadSize %d, notification+data measure %d", p.PayloadSize(), size)
			}
		})
	}
}

func TestPrepareRejectsBadFields(t *testing.T) {
	t.Parallel()
	c := offlineClient(t, false)
	zero := 0
	silent := "a silent push shows nothing"
	tests := []struct {
		name string
		n    pushd.Notification
		want []string // substrings of the error; nil = no error
	}{
		{"interruption level unknown", pushd.Notification{Body: "b", InterruptionLevel: "urgent"}, []string{`"urgent"`, "passive, active, time-sensitive or critical"}},
		{"relevance score below 0", pushd.Notification{Body: "b", RelevanceScore: floatp(-0.5)}, []string{"-0.5", "from 0 to 1"}},
		{"relevance score above 1", pushd.Notification{Body: "b", RelevanceScore: floatp(2)}, []string{"from 0 to 1"}},
		{"relevance score NaN", pushd.Notification{Body: "b", RelevanceScore: floatp(math.NaN())}, []string{"from 0 to 1"}},
		{"unknown priority", pushd.Notification{Body: "b", Priority: "HIGH"}, []string{`"HIGH"`, "high", "normal"}},
		{"image_url not https", pushd.Notification{Body: "b", ImageURL: "http://i/x.png"}, []string{`image_url "http://i/x.png"`, "https"}},
		{"image_url not a URL", pushd.Notification{Body: "b", ImageURL: "sale.png"}, []string{"https"}},
		{"data key link with a link", pushd.Notification{Body: "b", Link: "app://x", Data: map[string]json.RawMessage{"link": raw(`"y"`)}}, []string{`"link"`, "rename"}},
		{"reserved data key when silent", pushd.Notification{Silent: true, Data: map[string]json.RawMessage{"from": raw(`"y"`)}}, []string{`"from"`, "reserved"}},
		{"alert still needs a title or body", pushd.Notification{Subtitle: "s", ImageURL: "https://i"}, []string{"neither a title nor a body"}},

		{"silent with title", pushd.Notification{Silent: true, Title: "t"}, []string{silent, "sets title:", "set silent to 0"}},
		{"silent with body", pushd.Notification{Silent: true, Body: "b"}, []string{silent, "sets body:"}},
		{"silent with subtitle", pushd.Notification{Silent: true, Subtitle: "s"}, []string{silent, "sets subtitle:"}},
		{"silent with sound", pushd.Notification{Silent: true, Sound: "default"}, []string{silent, "sets sound:"}},
		{"silent with badge 0", pushd.Notification{Silent: true, Badge: &zero}, []string{silent, "sets badge:"}},
		{"silent with image_url", pushd.Notification{Silent: true, ImageURL: "https://i"}, []string{silent, "sets image_url:"}},
		{"silent with category", pushd.Notification{Silent: true, Category: "c"}, []string{silent, "sets category:"}},
		{"silent with interruption_level", pushd.Notification{Silent: true, InterruptionLevel: "active"}, []string{silent, "sets interruption_level:"}},

		{"silent without data", pushd.Notification{Silent: true}, nil},
		{"silent with link and data", pushd.Notification{Silent: true, Link: "l", Data: map[string]json.RawMessage{"k": raw(`1`)}}, nil},
		{"data key link without a link", pushd.Notification{Body: "b", Data: map[string]json.RawMessage{"link": raw(`"y"`)}}, nil},
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
	c := offlineClient(t, false)
	deadline := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	base := pushd.Notification{Title: "T", Body: "B", Sound: "s", Link: "app://x", Expiration: deadline,
		Data: map[string]json.RawMessage{"k": raw(`1`)}}
	tests := []struct {
		name string
		n    pushd.Notification
		ov   string
		want string // for token "tok" and ttl 3600
	}{
		{"deep merge", base,
			`{"android": {"notification": {"color": "#ff0000", "sound": "other"}, "collapse_key": "ck"},
			  "apns": {"headers": {"apns-topic": "com.example.app"}, "payload": {"aps": {"badge": 1}, "custom": [1, "x"]}},
			  "fcm_options": {"analytics_label": "sale"}, "data": {"extra": "e", "k": "replaced"}}`,
			msg(`"notification":{"title":"T","body":"B"},"data":{"extra":"e","k":"replaced","link":"app://x"},` +
				`"android":{"ttl":"3600s","priority":"HIGH","collapse_key":"ck","notification":{"sound":"other","color":"#ff0000"}},` +
				`"apns":{"headers":{"apns-expiration":"1893553445","apns-priority":"10","apns-topic":"com.example.app"},` +
				`"payload":{"aps":{"sound":"s","badge":1},"custom":[1,"x"]}},"fcm_options":{"analytics_label":"sale"}`)},
		{"notification merges key by key", base, `{"notification": {"title": "Other", "image": "https://i"}}`,
			msg(`"notification":{"title":"Other","body":"B","image":"https://i"},"data":{"k":"1","link":"app://x"},` +
				`"android":{"ttl":"3600s","priority":"HIGH","notification":{"sound":"s"}},` +
				`"apns":{"headers":{"apns-expiration":"1893553445","apns-priority":"10"},"payload":{"aps":{"sound":"s"}}}`)},
		{"android priority replaced", pushd.Notification{Body: "B"}, `{"android": {"priority": "NORMAL"}, "apns": {"headers": {"apns-priority": "5"}}}`,
			msg(`"notification":{"body":"B"},"android":{"priority":"NORMAL"},"apns":{"headers":{"apns-priority":"5"}}`)},
		{"silent message gets data", pushd.Notification{Silent: true}, `{"data": {"sync": "1"}}`,
			msg(`"data":{"sync":"1"},"android":{"priority":"NORMAL"},"apns":{"headers":{"apns-push-type":"background","apns-priority":"5"},"payload":{"aps":{"content-available":1}}}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.n.Overrides.FCM = raw(tt.ov)
			p, err := c.Prepare(tt.n)
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			got := string(p.(*message).render("tok", 3600))
			checkJSON(t, got, tt.want)
			if size := measuredSize(t, []byte(got)); p.PayloadSize() != size {
				t.Errorf("PayloadSize %d, merged notification+data measure %d", p.PayloadSize(), size)
			}
		})
	}

	// Every send splices in its own token and ttl.
	n := base
	n.Overrides.FCM = raw(`{"android": {"collapse_key": "ck"}}`)
	p, err := c.Prepare(n)
	if err != nil {
		t.Fatal(err)
	}
	for _, send := range []struct {
		token string
		ttl   int64
	}{{deviceToken, 90}, {"other:token", 2419200}} {
		body := p.(*message).render(send.token, send.ttl)
		var got struct {
			Message struct {
				Token   string
				Android struct {
					TTL         string `json:"ttl"`
					CollapseKey string `json:"collapse_key"`
				}
			}
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		m := got.Message
		if m.Token != send.token || m.Android.TTL != strconv.FormatInt(send.ttl, 10)+"s" || m.Android.CollapseKey != "ck" {
			t.Errorf("send to %s with ttl %d: body %s", send.token, send.ttl, body)
		}
	}

	// Without a deadline there is no ttl.
	n.Expiration = time.Time{}
	p, err = c.Prepare(n)
	if err != nil {
		t.Fatal(err)
	}
	if body := p.(*message).render("tok", 0); bytes.Contains(body, []byte("ttl")) || p.(*message).tail != nil {
		t.Errorf("no deadline: %s", body)
	}

	// validate_only survives.
	p, err = offlineClient(t, true).Prepare(n)
	if err != nil {
		t.Fatal(err)
	}
	if body := p.(*message).render("tok", 0); !bytes.HasPrefix(body, []byte(`{"validate_only":true,"message":{"token":"tok",`)) {
		t.Errorf("validate_only lost: %s", body)
	}

	// Overrides that say nothing change nothing.
	plain, err := renderFor(t, c, base, 60)
	if err != nil {
		t.Fatal(err)
	}
	for _, ov := range []string{"", "null", "  null\n"} {
		n := base
		n.Overrides.FCM = raw(ov)
		if got, err := renderFor(t, c, n, 60); err != nil || got != plain {
			t.Errorf("overrides %q: %s, %v; want %s", ov, got, err, plain)
		}
	}
	n = base
	n.Overrides.FCM = raw(`{}`)
	got, err := renderFor(t, c, n, 60)
	if err != nil {
		t.Fatal(err)
	}
	checkJSON(t, got, plain)
}

func TestPrepareRejectsBadOverrides(t *testing.T) {
	t.Parallel()
	c := offlineClient(t, false)
	tests := []struct {
		name, ov string
		want     []string
	}{
		{"not JSON", `{"a":`, []string{"overrides.fcm is not valid JSON"}},
		{"a list", `[]`, []string{"overrides.fcm must be a JSON object", "not a list"}},
		{"text", `"x"`, []string{"overrides.fcm must be a JSON object", "not text"}},
		{"token", `{"token": "other"}`, []string{`overrides.fcm cannot set "token"`}},
		{"topic", `{"topic": "news"}`, []string{`overrides.fcm cannot set "topic"`}},
		{"condition", `{"condition": "'a' in topics"}`, []string{`overrides.fcm cannot set "condition"`}},
		{"data not an object", `{"data": "x"}`, []string{"overrides.fcm.data must be a JSON object", "not text"}},
		{"data null", `{"data": null}`, []string{"overrides.fcm.data must be a JSON object"}},
		{"data number value", `{"data": {"n": 1}}`, []string{`overrides.fcm.data: the value of "n" is a number`, "double quotes"}},
		{"data object value", `{"data": {"o": {}}}`, []string{`the value of "o" is an object`}},
		{"data reserved key", `{"data": {"google.x": "1"}}`, []string{"overrides.fcm", `"google.x"`, "reserved"}},
		{"data reserved key any case", `{"data": {"From": "1"}}`, []string{`"From"`, "reserved"}},
		{"data empty key", `{"data": {"": "1"}}`, []string{"overrides.fcm", "empty key"}},
		{"notification not an object", `{"notification": "x"}`, []string{"overrides.fcm.notification must be a JSON object"}},
		{"notification list", `{"notification": []}`, []string{"overrides.fcm.notification must be a JSON object", "not a list"}},
		{"android not an object", `{"android": "x"}`, []string{"overrides.fcm.android must be a JSON object"}},
		{"apns.payload.aps not an object", `{"apns": {"payload": {"aps": 1}}}`, []string{"overrides.fcm.apns.payload.aps must be a JSON object"}},
		{"android.ttl", `{"android": {"ttl": "10s"}}`, []string{"overrides.fcm.android.ttl cannot be set"}},
		{"apns-expiration", `{"apns": {"headers": {"APNs-Expiration": "0"}}}`, []string{"overrides.fcm.apns.headers cannot set", "APNs-Expiration"}},
		{"invalid UTF-8", "{\"data\": {\"k\": \"\xff\"}}", []string{"overrides.fcm", "UTF-8"}},
	}
	for _, tt := range tests {
		_, err := c.Prepare(pushd.Notification{Body: "b", Sound: "s", Badge: new(int), Overrides: pushd.Overrides{FCM: raw(tt.ov)}})
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

// TestOverridesSizeLimit checks that MaxPayload applies to the merged
// notification and data, both ways.
func TestOverridesSizeLimit(t *testing.T) {
	t.Parallel()
	c := offlineClient(t, false)
	// `{"title":""}` is 12 bytes.
	n := pushd.Notification{Title: strings.Repeat("a", 4084), Overrides: pushd.Overrides{FCM: raw(`{"android": {"collapse_key": "k"}}`)}}
	p, err := c.Prepare(n)
	if err != nil || p.PayloadSize() != 4096 {
		t.Fatalf("at the limit, override outside notification and data: %v, %v", p, err)
	}
	n.Overrides.FCM = raw(`{"data": {"k": ""}}`) // 8 more bytes
	if _, err := c.Prepare(n); !errors.Is(err, providers.ErrPayloadTooLarge) || !strings.Contains(err.Error(), "4104") || !strings.Contains(err.Error(), "overrides.fcm") {
		t.Errorf("over the limit by the override's data: %v", err)
	}
	n.Overrides.FCM = raw(`{"notification": {"body": "x"}}`)
	if _, err := c.Prepare(n); !errors.Is(err, providers.ErrPayloadTooLarge) {
		t.Errorf("over the limit by the override's notification: %v", err)
	}
	// Too large before the merge, small enough after it.
	n.Overrides.FCM = raw(`{"notification": {"title": "short"}}`)
	p, err = c.Prepare(n)
	if err != nil {
		t.Fatalf("override shrinking the message: %v", err)
	}
	if p.PayloadSize() != len(`{"title":"short"}`) {
		t.Errorf("PayloadSize %d", p.PayloadSize())
	}
}

// TestFieldsOverTheWire sends the new kinds of message to pushsim, which
// type-checks every field against the v1 reference.
func TestFieldsOverTheWire(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	clock := newClock(time.Date(2030, 5, 1, 12, 0, 0, 0, time.UTC))
	opts := s.options()
	opts.Now = clock.Now
	c := s.client(opts)
	deadline := clock.Now().Add(time.Hour)
	tests := []struct {
		n                            pushd.Notification
		priority, pushType, apnsPrio string
	}{
		{pushd.Notification{Silent: true, Link: "app://sync", CollapseID: "c", Expiration: deadline}, "NORMAL", "background", "5"},
		{pushd.Notification{Title: "T", Subtitle: "S", Body: "B", ImageURL: "https://i", Link: "l", Category: "C", ThreadID: "th",
			ChannelID: "ch", InterruptionLevel: "passive", RelevanceScore: floatp(0.1), Priority: pushd.Normal, Expiration: deadline}, "NORMAL", "", "5"},
		{pushd.Notification{Body: "B", Expiration: deadline, Overrides: pushd.Overrides{FCM: raw(
			`{"android":{"notification":{"color":"#00ff00"}},"apns":{"headers":{"apns-push-type":"alert"}},"data":{"x":"y"}}`)}}, "HIGH", "alert", "10"},
	}
	for i, tt := range tests {
		res, err := c.Send(background(t), prepare(t, c, tt.n), deviceToken)
		if err != nil || res.Outcome != providers.Delivered {
			t.Fatalf("%d: Send = %+v, %v", i, res, err)
		}
		m, d := s.message(t, deviceToken)
		if d.Priority != tt.priority || d.PushType != tt.pushType || m.APNs.Headers["apns-priority"] != tt.apnsPrio || d.AndroidTTL != "3600s" {
			t.Errorf("%d: android priority %q, push type %q, apns-priority %q, ttl %q; want %q %q %q 3600s",
				i, d.Priority, d.PushType, m.APNs.Headers["apns-priority"], d.AndroidTTL, tt.priority, tt.pushType, tt.apnsPrio)
		}
		if tt.n.Silent && m.Notification != nil {
			t.Errorf("%d: a silent message has a notification: %s", i, d.Payload)
		}
	}
}

// FuzzPrepareFields checks that whatever the new fields hold, Prepare
// refuses the notification or renders a message pushsim accepts, silent
// ones without a notification.
func FuzzPrepareFields(f *testing.F) {
	f.Add("T", "S", "B", "https://i.example/x.png", "app://x", "C", "th", "ch", "passive", 0.5, true, "normal", false)
	f.Add("", "", "", "", "l", "", "t", "", "", 1.0, false, "", true)
	c := offlineClient(f, false)
	deadline := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, title, subtitle, body, image, link, category, thread, channel, level string, score float64, hasScore bool, priority string, silent bool) {
		n := pushd.Notification{Title: title, Subtitle: subtitle, Body: body, ImageURL: image, Link: link, Category: category,
			ThreadID: thread, ChannelID: channel, InterruptionLevel: level, Priority: pushd.Priority(priority), Silent: silent, Expiration: deadline}
		if hasScore {
			n.RelevanceScore = &score
		}
		p, err := c.Prepare(n)
		if err != nil {
			if p != nil {
				t.Fatalf("Prepare returned %v with error %v", p, err)
			}
			return
		}
		out := p.(*message).render(deviceToken, 3600)
		if err := pushsim.ValidateFCMRequest(out, deadline.Add(-time.Hour)); err != nil {
			t.Fatalf("pushsim refuses it: %v\n%s", err, out)
		}
		if got := measuredSize(t, out); got != p.PayloadSize() || got > MaxPayload {
			t.Errorf("PayloadSize %d, but notification+data measure %d", p.PayloadSize(), got)
		}
		var req struct {
			Message struct {
				Notification *json.RawMessage
				Data         map[string]string
				Android      struct {
					Priority     string
					Notification *json.RawMessage
				}
				APNs struct {
					Headers map[string]string
					Payload struct{ APS map[string]any }
				}
			}
		}
		if err := json.Unmarshal(out, &req); err != nil {
			t.Fatal(err)
		}
		m := req.Message
		if silent != (m.Notification == nil) || silent && m.Android.Notification != nil {
			t.Fatalf("silent %v, but the message is\n%s", silent, out)
		}
		if silent && (m.APNs.Headers["apns-priority"] != "5" || m.APNs.Headers["apns-push-type"] != "background" ||
			!reflect.DeepEqual(m.APNs.Payload.APS, map[string]any{"content-available": 1.0})) {
			t.Fatalf("silent, but apns is %+v", m.APNs)
		}
		if wantPrio := map[pushd.Priority]string{pushd.High: "HIGH", pushd.Normal: "NORMAL"}[n.Priority.Effective(silent)]; m.Android.Priority != wantPrio {
			t.Fatalf("android.priority %q, want %q", m.Android.Priority, wantPrio)
		}
		if link != "" && m.Data["link"] != viaJSON(link) {
			t.Fatalf("data link %q, want %q", m.Data["link"], link)
		}
	})
}

// FuzzPrepareOverrides checks that whatever overrides.fcm holds, Prepare
// refuses it or merges it deeply into the message, keeping pushd's token
// and ttl and measuring the merged notification and data.
func FuzzPrepareOverrides(f *testing.F) {
	f.Add([]byte(`{"android":{"notification":{"color":"#fff"}},"data":{"a":"b"}}`), false)
	f.Add([]byte(`{"notification":{"title":"x"},"apns":{"payload":{"aps":{"badge":1}}}}`), true)
	f.Add([]byte(`{"token":"x"}`), false)
	f.Add([]byte(`{"android":{"priority":null},"webpush":{"headers":{"TTL":"1"}}}`), false)
	f.Add([]byte(`{"data":{"k":"1"},"data":{"k":"2"}}`), false)
	f.Add([]byte(`null`), true)
	c := offlineClient(f, false)
	deadline := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, ov []byte, silent bool) {
		n := pushd.Notification{Title: "T", Body: "B", Sound: "s", CollapseID: "c", Link: "app://x", Expiration: deadline,
			Data: map[string]json.RawMessage{"k": raw(`"v"`)}}
		if silent {
			n = pushd.Notification{Silent: true, Link: "app://x", Expiration: deadline}
		}
		plain, err := c.Prepare(n)
		if err != nil {
			t.Fatal(err)
		}
		n.Overrides.FCM = ov
		p, err := c.Prepare(n)
		if err != nil {
			if p != nil {
				t.Fatalf("Prepare returned %v with error %v", p, err)
			}
			return
		}
		out := p.(*message).render(deviceToken, 1234)
		if p.PayloadSize() > MaxPayload || measuredSize(t, out) != p.PayloadSize() {
			t.Fatalf("PayloadSize %d, measured %d", p.PayloadSize(), measuredSize(t, out))
		}
		got := decodeJSON(t, out).(map[string]any)["message"].(map[string]any)
		if got["token"] != deviceToken || got["android"].(map[string]any)["ttl"] != "1234s" {
			t.Fatalf("token or ttl lost: %s", out)
		}
		for _, k := range []string{"topic", "condition"} {
			if _, ok := got[k]; ok {
				t.Fatalf("message has a %s: %s", k, out)
			}
		}
		want := decodeJSON(t, plain.(*message).render(deviceToken, 1234)).(map[string]any)["message"].(map[string]any)
		if hasOverrides(ov) {
			deepMerge(want, decodeJSON(t, ov).(map[string]any))
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("merged\n got %s\nwant %v\noverrides %s", out, want, ov)
		}
	})
}

// deepMerge is the documented merge, written independently of merge.
func deepMerge(dst, src map[string]any) {
	for k, v := range src {
		if d, ok := dst[k].(map[string]any); ok {
			if s, ok := v.(map[string]any); ok {
				deepMerge(d, s)
				continue
			}
		}
		dst[k] = v
	}
}

func BenchmarkPrepare(b *testing.B) {
	c := offlineClient(b, false)
	n := pushd.Notification{Title: "Summer sale", Body: "Everything 50% off until Sunday", Sound: "default", CollapseID: "sale-2026",
		Link: "app://sale", Data: map[string]json.RawMessage{"campaign": json.RawMessage(`1234`)}, Expiration: time.Now().Add(time.Hour)}
	for _, bc := range []struct {
		name string
		ov   string
	}{{"plain", ""}, {"overrides", `{"android":{"notification":{"color":"#ff0000"}},"apns":{"payload":{"aps":{"target-content-id":"sale"}}}}`}} {
		b.Run(bc.name, func(b *testing.B) {
			n := n
			n.Overrides.FCM = raw(bc.ov)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Prepare(n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
