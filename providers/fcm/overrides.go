package fcm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/providers"
)

// hasOverrides reports whether raw holds overrides: absent, blank and JSON
// null all mean none.
func hasOverrides(raw json.RawMessage) bool {
	t := bytes.Trim(raw, " \t\r\n")
	return len(t) > 0 && string(t) != "null"
}

// prepareOverrides merges n.Overrides.FCM into the message base that build
// rendered for n, and renders the result into a new template.
//
// The merge is deep: where both have an object, the override's keys are
// merged one by one; any other override value replaces pushd's, or adds a
// key. Where pushd sends an object the override must be one too, so an
// override can add to android or apns but not replace them wholesale.
// Overrides may not set the target (token, topic, condition), which is
// pushd's, nor the deadline (android.ttl, the apns-expiration header),
// which pushd works out per send. overrides.fcm.notification must be an
// object and overrides.fcm.data an object of text values whose keys
// checkDataKey accepts. MaxPayload applies to the merged notification and
// data.
//
// The merged message is written with its keys sorted, except that token
// comes first and android's ttl first within android, where the template
// splices them in at send time. Only campaigns with overrides pay for the
// decoding and re-encoding.
func (c *Client) prepareOverrides(base *message, n pushd.Notification) (providers.Prepared, error) {
	ov, err := parseOverrides(n.Overrides.FCM)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Message map[string]any `json:"message"`
	}
	dec := json.NewDecoder(bytes.NewReader(base.render("", 0)))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("fcm: internal error: rendered message: %v", err) // build's bug
	}
	msg := doc.Message
	delete(msg, "token")
	android, ok := msg["android"].(map[string]any)
	if !ok {
		return nil, errors.New("fcm: internal error: rendered message has no android object")
	}
	delete(android, "ttl")
	if err := merge(msg, ov, "overrides.fcm"); err != nil {
		return nil, err
	}

	var notification, data []byte
	if v, ok := msg["notification"]; ok {
		notification = appendJSON(nil, v)
	}
	if v, ok := msg["data"]; ok {
		data = appendJSON(nil, v)
	}
	if err := checkSize(len(notification), len(data), ", or overrides.fcm"); err != nil {
		return nil, err
	}

	m := &message{client: c, head: base.head, expiration: n.Expiration, size: len(notification) + len(data)}
	b := []byte{'"'} // closes the token
	for _, k := range slices.Sorted(maps.Keys(msg)) {
		b = append(appendString(append(b, ','), k), ':')
		if k != "android" || n.Expiration.IsZero() {
			b = appendJSON(b, msg[k])
			continue
		}
		// merge kept android an object.
		b = append(b, `{"ttl":"`...)
		m.mid, b = b, []byte(`s"`)
		a := msg[k].(map[string]any)
		for _, ak := range slices.Sorted(maps.Keys(a)) {
			b = append(appendString(append(b, ','), ak), ':')
			b = appendJSON(b, a[ak])
		}
		b = append(b, '}')
	}
	b = append(b, `}}`...)
	if m.mid == nil {
		m.mid = b
	} else {
		m.tail = b
	}
	return m, nil
}

// parseOverrides decodes overrides.fcm and checks what must hold whatever
// pushd's message holds.
func parseOverrides(raw json.RawMessage) (map[string]any, error) {
	switch {
	case !utf8.Valid(raw):
		return nil, errors.New("overrides.fcm contains text that is not valid UTF-8")
	case !json.Valid(raw):
		var v any
		err := json.Unmarshal(raw, &v)
		return nil, fmt.Errorf(`overrides.fcm is not valid JSON (%v); write a JSON object such as {"android": {"collapse_key": "sale"}}`, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("overrides.fcm is not valid JSON: %v", err)
	}
	ov, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf(`overrides.fcm must be a JSON object such as {"android": {"collapse_key": "sale"}}, not %s`, kindOf(v))
	}
	for _, k := range [...]string{"token", "topic", "condition"} {
		if _, ok := ov[k]; ok {
			return nil, fmt.Errorf("overrides.fcm cannot set %q: pushd sends the message to each device token itself; remove it", k)
		}
	}
	if v, ok := ov["notification"]; ok {
		if _, ok := v.(map[string]any); !ok {
			return nil, fmt.Errorf(`overrides.fcm.notification must be a JSON object such as {"title": "Sale"}, not %s`, kindOf(v))
		}
	}
	if v, ok := ov["data"]; ok {
		d, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf(`overrides.fcm.data must be a JSON object of texts such as {"key": "value"}, not %s`, kindOf(v))
		}
		for _, k := range slices.Sorted(maps.Keys(d)) {
			if err := checkDataKey(k); err != nil {
				return nil, fmt.Errorf("overrides.fcm: %w", err)
			}
			if _, ok := d[k].(string); !ok {
				return nil, fmt.Errorf(`overrides.fcm.data: the value of %q is %s, but FCM carries only text; put it in double quotes`, k, kindOf(d[k]))
			}
		}
	}
	if a, ok := ov["android"].(map[string]any); ok {
		if _, ok := a["ttl"]; ok {
			return nil, errors.New("overrides.fcm.android.ttl cannot be set: pushd sets it at each send from the run's deadline; remove it")
		}
	}
	if a, ok := ov["apns"].(map[string]any); ok {
		if h, ok := a["headers"].(map[string]any); ok {
			for k := range h {
				if strings.EqualFold(k, "apns-expiration") {
					return nil, fmt.Errorf("overrides.fcm.apns.headers cannot set %q: pushd sets it from the run's deadline; remove it", k)
				}
			}
		}
	}
	return ov, nil
}

// merge merges src into dst, deeply; path names src for errors.
func merge(dst, src map[string]any, path string) error {
	for _, k := range slices.Sorted(maps.Keys(src)) {
		sv := src[k]
		dm, dIsObj := dst[k].(map[string]any)
		sm, sIsObj := sv.(map[string]any)
		switch {
		case dIsObj && sIsObj:
			if err := merge(dm, sm, path+"."+k); err != nil {
				return err
			}
		case dIsObj:
			return fmt.Errorf("%s.%s must be a JSON object, not %s: its keys are merged into pushd's one by one", path, k, kindOf(sv))
		default:
			dst[k] = sv
		}
	}
	return nil
}

// appendJSON appends v, as decoded by encoding/json with UseNumber, as
// compact JSON with object keys sorted.
func appendJSON(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, v)
	case json.Number:
		return append(b, v...)
	case string:
		return appendString(b, v)
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, e)
		}
		return append(b, ']')
	case map[string]any:
		b = append(b, '{')
		for i, k := range slices.Sorted(maps.Keys(v)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(appendString(b, k), ':')
			b = appendJSON(b, v[k])
		}
		return append(b, '}')
	}
	panic(fmt.Sprintf("fcm: appendJSON: unexpected %T", v)) // encoding/json yields no other type
}

// kindOf names the kind of the decoded JSON value v for an error message.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "true or false"
	case json.Number:
		return "a number"
	case string:
		return "text"
	case []any:
		return "a list"
	}
	return "an object"
}
