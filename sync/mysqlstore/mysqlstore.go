// Package mysqlstore is the production mailbox.Store: MySQL or MariaDB
// (10.11+, strict mode), shared by every node of a cluster.
//
// The schema is schemas/migrations/mysql, applied at Open (see migrate.go).
// One Append is one transaction of two round trips: the statements, sent
// together with START TRANSACTION (script.go); COMMIT (the careful retry
// below uses BeginTx and reads first). The first attempt trusts each part's
// After seq: one primary-key lookup per user checks that the mailbox holds
// it, the store numbers the new items in memory, and multi-row INSERTs
// write them, sorted by (uid, seq), then their outbox entries (outbox.go),
// sorted by (uid, msg id). When a unique key says an item is stored
// already, or a check comes up short, the careful retry reads the max seq of
// every user in the batch (one query per 500 users) and finds the batch's
// msg ids and client keys already stored (two queries per 500 items) and
// reports them as duplicates. The primary key (uid, seq) is what keeps two
// writers of one mailbox (a zombie owner) from reusing a seq: the loser's
// INSERT fails with a duplicate key, and the store retries the whole
// transaction, which then reports ErrConflict for that part only.
package mysqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/mailbox"
)

var _ mailbox.Store = (*Store)(nil)

// Statement sizing: every statement stays far below max_allowed_packet
// (4 MiB on old MySQL, 16 MiB on MariaDB), even with blobs escaped.
const (
	maxRowsPerInsert  = 500
	maxBytesPerInsert = 1 << 20
	maxKeysPerQuery   = 500
)

// maxAttempts bounds the transaction retries after a deadlock or a
// duplicate key raised by a concurrent writer (not counting the first,
// optimistic attempt, see Append).
const maxAttempts = 3

// MySQL error numbers the store retries on.
const (
	errDupEntry = 1062 // ER_DUP_ENTRY
	errDeadlock = 1213 // ER_LOCK_DEADLOCK
)

// Options configures Open. The zero value is ready to use.
type Options struct {
	// MaxOpenConns caps the connection pool (idle connections included);
	// zero means 32.
	MaxOpenConns int
	// ConnMaxLifetime recycles connections (so a failover or a proxy
	// rebalance takes effect); zero means 30 minutes.
	ConnMaxLifetime time.Duration
	// Logger receives lifecycle, migration and driver logs; nil discards.
	Logger *slog.Logger
}

// Store is a mailbox.Store on MySQL/MariaDB. Safe for concurrent use.
type Store struct {
	// Immutable after Open.
	db  *sql.DB
	log *slog.Logger

	closed atomic.Bool // set by the first Close
}

// Open connects to the database named by dsn (a go-sql-driver/mysql DSN such
// as "user:pass@tcp(127.0.0.1:3306)/parley"; see ParseURL for URLs), applies
// the migrations it lacks and returns the store. The database must exist.
// Open turns on interpolateParams (one round trip per statement) and
// multiStatements (several statements per round trip), and sets a 10s dial
// timeout when dsn has none.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("open mysqlstore: parse dsn: %w", err)
	}
	if cfg.DBName == "" {
		return nil, errors.New("open mysqlstore: dsn names no database")
	}
	log = log.With("store", "mysql", "addr", cfg.Addr, "db", cfg.DBName)
	cfg.InterpolateParams = true
	cfg.MultiStatements = true // an Append sends its statements together (script.go)
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	cfg.Logger = driverLogger{log}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("open mysqlstore db=%s: %w", cfg.DBName, err)
	}
	db := sql.OpenDB(connector)
	conns := cmp.Or(opts.MaxOpenConns, 32)
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxLifetime(cmp.Or(opts.ConnMaxLifetime, 30*time.Minute))
	db.SetConnMaxIdleTime(5 * time.Minute)

	s := &Store{db: db, log: log}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open mysqlstore addr=%s db=%s: %w", cfg.Addr, cfg.DBName, err)
	}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open mysqlstore addr=%s db=%s: %w", cfg.Addr, cfg.DBName, err)
	}
	return s, nil
}

// driverLogger sends go-sql-driver/mysql's logs to slog.
type driverLogger struct{ log *slog.Logger }

// Print implements mysql.Logger.
func (l driverLogger) Print(v ...any) {
	l.log.Warn("mysql driver", "detail", fmt.Sprint(v...))
}

// Close closes the connection pool. Idempotent; other methods return
// mailbox.ErrClosed afterwards.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close mysqlstore: %w", err)
	}
	return nil
}

