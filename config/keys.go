package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/internal/didyoumean"
)

// sectionKind says which rules a section follows.
type sectionKind int

const (
	appSection sectionKind = iota
	serverSection
	sslSection
	databaseSection
	apiSection
)

// kindOf classifies a section by name. [Server], [SSL] and [Database] match
// ignoring case; every other section is an app.
func kindOf(name string) sectionKind {
	switch strings.ToLower(name) {
	case "server":
		return serverSection
	case "ssl":
		return sslSection
	case "database":
		return databaseSection
	case "api":
		return apiSection
	}
	return appSection
}

// header returns how a section of this kind is written.
func (k sectionKind) header() string {
	switch k {
	case serverSection:
		return "[Server]"
	case sslSection:
		return "[SSL]"
	case databaseSection:
		return "[Database]"
	case apiSection:
		return "[API]"
	}
	return "an app section"
}

// The keys each section takes, in the order config.ini.example documents
// them.
var (
	serverKeys   = []string{"listen", "poll_interval", "timezone", "lease_duration", "shutdown_timeout", "log_format", "log_level", "instance_id", "ledger_retention", "campaigns"}
	sslKeys      = []string{"ca_file"}
	databaseKeys = []string{"host", "port", "socket", "user", "password", "database", "tls", "tls_ca_file", "max_open_conns"}
	appKeys      = []string{"push_type", "endpoint", "batch_size", "concurrency", "connections", "rate_limit", "default_expiry", "max_attempts", "request_timeout", "frequency_cap", "default_timezone", "quiet_hours", "api_keys"}
	apnsKeys     = []string{"environment", "bundle_id", "key_id", "team_id", "auth_key_path"}
	fcmKeys      = []string{"service_account_file", "project_id"}
)

// databaseAliases maps the key names of the legacy Python script's pymysql
// settings to pushd's.
var databaseAliases = map[string]string{
	"passwd": "password",
	"db":     "database",
}

// legacyFCMKeys are the settings of the FCM legacy HTTP API (and GCM before
// it), which Google shut down in 2024.
var legacyFCMKeys = []string{
	"api_key", "server_key", "sender_id",
	"gcm_api_key", "gcm_key", "gcm_sender_id",
	"fcm_api_key", "fcm_key", "fcm_server_key", "fcm_sender_id",
	"legacy_server_key",
}

// isCertificateKey reports whether a key configures APNs certificate
// authentication, which pushd does not support (see the package doc).
func isCertificateKey(key string) bool {
	if strings.Contains(key, "cert") || strings.Contains(key, "p12") ||
		strings.Contains(key, "pkcs12") || strings.Contains(key, "pem") {
		return true
	}
	switch key {
	case "key_file", "keyfile", "passphrase", "key_password":
		return true
	}
	return false
}

const (
	legacyFCMMessage = "the FCM legacy API and its server keys stopped working in 2024: " +
		"create a service-account key in the Firebase console (Project settings > Service accounts > Generate new private key), " +
		"set service_account_file to the downloaded JSON file and remove this key"
	certificateMessage = "certificate auth is not supported: pushd uses APNs token auth; " +
		"create a key under Certificates, Identifiers & Profiles > Keys in your Apple developer account, " +
		"set auth_key_path to the downloaded .p8 file, key_id to its Key ID and team_id to your Team ID, and remove this key"
)

// keyHints explains keys that people write for a setting pushd names
// differently, per kind of section.
var keyHints = map[sectionKind]map[string]string{
	serverSection: {
		"host": `set listen = "host:port"`, "port": `set listen = "host:port"`,
		"bind": `set listen = "host:port"`, "address": `set listen = "host:port"`,
		"metrics_port": `set listen = "host:port"`,
	},
	appSection: {
		"host": `set endpoint = "https://host[:port]" to override the provider's address`,
		"port": `set endpoint = "https://host[:port]" to override the provider's address`,
		"url":  `set endpoint = "https://host[:port]" to override the provider's address`,

		"sandbox":     `set environment = development (or production)`,
		"use_sandbox": `set environment = development (or production)`,
		"production":  `set environment = production (or development)`,

		"topic":      "pushd derives the apns-topic from bundle_id: set bundle_id",
		"apns_topic": "pushd derives the apns-topic from bundle_id: set bundle_id",
	},
}

// ownerOf names the section that takes key, or "" when no section does.
func ownerOf(key string) sectionKind {
	switch {
	case slices.Contains(serverKeys, key):
		return serverSection
	case slices.Contains(sslKeys, key):
		return sslSection
	case slices.Contains(databaseKeys, key) || databaseAliases[key] != "":
		return databaseSection
	case slices.Contains(appKeys, key) || slices.Contains(apnsKeys, key) || slices.Contains(fcmKeys, key):
		return appSection
	}
	return -1
}

// unknownKey explains a key that the section does not take. valid lists the
// keys it does take.
func (s *section) unknownKey(key string, valid []string) error {
	if hint, ok := keyHints[s.kind][key]; ok {
		return fmt.Errorf("unknown key: %s", hint)
	}
	if owner := ownerOf(key); owner >= 0 && owner != s.kind {
		return fmt.Errorf("belongs in %s, not here: move it", owner.header())
	}
	if best := didyoumean.Nearest(key, valid); best != "" {
		return fmt.Errorf("unknown key: did you mean %s?", best)
	}
	return fmt.Errorf("unknown key: %s takes %s", s.kindHeader(), strings.Join(valid, ", "))
}

// kindHeader is how errors refer to this section's kind.
func (s *section) kindHeader() string {
	if s.kind == appSection {
		return "[" + s.name + "]"
	}
	return s.kind.header()
}

// checkKeys reports every key of a [Server], [SSL] or [Database] section
// that the section does not take.
func (s *section) checkKeys(valid []string) {
	for _, key := range s.order {
		if slices.Contains(valid, key) || s.kind == databaseSection && databaseAliases[key] != "" {
			continue
		}
		s.fail(s.keys[key], s.unknownKey(key, valid))
	}
}

// checkAppKeys reports every key of an app section that an app with push
// type pt does not take; pt is empty when push_type is bad or missing. It
// reports whether the section holds legacy FCM keys.
func (s *section) checkAppKeys(pt pushd.PushType) (legacyFCM bool) {
	valid := slices.Concat(appKeys, apnsKeys, fcmKeys)
	switch pt {
	case pushd.APNs:
		valid = slices.Concat(appKeys, apnsKeys)
	case pushd.FCM:
		valid = slices.Concat(appKeys, fcmKeys)
	}
	for _, key := range s.order {
		e := s.keys[key]
		switch {
		case slices.Contains(valid, key):
		case pt == pushd.FCM && slices.Contains(apnsKeys, key):
			s.fail(e, fmt.Errorf("belongs to push_type = APNs, but this app has push_type = FCM: remove it"))
		case pt == pushd.APNs && slices.Contains(fcmKeys, key):
			s.fail(e, fmt.Errorf("belongs to push_type = FCM, but this app has push_type = APNs: remove it"))
		case slices.Contains(legacyFCMKeys, key):
			legacyFCM = true
			s.fail(e, fmt.Errorf("%s", legacyFCMMessage))
		case isCertificateKey(key):
			s.fail(e, fmt.Errorf("%s", certificateMessage))
		default:
			s.fail(e, s.unknownKey(key, valid))
		}
	}
	return legacyFCM
}
