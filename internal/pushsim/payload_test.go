package pushsim

import (
	"net/http"
	"strings"
	"testing"
)

// Tests of the payload rules for rich and silent pushes (aps.go), through
// both APNs and FCM.

func TestAPNsPayloadRules(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	const silent = `{"aps":{"content-available":1}}`
	tests := []struct {
		name       string
		pushType   string // default alert
		priority   string // default 10 for alert, 5 for background; "-" leaves the header out
		body       string
		wantStatus int
		wantReason string
	}{
		// Background (silent) pushes.
		{name: "background", pushType: "background", body: silent, wantStatus: 200},
		{name: "background with custom keys", pushType: "background", body: `{"aps":{"content-available":1,"thread-id":"t"},"campaign":"42"}`, wantStatus: 200},
		{name: "background without priority", pushType: "background", priority: "-", body: silent, wantStatus: 400, wantReason: "BadPriority"},
		{name: "background at 10", pushType: "background", priority: "10", body: silent, wantStatus: 400, wantReason: "BadPriority"},
		{name: "background at 1", pushType: "background", priority: "1", body: silent, wantStatus: 400, wantReason: "BadPriority"},
		{name: "background at 10 with an alert", pushType: "background", priority: "10", body: `{"aps":{"alert":"x"}}`, wantStatus: 400, wantReason: "BadPriority"},
		{name: "background without content-available", pushType: "background", body: `{"aps":{}}`, wantStatus: 400, wantReason: "InvalidPushType"},
		{name: "background content-available 0", pushType: "background", body: `{"aps":{"content-available":0}}`, wantStatus: 400, wantReason: "InvalidPushType"},
		{name: "background content-available 2", pushType: "background", body: `{"aps":{"content-available":2}}`, wantStatus: 400, wantReason: "InvalidPushType"},
		{name: "background content-available last wins", pushType: "background", body: `{"aps":{"content-available":1,"content-available":0}}`, wantStatus: 400, wantReason: "InvalidPushType"},
		{name: "background with alert", pushType: "background", body: `{"aps":{"content-available":1,"alert":"x"}}`, wantStatus: 400, wantReason: "InvalidPushType"},
		{name: "background with sound", pushType: "background", body: `{"aps":{"content-available":1,"sound":"default"}}`, wantStatus: 400, wantReason: "InvalidPushType"},
		{name: "background with badge", pushType: "background", body: `{"aps":{"content-available":1,"badge":0}}`, wantStatus: 400, wantReason: "InvalidPushType"},
		{name: "background with a bad badge type", pushType: "background", body: `{"aps":{"content-available":1,"badge":"1"}}`, wantStatus: 400, wantReason: "BadPayload"},

		// Alert pushes.
		{name: "alert string", body: `{"aps":{"alert":"hi"}}`, wantStatus: 200},
		{name: "sound only", body: `{"aps":{"sound":"default"}}`, wantStatus: 200},
		{name: "badge only", body: `{"aps":{"badge":0}}`, wantStatus: 200},
		{name: "alert with content-available", body: `{"aps":{"alert":"hi","content-available":1}}`, wantStatus: 200},
		{name: "alert push with empty aps", body: `{"aps":{}}`, wantStatus: 400, wantReason: "InvalidPushType"},
		{name: "alert push that is silent", body: silent, wantStatus: 400, wantReason: "InvalidPushType"},
		{name: "alert push without priority", priority: "-", wantStatus: 200},
		{name: "alert push at 5", priority: "5", wantStatus: 200},
		{name: "alert push at 1", priority: "1", wantStatus: 200},
		{name: "type error before push type", body: `{"aps":{"badge":"3"}}`, wantStatus: 400, wantReason: "BadPayload"},
		{name: "other push types are not matched", pushType: "voip", body: `{"aps":{}}`, wantStatus: 200},

		// Values.
		{name: "interruption-level passive", body: `{"aps":{"alert":"x","interruption-level":"passive"}}`, wantStatus: 200},
		{name: "interruption-level active", body: `{"aps":{"alert":"x","interruption-level":"active"}}`, wantStatus: 200},
		{name: "interruption-level time-sensitive", body: `{"aps":{"alert":"x","interruption-level":"time-sensitive"}}`, wantStatus: 200},
		{name: "interruption-level critical", body: `{"aps":{"alert":"x","interruption-level":"critical"}}`, wantStatus: 200},
		{name: "interruption-level escaped", body: `{"aps":{"alert":"x","interruption-level":"p\u0061ssive"}}`, wantStatus: 200},
		{name: "interruption-level urgent", body: `{"aps":{"alert":"x","interruption-level":"urgent"}}`, wantStatus: 400, wantReason: "BadPayload"},
		{name: "interruption-level in capitals", body: `{"aps":{"alert":"x","interruption-level":"Critical"}}`, wantStatus: 400, wantReason: "BadPayload"},
		{name: "interruption-level snake case", body: `{"aps":{"alert":"x","interruption-level":"time_sensitive"}}`, wantStatus: 400, wantReason: "BadPayload"},
		{name: "interruption-level number", body: `{"aps":{"alert":"x","interruption-level":1}}`, wantStatus: 400, wantReason: "BadPayload"},
		{name: "interruption-level on a silent push", pushType: "background", body: `{"aps":{"content-available":1,"interruption-level":"loud"}}`, wantStatus: 400, wantReason: "BadPayload"},
		{name: "relevance-score 0", body: `{"aps":{"alert":"x","relevance-score":0}}`, wantStatus: 200},
		{name: "relevance-score 1", body: `{"aps":{"alert":"x","relevance-score":1}}`, wantStatus: 200},
		{name: "relevance-score 0.25", body: `{"aps":{"alert":"x","relevance-score":0.25}}`, wantStatus: 200},
		{name: "relevance-score 1e-1", body: `{"aps":{"alert":"x","relevance-score":1e-1}}`, wantStatus: 200},
		{name: "relevance-score 1.5", body: `{"aps":{"alert":"x","relevance-score":1.5}}`, wantStatus: 400, wantReason: "BadPayload"},
		{name: "relevance-score 100", body: `{"aps":{"alert":"x","relevance-score":100}}`, wantStatus: 400, wantReason: "BadPayload"},
		{name: "relevance-score negative", body: `{"aps":{"alert":"x","relevance-score":-0.1}}`, wantStatus: 400, wantReason: "BadPayload"},
		{name: "relevance-score string", body: `{"aps":{"alert":"x","relevance-score":"0.5"}}`, wantStatus: 400, wantReason: "BadPayload"},
		{name: "mutable-content with alert", body: `{"aps":{"alert":{"title":"x"},"mutable-content":1},"image":"https://example.com/a.png"}`, wantStatus: 200},
		{name: "mutable-content 0", body: `{"aps":{"alert":"x","mutable-content":0}}`, wantStatus: 400, wantReason: "BadPayload"},
		{name: "mutable-content 2", body: `{"aps":{"alert":"x","mutable-content":2}}`, wantStatus: 400, wantReason: "BadPayload"},
		{name: "mutable-content true", body: `{"aps":{"alert":"x","mutable-content":true}}`, wantStatus: 400, wantReason: "BadPayload"},
		{name: "mutable-content without alert", body: `{"aps":{"sound":"default","mutable-content":1}}`, wantStatus: 400, wantReason: "BadPayload"},
		{name: "mutable-content on a silent push", pushType: "background", body: `{"aps":{"content-available":1,"mutable-content":1}}`, wantStatus: 400, wantReason: "BadPayload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			body := tt.body
			if body == "" {
				body = alertBody
			}
			req := e.apnsRequest(devToken, body)
			pushType := cmpOr(tt.pushType, "alert")
			req.Header.Set("apns-push-type", pushType)
			switch pushType {
			case "voip":
				req.Header.Set("apns-topic", testBundle+".voip")
			case "background":
				req.Header.Set("apns-priority", "5")
			}
			switch tt.priority {
			case "":
			case "-":
				req.Header.Del("apns-priority")
			default:
				req.Header.Set("apns-priority", tt.priority)
			}
			r := e.do(req)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d (%s), want %d %s", r.status, r.body, tt.wantStatus, tt.wantReason)
			}
			if tt.wantStatus != 200 {
				if got := r.reason(t); got != tt.wantReason {
					t.Errorf("reason %q, want %q", got, tt.wantReason)
				}
			}
		})
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func TestFCMPayloadRules(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	tok := e.accessToken()
	msg := func(fields string) string {
		return `{"message":{"token":"` + fcmDevToken + `"` + fields + `}}`
	}
	const bgHeaders = `"headers":{"apns-push-type":"background","apns-priority":"5"}`
	tests := []struct {
		name    string
		body    string
		ok      bool
		wantMsg string // substring of error.message
	}{
		{name: "data only", body: msg(`,"data":{"k":"v"}`), ok: true},
		{name: "android notification without notification", body: msg(`,"android":{"notification":{"title":"t","channel_id":"news","click_action":"OPEN"}}`), ok: true},

		{name: "priority NORMAL", body: msg(`,"android":{"priority":"NORMAL"}`), ok: true},
		{name: "priority HIGH", body: msg(`,"android":{"priority":"HIGH"}`), ok: true},
		{name: "priority normal", body: msg(`,"android":{"priority":"normal"}`), ok: true},
		{name: "priority high", body: msg(`,"android":{"priority":"high"}`), ok: true},
		{name: "priority High", body: msg(`,"android":{"priority":"High"}`), wantMsg: "message.android.priority"},
		{name: "priority 1", body: msg(`,"android":{"priority":1}`), wantMsg: "message.android.priority"},
		{name: "priority 0", body: msg(`,"android":{"priority":0}`), wantMsg: "message.android.priority"},
		{name: "priority 10", body: msg(`,"android":{"priority":"10"}`), wantMsg: "message.android.priority"},
		{name: "other enums keep taking numbers", body: msg(`,"android":{"notification":{"visibility":2}}`), ok: true},

		{name: "image https", body: msg(`,"notification":{"title":"t","image":"https://example.com/a.png?x=1"}`), ok: true},
		{name: "image empty is unset", body: msg(`,"notification":{"title":"t","image":""}`), ok: true},
		{name: "image http", body: msg(`,"notification":{"image":"http://example.com/a.png"}`), wantMsg: "message.notification.image"},
		{name: "image relative", body: msg(`,"notification":{"image":"/a.png"}`), wantMsg: "message.notification.image"},
		{name: "image without scheme", body: msg(`,"notification":{"image":"example.com/a.png"}`), wantMsg: "message.notification.image"},
		{name: "image without host", body: msg(`,"notification":{"image":"https:///a.png"}`), wantMsg: "message.notification.image"},
		{name: "image number", body: msg(`,"notification":{"image":1}`), wantMsg: "message.notification.image"},
		{name: "image object", body: msg(`,"notification":{"image":{"url":"https://example.com/a.png"}}`), wantMsg: "message.notification.image"},
		{name: "android image http", body: msg(`,"android":{"notification":{"image":"http://example.com/a.png"}}`), wantMsg: "message.android.notification.image"},
		{name: "apns image http", body: msg(`,"apns":{"fcm_options":{"image":"http://example.com/a.png"}}`), wantMsg: "message.apns.fcm_options.image"},
		{name: "apns image https", body: msg(`,"apns":{"fcm_options":{"image":"https://example.com/a.png"}}`), ok: true},

		{name: "channel_id number", body: msg(`,"android":{"notification":{"channel_id":1}}`), wantMsg: "message.android.notification.channel_id"},
		{name: "click_action object", body: msg(`,"android":{"notification":{"click_action":{"a":"b"}}}`), wantMsg: "message.android.notification.click_action"},
		{name: "click_action camelCase", body: msg(`,"android":{"notification":{"clickAction":"OPEN","channelId":"c"}}`), ok: true},

		{name: "apns header bool", body: msg(`,"apns":{"headers":{"apns-push-type":true}}`), wantMsg: "message.apns.headers"},
		{name: "data bool", body: msg(`,"data":{"k":true}`), wantMsg: "message.data"},

		{name: "background", body: msg(`,"data":{"k":"v"},"apns":{` + bgHeaders + `,"payload":{"aps":{"content-available":1},"k":"v"}}`), ok: true},
		{name: "background header names in capitals", body: msg(`,"apns":{"headers":{"Apns-Push-Type":"background","APNS-PRIORITY":"5"},"payload":{"aps":{"content-available":1}}}`), ok: true},
		{name: "background without priority", body: msg(`,"apns":{"headers":{"apns-push-type":"background"},"payload":{"aps":{"content-available":1}}}`), wantMsg: "apns-priority"},
		{name: "background at 10", body: msg(`,"apns":{"headers":{"apns-push-type":"background","apns-priority":"10"},"payload":{"aps":{"content-available":1}}}`), wantMsg: "apns-priority"},
		{name: "background in capitals at 10", body: msg(`,"apns":{"headers":{"APNS-PUSH-TYPE":"background","apns-priority":"10"},"payload":{"aps":{"content-available":1}}}`), wantMsg: "apns-priority"},
		{name: "background without payload", body: msg(`,"apns":{` + bgHeaders + `}`), wantMsg: "content-available"},
		{name: "background without aps", body: msg(`,"apns":{` + bgHeaders + `,"payload":{"k":"v"}}`), wantMsg: "content-available"},
		{name: "background content-available 0", body: msg(`,"apns":{` + bgHeaders + `,"payload":{"aps":{"content-available":0}}}`), wantMsg: "content-available"},
		{name: "background with alert", body: msg(`,"apns":{` + bgHeaders + `,"payload":{"aps":{"content-available":1,"alert":"x"}}}`), wantMsg: "aps.alert"},
		{name: "background with sound", body: msg(`,"apns":{` + bgHeaders + `,"payload":{"aps":{"content-available":1,"sound":"default"}}}`), wantMsg: "aps.sound"},
		{name: "background with badge", body: msg(`,"apns":{` + bgHeaders + `,"payload":{"aps":{"content-available":1,"badge":1}}}`), wantMsg: "aps.badge"},
		{name: "background with notification", body: msg(`,"notification":{"title":"t"},"apns":{` + bgHeaders + `,"payload":{"aps":{"content-available":1}}}`), wantMsg: "message.notification"},
		{name: "priority 5 without push type", body: msg(`,"apns":{"headers":{"apns-priority":"5"},"payload":{"aps":{"content-available":1}}}`), ok: true},
		{name: "priority 10 without push type", body: msg(`,"apns":{"headers":{"apns-priority":"10"},"payload":{"aps":{"content-available":1}}}`), wantMsg: "apns-priority"},
		{name: "no priority without push type", body: msg(`,"apns":{"payload":{"aps":{"content-available":1}}}`), wantMsg: "apns-priority"},
		{name: "alert push type data only is not matched", body: msg(`,"data":{"k":"v"},"apns":{"headers":{"apns-push-type":"alert"}}`), ok: true},

		{name: "interruption-level", body: msg(`,"notification":{"title":"t"},"apns":{"payload":{"aps":{"interruption-level":"time-sensitive","relevance-score":0.5}}}`), ok: true},
		{name: "interruption-level unknown", body: msg(`,"apns":{"payload":{"aps":{"interruption-level":"urgent"}}}`), wantMsg: "interruption-level"},
		{name: "relevance-score 2", body: msg(`,"apns":{"payload":{"aps":{"relevance-score":2}}}`), wantMsg: "relevance-score"},
		{name: "relevance-score string", body: msg(`,"apns":{"payload":{"aps":{"relevance-score":"0.5"}}}`), wantMsg: "relevance-score"},
		{name: "mutable-content with notification", body: msg(`,"notification":{"title":"t","image":"https://example.com/a.png"},"apns":{"payload":{"aps":{"mutable-content":1}}}`), ok: true},
		{name: "mutable-content with aps alert", body: msg(`,"apns":{"payload":{"aps":{"alert":{"title":"t"},"mutable-content":1}}}`), ok: true},
		{name: "mutable-content data only", body: msg(`,"data":{"k":"v"},"apns":{"payload":{"aps":{"mutable-content":1}}}`), wantMsg: "mutable-content"},
		{name: "mutable-content 0", body: msg(`,"notification":{"title":"t"},"apns":{"payload":{"aps":{"mutable-content":0}}}`), wantMsg: "mutable-content"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			r, a := e.sendFCM(tok, tt.body)
			err := ValidateFCMRequest([]byte(tt.body), e.now())
			if tt.ok {
				if r.status != 200 {
					t.Fatalf("got %d %s, want 200", r.status, r.body)
				}
				if err != nil {
					t.Errorf("ValidateFCMRequest = %v, want nil", err)
				}
				return
			}
			if r.status != http.StatusBadRequest || a.Error.Status != "INVALID_ARGUMENT" {
				t.Fatalf("got %d %s, want 400 INVALID_ARGUMENT", r.status, r.body)
			}
			if !strings.Contains(a.Error.Message, tt.wantMsg) {
				t.Errorf("message %q, want it to contain %q", a.Error.Message, tt.wantMsg)
			}
			if err == nil {
				t.Error("ValidateFCMRequest = nil, want the same rejection")
			}
		})
	}
}
