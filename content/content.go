package content

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/osteele/liquid"
	"github.com/osteele/liquid/render"

	"github.com/pushd/pushd"
)

// ErrSkipped is returned by Render for a user that a template left out
// with {% skip %}: recorded as skipped, not failed.
var ErrSkipped = errors.New("the template skips this user")

// MaxAttributes bounds a user's attributes JSON: a larger one fails the
// user rather than cost every push of the run its decoding.
const MaxAttributes = 16 << 10

// maxText bounds one rendered text: no payload of either provider holds
// more, so rendering stops there instead of building a huge string.
const maxText = 8 << 10

// The engine is immutable once built; templates compiled with it render
// concurrently.
var engine = func() *liquid.Engine {
	e := liquid.NewEngine()
	skip := func(render.Context) (string, error) { return "", ErrSkipped }
	e.RegisterTag("skip", skip)
	e.RegisterTag("abort", skip)
	return e
}()

// User is what a template may read of a user.
type User struct {
	ID     int64
	Locale string // as users.locale holds it; may be empty or no locale
	// Attributes is users.attributes: a JSON object, or empty.
	Attributes []byte
}

// Content is a campaign's notification compiled for rendering per user.
// It is safe for concurrent use.
type Content struct {
	base     pushd.Notification
	def      *variant
	variants map[string]*variant // by canonical locale
	data     map[string]*text    // templated data values
	// templated: some text or data value has placeholders.
	templated bool

	mu      sync.Mutex
	byInput map[string]*variant // users.locale as read → its variant
}

type variant struct {
	locale                string // canonical; "" for the campaign's own text
	title, body, subtitle *text
}

// text is a plain string or a template.
type text struct {
	plain string
	tpl   *liquid.Template
}

func (t *text) render(b liquid.Bindings) (s string, err error) {
	if t.tpl == nil {
		return t.plain, nil
	}
	defer recoverEngine(&err)
	var w limitWriter
	if err := t.tpl.FRender(&w, b); err != nil {
		var re render.Error
		if errors.As(err, &re) && errors.Is(re.Cause(), ErrSkipped) {
			return "", ErrSkipped
		}
		return "", fmt.Errorf("%s", words(err))
	}
	if w.over {
		return "", errTooLong
	}
	return w.b.String(), nil
}

var errTooLong = fmt.Errorf("the text is longer than %d bytes", maxText)

// limitWriter keeps the first maxText bytes written and drops the rest.
// It never fails a write: the engine panics on a writer's error.
type limitWriter struct {
	b    bytes.Buffer
	over bool
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if w.over || w.b.Len()+len(p) > maxText {
		w.over = true
		return len(p), nil
	}
	return w.b.Write(p)
}

// isTemplate reports whether s has Liquid markup; plain text never goes
// through the engine, so a lone "{" or "%" in it means nothing.
func isTemplate(s string) bool { return strings.Contains(s, "{{") || strings.Contains(s, "{%") }

// recoverEngine turns a panic of the template engine into an error: the
// engine panics on some inputs (an integer literal beyond int64, for
// one), and no campaign text may stop pushd.
func recoverEngine(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("the template cannot be read (%v)", r)
	}
}

