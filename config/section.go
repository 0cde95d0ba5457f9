package config

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// section is one section of the file, with its keys by lowercase name.
type section struct {
	c     *checker
	name  string // as written; "" for keys before the first header
	kind  sectionKind
	index int // position in the file, for ordering errors
	keys  map[string]*entry
	order []string // lowercase key names in file order
}

// entry is one key = value line.
type entry struct {
	name  string // as written
	value string
	index int // position in the section
}

// fail records a problem with a key that is present.
func (s *section) fail(e *entry, err error) {
	value := e.value
	if value != "" && isSecret(e.name) {
		value = redacted
	} else if strings.Contains(value, " #") || strings.Contains(value, " ;") ||
		strings.Contains(value, "\t#") || strings.Contains(value, "\t;") {
		err = fmt.Errorf("%w (a # or ; after a value is part of the value: put comments on a line of their own)", err)
	}
	s.c.errs = append(s.c.errs, located{section: s.index, key: e.index, err: &ValidationError{
		File: s.c.file, Section: s.name, Key: e.name, Value: value, Err: err,
	}})
}

// failMissing records a problem with a key that is absent.
func (s *section) failMissing(key string, err error) {
	s.c.errs = append(s.c.errs, located{section: s.index, key: missingKey, err: &ValidationError{
		File: s.c.file, Section: s.name, Key: key, Err: err,
	}})
}

// sectionError records a problem with the section as a whole.
func (s *section) sectionError(err error) {
	s.c.errs = append(s.c.errs, located{section: s.index, key: -1, err: &ValidationError{
		File: s.c.file, Section: s.name, Err: err,
	}})
}

// warn records a non-fatal problem with a key.
func (s *section) warn(e *entry, err error) {
	s.c.warnings = append(s.c.warnings, (&ValidationError{
		File: s.c.file, Section: s.name, Key: e.name, Err: err,
	}).Error())
}

// get returns the entry of a key, by lowercase name.
func (s *section) get(key string) (*entry, bool) {
	e, ok := s.keys[key]
	return e, ok
}

// str returns a key's value, or def when the key is absent or empty.
func (s *section) str(key, def string) string {
	if e, ok := s.get(key); ok && e.value != "" {
		return e.value
	}
	return def
}

// required returns a key's value, recording a problem when it is absent or
// empty. what describes the value for the error, e.g. "the app's bundle ID".
func (s *section) required(key, what string) (*entry, bool) {
	e, ok := s.get(key)
	if !ok {
		s.failMissing(key, fmt.Errorf("is missing: set it to %s", what))
		return nil, false
	}
	if e.value == "" {
		s.fail(e, fmt.Errorf("is empty: set it to %s", what))
		return nil, false
	}
	return e, true
}

// present returns a key's entry when the key is set, recording a problem
// when it is there but empty: for keys with a default, an empty value is
// more likely a mistake than a wish for the default.
func (s *section) present(key, def string) (*entry, bool) {
	e, ok := s.get(key)
	if !ok {
		return nil, false
	}
	if e.value == "" {
		s.fail(e, fmt.Errorf("is empty: set a value, or remove the line to use the default (%s)", def))
		return nil, false
	}
	return e, true
}

// duration reads a Go duration between lo and hi, default def.
func (s *section) duration(key string, def, lo, hi time.Duration) time.Duration {
	e, ok := s.present(key, formatDuration(def))
	if !ok {
		return def
	}
	d, err := time.ParseDuration(e.value)
	if err != nil {
		fix := fmt.Sprintf("must be a duration with a unit, such as %q; units are ms, s, m and h", formatDuration(def))
		if _, nerr := strconv.ParseFloat(e.value, 64); nerr == nil {
			fix = fmt.Sprintf("has no unit: write e.g. %q", e.value+"s")
		} else if strings.HasSuffix(e.value, "d") {
			fix += " (there is no d: write 24h for a day)"
		}
		s.fail(e, errors.New(fix))
		return def
	}
	if d < lo || d > hi {
		s.fail(e, fmt.Errorf("is out of range: must be between %s and %s", formatDuration(lo), formatDuration(hi)))
		return def
	}
	return d
}

// integer reads a whole number between lo and hi, default def. why, when
// not empty, explains the lower bound.
func (s *section) integer(key string, def, lo, hi int, why string) int {
	e, ok := s.present(key, strconv.Itoa(def))
	if !ok {
		return def
	}
	n, err := strconv.Atoi(e.value)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		s.fail(e, fmt.Errorf("must be a whole number between %d and %d", lo, hi))
		return def
	}
	if err != nil || n < lo || n > hi {
		msg := fmt.Sprintf("is out of range: must be between %d and %d", lo, hi)
		if n < lo && why != "" {
			msg += " (" + why + ")"
		}
		s.fail(e, errors.New(msg))
		return def
	}
	return n
}

// nonNegative reads a finite number ≥ 0, default 0.
func (s *section) nonNegative(key, unit string) float64 {
	e, ok := s.present(key, "0")
	if !ok {
		return 0
	}
	f, err := strconv.ParseFloat(e.value, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		s.fail(e, fmt.Errorf("must be a number of %s, 0 or more (0 means unlimited)", unit))
		return 0
	}
	if f < 0 {
		s.fail(e, fmt.Errorf("is out of range: must be 0 or more %s (0 means unlimited)", unit))
		return 0
	}
	return f
}

// choice reads one of allowed, matched ignoring case, default def. hints
// maps common wrong values (lowercase) to the intended one.
func (s *section) choice(key, def string, allowed []string, hints map[string]string) string {
	e, ok := s.present(key, def)
	if !ok {
		return def
	}
	v, ok := s.oneOf(e, allowed, hints)
	if !ok {
		return def
	}
	return v
}

// oneOf matches e's value against allowed ignoring case, recording a
// problem when it is none of them.
func (s *section) oneOf(e *entry, allowed []string, hints map[string]string) (string, bool) {
	for _, a := range allowed {
		if strings.EqualFold(e.value, a) {
			return a, true
		}
	}
	msg := "must be " + quoteList(allowed, "or")
	if hint, ok := hints[strings.ToLower(e.value)]; ok {
		msg += fmt.Sprintf(": did you mean %q?", hint)
	}
	s.fail(e, errors.New(msg))
	return "", false
}

// quoteList formats ["a", "b", "c"] as `"a", "b" or "c"`.
func quoteList(items []string, conj string) string {
	q := make([]string, len(items))
	for i, it := range items {
		q[i] = strconv.Quote(it)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " " + conj + " " + q[len(q)-1]
}

// formatDuration writes d the way a person would type it: "1m" rather than
// time.Duration's "1m0s".
func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// hostPattern is a permissive host name: letters, digits, hyphens, dots and
// the underscores of container names.
var hostPattern = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9._-]*[A-Za-z0-9_])?$`)
