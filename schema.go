// Package pushd holds what the whole module shares at its root: the database
// schema, so that schema.sql in the repository and the one `pushd migrate`
// applies can never differ.
package pushd

import _ "embed"

// SchemaSQL is schema.sql: idempotent statements separated by ";\n".
//
//go:embed schema.sql
var SchemaSQL string

// SchemaVersion is the version schema.sql records in pushd_schema.
const SchemaVersion = 1