// compileText compiles one field; its error names the field for the
// campaign's status_reason.
func compileText(field, s string) (*text, error) {
	if !isTemplate(s) {
		return &text{plain: s}, nil
	}
	tpl, err := parse(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %s; a placeholder looks like {{ first_name | default: \"there\" }}", field, words(err))
	}
	return &text{tpl: tpl}, nil
}

func parse(s string) (tpl *liquid.Template, err error) {
	defer recoverEngine(&err)
	tpl, perr := engine.ParseString(s)
	if perr != nil {
		return nil, perr
	}
	return tpl, check(tpl.GetRoot())
}

// words strips the engine's prefix from its errors.
func words(err error) string {
	return strings.TrimPrefix(err.Error(), "Liquid error: ")
}

// Compile checks and compiles n's templates and translations. Its error
// says which field is wrong, where and how to fix it, for the campaign's
// status_reason.
func Compile(n pushd.Notification) (*Content, error) {
	c := &Content{base: n, variants: map[string]*variant{}, byInput: map[string]*variant{}}
	c.base.Translations, c.base.Templated = nil, false
	c.base.Variants, c.base.HoldoutPercent = nil, 0
	var err error
	if c.def, err = compileVariant("", "", n.Title, n.Body, n.Subtitle); err != nil {
		return nil, err
	}
	for _, t := range n.Translations {
		locale, ok := Canonical(t.Locale)
		if !ok {
			return nil, fmt.Errorf("campaign_translations: locale '%s' is not a BCP 47 locale; write a language code such as fr, or fr-CA for a region", t.Locale)
		}
		if _, dup := c.variants[locale]; dup {
			return nil, fmt.Errorf("campaign_translations: locale '%s' has two rows (as %s); keep one", t.Locale, locale)
		}
		v, err := compileVariant(fmt.Sprintf("campaign_translations (%s) ", t.Locale), locale, t.Title, t.Body, t.Subtitle)
		if err != nil {
			return nil, err
		}
		c.variants[locale] = v
	}
	for _, k := range slices.Sorted(maps.Keys(n.Data)) {
		var s string
		if json.Unmarshal(n.Data[k], &s) != nil || !isTemplate(s) {
			continue // only text values hold templates
		}
		t, err := compileText(fmt.Sprintf("data value of %q", k), s)
		if err != nil {
			return nil, err
		}
		if c.data == nil {
			c.data = map[string]*text{}
		}
		c.data[k] = t
	}
	c.templated = c.data != nil
	for _, v := range append(slices.Collect(maps.Values(c.variants)), c.def) {
		c.templated = c.templated || v.title.tpl != nil || v.body.tpl != nil || v.subtitle.tpl != nil
	}
	return c, nil
}

func compileVariant(where, locale, title, body, subtitle string) (*variant, error) {
	v := &variant{locale: locale}
	var err error
	if v.title, err = compileText(where+"title", title); err != nil {
		return nil, err
	}
	if v.body, err = compileText(where+"body", body); err != nil {
		return nil, err
	}
	if v.subtitle, err = compileText(where+"subtitle", subtitle); err != nil {
		return nil, err
	}
	return v, nil
}

// Templated reports whether some text has placeholders: users' attributes
// are then needed.
func (c *Content) Templated() bool { return c.templated }

// Translated reports whether the campaign has translations.
func (c *Content) Translated() bool { return len(c.variants) > 0 }

// variantFor picks the translation for a user's locale: the exact locale,
// then each shorter one ("fr-CA", then "fr"), then the campaign's text.
func (c *Content) variantFor(locale string) *variant {
	if len(c.variants) == 0 || locale == "" {
		return c.def
	}
	c.mu.Lock()
	v, ok := c.byInput[locale]
	c.mu.Unlock()
	if ok {
		return v
	}
	v = c.def
	if canon, ok := Canonical(locale); ok {
		for _, l := range fallbacks(canon) {
			if t, ok := c.variants[l]; ok {
				v = t
				break
			}
		}
	}
	c.mu.Lock()
	if len(c.byInput) < 10000 { // users' locales are few; a flood of junk is not kept
		c.byInput[locale] = v
	}
	c.mu.Unlock()
	return v
}

// Samples renders each translation and the campaign's text for a user
// with no attributes, to check before the run that what most users get
// fits the providers. A variant that skips such a user is left out.
func (c *Content) Samples() ([]pushd.Notification, error) {
	var out []pushd.Notification
	locales := append([]string{""}, slices.Sorted(maps.Keys(c.variants))...)
	for _, l := range locales {
		n, _, err := c.Render(User{Locale: l})
		if errors.Is(err, ErrSkipped) {
			continue
		}
		if err != nil {
			if l != "" {
				return nil, fmt.Errorf("campaign_translations (%s) %w", l, err)
			}
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// Render returns the notification for u and the locale of the translation
// it used ("" for the campaign's own text). Its errors are ErrSkipped, or
// a reason in staff's words for failing this user alone.
func (c *Content) Render(u User) (pushd.Notification, string, error) {
	v := c.variantFor(u.Locale)
	n := c.base
	var b liquid.Bindings
	if c.templated {
		var err error
		if b, err = bindings(u); err != nil {
			return n, v.locale, err
		}
	}
	var err error
	if n.Title, err = v.title.render(b); err != nil {
		return n, v.locale, fieldErr("title", err)
	}
	if n.Body, err = v.body.render(b); err != nil {
		return n, v.locale, fieldErr("body", err)
	}
	if n.Subtitle, err = v.subtitle.render(b); err != nil {
		return n, v.locale, fieldErr("subtitle", err)
	}
	if c.data != nil {
		n.Data = maps.Clone(c.base.Data)
		for k, t := range c.data {
			s, err := t.render(b)
			if err != nil {
				return n, v.locale, fieldErr("data "+k, err)
			}
			n.Data[k], _ = json.Marshal(s) // a string always encodes
		}
	}
	return n, v.locale, nil
}

func fieldErr(field string, err error) error {
	if errors.Is(err, ErrSkipped) {
		return err
	}
	return fmt.Errorf("%s: %w", field, err)
}

// bindings are what a template reads: the user's attributes, then id and
// locale, which no attribute can hide.
func bindings(u User) (liquid.Bindings, error) {
	b := liquid.Bindings{}
	if a := bytes.TrimSpace(u.Attributes); len(a) > 0 && !bytes.Equal(a, []byte("null")) {
		if len(a) > MaxAttributes {
			return nil, fmt.Errorf("attributes are over %d KB", MaxAttributes>>10)
		}
		if err := json.Unmarshal(a, &b); err != nil {
			return nil, errors.New("attributes are not a JSON object")
		}
	}
	b["id"] = u.ID
	b["locale"] = u.Locale
	return b, nil
}