// check returns mailbox.ErrClosed after Close, else ctx's error.
func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return mailbox.ErrClosed
	}
	return ctx.Err()
}

// Append implements mailbox.Store.
func (s *Store) Append(ctx context.Context, batch []mailbox.Append) ([]mailbox.AppendResult, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("append mailbox: %w", err)
	}
	if err := validate(batch); err != nil {
		return nil, err
	}
	if len(batch) == 0 {
		return []mailbox.AppendResult{}, nil
	}
	for attempt := 1; ; attempt++ {
		// The first attempt trusts After and looks up no msg id or client
		// key: conflicts and duplicates are rare (a zombie writer; a resend
		// after a lost ack, a redelivery), and the keys refuse them anyway
		// (a seq taken, a msg id or client key stored), which sends the
		// append to the next attempt, which reads the max seqs and looks
		// the ids up. The first attempt only checks that each mailbox has
		// its After seq, which the keys cannot tell.
		res, err := s.appendTx(ctx, batch, attempt > 1)
		if err == nil {
			return res, nil
		}
		if errors.Is(err, errNotAtAfter) {
			continue // the careful attempt reports the conflict
		}
		var me *mysql.MySQLError
		if attempt < maxAttempts+1 && errors.As(err, &me) && (me.Number == errDupEntry || me.Number == errDeadlock) && ctx.Err() == nil {
			s.log.Debug("append retry after concurrent writer", "attempt", attempt, "err", err)
			continue
		}
		return nil, fmt.Errorf("append mailbox parts=%d: %w", len(batch), err)
	}
}

// userID is a (uid, id) pair: a msg id or client key within a mailbox.
type userID struct{ uid, id string }

// stored is a message the batch found or wrote.
type stored struct {
	seq uint64
	raw []byte // protobuf, Seq set
}

// row is one new mailbox row.
type row struct {
	uid, msgID, clientKey string
	seq                   uint64
	createdAtMs           int64
	raw                   []byte
}

// outboxRow is one new outbox row.
type outboxRow struct {
	uid, msgID string
	data       []byte
}

// appendTx runs one attempt of Append in one transaction. Without lookup it
// assumes no item is stored yet and lets the unique keys catch a duplicate
// (ER_DUP_ENTRY, which Append retries with lookup).
func (s *Store) appendTx(ctx context.Context, batch []mailbox.Append, lookup bool) (_ []mailbox.AppendResult, err error) {
	var last map[string]uint64
	byID, byKey := map[userID]stored{}, map[userID]stored{}
	var check *statement // the fast path's check of the After seqs, sent with the inserts
	want := 0
	var q querier
	var commit func() error
	var begin []statement // the fast path starts its transaction in the script
	if lookup {
		var tx *sql.Tx // not :=, which would hide err from the deferred rollback
		if tx, err = s.db.BeginTx(ctx, nil); err != nil {
			return nil, fmt.Errorf("begin: %w", err)
		}
		defer func() {
			if err != nil {
				_ = tx.Rollback()
			}
		}()
		q, commit = tx, tx.Commit
		if last, err = maxSeqs(ctx, tx, batch); err != nil {
			return nil, err
		}
		if byID, byKey, err = existing(ctx, tx, batch); err != nil {
			return nil, err
		}
	} else {
		if last, check, want, err = afterCheck(batch); err != nil {
			return nil, err
		}
		var conn *sql.Conn
		if conn, err = s.db.Conn(ctx); err != nil {
			return nil, fmt.Errorf("get a connection: %w", err)
		}
		t := &connTx{conn: conn}
		defer t.end()
		q, commit = conn, func() error { return t.commit(ctx) }
		begin = []statement{{query: "START TRANSACTION"}}
	}

	results := make([]mailbox.AppendResult, len(batch))
	var rows []row
	var outbox []outboxRow
	for i := range batch {
		a := &batch[i]
		if a.After != last[a.UserID] {
			results[i] = mailbox.AppendResult{Err: mailbox.ErrConflict, MaxSeq: last[a.UserID]}
			continue
		}
		items := make([]mailbox.ItemResult, len(a.Items))
		for j, it := range a.Items {
			idKey := userID{a.UserID, it.Message.MsgId}
			dup, ok := byID[idKey]
			if !ok && it.ClientKey != "" {
				dup, ok = byKey[userID{a.UserID, it.ClientKey}]
			}
			if ok {
				m, err := decode(dup.raw)
				if err != nil {
					return nil, fmt.Errorf("decode uid=%s seq=%d: %w", a.UserID, dup.seq, err)
				}
				items[j] = mailbox.ItemResult{Seq: dup.seq, Duplicate: true, Existing: m}
				continue
			}
			seq := last[a.UserID] + 1
			raw, err := mailbox.EncodeEntry(it.Message, seq)
			if err != nil {
				return nil, fmt.Errorf("encode uid=%s msg_id=%s: %w", a.UserID, it.Message.MsgId, err)
			}
			last[a.UserID] = seq
			st := stored{seq: seq, raw: raw}
			byID[idKey] = st
			if it.ClientKey != "" {
				byKey[userID{a.UserID, it.ClientKey}] = st
			}
			rows = append(rows, row{
				uid: a.UserID, msgID: it.Message.MsgId, clientKey: it.ClientKey,
				seq: seq, createdAtMs: it.Message.CreatedAtMs, raw: raw,
			})
			if it.Outbox != nil {
				outbox = append(outbox, outboxRow{uid: a.UserID, msgID: it.Message.MsgId, data: it.Outbox})
			}
			items[j] = mailbox.ItemResult{Seq: seq}
		}
		results[i] = mailbox.AppendResult{Items: items, MaxSeq: last[a.UserID]}
	}

	// Insert in key order, so concurrent batches lock rows in one order.
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(strings.Compare(a.uid, b.uid), cmp.Compare(a.seq, b.seq))
	})
	var stmts []statement
	var found int
	var counted *int // the check's count, when there is a check
	if check != nil {
		// Before START TRANSACTION: the first result set is then the
		// count's. Outside the transaction is as good: rows are never
		// deleted, so an After seq read there is still there at COMMIT.
		stmts, counted = append(stmts, *check), &found
	}
	stmts = append(stmts, begin...)
	stmts = append(stmts, insertRows(rows)...)
	stmts = append(stmts, insertOutbox(outbox, time.Now().UnixMilli())...)
	if err := runScript(ctx, q, stmts, counted); err != nil {
		return nil, fmt.Errorf("write mailbox rows: %w", err)
	}
	if check != nil && found != want {
		return nil, errNotAtAfter
	}
	if err := commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return results, nil
}

