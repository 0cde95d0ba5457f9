package pushsim

import (
	"fmt"
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
	keepRaw(name string, raw []byte)
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

func isNull(raw []byte) bool { return string(raw) == "null" }

// fieldPath names a field for error messages; it is only turned into a
// string when there is an error, or a nested object to descend into.
type fieldPath struct {
	parent string
	name   string
	index  int // element or map entry index, -1 for none
}

func (p fieldPath) String() string {
	s := joinPath(p.parent, p.name)
	if p.index >= 0 {
		s += "[" + strconv.Itoa(p.index) + "]"
	}
	return s
}

// decodeObject decodes a JSON object into o. raw must be valid JSON without
// surrounding whitespace.
func decodeObject(raw []byte, path string, o protoObject) error {
	if raw[0] != '{' {
		return invalidValue(path, o.protoType(), raw)
	}
	keeper, _ := o.(rawKeeper)
	var seenBuf [16]string
	seen := seenBuf[:0]
	return members(raw, func(k string, v []byte) error {
		name := snakeCase(k)
		p := o.field(name)
		if p == nil {
			return unknownName(k, path)
		}
		if slices.Contains(seen, name) {
			return &decodeError{field: joinPath(path, name), msg: fmt.Sprintf("Invalid JSON payload received. Duplicate value for field %q at '%s'.", name, path)}
		}
		seen = append(seen, name)
		if isNull(v) {
			return nil
		}
		if keeper != nil {
			keeper.keepRaw(name, v)
		}
		return decodeValue(v, fieldPath{path, name, -1}, p)
	})
}

// decodeValue decodes one field value into p.
func decodeValue(v []byte, path fieldPath, p any) error {
	switch p := p.(type) {
	case protoObject:
		return decodeObject(v, path.String(), p)
	case *stringMap:
		return p.decode(v, path)
	case *enum:
		return p.decode(v, path)
	case *duration:
		return p.decode(v, path)
	case *structValue:
		if v[0] != '{' {
			return invalidValue(path.String(), "type.googleapis.com/google.protobuf.Struct", v)
		}
		*p = structValue(v)
		return nil
	case *timestamp:
		if v[0] != '"' {
			return invalidValue(path.String(), "type.googleapis.com/google.protobuf.Timestamp", v)
		}
		s := unquote(v)
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return invalidValue(path.String(), "type.googleapis.com/google.protobuf.Timestamp", v)
		}
		*p = timestamp(s)
		return nil
	case *string:
		if v[0] != '"' {
			return invalidValue(path.String(), "TYPE_STRING", v)
		}
		*p = unquote(v)
		return nil
	case **string:
		var s string
		if err := decodeValue(v, path, &s); err != nil {
			return err
		}
		*p = &s
		return nil
	case *bool:
		switch string(v) {
		case "true":
			*p = true
		case "false":
			*p = false
		default:
			return invalidValue(path.String(), "TYPE_BOOL", v)
		}
		return nil
	case *int32:
		// Protobuf JSON takes 32-bit integers as numbers or decimal strings.
		s := string(v)
		if v[0] == '"' {
			s = unquote(v)
		}
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return invalidValue(path.String(), "TYPE_INT32", v)
		}
		*p = int32(n)
		return nil
	case *float64:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return invalidValue(path.String(), "TYPE_FLOAT", v)
		}
		*p = f
		return nil
	case *[]string:
		if v[0] != '[' {
			return invalidValue(path.String(), "TYPE_STRING", v)
		}
		return elements(v, func(i int, e []byte) error {
			*p = append(*p, "")
			return decodeValue(e, fieldPath{path.parent, path.name, i}, &(*p)[i])
		})
	case *[]duration:
		if v[0] != '[' {
			return invalidValue(path.String(), durationType, v)
		}
		return elements(v, func(i int, e []byte) error {
			*p = append(*p, "")
			return (*p)[i].decode(e, fieldPath{path.parent, path.name, i})
		})
	}
	panic(fmt.Sprintf("pushsim: no decoder for %T at %s", p, path))
}

// stringMap is a map<string, string> field. The raw JSON is kept for the
// size check.
type stringMap struct {
	m   map[string]string
	raw []byte
}

func (sm *stringMap) decode(v []byte, path fieldPath) error {
	if v[0] != '{' {
		return invalidValue(path.String(), "type.googleapis.com/google.protobuf.Map", v)
	}
	sm.m = make(map[string]string)
	sm.raw = v
	i := 0
	return members(v, func(k string, e []byte) error {
		if e[0] != '"' {
			return invalidValue(fmt.Sprintf("%s[%d].value", path, i), "TYPE_STRING", e)
		}
		sm.m[k] = unquote(e)
		i++
		return nil
	})
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
	// namesOnly takes a value name only as Google spells it or all in lower
	// case, and no number; see androidMessagePriority.
	namesOnly bool
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

func (e *enum) decode(v []byte, path fieldPath) error {
	if v[0] == '"' {
		s := unquote(v)
		for _, name := range e.typ.values {
			if strings.EqualFold(s, name) && (!e.typ.namesOnly || s == name || !hasUpper(s)) {
				e.value = s
				return nil
			}
		}
		return invalidValue(path.String(), e.typ.name, v)
	}
	if e.typ.namesOnly {
		return invalidValue(path.String(), e.typ.name, v)
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 0 || n >= len(e.typ.values) {
		return invalidValue(path.String(), e.typ.name, v)
	}
	e.value = e.typ.values[n]
	return nil
}

// hasUpper reports whether s has an ASCII upper-case letter.
func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

const durationType = "type.googleapis.com/google.protobuf.Duration"

// duration is a non-negative google.protobuf.Duration field, kept as sent:
// seconds with up to nine decimals and an "s", like "86400s" or "3.5s".
type duration string

func (d *duration) decode(v []byte, path fieldPath) error {
	if v[0] != '"' {
		return invalidValue(path.String(), durationType, v)
	}
	s := unquote(v)
	if _, _, ok := splitDuration(s); !ok {
		return invalidValue(path.String(), durationType, v)
	}
	*d = duration(s)
	return nil
}

// splitDuration matches ^(\d+)(\.\d{1,9})?s$, returning the digits before
// and after the point.
func splitDuration(s string) (secs, frac string, ok bool) {
	body, ok := strings.CutSuffix(s, "s")
	if !ok {
		return "", "", false
	}
	secs, frac, dot := strings.Cut(body, ".")
	if secs == "" || !allDigits(secs) || dot && (frac == "" || len(frac) > 9 || !allDigits(frac)) {
		return "", "", false
	}
	return secs, frac, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// atMost reports whether d is no longer than max seconds.
func (d duration) atMost(max int64) bool {
	secs, frac, ok := splitDuration(string(d))
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return false
	}
	return n < max || n == max && strings.Trim(frac, "0") == ""
}

// structValue is a google.protobuf.Struct field: any JSON object.
type structValue []byte

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
