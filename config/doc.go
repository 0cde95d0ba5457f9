// Package config loads and validates pushd's config.ini.
//
// Ops edit the file per tenant, so every problem is reported precisely and
// all at once: Load and Parse return an errors.Join of *ValidationError, each
// naming the file, section, key, bad value and the fix, and `pushd check`
// prints them all. Nothing is clamped or defaulted silently: a value out of
// range is an error naming the range. Problems that do not stop pushd, such
// as a key file that other users can read, are returned in Config.Warnings.
//
// # File format
//
// The file is INI as Python's configparser wrote it for the legacy script:
//
//   - [Server], [SSL] and [Database] are matched ignoring case; every other
//     section is an app, named verbatim (at most 64 bytes) as in the database
//     tables. A section may appear only once, and [DEFAULT] is not supported.
//   - Lines are "key = value" (or "key: value"). Key names ignore case; a key
//     may appear only once per section; unknown keys are errors, with a
//     suggestion when the name looks like a typo.
//   - Comments are lines starting with # or ;. A # or ; after a value is part
//     of the value, so passwords may contain them. A value in matching single
//     or double quotes loses the quotes.
//   - Relative paths resolve against the directory of the configuration file.
//
// See config.ini.example in the repository root for every key, its default
// and its range.
//
// # Decisions
//
// APNs is spoken with token-based authentication only: auth_key_path (the .p8
// key), key_id and team_id. Certificate authentication (cert_file, p12 files
// and the like) is rejected. A token key never expires and serves every app
// of the team, while certificates expire yearly, need one per app and
// environment, and would double the TLS and credential code for no gain.
//
// FCM is spoken through the HTTP v1 API with a service-account key
// (service_account_file). The legacy API with its server keys (api_key,
// server_key, sender_id) stopped working in 2024 and GCM and C2DM long
// before, so those settings are errors that say how to migrate. The
// [Database] keys passwd and db of the legacy script's pymysql settings are
// accepted as aliases of password and database.
package config
