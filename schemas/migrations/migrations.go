// Package migrations embeds the SQL schema migrations of Parley's stores.
//
// Each SQL store has a directory of files named NNNN_name.sql (NNNN is the
// version, decimal, applied in ascending order, never edited once released).
// Statements in a file are separated by a ";" at the end of a line. The store
// applies the files it has not applied yet when it opens and records each
// one in its schema_migrations table (see sync/mysqlstore).
package migrations

import "embed"

// MySQL holds the MySQL/MariaDB migrations as mysql/NNNN_name.sql.
//
//go:embed mysql/*.sql
var MySQL embed.FS
