package content

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/pushd/pushd"
)

func mustCompile(t *testing.T, n pushd.Notification) *Content {
	t.Helper()
	c, err := Compile(n)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return c
}

func TestRenderPlaceholders(t *testing.T) {
	c := mustCompile(t, pushd.Notification{
		Title: `Hi {{ first_name | default: "there" }}`,
		Body:  `{% if cart.items > 1 %}{{ cart.items }} items{% else %}One item{% endif %} wait, user {{ id }} ({{ locale }})`,
		Data:  map[string]json.RawMessage{"screen": json.RawMessage(`"cart/{{ id }}"`), "n": json.RawMessage(`42`)},
	})
	if !c.Templated() || c.Translated() {
		t.Fatalf("Templated %v Translated %v, want true false", c.Templated(), c.Translated())
	}
	for _, tc := range []struct {
		u                  User
		title, body, scren string
	}{
		{User{ID: 7, Locale: "fr", Attributes: []byte(`{"first_name":"Anna","cart":{"items":3}}`)}, "Hi Anna", "3 items wait, user 7 (fr)", `"cart/7"`},
		{User{ID: 8}, "Hi there", "One item wait, user 8 ()", `"cart/8"`},
		{User{ID: 9, Attributes: []byte(`{"first_name":"","id":"spoof"}`)}, "Hi there", "One item wait, user 9 ()", `"cart/9"`},
		{User{ID: 10, Attributes: []byte(`null`)}, "Hi there", "One item wait, user 10 ()", `"cart/10"`},
	} {
		n, locale, err := c.Render(tc.u)
		if err != nil {
			t.Fatalf("Render(%+v): %v", tc.u, err)
		}
		if n.Title != tc.title || n.Body != tc.body || string(n.Data["screen"]) != tc.scren || string(n.Data["n"]) != "42" || locale != "" {
			t.Errorf("Render(user %d) = %q, %q, %s, %s, locale %q", tc.u.ID, n.Title, n.Body, n.Data["screen"], n.Data["n"], locale)
		}
		if n.Personal() {
			t.Errorf("a rendered notification must not be personal again: %+v", n)
		}
	}
}

func TestRenderUserErrors(t *testing.T) {
	c := mustCompile(t, pushd.Notification{Title: `{% unless first_name %}{% skip %}{% endunless %}Hi {{ first_name }}`, Body: "b"})
	if _, _, err := c.Render(User{ID: 1}); !errors.Is(err, ErrSkipped) {
		t.Errorf("missing attribute with skip: err %v, want ErrSkipped", err)
	}
	if n, _, err := c.Render(User{ID: 1, Attributes: []byte(`{"first_name":"Bo"}`)}); err != nil || n.Title != "Hi Bo" {
		t.Errorf("with the attribute: %q, %v", n.Title, err)
	}
	for _, attrs := range []string{`[1,2]`, `"x"`, `{"a":`, `{"a": 1} x`} {
		_, _, err := c.Render(User{ID: 1, Attributes: []byte(attrs)})
		if err == nil || errors.Is(err, ErrSkipped) || !strings.Contains(err.Error(), "attributes are not a JSON object") {
			t.Errorf("attributes %s: err %v, want 'not a JSON object'", attrs, err)
		}
	}
	big := `{"a":"` + strings.Repeat("x", MaxAttributes) + `"}`
	if _, _, err := c.Render(User{ID: 1, Attributes: []byte(big)}); err == nil || !strings.Contains(err.Error(), "over 16 KB") {
		t.Errorf("huge attributes: err %v", err)
	}
	abort := mustCompile(t, pushd.Notification{Body: `{% abort %}`})
	if _, _, err := abort.Render(User{ID: 1}); !errors.Is(err, ErrSkipped) {
		t.Errorf("abort: err %v, want ErrSkipped", err)
	}
}

func TestRenderNoTemplateReadsNoAttributes(t *testing.T) {
	c := mustCompile(t, pushd.Notification{Title: "50% off {today}", Body: "b"})
	if c.Templated() {
		t.Fatal("plain text with braces counted as a template")
	}
	n, _, err := c.Render(User{ID: 1, Attributes: []byte(`not json`)})
	if err != nil || n.Title != "50% off {today}" {
		t.Errorf("Render = %q, %v; plain text must pass as written, attributes unread", n.Title, err)
	}
}

