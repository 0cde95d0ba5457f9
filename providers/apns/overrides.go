package apns

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// hasOverrides reports whether raw holds overrides: absent, blank and JSON
// null all mean none.
func hasOverrides(raw json.RawMessage) bool {
	t := bytes.Trim(raw, " \t\r\n")
	return len(t) > 0 && string(t) != "null"
}

// mergeOverrides merges the campaign's overrides.apns, a JSON object, into
// payload, which renderPayload wrote: a top-level key replaces pushd's value
// or adds one, except "aps", whose keys replace or add to pushd's aps one
// by one. Keys keep a fixed order, so that a campaign renders the same
// bytes every time: aps first, its keys in pushd's order followed by the
// added ones sorted, then every other top-level key sorted. Values are
// compacted but otherwise sent as written. Only campaigns with overrides
// pay for this.
func mergeOverrides(payload []byte, ov json.RawMessage) ([]byte, error) {
	switch {
	case !utf8.Valid(ov):
		return nil, errors.New("overrides.apns contains text that is not valid UTF-8")
	case !json.Valid(ov):
		var v any
		err := json.Unmarshal(ov, &v)
		return nil, fmt.Errorf(`overrides.apns is not valid JSON (%v); write a JSON object such as {"key": "value"}`, err)
	}
	ovm, err := members(ov)
	if err != nil {
		return nil, fmt.Errorf(`overrides.apns must be a JSON object such as {"key": "value"}, not %s`, kindOf(ov))
	}
	top, err := members(payload)
	if err != nil || len(top) == 0 || top[0].key != "aps" {
		return nil, fmt.Errorf("apns: internal error: rendered payload %q", payload) // renderPayload's bug
	}
	aps, err := members(top[0].val)
	if err != nil {
		return nil, fmt.Errorf("apns: internal error: rendered aps %q", top[0].val)
	}
	pushdAPS := len(aps)
	rest := make(map[string]json.RawMessage, len(top)-1+len(ovm))
	for _, m := range top[1:] {
		rest[m.key] = m.val
	}
	for _, m := range ovm {
		if m.key != "aps" {
			rest[m.key] = m.val
			continue
		}
		om, err := members(m.val)
		if err != nil {
			return nil, fmt.Errorf(`overrides.apns.aps must be a JSON object such as {"sound": "default"}, not %s: its keys replace pushd's one by one`, kindOf(m.val))
		}
		for _, o := range om {
			if i := slices.IndexFunc(aps, func(a member) bool { return a.key == o.key }); i >= 0 {
				aps[i].val = o.val
			} else {
				aps = append(aps, o)
			}
		}
	}
	slices.SortFunc(aps[pushdAPS:], func(a, b member) int { return strings.Compare(a.key, b.key) })
	keys := make([]string, 0, len(rest))
	for k := range rest {
		keys = append(keys, k)
	}
	slices.Sort(keys)

	var b bytes.Buffer
	b.Grow(len(payload) + len(ov))
	b.WriteString(`{"aps":{`)
	for i, a := range aps {
		if i > 0 {
			b.WriteByte(',')
		}
		writeMember(&b, a.key, a.val)
	}
	b.WriteByte('}')
	for _, k := range keys {
		b.WriteByte(',')
		writeMember(&b, k, rest[k])
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// member is one key and raw value of a JSON object.
type member struct {
	key string
	val json.RawMessage
}

var errNotObject = errors.New("not a JSON object")

// members returns the members of obj, valid JSON, in their order. It
// returns errNotObject if obj is another JSON value.
func members(obj []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errNotObject
	}
	var ms []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string) // an object's keys are strings
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		ms = append(ms, member{key, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return ms, nil
}

// writeMember writes "key":value with value, valid JSON, compacted.
func writeMember(b *bytes.Buffer, key string, val json.RawMessage) {
	writeString(b, key)
	b.WriteByte(':')
	_ = json.Compact(b, val) // val is valid: it was parsed already
}

// kindOf names the kind of the JSON value v for an error message.
func kindOf(v []byte) string {
	t := bytes.TrimLeft(v, " \t\r\n")
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '[':
		return "a list"
	case '"':
		return "text"
	case 't', 'f':
		return "true or false"
	case 'n':
		return "null"
	case '{':
		return "an object"
	}
	return "a number"
}
