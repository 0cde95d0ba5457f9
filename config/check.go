package config

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/ini.v1"
)

// maxAppName is the longest app name the database tables hold.
const maxAppName = 64

// checker validates one file. It collects every problem instead of stopping
// at the first, so that `pushd check` can list them all.
type checker struct {
	file     string
	baseDir  string
	errs     []located
	warnings []string
}

// located is a ValidationError with its place in the file, used to report
// problems in file order whatever order the checks run in.
type located struct {
	section, key int
	err          *ValidationError
}

// missingKey sorts problems about absent keys after those of present ones.
const missingKey = 1 << 30

// joined returns the collected problems, in file order, as one error.
func (c *checker) joined() error {
	slices.SortStableFunc(c.errs, func(a, b located) int {
		if a.section != b.section {
			return a.section - b.section
		}
		return a.key - b.key
	})
	errs := make([]error, len(c.errs))
	for i, l := range c.errs {
		errs[i] = l.err
	}
	return errors.Join(errs...)
}

// fileError records a problem of the whole file.
func (c *checker) fileError(err error) {
	c.errs = append(c.errs, located{err: &ValidationError{File: c.file, Err: err}})
}

// check parses data and validates every section. The returned Config is
// complete only when no error was recorded.
func (c *checker) check(data []byte) *Config {
	cfg := &Config{Apps: map[string]*App{}}
	f, err := ini.LoadSources(ini.LoadOptions{
		// Keep every occurrence of a key, so a key given twice is reported
		// instead of the last one silently winning.
		AllowShadows:               true,
		AllowDuplicateShadowValues: true,
		// Keep repeated sections apart instead of merging them, for the same
		// reason.
		AllowNonUniqueSections: true,
		// Like Python's configparser, which wrote the legacy files: "#" and
		// ";" start a comment only at the start of a line, so a password may
		// contain them, and a trailing backslash is part of the value.
		IgnoreInlineComment: true,
		IgnoreContinuation:  true,
	}, data)
	if err != nil {
		c.fileError(syntaxError(data, err))
		return cfg
	}

	seen := map[string]*section{} // by lowercase name
	sawApp := false
	for si, sec := range f.Sections() {
		if sec.Name() != ini.DefaultSection && kindOf(sec.Name()) == appSection {
			sawApp = true
		}
		s := c.newSection(sec, si)
		if s == nil {
			continue
		}
		kind := kindOf(s.name)
		lower := strings.ToLower(s.name)
		if prev, ok := seen[lower]; ok {
			if prev.name == s.name {
				s.sectionError(errors.New("appears more than once: merge the two sections"))
			} else {
				s.sectionError(fmt.Errorf("is the same section as [%s] (section names are compared ignoring case): merge or rename them", prev.name))
			}
			continue
		}
		seen[lower] = s
		switch kind {
		case serverSection:
			cfg.Server = s.server()
		case sslSection:
			cfg.SSL = s.ssl()
		case databaseSection:
			cfg.Database = s.database()
		case apiSection:
			cfg.API = s.api()
		default:
			cfg.Apps[s.name] = s.app()
		}
	}
	if seen["server"] == nil {
		cfg.Server = c.emptySection("Server", serverSection).server()
	}
	if seen["database"] == nil {
		c.errs = append(c.errs, located{section: missingKey, err: &ValidationError{
			File: c.file, Section: "Database",
			Err: errors.New("section is missing: add [Database] with at least user and database"),
		}})
	}
	if !sawApp {
		c.errs = append(c.errs, located{section: missingKey, err: &ValidationError{
			File: c.file,
			Err:  errors.New("no app sections: add one section per app, e.g. [MyApp] with push_type = APNs or push_type = FCM"),
		}})
	}
	c.checkAPIKeys(cfg)
	cfg.Warnings = c.warnings
	return cfg
}

// checkAPIKeys rejects a key that two apps share: a key works for its own
// app only.
func (c *checker) checkAPIKeys(cfg *Config) {
	owner := map[string]string{}
	for _, name := range cfg.AppNames() {
		for _, k := range cfg.Apps[name].APIKeys {
			if other, ok := owner[k]; ok {
				c.errs = append(c.errs, located{section: missingKey, err: &ValidationError{File: c.file, Section: name, Key: "api_keys",
					Err: fmt.Errorf("uses a key of [%s]: each app needs its own keys, so that a key works for its own app only", other)}})
			}
			owner[k] = name
		}
	}
}

// emptySection stands in for an absent section, so its defaults are set by
// the same code that reads it.
func (c *checker) emptySection(name string, kind sectionKind) *section {
	return &section{c: c, name: name, kind: kind, index: missingKey, keys: map[string]*entry{}}
}

