package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/internal/didyoumean"
)

var (
	// bundleIDPattern is Apple's rule: letters, digits, hyphens and dots, as a
	// reverse-DNS name of at least two parts.
	bundleIDPattern = regexp.MustCompile(`^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$`)
	// appleIDPattern matches key IDs and team IDs.
	appleIDPattern = regexp.MustCompile(`^[A-Z0-9]{10}$`)
)

const newServiceAccountKey = "in the Firebase console open Project settings > Service accounts and click Generate new private key"

// app reads an app section.
func (s *section) app() *App {
	pt := s.pushType()
	legacyFCM := s.checkAppKeys(pt)
	app := &App{
		Name:           s.name,
		PushType:       pt,
		Endpoint:       s.endpoint(),
		BatchSize:      s.integer("batch_size", pushd.DefaultBatchSize, 1, 100000, ""),
		Concurrency:    s.integer("concurrency", pushd.DefaultConcurrency, 1, 20000, "with 0 no request could ever be sent"),
		Connections:    s.integer("connections", 2, 1, 16, ""),
		RateLimit:      s.nonNegative("rate_limit", "pushes per second"),
		DefaultExpiry:  s.duration("default_expiry", 24*time.Hour, time.Minute, 672*time.Hour),
		MaxAttempts:    s.integer("max_attempts", 5, 1, 20, ""),
		RequestTimeout: s.duration("request_timeout", 30*time.Second, time.Second, 5*time.Minute),
		FrequencyCap:   s.frequencyCap(),
		QuietHours:     s.quietHours(),
		APIKeys:        s.apiKeyList(),
	}
	if e, ok := s.get("default_timezone"); ok && e.value != "" {
		loc, err := time.LoadLocation(e.value)
		if err != nil || strings.EqualFold(e.value, "local") {
			s.fail(e, errors.New(`is not a known time zone: use an IANA name such as "Europe/Paris" or "America/New_York"`))
		} else {
			app.DefaultTimezone = loc
		}
	}
	switch pt {
	case pushd.APNs:
		s.apns(app)
	case pushd.FCM:
		s.fcm(app, legacyFCM)
	}
	return app
}

// pushType reads push_type, returning "" when it is missing or bad.
func (s *section) pushType() pushd.PushType {
	e, ok := s.get("push_type")
	if !ok || e.value == "" {
		fix := "set push_type = APNs or push_type = FCM"
		if best := didyoumean.Nearest(s.name, []string{"Server", "SSL", "Database"}); best != "" {
			fix += fmt.Sprintf(" (or, if this section is meant to be [%s], correct its name)", best)
		} else if s.hasAny(apnsKeys) || len(certificateKeys(s)) > 0 {
			fix = "this section has APNs keys: set push_type = APNs"
		} else if s.hasAny(fcmKeys) || s.hasAny(legacyFCMKeys) {
			fix = "this section has FCM keys: set push_type = FCM"
		}
		if !ok {
			s.failMissing("push_type", errors.New("is missing: "+fix))
		} else {
			s.fail(e, errors.New("is empty: "+fix))
		}
		return ""
	}
	switch strings.ToLower(e.value) {
	case "apns":
		return pushd.APNs
	case "fcm":
		return pushd.FCM
	case "gcm":
		s.fail(e, errors.New("GCM was shut down in 2019: set push_type = FCM and service_account_file to a service-account key ("+newServiceAccountKey+")"))
	case "c2dm":
		s.fail(e, errors.New("C2DM was shut down in 2015: set push_type = FCM and service_account_file to a service-account key ("+newServiceAccountKey+")"))
	default:
		s.oneOf(e, []string{string(pushd.APNs), string(pushd.FCM)}, map[string]string{
			"ios": "APNs", "apple": "APNs", "apn": "APNs", "apns2": "APNs",
			"android": "FCM", "firebase": "FCM", "fcm_v1": "FCM", "fcmv1": "FCM", "fcm-v1": "FCM",
		})
	}
	return ""
}