// connTx is a transaction that a script starts on conn itself (START
// TRANSACTION travels with the first statements: one round trip fewer than
// BeginTx). database/sql does not know about it, so end rolls back what was
// not committed before the connection goes back to the pool, and discards the
// connection when it cannot be sure the transaction is over.
type connTx struct {
	conn      *sql.Conn
	committed bool
}

func (t *connTx) commit(ctx context.Context) error {
	if _, err := t.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return err
	}
	t.committed = true
	return nil
}

// end rolls back unless committed (a no-op when the script failed before
// START TRANSACTION) and returns the connection to the pool.
func (t *connTx) end() {
	if !t.committed {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := t.conn.ExecContext(ctx, "ROLLBACK")
		cancel()
		if err != nil {
			// Perhaps still inside the transaction: never reuse it.
			_ = t.conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}
	_ = t.conn.Close()
}

// maxSeqs returns the max seq of every user of batch (absent: 0).
func maxSeqs(ctx context.Context, tx *sql.Tx, batch []mailbox.Append) (map[string]uint64, error) {
	last := make(map[string]uint64, len(batch))
	var uids []any
	for i := range batch {
		if _, ok := last[batch[i].UserID]; !ok {
			last[batch[i].UserID] = 0
			uids = append(uids, batch[i].UserID)
		}
	}
	// One MAX per user, UNION ALL'd: each is a single index dive ("Select
	// tables optimized away"), where MAX … WHERE uid IN (…) GROUP BY uid
	// leaves the optimizer free to scan whole mailboxes.
	const part = "SELECT ?, COALESCE(MAX(seq), 0) FROM mailbox WHERE uid = ?"
	for chunk := range slices.Chunk(uids, maxKeysPerQuery) {
		args := make([]any, 0, 2*len(chunk))
		for _, uid := range chunk {
			args = append(args, uid, uid)
		}
		rows, err := tx.QueryContext(ctx, placeholders(len(chunk), part, " UNION ALL "), args...)
		if err != nil {
			return nil, fmt.Errorf("read max seqs: %w", err)
		}
		for rows.Next() {
			var uid string
			var seq uint64
			if err := rows.Scan(&uid, &seq); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read max seqs: %w", err)
			}
			last[uid] = seq
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("read max seqs: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read max seqs: %w", err)
		}
	}
	return last, nil
}

