package mysqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parleyim/parley/schemas/migrations"
)

// migrateLock is the server-wide advisory lock (GET_LOCK) that serializes
// migrations of nodes starting together; lockWaitSeconds bounds the wait.
const (
	migrateLock     = "parley_migrate"
	lockWaitSeconds = 30
)

// migrationFile is one schemas/migrations/mysql/NNNN_name.sql.
type migrationFile struct {
	version    uint64
	name       string
	statements []string
}

// loadMigrations parses the embedded migrations, in version order.
func loadMigrations(fsys fs.FS) ([]migrationFile, error) {
	names, err := fs.Glob(fsys, "mysql/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migrationFile
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.ParseUint(num, 10, 64)
		if !ok || err != nil || v == 0 {
			return nil, fmt.Errorf("migration %s: name is not NNNN_name.sql", name)
		}
		text, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", name, err)
		}
		stmts := splitStatements(string(text))
		if len(stmts) == 0 {
			return nil, fmt.Errorf("migration %s: no statements", name)
		}
		out = append(out, migrationFile{version: v, name: strings.TrimSuffix(base, ".sql"), statements: stmts})
	}
	slices.SortFunc(out, func(a, b migrationFile) int { return cmp.Compare(a.version, b.version) })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", out[i-1].name, out[i].name, out[i].version)
		}
	}
	return out, nil
}

// splitStatements splits a migration file into statements: each ends with a
// ";" at the end of a line. Lines starting with "--" are comments.
func splitStatements(text string) []string {
	var out []string
	var cur strings.Builder
	for line := range strings.Lines(text) {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		if strings.HasSuffix(trimmed, ";") {
			if s := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"); s != "" {
				out = append(out, s)
			}
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// migrate applies the embedded migrations the database lacks, in order,
// each recorded in schema_migrations, under GET_LOCK so that nodes starting
// together do not race. DDL is not transactional in MySQL: every statement
// of a migration must be safe to run again (CREATE TABLE IF NOT EXISTS …)
// in case a node dies half way through one.
func (s *Store) migrate(ctx context.Context) error {
	files, err := loadMigrations(migrations.MySQL)
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	// GET_LOCK belongs to the session: hold one connection throughout.
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()

	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", migrateLock, lockWaitSeconds).Scan(&got); err != nil {
		return fmt.Errorf("migrate: get lock %s: %w", migrateLock, err)
	}
	if !got.Valid || got.Int64 != 1 {
		return fmt.Errorf("migrate: lock %s still held by another node after %ds", migrateLock, lockWaitSeconds)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(rctx, "DO RELEASE_LOCK(?)", migrateLock); err != nil {
			// Ending the session releases the lock: drop the connection
			// rather than return it to the pool.
			s.log.Warn("release migration lock failed", "err", err)
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()

	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
  version    BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  name       VARCHAR(255) NOT NULL,
  applied_at DATETIME(3) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	applied := map[uint64]bool{}
	rows, err := conn.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v uint64
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("migrate: read schema_migrations: %w", err)
		}
		applied[v] = true
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migrate: read schema_migrations: %w", err)
	}

	known := map[uint64]bool{}
	for _, f := range files {
		known[f.version] = true
		if applied[f.version] {
			continue
		}
		start := time.Now()
		for i, stmt := range f.statements {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migrate %s: statement %d: %w", f.name, i+1, err)
			}
		}
		if _, err := conn.ExecContext(ctx,
			"INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, NOW(3))", f.version, f.name); err != nil {
			return fmt.Errorf("migrate %s: record: %w", f.name, err)
		}
		s.log.Info("applied migration", "version", f.version, "name", f.name, "took", time.Since(start))
	}
	for v := range applied {
		if !known[v] {
			// A newer node migrated ahead (rolling upgrade): migrations only
			// add, so this binary can keep running.
			s.log.Warn("database has a migration this binary does not know", "version", v)
		}
	}
	return nil
}
