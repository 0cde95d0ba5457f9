package pushsim

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

const fcmDevToken = "fHx1Yq2-Tz0:APA91bH_sim-token"

func TestFCMDelivers(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	tok := e.accessToken()
	body := `{
	  "message": {
	    "token": "` + fcmDevToken + `",
	    "notification": {"title": "Hi", "body": "there", "image": "https://example.com/a.png"},
	    "data": {"campaign": "42"},
	    "android": {
	      "collapse_key": "news", "priority": "high", "ttl": "3.5s",
	      "restricted_package_name": "com.example.demo",
	      "notification": {"tag": "t1", "channel_id": "c", "click_action": "OPEN", "notification_count": 3,
	        "light_settings": {"color": {"red": 1}, "light_on_duration": "1s", "light_off_duration": "2s"}}
	    },
	    "apns": {"headers": {"apns-expiration": "1900000000", "apns-collapse-id": "c1", "apns-priority": "5",
	      "apns-push-type": "alert", "apns-topic": "com.example.demo"},
	      "payload": {"aps": {"sound": "default"}}},
	    "webpush": {"headers": {"TTL": "60"}, "notification": {"title": "x"}, "fcm_options": {"link": "https://example.com"}},
	    "fcm_options": {"analytics_label": "l"}
	  }
	}`
	r, a := e.sendFCM(tok, body)
	if r.status != http.StatusOK {
		t.Fatalf("status %d %s, want 200", r.status, r.body)
	}
	if !regexp.MustCompile(`^projects/pushd-demo/messages/\S+$`).MatchString(a.Name) {
		t.Errorf("name %q, want projects/pushd-demo/messages/<id>", a.Name)
	}
	if r, _ := e.sendFCM(tok, body); r.status != 200 {
		t.Fatalf("second send: %d %s", r.status, r.body)
	}

	ds := e.s.Deliveries()
	if len(ds) != 1 {
		t.Fatalf("deliveries %+v, want one", ds)
	}
	d := ds[0]
	want := Delivery{Token: fcmDevToken, Provider: "fcm", Count: 2, Topic: "com.example.demo", PushType: "alert",
		Priority: "high", Expiration: "1900000000", CollapseID: "c1", AndroidTag: "t1", AndroidTTL: "3.5s"}
	got := d
	got.Payload, got.At = nil, time.Time{}
	if !deliveryEqual(got, want) {
		t.Errorf("delivery\n got %+v\nwant %+v", got, want)
	}
	var payload map[string]any
	if err := json.Unmarshal(d.Payload, &payload); err != nil || payload["token"] != fcmDevToken {
		t.Errorf("payload %s: want the message object (%v)", d.Payload, err)
	}
	if !d.At.Equal(e.now()) {
		t.Errorf("at %v, want the sim's clock %v", d.At, e.now())
	}
	if st := e.s.Stats().FCM; st.Requests != 2 || st.Delivered != 2 || st.ByStatus["200"] != 2 {
		t.Errorf("stats %+v, want 2 requests, 2 delivered", st)
	}
}

func deliveryEqual(a, b Delivery) bool {
	a.Payload, b.Payload = nil, nil
	return a.Token == b.Token && a.Provider == b.Provider && a.Count == b.Count && a.Topic == b.Topic &&
		a.PushType == b.PushType && a.Priority == b.Priority && a.Expiration == b.Expiration &&
		a.CollapseID == b.CollapseID && a.AndroidTag == b.AndroidTag && a.AndroidTTL == b.AndroidTTL && a.At.Equal(b.At)
}

