package fcm

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/internal/pushsim"
	"github.com/pushd/pushd/providers"
)

// FuzzPrepare checks that whatever a campaign holds, Prepare either refuses it
// or renders a message pushsim's messages:send accepts (valid JSON of the v1
// shape, string-only data, within the 4096-byte limit) that says what was
// asked, without empty objects. Seeds are in testdata/fuzz/FuzzPrepare.
func FuzzPrepare(f *testing.F) {
	f.Add("Hello", "World", "k", []byte(`"v"`), "n", []byte(`1.50`), "", "default", -1, false)
	clients := [2]*Client{offlineClient(f, false), offlineClient(f, true)}
	deadline := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

	f.Fuzz(func(t *testing.T, title, body, k1 string, v1 []byte, k2 string, v2 []byte, collapse, sound string, badge int, validateOnly bool) {
		n := pushd.Notification{Title: title, Body: body, Sound: sound, CollapseID: collapse, Expiration: deadline}
		if badge >= 0 {
			n.Badge = &badge
		}
		if k1 != "" || len(v1) > 0 || k2 != "" || len(v2) > 0 {
			n.Data = map[string]json.RawMessage{k1: v1, k2: v2}
		}
		c := clients[0]
		if validateOnly {
			c = clients[1]
		}
		p, err := c.Prepare(n)
		if err != nil {
			if p != nil {
				t.Errorf("Prepare returned %v with error %v", p, err)
			}
			return
		}
		if p.PayloadSize() > MaxPayload {
			t.Fatalf("PayloadSize %d over the limit", p.PayloadSize())
		}
		out := p.(*message).render(deviceToken, 3600)
		if !json.Valid(out) {
			t.Fatalf("invalid JSON: %s", out)
		}
		if err := pushsim.ValidateFCMRequest(out, deadline.Add(-time.Hour)); err != nil {
			t.Fatalf("pushsim refuses it: %v\n%s", err, out)
		}
		if got := measuredSize(t, out); got != p.PayloadSize() {
			t.Errorf("PayloadSize %d, but notification+data measure %d", p.PayloadSize(), got)
		}
		var req struct {
			ValidateOnly *bool       `json:"validate_only"`
			Message      sentMessage `json:"message"`
		}
		if err := json.Unmarshal(out, &req); err != nil {
			t.Fatal(err)
		}
		if (req.ValidateOnly != nil && *req.ValidateOnly) != validateOnly {
			t.Errorf("validate_only = %v, want %v", req.ValidateOnly, validateOnly)
		}
		m := req.Message
		// What FCM would accept but pushd never means to send.
		switch {
		case m.Notification == nil || m.Notification.Title == "" && m.Notification.Body == "":
			t.Fatalf("notification without title or body\n%s", out)
		case m.Data != nil && len(m.Data) == 0:
			t.Fatalf("empty data object; omit it\n%s", out)
		case m.Android == nil || m.Android.Notification != nil && string(*m.Android.Notification) == "{}":
			t.Fatalf("no android config, or an empty android.notification\n%s", out)
		case m.APNs != nil && m.APNs.Payload != nil && (m.APNs.Payload.APS == nil ||
			m.APNs.Payload.APS.Badge == nil && m.APNs.Payload.APS.Sound == "" && m.APNs.Payload.APS.Alert == nil):
			t.Fatalf("empty apns.payload; omit it\n%s", out)
		}
		if m.Token != deviceToken || m.Android.TTL != "3600s" {
			t.Errorf("token %q ttl %q", m.Token, m.Android.TTL)
		}
		if m.Notification.Title != viaJSON(title) || m.Notification.Body != viaJSON(body) {
			t.Errorf("notification %+v, want title %q body %q", m.Notification, title, body)
		}
		for k, v := range n.Data {
			got, ok := m.Data[viaJSON(k)]
			if !ok {
				t.Fatalf("data key %q missing from %s", k, out)
			}
			checkDataValue(t, v, got)
		}
	})
}

// viaJSON is s as encoding/json carries it (invalid UTF-8 replaced).
func viaJSON(s string) string {
	b, _ := json.Marshal(s)
	var r string
	json.Unmarshal(b, &r)
	return r
}

