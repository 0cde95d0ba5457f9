package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/content"
)

// Limits of what an app may send.
const (
	maxBody       = 16 << 10
	maxAttributes = 4 << 10
	maxExternalID = 255
)

// maxDepth is the deepest nesting MariaDB's JSON columns take.
const maxDepth = 32

// depth is the deepest nesting of objects and lists in valid JSON.
func depth(b []byte) int {
	d, deepest, inString := 0, 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			d++
			deepest = max(deepest, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return deepest
}

// fieldError is a problem with one field of a request.
type fieldError struct {
	field, message string
}

func (e *fieldError) Error() string { return e.field + ": " + e.message }

func bad(field, format string, args ...any) *fieldError {
	return &fieldError{field: field, message: fmt.Sprintf(format, args...)}
}

// checkInstallationID checks the path's installation id: 8 to 64 of
// [A-Za-z0-9._-], as a UUID or Firebase installation id is.
func checkInstallationID(id string) error {
	if len(id) < 8 || len(id) > 64 {
		return bad("installation_id", "must be 8 to 64 characters long, not %d: use a random id the app keeps, such as a UUID", len(id))
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return bad("installation_id", "has the character %q at position %d: use only letters, digits, '.', '_' and '-'", c, i+1)
		}
	}
	return nil
}

// checkToken checks a token's shape for the app's provider. APNs tokens
// are hex: 32 bytes today, and Apple says they may grow, so 32 to 100
// bytes are taken. FCM registration tokens are about 160 characters of
// letters, digits and -_:. (the Firebase SDKs' alphabet).
func checkToken(kind pushd.PushType, token string) error {
	switch kind {
	case pushd.APNs:
		if len(token) < 64 || len(token) > 200 || len(token)%2 != 0 {
			return bad("token", "is %d characters long; an APNs device token is an even number of hex digits, 64 (32 bytes) to 200: send the deviceToken bytes as hex", len(token))
		}
		for i := 0; i < len(token); i++ {
			if c := token[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return bad("token", "has %q at position %d; an APNs device token is hex digits only", c, i+1)
			}
		}
	case pushd.FCM:
		if len(token) < 32 || len(token) > 1024 { // users.push_token holds 1024
			return bad("token", "is %d characters long; an FCM registration token has 32 to 1024 (usually about 160)", len(token))
		}
		for i := 0; i < len(token); i++ {
			if c := token[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == ':' || c == '.') {
				return bad("token", "has %q at position %d; an FCM registration token has only letters, digits and -_:.", c, i+1)
			}
		}
	default:
		return bad("token", "the app's push type %q is unknown", kind)
	}
	return nil
}

// installationBody is the JSON of a PUT; pointers tell an absent field
// from an empty one.
type installationBody struct {
	Token      *string         `json:"token"`
	ExternalID *string         `json:"external_id"`
	Timezone   *string         `json:"timezone"`
	Locale     *string         `json:"locale"`
	Attributes json.RawMessage `json:"attributes"`
}

// decode reads exactly one JSON object with only known fields.
func decode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntax):
			return bad("", "the body is not valid JSON at byte %d: %v", syntax.Offset, syntax)
		case errors.As(err, &typ):
			if typ.Field != "" {
				return bad(typ.Field, "must be a JSON %s, not %s", jsonKind(typ.Type.String()), typ.Value)
			}
			return bad("", "the body must be a JSON object, not %s", typ.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return bad(name, "is not a field of this request; see docs/api.md")
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return bad("", "the body is empty or cut short: send a JSON object")
		}
		return bad("", "the body is not valid JSON: %v", err)
	}
	if dec.More() {
		return bad("", "the body has more after its JSON object: send one object")
	}
	return nil
}

func jsonKind(goType string) string {
	switch {
	case strings.Contains(goType, "string"):
		return "string"
	case strings.Contains(goType, "RawMessage"):
		return "object"
	}
	return goType
}

// installation checks a PUT's body and builds what the store upserts.
func installation(app *appEntry, installationID string, body []byte, now time.Time) (pushd.Installation, error) {
	in := pushd.Installation{App: app.name, InstallationID: installationID, At: now}
	var b installationBody
	if err := decode(body, &b); err != nil {
		return in, err
	}
	if b.Token == nil || *b.Token == "" {
		return in, bad("token", "is required: the device's push token, as the provider's SDK gives it")
	}
	if err := checkToken(app.kind, *b.Token); err != nil {
		return in, err
	}
	in.Token = *b.Token
	if b.ExternalID != nil {
		id := *b.ExternalID
		switch {
		case len(id) > maxExternalID:
			return in, bad("external_id", "is %d bytes long; at most %d", len(id), maxExternalID)
		case !utf8.ValidString(id) || strings.IndexFunc(id, unicode.IsControl) >= 0:
			return in, bad("external_id", "must be text without control characters")
		}
		in.ExternalID = id
	}
	if b.Timezone != nil && *b.Timezone != "" {
		tz := *b.Timezone
		if _, err := time.LoadLocation(tz); err != nil || strings.EqualFold(tz, "local") || len(tz) > 64 {
			return in, bad("timezone", "%q is not an IANA time zone; send the device's zone identifier, such as \"Europe/Paris\"", tz)
		}
		in.Timezone = tz
	}
	if b.Locale != nil && *b.Locale != "" {
		l, ok := content.Canonical(*b.Locale)
		if !ok {
			return in, bad("locale", "%q is not a BCP 47 locale; send a language tag such as \"fr-CA\" or \"en\"", *b.Locale)
		}
		in.Locale = l
	}
	if a := bytes.TrimSpace(b.Attributes); len(a) > 0 && !bytes.Equal(a, []byte("null")) {
		if len(a) > maxAttributes {
			return in, bad("attributes", "is %d bytes; at most %d", len(a), maxAttributes)
		}
		if a[0] != '{' {
			return in, bad("attributes", "must be a JSON object of names and values, such as {\"first_name\": \"Anna\"}")
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, a); err != nil {
			return in, bad("attributes", "is not valid JSON: %v", err)
		}
		// What the JSON column refuses: invalid UTF-8, nesting over 32.
		if !utf8.Valid(a) {
			return in, bad("attributes", "has text that is not valid UTF-8")
		}
		if depth(a) > maxDepth {
			return in, bad("attributes", "nests objects and lists more than %d deep", maxDepth)
		}
		in.Attributes = compact.Bytes()
	}
	return in, nil
}