// hasAny reports whether the section sets any of keys.
func (s *section) hasAny(keys []string) bool {
	return slices.ContainsFunc(keys, func(k string) bool { _, ok := s.keys[k]; return ok })
}

// certificateKeys returns the section's keys that configure APNs
// certificate auth.
func certificateKeys(s *section) []string {
	return slices.DeleteFunc(slices.Clone(s.order), func(k string) bool { return !isCertificateKey(k) })
}

// endpoint reads the override of the provider's base URL.
func (s *section) endpoint() string {
	e, ok := s.get("endpoint")
	if !ok || e.value == "" {
		return ""
	}
	const fix = `must be an https URL with a host and no path, e.g. "https://api.sandbox.push.apple.com" or "https://127.0.0.1:8443"`
	u, err := url.Parse(e.value)
	var problem string
	switch {
	case err != nil:
		problem = fix
	case u.Scheme == "http":
		problem = "must use https, since APNs and FCM speak HTTP/2 over TLS only: " + fix
	case u.Scheme != "https" || u.Opaque != "" || u.Hostname() == "" || strings.HasSuffix(u.Host, ":"):
		problem = fix
	case u.User != nil:
		problem = "must not hold a user name or password: " + fix
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		problem = "must not have a path or query, since pushd adds the provider's path itself: " + fix
	}
	if problem == "" && u.Port() != "" {
		if n, err := strconv.Atoi(u.Port()); err != nil || n < 1 || n > 65535 {
			problem = fmt.Sprintf("port %q is not a number between 1 and 65535", u.Port())
		}
	}
	if problem != "" {
		s.fail(e, errors.New(problem))
		return ""
	}
	return "https://" + u.Host
}

// apns reads the keys of an APNs app.
func (s *section) apns(app *App) {
	if e, ok := s.required("environment", `"development" or "production"`); ok {
		app.Environment, _ = s.oneOf(e, []string{"development", "production"}, map[string]string{
			"sandbox": "development", "dev": "development", "develop": "development", "debug": "development", "test": "development",
			"prod": "production", "live": "production", "release": "production", "distribution": "production",
		})
	}
	if e, ok := s.required("bundle_id", "the app's bundle ID, e.g. com.example.app"); ok {
		if bundleIDPattern.MatchString(e.value) {
			app.BundleID = e.value
		} else {
			s.fail(e, errors.New(`must be a reverse-DNS bundle ID such as "com.example.app": letters, digits, hyphens and dots`))
		}
	}
	app.KeyID = s.appleID("key_id", "the Key ID shown with the key under Certificates, Identifiers & Profiles > Keys")
	app.TeamID = s.appleID("team_id", "your Team ID, shown under Membership in your Apple developer account")

	e, ok := s.required("auth_key_path", "the AuthKey_<key_id>.p8 file downloaded from Apple")
	if !ok {
		return
	}
	path, data, ok := s.readFile(e, maxKeySize, true)
	if !ok {
		return
	}
	key, err := parseAuthKey(data)
	if err != nil {
		s.fail(e, fmt.Errorf("%s %w", path, err))
		return
	}
	app.AuthKeyPath, app.AuthKey = path, key
	// Apple names the file after the key; a mismatch means APNs will answer
	// InvalidProviderToken.
	base := filepath.Base(path)
	if id, ok := strings.CutPrefix(strings.TrimSuffix(base, ".p8"), "AuthKey_"); ok && strings.HasSuffix(base, ".p8") &&
		app.KeyID != "" && id != app.KeyID {
		s.warn(e, fmt.Errorf("%s is named after key %s, but key_id = %s: check that key_id belongs to this key", path, id, app.KeyID))
	}
}

