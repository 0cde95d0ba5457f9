package config

import (
	"fmt"
	"strings"

	"github.com/pushd/pushd/internal/didyoumean"
)

// ValidationError is one problem found in a configuration file.
//
// Load and Parse return every ValidationError they find joined with
// errors.Join, in file order, so a caller can list them all
// (`pushd check`) and errors.As finds the first one.
type ValidationError struct {
	// File is the base name of the configuration file, e.g. "config.ini".
	File string
	// Section is the section name as written, without brackets. It is empty
	// for problems of the whole file and for keys outside any section.
	Section string
	// Key is the key as written in the file, or the canonical name of a
	// missing key. It is empty for problems of a whole section.
	Key string
	// Value is the offending value as written. It is empty when the key is
	// missing or empty, and "***" for password-like keys.
	Value string
	// Err says what is wrong and, where there is one, how to fix it.
	Err error
}

// Error formats the problem as
//
//	config.ini [MyApp] auth_key_path = "cert/AuthKey.p8": open /etc/pushd/cert/AuthKey.p8: no such file or directory
//
// leaving out the section, key and value when they are empty.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Section != "" {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("[" + e.Section + "]")
	}
	if e.Key != "" {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(e.Key)
	}
	if e.Value != "" {
		fmt.Fprintf(&b, " = %q", e.Value)
	}
	if e.Err != nil {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error, so errors.Is(err, fs.ErrNotExist)
// works for a missing key file.
func (e *ValidationError) Unwrap() error { return e.Err }

// redacted replaces the value of secret keys in errors and warnings.
const redacted = "***"

// isSecret reports whether the value of a key must never be printed:
// passwords, the device API's keys and the legacy FCM server keys, also
// when misspelt.
func isSecret(key string) bool {
	key = strings.ToLower(strings.TrimSpace(key))
	return strings.Contains(key, "pass") ||
		strings.Contains(key, "pwd") ||
		strings.Contains(key, "secret") ||
		strings.Contains(key, "token") ||
		strings.HasSuffix(key, "_key") ||
		strings.HasSuffix(key, "_keys") ||
		key == "key" ||
		didyoumean.Nearest(key, []string{"password", "passwd"}) != ""
}
