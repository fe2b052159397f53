package mysqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/parleyim/parley/sync/mailbox"
)

// The outbox table is schemas/migrations/mysql/0003_outbox.sql. Append
// inserts the entries of its new items in its own transaction, after the
// mailbox rows; created_at_ms is this process's clock, as in the embedded
// store, so that a relay comparing it with its own clock sees no skew.

// insertOutbox returns the INSERTs of new outbox rows created at nowMs,
// sorted by key so that concurrent batches lock rows in one order. It
// reorders rows.
func insertOutbox(rows []outboxRow, nowMs int64) []statement {
	slices.SortFunc(rows, func(a, b outboxRow) int {
		return cmp.Or(strings.Compare(a.uid, b.uid), strings.Compare(a.msgID, b.msgID))
	})
	return insertStatements("INSERT INTO outbox (uid, msg_id, created_at_ms, data) VALUES ", "(?,?,?,?)", rows,
		func(r *outboxRow) int { return len(r.data) },
		func(args []any, r *outboxRow) []any { return append(args, r.uid, r.msgID, nowMs, r.data) })
}

// Outbox implements mailbox.Store: oldest first, ties in (uid, msg id)
// order, as the embedded store. A limit <= 0 returns nothing.
func (s *Store) Outbox(ctx context.Context, olderThanMs int64, limit int) ([]mailbox.OutboxEntry, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	if limit <= 0 {
		return nil, nil
	}
	upTo := olderThanMs
	if upTo == 0 {
		upTo = math.MaxInt64
	}
	// The index holds (created_at_ms, uid, msg_id): no sort, and the scan
	// stops after limit rows.
	rows, err := s.db.QueryContext(ctx, `SELECT uid, msg_id, created_at_ms, data FROM outbox FORCE INDEX (outbox_created_at_ms)
WHERE created_at_ms <= ? ORDER BY created_at_ms, uid, msg_id LIMIT ?`, upTo, limit)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []mailbox.OutboxEntry
	for rows.Next() {
		var e mailbox.OutboxEntry
		if err := rows.Scan(&e.UserID, &e.MsgID, &e.CreatedAtMs, &e.Data); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		if e.Data == nil {
			e.Data = []byte{} // as stored: not nil
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return out, nil
}

// ClearOutbox implements mailbox.Store, in one transaction of DELETEs of at
// most maxKeysPerQuery keys each.
func (s *Store) ClearOutbox(ctx context.Context, keys []mailbox.OutboxKey) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("clear outbox: %w", err)
	}
	if len(keys) == 0 {
		return nil
	}
	// Sorted: concurrent clears lock rows in one order.
	sorted := slices.Clone(keys)
	slices.SortFunc(sorted, func(a, b mailbox.OutboxKey) int {
		return cmp.Or(strings.Compare(a.UserID, b.UserID), strings.Compare(a.MsgID, b.MsgID))
	})
	sorted = slices.Compact(sorted)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for chunk := range slices.Chunk(sorted, maxKeysPerQuery) {
			args := make([]any, 0, 2*len(chunk))
			for _, k := range chunk {
				args = append(args, k.UserID, k.MsgID)
			}
			// MariaDB 10.11 plans a one-row IN ((?,?)) in a DELETE as a
			// full scan (two rows or more are a range on the primary key).
			q := "DELETE FROM outbox WHERE uid = ? AND msg_id = ?"
			if len(chunk) > 1 {
				q = "DELETE FROM outbox WHERE (uid, msg_id) IN (" + placeholders(len(chunk), "(?,?)", ",") + ")"
			}
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("delete %d keys: %w", len(chunk), err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("clear outbox keys=%d: %w", len(keys), err)
	}
	return nil
}