// newSection collects the keys of an ini section, reporting keys outside any
// section, duplicate keys and bad section names. It returns nil for sections
// that must not be validated further.
func (c *checker) newSection(sec *ini.Section, index int) *section {
	name := sec.Name()
	s := &section{c: c, name: name, kind: kindOf(name), index: index, keys: map[string]*entry{}}
	if name == ini.DefaultSection {
		if index > 0 {
			// A literal [DEFAULT] header: ini.v1 keeps it apart from the
			// implicit section of keys before the first header, which always
			// comes first.
			s.sectionError(errors.New("is not supported: pushd shares no keys between sections; set each key in the section that uses it"))
			return nil
		}
		s.name = ""
		for ki, k := range sec.Keys() {
			e := &entry{name: k.Name(), value: k.Value(), index: ki}
			msg := "is outside any section: move it below the header of the section it belongs to"
			if owner := ownerOf(strings.ToLower(strings.TrimSpace(k.Name()))); owner >= 0 {
				msg = fmt.Sprintf("is outside any section: it belongs in %s, so move it below that section's header", owner.header())
			}
			s.fail(e, errors.New(msg))
		}
		return nil
	}
	if s.kind == appSection && !c.validAppName(s) {
		return nil
	}
	for ki, k := range sec.Keys() {
		e := &entry{name: k.Name(), value: k.Value(), index: ki}
		canon := strings.ToLower(strings.TrimSpace(k.Name()))
		values := k.ValueWithShadows()
		// ValueWithShadows drops empty values, so an empty first occurrence
		// followed by a set one shows only as a mismatch with Value.
		repeated := len(values) > 1 || k.Value() == "" && len(values) > 0
		if prev, ok := s.keys[canon]; ok {
			s.fail(e, fmt.Errorf("repeats %s (key names are compared ignoring case): keep one", prev.name))
			continue
		}
		if repeated {
			s.fail(e, errors.New("is set more than once in this section: keep one"))
		}
		s.keys[canon] = e
		s.order = append(s.order, canon)
	}
	return s
}

// validAppName reports whether an app section's name can be used as the
// app's name in the database, recording why not.
func (c *checker) validAppName(s *section) bool {
	name := s.name
	var problem string
	switch {
	case strings.TrimSpace(name) != name:
		problem = fmt.Sprintf("has spaces around the name: write [%s]", strings.TrimSpace(name))
	case !utf8.ValidString(name):
		problem = "is not valid UTF-8: app names are stored as text"
	case strings.ContainsFunc(name, unicode.IsControl):
		problem = "contains control characters: app names are stored as text"
	case len(name) > maxAppName:
		problem = fmt.Sprintf("is %d bytes long: app names are at most %d bytes, the size of the database's app column", len(name), maxAppName)
	}
	if problem == "" {
		return true
	}
	s.sectionError(errors.New("section name " + problem))
	return false
}

// syntaxError turns an ini.v1 parse error into one naming the line.
func syntaxError(data []byte, err error) error {
	var noDelim ini.ErrDelimiterNotFound
	var noKey ini.ErrEmptyKeyName
	var line string
	switch {
	case errors.As(err, &noDelim):
		line = noDelim.Line
		return fmt.Errorf("%s: %q is not a [section] header, a key = value line or a comment", lineOf(data, line), redactLine(line))
	case errors.As(err, &noKey):
		line = noKey.Line
		return fmt.Errorf("%s: %q has no key name before the = sign", lineOf(data, line), redactLine(line))
	case strings.HasPrefix(err.Error(), "unclosed section: "):
		line = strings.TrimPrefix(err.Error(), "unclosed section: ")
		return fmt.Errorf("%s: section header %q has no closing ]", lineOf(data, line), strings.TrimSpace(line))
	case err.Error() == "empty section name":
		return errors.New(`a section header is empty ("[]"): name the section`)
	}
	return fmt.Errorf("cannot parse: %s", strings.TrimSpace(err.Error()))
}

// redactLine hides the rest of a line that starts like a password,
// e.g. "password hunter2" with the = forgotten.
func redactLine(line string) string {
	line = strings.TrimSpace(line)
	first, _, found := strings.Cut(line, " ")
	if found && isSecret(first) {
		return first + " " + redacted
	}
	return line
}

// lineOf returns "line N" for the first line of data that reads line once
// leading and trailing space are trimmed, or "a line" when none does.
func lineOf(data []byte, line string) string {
	want := strings.TrimSpace(line)
	n := 0
	for l := range bytes.Lines(data) {
		n++
		if strings.TrimSpace(string(l)) == want {
			return fmt.Sprintf("line %d", n)
		}
	}
	return "a line"
}
