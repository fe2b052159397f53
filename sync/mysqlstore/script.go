package mysqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// An Append's statements go to the server several at a time (the
// connection has multiStatements on and interpolates its parameters), so an
// append costs two round trips — the After check, START TRANSACTION and the
// INSERTs together, then COMMIT — instead of one per statement. Under load a
// round trip is where a commit waits longest: each one wakes a goroutine on
// both sides, and on a 2-vCPU machine a loopback write that wakes MariaDB
// costs ~26 µs of CPU (docs/PERFORMANCE.md).

// querier is what runScript needs: a *sql.Tx, or a *sql.Conn on which the
// script itself starts the transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// maxBytesPerRoundTrip caps the blob bytes of the statements sent together
// (a statement bigger than that goes alone), so that a round trip stays far
// below max_allowed_packet, as each statement does.
const maxBytesPerRoundTrip = maxBytesPerInsert

// statement is one SQL statement with its arguments; blob is the bytes of
// its blob arguments.
type statement struct {
	query string
	args  []any
	blob  int
}

// insertStatements splits rows, in the order given, into multi-row INSERTs
// (head, then tuple once per row) of at most maxRowsPerInsert rows and
// (unless one row is bigger) maxBytesPerInsert blob bytes. size returns a
// row's blob bytes; appendArgs appends its values, one per "?" of tuple.
func insertStatements[R any](head, tuple string, rows []R, size func(*R) int, appendArgs func([]any, *R) []any) []statement {
	cols := strings.Count(tuple, "?")
	var out []statement
	for len(rows) > 0 {
		n, total := 0, 0
		for n < len(rows) && n < maxRowsPerInsert && (n == 0 || total+size(&rows[n]) <= maxBytesPerInsert) {
			total += size(&rows[n])
			n++
		}
		args := make([]any, 0, cols*n)
		for i := range rows[:n] {
			args = appendArgs(args, &rows[i])
		}
		out = append(out, statement{query: head + placeholders(n, tuple, ","), args: args, blob: total})
		rows = rows[n:]
	}
	return out
}

// runScript runs stmts in order on q, as many per round trip as
// maxBytesPerRoundTrip allows. If count is not nil, stmts[0] is a query of
// one row and one integer column, stored in *count. The server stops at the
// first failing statement, whose error runScript returns; the caller rolls
// back.
func runScript(ctx context.Context, q querier, stmts []statement, count *int) error {
	for first := true; len(stmts) > 0; first = false {
		n, total := 0, 0
		for n < len(stmts) && (n == 0 || total+stmts[n].blob <= maxBytesPerRoundTrip) {
			total += stmts[n].blob
			n++
		}
		var script strings.Builder
		var args []any
		for i := range stmts[:n] {
			if i > 0 {
				script.WriteByte(';')
			}
			script.WriteString(stmts[i].query)
			args = append(args, stmts[i].args...)
		}
		var err error
		if first && count != nil {
			err = queryCount(ctx, q, script.String(), args, count)
		} else {
			_, err = q.ExecContext(ctx, script.String(), args...)
		}
		if err != nil {
			return fmt.Errorf("%d statements: %w", n, err)
		}
		stmts = stmts[n:]
	}
	return nil
}

// queryCount runs q, whose first statement returns the count, and reads the
// results of the statements after it, which carry their errors.
func queryCount(ctx context.Context, qr querier, q string, args []any, count *int) (err error) {
	rows, err := qr.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
	}()
	if !rows.Next() {
		return errors.Join(errors.New("count query returned no row"), rows.Err())
	}
	if err := rows.Scan(count); err != nil {
		return err
	}
	for rows.NextResultSet() {
	}
	return rows.Err()
}
