package pushd

// The schema is embedded here, at the module's root, so that schema.sql in
// the repository and the one `pushd migrate` applies can never differ.

import _ "embed"

// SchemaSQL is schema.sql: idempotent statements separated by ";\n".
//
//go:embed schema.sql
var SchemaSQL string

// SchemaVersion is the version schema.sql records in pushd_schema.
const SchemaVersion = 6
