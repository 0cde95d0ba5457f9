package content

import (
	"strings"

	"golang.org/x/text/language"
)

// Canonical returns the BCP 47 form of a locale ("fr_ca" → "fr-CA"), or
// false when it is none. Apps often report Java's and Apple's
// underscore form, which is accepted.
func Canonical(locale string) (string, bool) {
	locale = strings.TrimSpace(strings.ReplaceAll(locale, "_", "-"))
	if locale == "" || len(locale) > 35 {
		return "", false
	}
	t, err := language.Parse(locale)
	if err != nil {
		return "", false
	}
	return t.String(), true
}

// fallbacks lists the locales to try for a canonical locale, most specific
// first: "zh-Hant-TW", "zh-Hant", "zh".
func fallbacks(locale string) []string {
	out := []string{locale}
	for {
		i := strings.LastIndexByte(locale, '-')
		if i < 0 {
			return out
		}
		locale = locale[:i]
		out = append(out, locale)
	}
}