// appleID reads a key ID or team ID: exactly 10 characters A-Z and 0-9.
func (s *section) appleID(key, what string) string {
	e, ok := s.required(key, what)
	if !ok {
		return ""
	}
	if appleIDPattern.MatchString(e.value) {
		return e.value
	}
	if up := strings.ToUpper(e.value); appleIDPattern.MatchString(up) {
		s.fail(e, fmt.Errorf("must be in upper case: %s = %s", key, up))
	} else {
		s.fail(e, fmt.Errorf("must be exactly 10 characters A-Z and 0-9: %s", what))
	}
	return ""
}

// fcm reads the keys of an FCM app. legacyFCM is set when the section has
// legacy server-key settings, whose error already says to set
// service_account_file.
func (s *section) fcm(app *App, legacyFCM bool) {
	var fileProject string
	parsed := false
	e, ok := s.get("service_account_file")
	switch {
	case ok && e.value != "":
		path, data, ok := s.readFile(e, maxKeySize, true)
		if !ok {
			break
		}
		sa, errs := parseServiceAccount(data)
		for _, err := range errs {
			s.fail(e, fmt.Errorf("%s: %w", path, err))
		}
		if len(errs) == 0 {
			app.ServiceAccountFile, app.ServiceAccountJSON, app.ClientEmail = path, data, sa.ClientEmail
			fileProject, parsed = sa.ProjectID, true
		}
	case legacyFCM:
	case ok:
		s.fail(e, errors.New("is empty: set it to a service-account key file ("+newServiceAccountKey+")"))
	default:
		s.failMissing("service_account_file", errors.New("is missing: set it to a service-account key file ("+newServiceAccountKey+")"))
	}

	p, ok := s.get("project_id")
	switch {
	case ok && p.value != "":
		if len(p.value) > 100 || strings.ContainsAny(p.value, "/?#%@ \t") {
			s.fail(p, errors.New("must be a Firebase project ID as shown under Project settings > General, e.g. my-app-1a2b3"))
			return
		}
		app.ProjectID = p.value
		if fileProject != "" && fileProject != p.value {
			s.warn(p, fmt.Errorf("differs from the service account's project %q: the account needs the Firebase Cloud Messaging API Admin role in %q", fileProject, p.value))
		}
	case fileProject != "":
		app.ProjectID = fileProject
	case parsed:
		s.failMissing("project_id", errors.New("is missing and the service-account file has none: set it to the Firebase project ID shown under Project settings > General"))
	}
}

// serviceAccount holds the fields pushd checks in a service-account key
// file; golang.org/x/oauth2/google reads the file itself.
type serviceAccount struct {
	Type         string `json:"type"`
	ProjectID    string `json:"project_id"`
	PrivateKeyID string `json:"private_key_id"`
	PrivateKey   string `json:"private_key"`
	ClientEmail  string `json:"client_email"`
	TokenURI     string `json:"token_uri"`
	// ProjectInfo is set in google-services.json, the Android app's
	// configuration, which people mistake for the key.
	ProjectInfo json.RawMessage `json:"project_info"`
}