// errNotAtAfter says some mailbox of the batch has no entry at its After
// seq (it ends before it): the careful attempt reports the conflict.
var errNotAtAfter = errors.New("a mailbox ends before its After seq")

// afterCheck returns every user's After and, unless every After is 0, the
// statement that counts the mailboxes holding their After seq, which must
// come to want: an After beyond the mailbox's end would leave a gap; one
// before its end makes the INSERT collide with the primary key. It is a
// primary key lookup per user, sent with the INSERTs (see runScript), which
// the transaction rolls back when the count is short.
func afterCheck(batch []mailbox.Append) (last map[string]uint64, check *statement, want int, err error) {
	last = make(map[string]uint64, len(batch))
	var pairs []any
	for i := range batch {
		a := &batch[i]
		if prev, ok := last[a.UserID]; ok {
			if prev != a.After {
				return nil, nil, 0, errNotAtAfter // one user twice with different Afters: let the careful path sort it out
			}
			continue
		}
		last[a.UserID] = a.After
		if a.After > 0 {
			pairs = append(pairs, a.UserID, a.After)
			want++
		}
	}
	if want == 0 {
		return last, nil, 0, nil
	}
	q := "SELECT COUNT(*) FROM mailbox FORCE INDEX (PRIMARY) WHERE (uid, seq) IN (" + placeholders(want, "(?,?)", ",") + ")"
	return last, &statement{query: q, args: pairs}, want, nil
}

// existing returns the stored messages of the batch's users whose msg id or
// client key some item of batch carries.
func existing(ctx context.Context, tx *sql.Tx, batch []mailbox.Append) (byID, byKey map[userID]stored, err error) {
	byID, byKey = map[userID]stored{}, map[userID]stored{}
	var ids, keys []any // flattened (uid, id) pairs
	for i := range batch {
		a := &batch[i]
		for _, it := range a.Items {
			ids = append(ids, a.UserID, it.Message.MsgId)
			if it.ClientKey != "" {
				keys = append(keys, a.UserID, it.ClientKey)
			}
		}
	}
	lookup := func(col, index string, pairs []any) error {
		for chunk := range slices.Chunk(pairs, 2*maxKeysPerQuery) {
			// The hint matters: with stale statistics MariaDB prefers the
			// primary key's uid prefix and reads whole mailboxes.
			q := "SELECT uid, seq, msg_id, client_key, message FROM mailbox FORCE INDEX (" + index +
				") WHERE (uid, " + col + ") IN (" + placeholders(len(chunk)/2, "(?,?)", ",") + ")"
			rows, err := tx.QueryContext(ctx, q, chunk...)
			if err != nil {
				return fmt.Errorf("look up %s: %w", col, err)
			}
			for rows.Next() {
				var uid, msgID string
				var clientKey sql.NullString
				var st stored
				if err := rows.Scan(&uid, &st.seq, &msgID, &clientKey, &st.raw); err != nil {
					rows.Close()
					return fmt.Errorf("look up %s: %w", col, err)
				}
				byID[userID{uid, msgID}] = st
				if clientKey.Valid {
					byKey[userID{uid, clientKey.String}] = st
				}
			}
			if err := rows.Close(); err != nil {
				return fmt.Errorf("look up %s: %w", col, err)
			}
			if err := rows.Err(); err != nil {
				return fmt.Errorf("look up %s: %w", col, err)
			}
		}
		return nil
	}
	if err := lookup("msg_id", "mailbox_uid_msg_id", ids); err != nil {
		return nil, nil, err
	}
	if err := lookup("client_key", "mailbox_uid_client_key", keys); err != nil {
		return nil, nil, err
	}
	return byID, byKey, nil
}

// insertRows returns the INSERTs of new mailbox rows, in the order given.
func insertRows(rows []row) []statement {
	return insertStatements("INSERT INTO mailbox (uid, seq, msg_id, client_key, created_at_ms, message) VALUES ", "(?,?,?,?,?,?)", rows,
		func(r *row) int { return len(r.raw) },
		func(args []any, r *row) []any {
			var ck any
			if r.clientKey != "" {
				ck = r.clientKey
			}
			return append(args, r.uid, r.seq, r.msgID, ck, r.createdAtMs, r.raw)
		})
}

// placeholders returns n copies of p joined by sep.
func placeholders(n int, p, sep string) string {
	var b strings.Builder
	b.Grow(n * (len(p) + len(sep)))
	for i := range n {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(p)
	}
	return b.String()
}