func TestFCMRejects(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	tok := e.accessToken()
	msg := func(fields string) string {
		return `{"message":{"token":"` + fcmDevToken + `"` + fields + `}}`
	}
	data := func(n int) string { return strings.Repeat("d", n) }

	tests := []struct {
		name        string
		project     string // default the sim's
		path        string // replaces the whole path
		method      string
		contentType string
		token       string // access token; "-" for none
		body        string
		wantStatus  int
		wantRPC     string // error.status
		wantCode    string // FcmError errorCode, "" for none expected
		wantMsg     string // substring of error.message
	}{
		{name: "good", body: msg(""), wantStatus: 200},
		{name: "no authorization", token: "-", body: msg(""), wantStatus: 401, wantRPC: "UNAUTHENTICATED"},
		{name: "unknown access token", token: "ya29.forged", body: msg(""), wantStatus: 401, wantRPC: "UNAUTHENTICATED"},
		{name: "other project", project: "someone-else", body: msg(""), wantStatus: 404, wantRPC: "NOT_FOUND"},
		{name: "bad path", path: "/v1/projects/pushd-demo/messages:sendAll", body: msg(""), wantStatus: 404, wantRPC: "NOT_FOUND"},
		{name: "GET", method: http.MethodGet, body: "", wantStatus: 404, wantRPC: "NOT_FOUND"},
		{name: "text body", contentType: "text/plain", body: msg(""), wantStatus: 400, wantRPC: "INVALID_ARGUMENT"},
		{name: "json with charset", contentType: "application/json; charset=utf-8", body: msg(""), wantStatus: 200},
		{name: "not JSON", body: `{"message":`, wantStatus: 400, wantRPC: "INVALID_ARGUMENT", wantMsg: "Invalid JSON payload received"},
		{name: "unknown top-level field", body: `{"message":{"token":"x"},"dry_run":true}`, wantStatus: 400, wantRPC: "INVALID_ARGUMENT",
			wantMsg: `Unknown name "dry_run": Cannot find field.`},
		{name: "unknown message field", body: msg(`,"priority":"high"`), wantStatus: 400, wantRPC: "INVALID_ARGUMENT",
			wantMsg: `Unknown name "priority" at 'message': Cannot find field.`},
		{name: "legacy field in android", body: msg(`,"android":{"time_to_live":60}`), wantStatus: 400, wantRPC: "INVALID_ARGUMENT",
			wantMsg: `Unknown name "time_to_live" at 'message.android'`},
		{name: "android field in notification", body: msg(`,"notification":{"sound":"default"}`), wantStatus: 400, wantRPC: "INVALID_ARGUMENT",
			wantMsg: `Unknown name "sound" at 'message.notification'`},
		{name: "camelCase names", body: `{"validateOnly":false,"message":{"token":"x","android":{"collapseKey":"k","restrictedPackageName":"p","directBootOk":true},"fcmOptions":{"analyticsLabel":"a"}}}`, wantStatus: 200},
		{name: "both spellings", body: msg(`,"android":{"collapseKey":"k","collapse_key":"k"}`), wantStatus: 400, wantRPC: "INVALID_ARGUMENT"},
		{name: "null is unset", body: msg(`,"android":null,"data":null`), wantStatus: 200},
		{name: "data number", body: msg(`,"data":{"n":1}`), wantStatus: 400, wantRPC: "INVALID_ARGUMENT", wantMsg: "message.data[0].value"},
		{name: "data nested object", body: msg(`,"data":{"n":{"a":"b"}}`), wantStatus: 400, wantRPC: "INVALID_ARGUMENT"},
		{name: "data array", body: msg(`,"data":["a"]`), wantStatus: 400, wantRPC: "INVALID_ARGUMENT"},
		{name: "reserved key from", body: msg(`,"data":{"from":"x"}`), wantStatus: 400, wantRPC: "INVALID_ARGUMENT", wantCode: "INVALID_ARGUMENT"},
		{name: "reserved key notification", body: msg(`,"data":{"notification":"x"}`), wantStatus: 400, wantCode: "INVALID_ARGUMENT"},
		{name: "reserved key message_type", body: msg(`,"data":{"message_type":"x"}`), wantStatus: 400, wantCode: "INVALID_ARGUMENT"},
		{name: "reserved prefix google", body: msg(`,"data":{"google.sent_time":"1"}`), wantStatus: 400, wantCode: "INVALID_ARGUMENT"},
		{name: "reserved prefix gcm", body: msg(`,"data":{"gcm.n.e":"1"}`), wantStatus: 400, wantCode: "INVALID_ARGUMENT"},
		{name: "reserved key in android data", body: msg(`,"android":{"data":{"from":"x"}}`), wantStatus: 400, wantCode: "INVALID_ARGUMENT"},
		{name: "fine data key", body: msg(`,"data":{"fromage":"brie","my_google":"x"}`), wantStatus: 200},
		{name: "no target", body: `{"message":{"notification":{"title":"x"}}}`, wantStatus: 400, wantCode: "INVALID_ARGUMENT", wantMsg: "Recipient"},
		{name: "two targets", body: `{"message":{"token":"x","topic":"news"}}`, wantStatus: 400, wantCode: "INVALID_ARGUMENT"},
		{name: "empty token", body: `{"message":{"token":""}}`, wantStatus: 400, wantCode: "INVALID_ARGUMENT", wantMsg: "not a valid FCM registration token"},
		{name: "token not a string", body: `{"message":{"token":5}}`, wantStatus: 400, wantRPC: "INVALID_ARGUMENT"},
		{name: "topic", body: `{"message":{"topic":"news"}}`, wantStatus: 200},
		{name: "bad topic", body: `{"message":{"topic":"news today"}}`, wantStatus: 400, wantCode: "INVALID_ARGUMENT"},
		{name: "condition", body: `{"message":{"condition":"'a' in topics && 'b' in topics"}}`, wantStatus: 200},
		{name: "ttl without unit", body: msg(`,"android":{"ttl":"10"}`), wantStatus: 400, wantRPC: "INVALID_ARGUMENT", wantMsg: "message.android.ttl"},
		{name: "ttl number", body: msg(`,"android":{"ttl":10}`), wantStatus: 400, wantRPC: "INVALID_ARGUMENT"},
		{name: "ttl ten decimals", body: msg(`,"android":{"ttl":"1.0123456789s"}`), wantStatus: 400, wantRPC: "INVALID_ARGUMENT"},
		{name: "ttl over 4 weeks", body: msg(`,"android":{"ttl":"2419201s"}`), wantStatus: 400, wantCode: "INVALID_ARGUMENT"},
		{name: "ttl 4 weeks and a bit", body: msg(`,"android":{"ttl":"2419200.5s"}`), wantStatus: 400, wantCode: "INVALID_ARGUMENT"},
		{name: "ttl 4 weeks", body: msg(`,"android":{"ttl":"2419200s"}`), wantStatus: 200},
		{name: "ttl 0s", body: msg(`,"android":{"ttl":"0s"}`), wantStatus: 200},
		{name: "priority urgent", body: msg(`,"android":{"priority":"urgent"}`), wantStatus: 400, wantRPC: "INVALID_ARGUMENT"},
		{name: "priority HIGH", body: msg(`,"android":{"priority":"HIGH"}`), wantStatus: 200},
		{name: "priority normal", body: msg(`,"android":{"priority":"normal"}`), wantStatus: 200},
		{name: "apns header number", body: msg(`,"apns":{"headers":{"apns-priority":10}}`), wantStatus: 400, wantRPC: "INVALID_ARGUMENT"},
		{name: "apns expiration word", body: msg(`,"apns":{"headers":{"apns-expiration":"soon"}}`), wantStatus: 400, wantCode: "INVALID_ARGUMENT"},
		{name: "apns payload not an object", body: msg(`,"apns":{"payload":"x"}`), wantStatus: 400, wantRPC: "INVALID_ARGUMENT"},
		{name: "visibility", body: msg(`,"android":{"notification":{"visibility":"PUBLIC","notification_priority":"PRIORITY_HIGH","event_time":"2030-01-02T03:04:05.5Z"}}`), wantStatus: 200},
		{name: "bad event time", body: msg(`,"android":{"notification":{"event_time":"yesterday"}}`), wantStatus: 400, wantRPC: "INVALID_ARGUMENT"},
		{name: "no message", body: `{"validate_only":true}`, wantStatus: 400, wantRPC: "INVALID_ARGUMENT"},
		// notification {"body":"…"} is 11 bytes of JSON plus the text; data {"d":"…"} is 8 plus the text.
		{name: "4096 bytes", body: msg(`,"notification":{"body":"` + data(2000) + `"},"data":{"d":"` + data(4096-11-2000-8) + `"}`), wantStatus: 200},
		{name: "4097 bytes", body: msg(`,"notification":{"body":"` + data(2000) + `"},"data":{"d":"` + data(4096-11-2000-8+1) + `"}`), wantStatus: 400,
			wantCode: "INVALID_ARGUMENT", wantMsg: "Message is too big"},
		{name: "whitespace does not count", body: msg(`,"notification":{ "body" : "` + data(2000) + `" },"data":{ "d" : "` + data(4096-11-2000-8) + `" }`), wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			project := tt.project
			if project == "" {
				project = "pushd-demo"
			}
			at := tok
			switch tt.token {
			case "-":
				at = ""
			case "":
			default:
				at = tt.token
			}
			req := e.fcmRequest(project, at, tt.body)
			if tt.path != "" {
				req.URL.Path = tt.path
			}
			if tt.method != "" {
				req.Method = tt.method
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			r := e.do(req)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d (%s), want %d", r.status, r.body, tt.wantStatus)
			}
			a := decodeFCM(t, r)
			if tt.wantStatus == 200 {
				if a.Name == "" {
					t.Errorf("body %s: want a message name", r.body)
				}
				return
			}
			if tt.wantRPC != "" && a.Error.Status != tt.wantRPC {
				t.Errorf("error.status %q, want %q", a.Error.Status, tt.wantRPC)
			}
			if tt.wantCode != "" && a.errorCode() != tt.wantCode {
				t.Errorf("FcmError %q, want %q (%s)", a.errorCode(), tt.wantCode, r.body)
			}
			if !strings.Contains(a.Error.Message, tt.wantMsg) {
				t.Errorf("message %q, want it to contain %q", a.Error.Message, tt.wantMsg)
			}
			if a.Error.Message == "" {
				t.Error("empty error.message")
			}
		})
	}
}