// parseServiceAccount checks a service-account key file, returning every
// problem found.
func parseServiceAccount(data []byte) (*serviceAccount, []error) {
	var sa serviceAccount
	if err := json.Unmarshal(data, &sa); err != nil {
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntax):
			line := 1 + strings.Count(string(data[:min(int(syntax.Offset), len(data))]), "\n")
			err = fmt.Errorf("is not valid JSON: line %d: %v", line, syntax)
		case errors.As(err, &typ) && typ.Field == "":
			err = fmt.Errorf("is not a service-account key: it holds a JSON %s, not an object: %s", typ.Value, newServiceAccountKey)
		case errors.As(err, &typ):
			err = fmt.Errorf("is not a service-account key: %s is a JSON %s, not a string: %s", typ.Field, typ.Value, newServiceAccountKey)
		default:
			err = fmt.Errorf("is not a service-account key: %w", err)
		}
		return nil, []error{err}
	}
	if sa.ProjectInfo != nil {
		return nil, []error{errors.New("is google-services.json, the Android app's configuration, not a service-account key: " + newServiceAccountKey)}
	}
	switch sa.Type {
	case "service_account":
	case "":
		return nil, []error{errors.New(`has no "type": "service_account", so it is not a service-account key: ` + newServiceAccountKey)}
	case "authorized_user":
		return nil, []error{errors.New("is a user's credential (from gcloud auth application-default login), not a service-account key: " + newServiceAccountKey)}
	default:
		return nil, []error{fmt.Errorf(`has type %q, not "service_account": %s`, sa.Type, newServiceAccountKey)}
	}
	var errs []error
	for _, f := range []struct{ name, value string }{
		{"client_email", sa.ClientEmail},
		{"private_key_id", sa.PrivateKeyID},
		{"private_key", sa.PrivateKey},
	} {
		if f.value == "" {
			errs = append(errs, fmt.Errorf("has no %s, so it is not a complete service-account key: %s", f.name, newServiceAccountKey))
		}
	}
	if sa.ClientEmail != "" && !strings.Contains(sa.ClientEmail, "@") {
		errs = append(errs, fmt.Errorf("client_email %q is not an e-mail address: %s", sa.ClientEmail, newServiceAccountKey))
	}
	if sa.PrivateKey != "" {
		if _, err := parseRSAKey(sa.PrivateKey); err != nil {
			errs = append(errs, err)
		}
	}
	if sa.TokenURI != "" {
		if u, err := url.Parse(sa.TokenURI); err != nil || u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf(`token_uri %q is not an https URL: remove it to use https://oauth2.googleapis.com/token`, sa.TokenURI))
		}
	}
	return &sa, errs
}

// maxCapWindow bounds frequency_cap's window: pushd_sends keeps the sends
// of the longest window.
const maxCapWindow = 90 * day

// frequencyCap reads frequency_cap = N/DURATION, such as 2/24h or 5/7d.
func (s *section) frequencyCap() pushd.FrequencyCap {
	e, ok := s.get("frequency_cap")
	if !ok || e.value == "" || e.value == "0" || strings.EqualFold(e.value, "off") {
		return pushd.FrequencyCap{}
	}
	const fix = `must be pushes/period, such as "2/24h" (at most 2 pushes in any 24 hours) or "5/7d"; leave it out for no cap`
	n, per, found := strings.Cut(e.value, "/")
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if !found || err != nil {
		s.fail(e, errors.New(fix))
		return pushd.FrequencyCap{}
	}
	if count < 1 || count > 1000 {
		s.fail(e, fmt.Errorf("allows %d pushes: use 1 to 1000 per period, or leave the key out for no cap", count))
		return pushd.FrequencyCap{}
	}
	per = strings.TrimSpace(per)
	var window time.Duration
	if days, isDays := strings.CutSuffix(per, "d"); isDays {
		d, err := strconv.Atoi(days)
		if err != nil {
			s.fail(e, errors.New(fix))
			return pushd.FrequencyCap{}
		}
		window = time.Duration(d) * day
	} else if window, err = time.ParseDuration(per); err != nil {
		s.fail(e, errors.New(fix))
		return pushd.FrequencyCap{}
	}
	if window < time.Minute || window > maxCapWindow {
		s.fail(e, fmt.Errorf("has a period of %s: use 1m to 90d", per))
		return pushd.FrequencyCap{}
	}
	return pushd.FrequencyCap{Count: count, Window: window}
}

// quietHours reads quiet_hours = HH:MM-HH:MM.
func (s *section) quietHours() pushd.QuietHours {
	e, ok := s.get("quiet_hours")
	if !ok || e.value == "" || strings.EqualFold(e.value, "off") {
		return pushd.QuietHours{}
	}
	q, err := pushd.ParseQuietHours(e.value)
	if err != nil {
		s.fail(e, err)
	}
	return q
}
