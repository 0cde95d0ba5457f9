package apns

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/content"
	"github.com/pushd/pushd/providers"
)

// TestTemplateSizeCheck renders a template with multi-byte names near
// the 4096-byte limit: the user whose payload fits is prepared, the one a
// single character more pushes over is refused with ErrPayloadTooLarge.
func TestTemplateSizeCheck(t *testing.T) {
	t.Parallel()
	c := &Client{topic: testTopic}
	ct, err := content.Compile(pushd.Notification{Title: "Hi {{ name }}", Body: strings.Repeat("é", 1000), Templated: true})
	if err != nil {
		t.Fatal(err)
	}
	size := func(name string) (int, error) {
		a, _ := json.Marshal(map[string]string{"name": name})
		n, _, err := ct.Render(content.User{ID: 1, Attributes: a})
		if err != nil {
			t.Fatal(err)
		}
		p, err := c.Prepare(n)
		if err != nil {
			return 0, err
		}
		return p.PayloadSize(), nil
	}
	base, err := size("")
	if err != nil {
		t.Fatal(err)
	}
	room := MaxPayloadSize - base // bytes left for the name
	fits := strings.Repeat("日", room/3) + strings.Repeat("a", room%3)
	if n, err := size(fits); err != nil || n != MaxPayloadSize {
		t.Errorf("a name that fills the payload exactly: size %d, %v; want %d", n, err, MaxPayloadSize)
	}
	if _, err := size(fits + "日"); !errors.Is(err, providers.ErrPayloadTooLarge) {
		t.Errorf("3 bytes over: %v, want ErrPayloadTooLarge", err)
	}
}

// FuzzTemplatePayload: whatever the template and the attributes, a
// prepared payload never exceeds the limit.
func FuzzTemplatePayload(f *testing.F) {
	f.Add(`Hi {{ name | default: "there" }}`, `{"name":"Anna"}`)
	f.Add(`{{ name | append: name | append: name }}`, `{"name":"`+strings.Repeat("日", 700)+`"}`)
	f.Add(`{% if x %}{% skip %}{% endif %}{{ y | truncate: 5000 }}`, `{"y":"`+strings.Repeat("\\u0001", 900)+`"}`)
	c := &Client{topic: testTopic}
	f.Fuzz(func(t *testing.T, tpl, attrs string) {
		ct, err := content.Compile(pushd.Notification{Title: tpl, Body: tpl,
			Data: map[string]json.RawMessage{"k": json.RawMessage(`"` + strings.ReplaceAll(tpl, `"`, `'`) + `"`)}})
		if err != nil {
			return
		}
		n, _, err := ct.Render(content.User{ID: 1, Attributes: []byte(attrs)})
		if err != nil {
			return
		}
		if p, err := c.Prepare(n); err == nil && p.PayloadSize() > MaxPayloadSize {
			t.Fatalf("prepared %d bytes", p.PayloadSize())
		}
	})
}