// checkDataValue checks that the string FCM gets says the same as the raw
// JSON the campaign held.
func checkDataValue(t *testing.T, raw json.RawMessage, got string) {
	t.Helper()
	var want any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&want); err != nil {
		t.Fatalf("Prepare accepted invalid data %q: %v", raw, err)
	}
	switch w := want.(type) {
	case string:
		if got != w {
			t.Errorf("data %s = %q, want %q", raw, got, w)
		}
	case nil:
		if got != "" {
			t.Errorf("data null = %q, want empty", got)
		}
	default:
		var back any
		dec := json.NewDecoder(bytes.NewReader([]byte(got)))
		dec.UseNumber()
		if err := dec.Decode(&back); err != nil || !reflect.DeepEqual(back, want) {
			t.Errorf("data %s = %q, which reads back as %v (%v)", raw, got, back, err)
		}
		if len(got) > len(bytes.Trim(raw, " \t\r\n")) {
			t.Errorf("data %s = %q: longer than its compact form", raw, got)
		}
	}
}

// measuredSize measures notification + data the way FCM counts them,
// independently of Prepare.
func measuredSize(t *testing.T, body []byte) int {
	var parts struct {
		Message struct {
			Notification json.RawMessage `json:"notification"`
			Data         json.RawMessage `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(body, &parts); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range []json.RawMessage{parts.Message.Notification, parts.Message.Data} {
		if len(r) > 0 {
			var buf bytes.Buffer
			if err := json.Compact(&buf, r); err != nil {
				t.Fatal(err)
			}
			n += buf.Len()
		}
	}
	return n
}

// FuzzParseError checks that any answer maps to a sane Result without
// panicking. Seeds are in testdata/fuzz/FuzzParseError.
func FuzzParseError(f *testing.F) {
	f.Add(404, []byte(`{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`), "")
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	outcomes := map[providers.Outcome]bool{providers.Delivered: true, providers.Rejected: true, providers.TokenInvalid: true, providers.Retryable: true, providers.CredentialFailure: true}

	f.Fuzz(func(t *testing.T, status int, body []byte, retryAfter string) {
		h := http.Header{}
		if retryAfter != "" {
			h.Set("Retry-After", retryAfter)
		}
		res := classify(status, h, body, now)
		switch {
		case !outcomes[res.Outcome]:
			t.Errorf("outcome %q", res.Outcome)
		case res.Status != status:
			t.Errorf("status %d, want %d", res.Status, status)
		case (status >= 200 && status <= 299) != (res.Outcome == providers.Delivered):
			t.Errorf("status %d gave %s", status, res.Outcome)
		case (status == 429 || status >= 500 && status <= 599) && res.Outcome != providers.Retryable:
			t.Errorf("status %d gave %s, want retryable", status, res.Outcome)
		case res.Outcome == providers.TokenInvalid && (status < 400 || status > 499):
			t.Errorf("status %d invalidated the token", status)
		case res.Outcome == providers.CredentialFailure && res.Hint == "":
			t.Errorf("credential failure without a hint: %+v", res)
		case res.Outcome != providers.Delivered && res.Reason == "":
			t.Errorf("failure without a reason: %+v", res)
		case res.RetryAfter < 0 || res.RetryAfter > maxRetryAfter:
			t.Errorf("RetryAfter %v", res.RetryAfter)
		case status == 429 && retryAfter == "" && res.RetryAfter != defaultQuotaRetryAfter:
			t.Errorf("429 without Retry-After waits %v, want %v", res.RetryAfter, defaultQuotaRetryAfter)
		case len(res.Detail) > maxDetail || !utf8.ValidString(res.Detail):
			t.Errorf("Detail of %d bytes, valid UTF-8 %v", len(res.Detail), utf8.ValidString(res.Detail))
		}
		if res.Outcome == providers.Delivered {
			var answer struct {
				Name string `json:"name"`
			}
			json.Unmarshal(body, &answer)
			if res.ID != answer.Name {
				t.Errorf("ID %q, but encoding/json reads name %q", res.ID, answer.Name)
			}
		}
		// The reader must stop at the bound whatever the body.
		got, err := readBody(bytes.NewReader(body), nil)
		if len(body) <= maxBody && (err != nil || !bytes.Equal(got, body)) || len(body) > maxBody && !errors.Is(err, errBodyTooLarge) {
			t.Errorf("readBody of %d bytes: %d bytes, %v", len(body), len(got), err)
		}
	})
}
