package api

import (
	"bytes"
	"testing"
	"time"

	"github.com/pushd/pushd"
)

// FuzzInstallation feeds any body and installation id to the checks: no
// input panics, and whatever they accept is within the documented shapes.
func FuzzInstallation(f *testing.F) {
	f.Add("inst-0001", `{"token": "`+apnsTok+`", "locale": "fr_CA", "attributes": {"a": [1, {"b": null}]}}`, true)
	f.Add("inst-0001", `{"token": "`+fcmTok+`", "timezone": "Europe/Paris", "external_id": "x"}`, false)
	f.Add("../../etc", `{"token": "a", "attributes": "x"}`, false)
	f.Add("inst-0001", `{"token": "`+apnsTok+`"} {}`, true)
	f.Fuzz(func(t *testing.T, id, body string, apns bool) {
		kind := pushd.FCM
		if apns {
			kind = pushd.APNs
		}
		if checkInstallationID(id) != nil {
			return
		}
		in, err := installation(&appEntry{name: "A", kind: kind}, id, []byte(body), time.Unix(0, 0))
		if err != nil {
			if _, ok := err.(*fieldError); !ok {
				t.Fatalf("error %T %v is not a field error", err, err)
			}
			return
		}
		if checkToken(kind, in.Token) != nil || len(in.Attributes) > maxAttributes || len(in.ExternalID) > maxExternalID ||
			len(in.Attributes) > 0 && in.Attributes[0] != '{' || bytes.ContainsAny([]byte(id), "/\\' ") {
			t.Fatalf("accepted %+v", in)
		}
	})
}
