package pushsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The rules for the aps dictionary of an APNs payload, applied to direct
// APNs requests and to what FCM forwards to APNs from apns.payload. They
// come from Apple's "Generating a remote notification" (the keys and their
// types), "Pushing background updates to your App" (silent pushes),
// "Modifying content in newly delivered notifications" (mutable-content)
// and "Sending notification requests to APNs" (apns-push-type).

// hasAPSDictionary reports whether body is a JSON object whose "aps" member
// is an object.
func hasAPSDictionary(body []byte) bool {
	_, ok := apsOf(body)
	return ok
}

// apsOf returns the "aps" member of body if body is a JSON object and that
// member is an object.
func apsOf(body []byte) ([]byte, bool) {
	if !json.Valid(body) {
		return nil, false
	}
	body = trimJSON(body)
	if body[0] != '{' {
		return nil, false
	}
	var aps []byte
	members(body, func(key string, val []byte) error {
		if key == "aps" {
			aps = val // a repeated key counts as it does for json.Unmarshal: the last wins
		}
		return nil
	})
	return aps, aps != nil && aps[0] == '{'
}

// apsKind is the JSON type Apple documents for an aps key
// ("Generating a remote notification"): 's' string, 'o' dictionary,
// 'n' number, 'i' non-negative integer; "so" allows either.
var apsKind = map[string]string{
	"alert":              "so",
	"badge":              "i",
	"sound":              "so",
	"thread-id":          "s",
	"category":           "s",
	"content-available":  "i",
	"mutable-content":    "i",
	"target-content-id":  "s",
	"interruption-level": "s",
	"relevance-score":    "n",
	"filter-criteria":    "s",
}

var apsKindNames = map[string]string{"s": "a string", "so": "a string or a dictionary", "n": "a number", "i": "a non-negative integer"}

// apsFacts is what the rules need to know of an aps dictionary. The raw
// values are the JSON as sent (a string still quoted); nil means the key
// is absent. A repeated key counts as it does for json.Unmarshal: the last
// wins.
type apsFacts struct {
	alert, sound, badge               []byte
	contentAvailable, mutableContent  []byte
	interruptionLevel, relevanceScore []byte
}

// scanAPS reads aps, a JSON object, in one pass: the facts the rules need,
// and the first documented key whose value has the wrong JSON type ("" for
// none). Apple ignores keys it does not document, so they pass; a badge of
// "3" or a sound of 1 is a client bug Apple's documentation rules out, and
// the simulator, stricter than APNs, rejects it rather than deliver a push
// the device would mishandle.
func scanAPS(aps []byte) (apsFacts, string) {
	var f apsFacts
	var problem string
	members(aps, func(key string, val []byte) error {
		kind, ok := apsKind[key]
		if !ok {
			return nil
		}
		switch key {
		case "alert":
			f.alert = val
		case "sound":
			f.sound = val
		case "badge":
			f.badge = val
		case "content-available":
			f.contentAvailable = val
		case "mutable-content":
			f.mutableContent = val
		case "interruption-level":
			f.interruptionLevel = val
		case "relevance-score":
			f.relevanceScore = val
		}
		if problem != "" {
			return nil
		}
		var got byte
		switch c := val[0]; {
		case c == '"':
			got = 's'
		case c == '{':
			got = 'o'
		case c == '-' || '0' <= c && c <= '9':
			got = 'n'
			if allDigits(string(val)) {
				got = 'i'
			}
		}
		if got == 0 || !strings.ContainsRune(kind, rune(got)) && !(got == 'i' && strings.Contains(kind, "n")) {
			problem = fmt.Sprintf("aps.%s is %s, want %s", key, val, apsKindNames[kind])
		}
		return nil
	})
	return f, problem
}

// interruptionLevels are the values Apple documents for
// aps.interruption-level.
var interruptionLevels = []string{"passive", "active", "time-sensitive", "critical"}

// valueProblem applies the rules on the values of the aps keys, once their
// types are right, or returns "". hasAlert says whether the notification
// will have an alert, which for FCM can come from outside aps.
//
// Apple documents no rejection for any of these: APNs delivers the push and
// the device ignores the value or does the wrong thing (a notification
// service extension that never runs). The simulator rejects them as client
// bugs, with its own reason BadPayload, as it does the type errors above.
func (f *apsFacts) valueProblem(hasAlert bool) string {
	if v := f.interruptionLevel; v != nil {
		inner := v[1 : len(v)-1] // a string: the type check came first
		if bytes.IndexByte(inner, '\\') >= 0 {
			inner = []byte(unquote(v))
		}
		if !slices.Contains(interruptionLevels, string(inner)) {
			return fmt.Sprintf("aps.interruption-level is %s, want one of %s", v, strings.Join(interruptionLevels, ", "))
		}
	}
	if v := f.relevanceScore; v != nil {
		// "A number between 0 and 1": the summary's sort order.
		n, err := strconv.ParseFloat(string(v), 64)
		if err != nil || n < 0 || n > 1 {
			return fmt.Sprintf("aps.relevance-score is %s, want a number from 0 to 1", v)
		}
	}
	if v := f.mutableContent; v != nil {
		// Apple documents only 1 ("the system passes the notification to
		// your notification service app extension"); 0 or 2 is a client
		// that misunderstood the flag, and any value but 1 is stricter
		// than APNs.
		if string(v) != "1" {
			return fmt.Sprintf("aps.mutable-content is %s, want 1 or the key left out", v)
		}
		// The extension runs only for a notification "configured to
		// display an alert": a rich push without one shows nothing.
		if !hasAlert {
			return "aps.mutable-content is 1 without an alert: the notification service extension runs only for notifications that display an alert"
		}
	}
	return ""
}

// pushTypeProblem applies the rules that tie the apns-push-type header to
// the payload, or returns "". hasAlert is as for valueProblem.
//
// Apple ("Sending notification requests to APNs" and the aps key
// reference, paraphrased): the alert type is for notifications that
// trigger a user interaction, an alert, a badge or a sound; the background
// type is for notifications that deliver content in the background and
// trigger no user interaction, and for a silent background update
// content-available is 1 and the payload has no alert, badge or sound.
// Apple names no reason for a payload that does not match its push type;
// the simulator answers InvalidPushType, the documented reason closest to
// it: the push type is not valid for what the client sends. PayloadEmpty
// would be wrong (it means no body at all) and so would BadPayload, the
// simulator's own reason for malformed values.
func (f *apsFacts) pushTypeProblem(pushType string, hasAlert bool) string {
	switch pushType {
	case "alert":
		if !hasAlert && f.sound == nil && f.badge == nil {
			return "apns-push-type alert without aps.alert, aps.sound or aps.badge: a silent push is apns-push-type background"
		}
	case "background":
		if string(f.contentAvailable) != "1" {
			return "apns-push-type background without aps.content-available 1"
		}
		var with []string
		if hasAlert {
			with = append(with, "alert")
		}
		if f.sound != nil {
			with = append(with, "sound")
		}
		if f.badge != nil {
			with = append(with, "badge")
		}
		if with != nil {
			return "apns-push-type background with aps." + strings.Join(with, ", aps.") + ": a background push must not interact with the user"
		}
	}
	return ""
}
