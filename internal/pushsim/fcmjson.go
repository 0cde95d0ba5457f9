package pushsim

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file decodes FCM request bodies the way Google's API front end maps
// JSON onto protocol buffers: field names may be snake_case or lowerCamelCase,
// unknown names and values of the wrong type are rejected, null means unset.

// protoObject is a protobuf message decoded from a JSON object.
type protoObject interface {
	// field returns a pointer to the field with the snake_case name, or nil
	// when the message has none.
	field(name string) any
	// protoType is the type URL Google names in errors.
	protoType() string
}

// rawKeeper is a protoObject that also wants some fields' raw JSON.
type rawKeeper interface {
	keepRaw(name string, raw json.RawMessage)
}

// decodeError is a JSON payload that does not fit the message. Google
// answers it with INVALID_ARGUMENT and a BadRequest field violation.
type decodeError struct {
	field string // path such as "message.android.ttl"
	msg   string
}

func (e *decodeError) Error() string { return e.msg }

func unknownName(name, path string) error {
	msg := fmt.Sprintf("Invalid JSON payload received. Unknown name %q at '%s': Cannot find field.", name, path)
	if path == "" {
		msg = fmt.Sprintf("Invalid JSON payload received. Unknown name %q: Cannot find field.", name)
	}
	return &decodeError{field: path, msg: msg}
}

func invalidValue(path, typ string, raw []byte) error {
	if len(raw) > 64 {
		raw = append(raw[:61:61], "..."...)
	}
	return &decodeError{field: path, msg: fmt.Sprintf("Invalid value at '%s' (%s), %s", path, typ, raw)}
}

// snakeCase maps lowerCamelCase to snake_case; snake_case stays as it is.
func snakeCase(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)+n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			b = append(b, '_', c+'a'-'A')
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// decodeObject decodes a JSON object into o.
func decodeObject(raw json.RawMessage, path string, o protoObject) error {
	if len(raw) == 0 || raw[0] != '{' {
		return invalidValue(path, o.protoType(), raw)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return invalidValue(path, o.protoType(), raw)
	}
	keeper, _ := o.(rawKeeper)
	seen := make(map[string]bool, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		name := snakeCase(k)
		p := o.field(name)
		if p == nil {
			return unknownName(k, path)
		}
		if seen[name] {
			return &decodeError{field: joinPath(path, name), msg: fmt.Sprintf("Invalid JSON payload received. Duplicate value for field %q at '%s'.", name, path)}
		}
		seen[name] = true
		v := m[k]
		if isNull(v) {
			continue
		}
		if keeper != nil {
			keeper.keepRaw(name, v)
		}
		if err := decodeValue(v, joinPath(path, name), p); err != nil {
			return err
		}
	}
	return nil
}