// MaxSeq implements mailbox.Store.
func (s *Store) MaxSeq(ctx context.Context, uid string) (uint64, error) {
	if err := s.check(ctx); err != nil {
		return 0, fmt.Errorf("max seq uid=%s: %w", uid, err)
	}
	var seq uint64
	err := s.db.QueryRowContext(ctx, "SELECT COALESCE(MAX(seq), 0) FROM mailbox WHERE uid = ?", uid).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("max seq uid=%s: %w", uid, err)
	}
	return seq, nil
}

// Fetch implements mailbox.Store. A limit <= 0 returns nothing.
func (s *Store) Fetch(ctx context.Context, uid string, after, upTo uint64, limit int) ([]*wirepb.Message, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("fetch mailbox uid=%s: %w", uid, err)
	}
	if limit <= 0 || upTo <= after {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx,
		"SELECT seq, message FROM mailbox FORCE INDEX (PRIMARY) WHERE uid = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
		uid, after, upTo, limit)
	if err != nil {
		return nil, fmt.Errorf("fetch mailbox uid=%s: %w", uid, err)
	}
	defer rows.Close()
	var out []*wirepb.Message
	for rows.Next() {
		var seq uint64
		var raw []byte
		if err := rows.Scan(&seq, &raw); err != nil {
			return nil, fmt.Errorf("fetch mailbox uid=%s: %w", uid, err)
		}
		m, err := decode(raw)
		if err != nil {
			return nil, fmt.Errorf("fetch mailbox uid=%s: decode seq=%d: %w", uid, seq, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fetch mailbox uid=%s: %w", uid, err)
	}
	return out, nil
}

// SetAcked implements mailbox.Store: multi-row upserts of at most
// maxKeysPerQuery cursors, in (uid, device) order so that concurrent
// writers lock rows in one order, in one transaction.
func (s *Store) SetAcked(ctx context.Context, cursors []mailbox.Cursor) (err error) {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("set acked cursors=%d: %w", len(cursors), err)
	}
	if err := mailbox.CheckCursors(cursors); err != nil {
		return err
	}
	if len(cursors) == 0 {
		return nil
	}
	cursors = slices.Clone(cursors)
	slices.SortFunc(cursors, func(a, b mailbox.Cursor) int {
		return cmp.Or(strings.Compare(a.UserID, b.UserID), strings.Compare(a.DeviceID, b.DeviceID), -cmp.Compare(a.Seq, b.Seq))
	})
	cursors = slices.CompactFunc(cursors, func(a, b mailbox.Cursor) bool { // the highest of each pair stays
		return a.UserID == b.UserID && a.DeviceID == b.DeviceID
	})
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("set acked: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	// updated_at is assigned first: it must compare with the old acked_seq.
	const head = "INSERT INTO devices (uid, device_id, acked_seq, updated_at) VALUES "
	const tail = `
ON DUPLICATE KEY UPDATE
  updated_at = IF(VALUES(acked_seq) > acked_seq, VALUES(updated_at), updated_at),
  acked_seq = GREATEST(acked_seq, VALUES(acked_seq))`
	for chunk := range slices.Chunk(cursors, maxKeysPerQuery) {
		args := make([]any, 0, 3*len(chunk))
		for _, c := range chunk {
			args = append(args, c.UserID, c.DeviceID, c.Seq)
		}
		if _, err := tx.ExecContext(ctx, head+placeholders(len(chunk), "(?,?,?,NOW(3))", ",")+tail, args...); err != nil {
			return fmt.Errorf("set acked cursors=%d: %w", len(chunk), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("set acked: commit: %w", err)
	}
	return nil
}

// Acked implements mailbox.Store.
func (s *Store) Acked(ctx context.Context, uid, deviceID string) (uint64, error) {
	if err := s.check(ctx); err != nil {
		return 0, fmt.Errorf("acked uid=%s device=%s: %w", uid, deviceID, err)
	}
	var seq uint64
	err := s.db.QueryRowContext(ctx, "SELECT acked_seq FROM devices WHERE uid = ? AND device_id = ?", uid, deviceID).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("acked uid=%s device=%s: %w", uid, deviceID, err)
	}
	return seq, nil
}

// validate applies mailbox.Validate (the schema's column limits).
func validate(batch []mailbox.Append) error { return mailbox.Validate(batch) }

// decode parses a stored message.
func decode(raw []byte) (*wirepb.Message, error) {
	m := new(wirepb.Message)
	if err := proto.Unmarshal(raw, m); err != nil {
		return nil, err
	}
	return m, nil
}