func TestFCMValidateOnly(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	tok := e.accessToken()
	r, a := e.sendFCM(tok, `{"validate_only":true,"message":{"token":"`+fcmDevToken+`","data":{"k":"v"}}}`)
	if r.status != 200 || a.Name == "" {
		t.Fatalf("validate_only: %d %s, want 200 with a name", r.status, r.body)
	}
	r, _ = e.sendFCM(tok, `{"validate_only":true,"message":{"token":"`+fcmDevToken+`","data":{"k":1}}}`)
	if r.status != 400 {
		t.Errorf("invalid validate_only message: %d, want 400: validation is full", r.status)
	}
	r, a = e.sendFCM(tok, `{"validate_only":true,"message":{"token":"dead`+fcmDevToken+`"}}`)
	if r.status != 404 || a.errorCode() != "UNREGISTERED" {
		t.Errorf("validate_only to a dead token: %d %s, want 404 UNREGISTERED", r.status, r.body)
	}
	st := e.s.Stats().FCM
	if st.ValidatedOnly != 1 || st.Delivered != 0 {
		t.Errorf("stats %+v, want 1 validated only, 0 delivered", st)
	}
	if ds := e.s.Deliveries(); len(ds) != 0 {
		t.Errorf("deliveries %+v, want none", ds)
	}
}

func TestFCMAccessTokenExpires(t *testing.T) {
	t.Parallel()
	e := start(t, Options{AccessTokenTTL: 10 * time.Minute})
	tok := e.accessToken()
	if r, _ := e.sendFCM(tok, fcmToken(fcmDevToken)); r.status != 200 {
		t.Fatalf("fresh token: %d %s", r.status, r.body)
	}
	e.clock.Advance(10 * time.Minute)
	r, a := e.sendFCM(tok, fcmToken(fcmDevToken))
	if r.status != 401 || a.Error.Status != "UNAUTHENTICATED" {
		t.Errorf("expired token: %d %s, want 401 UNAUTHENTICATED", r.status, r.body)
	}
	if st := e.s.Stats().FCM; st.ByReason["UNAUTHENTICATED"] != 1 {
		t.Errorf("by_reason %v, want UNAUTHENTICATED counted", st.ByReason)
	}
}