// decodeValue decodes one field value into p.
func decodeValue(v json.RawMessage, path string, p any) error {
	switch p := p.(type) {
	case protoObject:
		return decodeObject(v, path, p)
	case *stringMap:
		return p.decode(v, path)
	case *enum:
		return p.decode(v, path)
	case *duration:
		return p.decode(v, path)
	case *structValue:
		if v[0] != '{' {
			return invalidValue(path, "type.googleapis.com/google.protobuf.Struct", v)
		}
		*p = structValue(v)
		return nil
	case *timestamp:
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return invalidValue(path, "type.googleapis.com/google.protobuf.Timestamp", v)
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return invalidValue(path, "type.googleapis.com/google.protobuf.Timestamp", v)
		}
		*p = timestamp(s)
		return nil
	case *string:
		if v[0] != '"' || json.Unmarshal(v, p) != nil {
			return invalidValue(path, "TYPE_STRING", v)
		}
		return nil
	case **string:
		var s string
		if err := decodeValue(v, path, &s); err != nil {
			return err
		}
		*p = &s
		return nil
	case *bool:
		if json.Unmarshal(v, p) != nil {
			return invalidValue(path, "TYPE_BOOL", v)
		}
		return nil
	case *int32:
		// Protobuf JSON takes 32-bit integers as numbers or decimal strings.
		s := strings.Trim(string(v), `"`)
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return invalidValue(path, "TYPE_INT32", v)
		}
		*p = int32(n)
		return nil
	case *float64:
		if json.Unmarshal(v, p) != nil {
			return invalidValue(path, "TYPE_FLOAT", v)
		}
		return nil
	case *[]string:
		if v[0] != '[' {
			return invalidValue(path, "TYPE_STRING", v)
		}
		var raws []json.RawMessage
		if err := json.Unmarshal(v, &raws); err != nil {
			return invalidValue(path, "TYPE_STRING", v)
		}
		*p = make([]string, len(raws))
		for i, e := range raws {
			if err := decodeValue(e, fmt.Sprintf("%s[%d]", path, i), &(*p)[i]); err != nil {
				return err
			}
		}
		return nil
	case *[]duration:
		var raws []json.RawMessage
		if v[0] != '[' || json.Unmarshal(v, &raws) != nil {
			return invalidValue(path, durationType, v)
		}
		*p = make([]duration, len(raws))
		for i, e := range raws {
			if err := (*p)[i].decode(e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
	panic(fmt.Sprintf("pushsim: no decoder for %T at %s", p, path))
}

// stringMap is a map<string, string> field. The raw JSON is kept for the
// size check.
type stringMap struct {
	m   map[string]string
	raw json.RawMessage
}

func (sm *stringMap) decode(v json.RawMessage, path string) error {
	var m map[string]json.RawMessage
	if v[0] != '{' || json.Unmarshal(v, &m) != nil {
		return invalidValue(path, "type.googleapis.com/google.protobuf.Map", v)
	}
	sm.m = make(map[string]string, len(m))
	sm.raw = v
	for i, k := range slices.Sorted(maps.Keys(m)) {
		e := m[k]
		var s string
		if e[0] != '"' || json.Unmarshal(e, &s) != nil {
			return invalidValue(fmt.Sprintf("%s[%d].value", path, i), "TYPE_STRING", e)
		}
		sm.m[k] = s
	}
	return nil
}

// getFold looks a key up case-insensitively, as HTTP header names are.
func (sm *stringMap) getFold(key string) (string, bool) {
	for k, v := range sm.m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

// enumType is the value names of a protobuf enum, by number.
type enumType struct {
	name   string // type URL for errors
	values []string
}

// enum is an enum field. Like Google's front end it takes the value name
// (in any case: FCM's own SDKs send lower-case "high") or its number.
type enum struct {
	typ   *enumType
	value string // as sent
}

// of returns e typed as t, ready to decode into.
func (e *enum) of(t *enumType) *enum {
	e.typ = t
	return e
}

func (e *enum) decode(v json.RawMessage, path string) error {
	var s string
	if json.Unmarshal(v, &s) == nil {
		for _, name := range e.typ.values {
			if strings.EqualFold(s, name) {
				e.value = s
				return nil
			}
		}
		return invalidValue(path, e.typ.name, v)
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 0 || n >= len(e.typ.values) {
		return invalidValue(path, e.typ.name, v)
	}
	e.value = e.typ.values[n]
	return nil
}

const durationType = "type.googleapis.com/google.protobuf.Duration"

// durationPattern is the JSON form of a non-negative protobuf Duration.
var durationPattern = regexp.MustCompile(`^(\d+)(\.\d{1,9})?s$`)

// duration is a Duration field, kept as sent.
type duration string

func (d *duration) decode(v json.RawMessage, path string) error {
	var s string
	if json.Unmarshal(v, &s) != nil || !durationPattern.MatchString(s) {
		return invalidValue(path, durationType, v)
	}
	*d = duration(s)
	return nil
}

// atMost reports whether d is no longer than max seconds.
func (d duration) atMost(max int64) bool {
	m := durationPattern.FindStringSubmatch(string(d))
	if m == nil {
		return false
	}
	secs, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return false
	}
	frac := strings.Trim(m[2], ".0")
	return secs < max || secs == max && frac == ""
}

// structValue is a google.protobuf.Struct field: any JSON object.
type structValue json.RawMessage

// timestamp is a google.protobuf.Timestamp field, RFC 3339.
type timestamp string

// compactLen is len(json.Compact(raw)) for valid JSON, without copying.
func compactLen(raw []byte) int {
	n := 0
	inString, escaped := false, false
	for _, c := range raw {
		switch {
		case inString:
			n++
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		default:
			n++
			if c == '"' {
				inString = true
			}
		}
	}
	return n
}
