package content

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/pushd/pushd"
)

// FuzzRender feeds any template and any attributes through Compile and
// Render: neither may panic or take long, and a rendered text never
// exceeds maxText.
func FuzzRender(f *testing.F) {
	for _, s := range []struct{ tpl, attrs string }{
		{`Hi {{ first_name | default: "there" }}`, `{"first_name":"Anna"}`},
		{`{% if a > 1 %}{{ a | times: 2 }}{% elsif b %}{% skip %}{% else %}{{ c.d | upcase }}{% endif %}`, `{"a":2,"c":{"d":"x"}}`},
		{`{% case x %}{% when 1 %}one{% else %}{{ x | append: x | append: x }}{% endcase %}`, `{"x":"abcabc"}`},
		{`{{ s | split: "" | last }}{{ s | truncate: 3 }}{{ s | slice: 2, 9999999999 }}`, `{"s":"héllo"}`},
		{`{% for i in (1..1000000000) %}{% endfor %}`, `{}`},
		{`{% assign a = "x" %}{% assign a = a | append: a %}{{ a }}`, `{}`},
		{`{{ x | replace: "a", "aaaaaaaaaa" | replace: "a", "aaaaaaaaaa" }}`, `{"x":"aaaa"}`},
		{`{% include "/etc/passwd" %}`, `{}`},
		{`{{ n | date: "%Y %Y %Y" }}{{ n | divided_by: 0 }}`, `{"n":1e308}`},
		{`{% raw %}{{ x }}{% endraw %}{{`, `[1]`},
	} {
		f.Add(s.tpl, s.attrs, "fr-CA")
	}
	f.Fuzz(func(t *testing.T, tpl, attrs, locale string) {
		start := time.Now()
		c, err := Compile(pushd.Notification{Title: tpl, Body: tpl, Subtitle: tpl,
			Data:         map[string]json.RawMessage{"k": mustJSON(tpl)},
			Translations: []pushd.Translation{{Locale: "fr", Title: tpl, Body: "b"}}})
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Compile took %v", d)
		}
		if err != nil {
			return
		}
		start = time.Now()
		n, _, err := c.Render(User{ID: 1, Locale: locale, Attributes: []byte(attrs)})
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Render took %v", d)
		}
		if err != nil {
			if errors.Is(err, ErrSkipped) || err.Error() != "" {
				return
			}
			t.Fatal("an error without words")
		}
		// A template's output stops at maxText; plain text is passed on as
		// written (the provider's size check then refuses it).
		var data string
		_ = json.Unmarshal(n.Data["k"], &data)
		for _, s := range []string{n.Title, n.Body, n.Subtitle, data} {
			if len(s) > max(maxText, 3*len(tpl)) { // invalid UTF-8 becomes 3-byte U+FFFD
				t.Fatalf("rendered %d bytes from a %d-byte template", len(s), len(tpl))
			}
		}
	})
}

func mustJSON(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}