func TestTranslations(t *testing.T) {
	c := mustCompile(t, pushd.Notification{
		Title: "Sale", Body: "Hello {{ name | default: \"friend\" }}",
		Translations: []pushd.Translation{
			{Locale: "fr", Title: "Soldes", Body: "Bonjour {{ name | default: \"l'ami\" }}"},
			{Locale: "fr_CA", Title: "Soldes!", Body: "Allô"},
			{Locale: "pt-BR", Title: "Promoção", Body: "Olá", Subtitle: "hoje"},
		},
	})
	for _, tc := range []struct{ user, locale, title, body string }{
		{"fr-CA", "fr-CA", "Soldes!", "Allô"},
		{"fr_ca", "fr-CA", "Soldes!", "Allô"},
		{"fr-BE", "fr", "Soldes", "Bonjour l'ami"},
		{"fr", "fr", "Soldes", "Bonjour l'ami"},
		{"pt", "", "Sale", "Hello friend"},
		{"pt-BR", "pt-BR", "Promoção", "Olá"},
		{"de-DE", "", "Sale", "Hello friend"},
		{"", "", "Sale", "Hello friend"},
		{"not a locale!", "", "Sale", "Hello friend"},
	} {
		n, locale, err := c.Render(User{ID: 1, Locale: tc.user})
		if err != nil || locale != tc.locale || n.Title != tc.title || n.Body != tc.body {
			t.Errorf("locale %q: got %q %q via %q (%v), want %q %q via %q", tc.user, n.Title, n.Body, locale, err, tc.title, tc.body, tc.locale)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		n    pushd.Notification
		want string
	}{
		{pushd.Notification{Title: "Hi {{ name | nosuch }}"}, `title: the filter "nosuch" is not available in push templates; use one of abs,`},
		{pushd.Notification{Title: "Hi {{ name | defalt: 'x' }}"}, `title: the filter "defalt" is not available in push templates: did you mean "default"?`},
		{pushd.Notification{Body: "{% if x %}open"}, `body: unterminated "if" block`},
		{pushd.Notification{Subtitle: "{% for i in (1..9) %}x{% endfor %}"}, "subtitle: {% for %} is not available"},
		{pushd.Notification{Body: "{% include 'x' %}"}, "{% include %} is not available"},
		{pushd.Notification{Body: "{% assign a = 'x' %}"}, "{% assign %} is not available"},
		{pushd.Notification{Body: "{% capture a %}x{% endcapture %}"}, "{% capture %} is not available"},
		{pushd.Notification{Body: "{{ 'aa' | replace: 'a', 'aa' | replace: 'a', 'aa' }}"}, `the filter "replace" is not available`},
		{pushd.Notification{Body: "{% if x | url_encode %}{% endif %}"}, `the filter "url_encode" is not available`},
		{pushd.Notification{Body: "{{ 'a|b' | join }}"}, `the filter "join" is not available`},
		{pushd.Notification{Body: "{{ (1..300000000) | last }}"}, "ranges such as (1..5) are not available"},
		{pushd.Notification{Body: "{% if (1..9) contains 3 %}x{% endif %}"}, "ranges such as (1..5) are not available"},
		{pushd.Notification{Data: map[string]json.RawMessage{"k": json.RawMessage(`"{{ x | escape }}"`)}}, `data value of "k": the filter "escape"`},
		{pushd.Notification{Translations: []pushd.Translation{{Locale: "xx-!!", Body: "b"}}}, "locale 'xx-!!' is not a BCP 47 locale"},
		{pushd.Notification{Translations: []pushd.Translation{{Locale: "fr-ca", Body: "b"}, {Locale: "fr_CA", Body: "c"}}}, "locale 'fr_CA' has two rows"},
		{pushd.Notification{Translations: []pushd.Translation{{Locale: "de", Title: "{{ x"}}}, "campaign_translations (de) title"},
	} {
		_, err := Compile(tc.n)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Compile(%+v): err %v, want it to contain %q", tc.n, err, tc.want)
		}
	}
	if _, err := Compile(pushd.Notification{Body: "{{ a" + strings.Repeat(" | append: a", 65) + " }}"}); err == nil || !strings.Contains(err.Error(), "65 filters") {
		t.Errorf("65 appends: err %v, want the filter bound", err)
	}
	// A filter named in quotes is text, not a filter.
	if _, err := Compile(pushd.Notification{Body: `{{ "a | replace" | upcase }}`}); err != nil {
		t.Errorf("quoted | taken for a filter: %v", err)
	}
}

func TestRenderStopsLongText(t *testing.T) {
	c := mustCompile(t, pushd.Notification{Body: "{{ a }}{{ a }}{{ a }}"})
	a, _ := json.Marshal(map[string]string{"a": strings.Repeat("é", 2000)})
	if _, _, err := c.Render(User{Attributes: a}); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("12 KB of text: err %v, want 'longer than'", err)
	}
}
