// Package boltstore is the embedded mailbox.Store: one bbolt file under the
// node's data directory, pure Go, no server to run. It is the default store
// and the one a single node needs.
//
// Layout: flat B+trees, most keyed by uid, a 0x00 byte, then the rest
// (user ids never hold a NUL, so one user's keys are contiguous and
// unambiguous), and integers as 8-byte big-endian:
//
//	meta       "schema_version" -> version (see migrations)
//	mail       uid 0x00 seq        -> protobuf wirepb.Message with Seq set
//	msgid      uid 0x00 msg id     -> seq
//	clientkey  uid 0x00 client key -> seq
//	devices    uid 0x00 device id  -> acked seq
//	outbox     created_at_ms uid 0x00 msg id -> Item.Outbox
//	outboxkey  msg id 0x00 uid     -> created_at_ms
//
// The outbox (the transactional outbox, see outbox.go) is keyed by time
// first, so it iterates oldest first; outboxkey finds an entry's time.
//
// The same file is also the embedded directory.Store: five more flat buckets
// (groups, members, usergroups, friends, blocks) with keys of the same form;
// directory.go describes them and their values.
//
// Flat trees rather than a nested bucket per user: a group commit touching
// many users then dirties (and fsyncs) fewer pages, since small mailboxes
// share leaves and no per-user bucket header is rewritten.
//
// Every commit is fsynced (the bbolt default); mailbox.Committer amortizes
// the fsync over a group of appends. bbolt allows one writer at a time, so
// concurrent Appends are serialized.
package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/mailbox"
)

var _ mailbox.Store = (*Store)(nil)

// Bucket and key names.
var (
	bucketMeta      = []byte("meta")
	bucketMail      = []byte("mail")
	bucketMsgID     = []byte("msgid")
	bucketClientKey = []byte("clientkey")
	bucketDevices   = []byte("devices")
	bucketOutbox    = []byte("outbox")
	bucketOutboxKey = []byte("outboxkey")
	keyVersion      = []byte("schema_version")

	// The directory (see directory.go).
	bucketGroups     = []byte("groups")
	bucketMembers    = []byte("members")
	bucketUserGroups = []byte("usergroups")
	bucketFriends    = []byte("friends")
	bucketBlocks     = []byte("blocks")
)

// migration is one step of the file's schema. Versions start at 1 and have
// no gaps; a released migration is never edited, only followed by a new one.
type migration struct {
	version uint64
	name    string
	apply   func(tx *bolt.Tx) error
}

// migrations is the embedded store's schema history, applied in order at Open.
var migrations = []migration{
	{1, "create buckets", func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMail, bucketMsgID, bucketClientKey, bucketDevices} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	}},
	{2, "create directory buckets", func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketGroups, bucketMembers, bucketUserGroups, bucketFriends, bucketBlocks} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	}},
	{3, "create outbox buckets", func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketOutbox, bucketOutboxKey} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	}},
}

// Options configures Open. The zero value is ready to use.
type Options struct {
	// LockTimeout bounds the wait for the file lock when another process
	// has the file open; zero means 5s.
	LockTimeout time.Duration
	// Logger receives lifecycle and migration logs; nil discards.
	Logger *slog.Logger
}

// Store is a mailbox.Store in one bbolt file. Safe for concurrent use.
type Store struct {
	// Immutable after Open.
	db   *bolt.DB
	log  *slog.Logger
	path string

	closed atomic.Bool // set by the first Close
}

// Open opens (creating it and its directory when missing) the bbolt file at
// path and brings its schema up to date.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("open boltstore: empty path")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	timeout := opts.LockTimeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open boltstore path=%s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      timeout,
		FreelistType: bolt.FreelistMapType,
		// The freelist is rebuilt at open instead of written at every commit:
		// fewer pages per group commit.
		NoFreelistSync: true,
	})
	if err != nil {
		return nil, fmt.Errorf("open boltstore path=%s: %w", path, err)
	}
	s := &Store{db: db, log: log.With("store", "bolt", "path", path), path: path}
	if err := s.migrate(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open boltstore path=%s: %w", path, err)
	}
	return s, nil
}

// migrate applies the migrations the file has not seen, in one transaction.
func (s *Store) migrate() error {
	latest := migrations[len(migrations)-1].version
	return s.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return fmt.Errorf("create meta bucket: %w", err)
		}
		var current uint64
		if v := meta.Get(keyVersion); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("corrupt schema version %x", v)
			}
			current = binary.BigEndian.Uint64(v)
		}
		if current > latest {
			return fmt.Errorf("schema version %d is newer than this binary's %d", current, latest)
		}
		for _, m := range migrations {
			if m.version <= current {
				continue
			}
			if err := m.apply(tx); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
			}
			if err := meta.Put(keyVersion, seqKey(m.version)); err != nil {
				return fmt.Errorf("migration %d (%s): record version: %w", m.version, m.name, err)
			}
			s.log.Info("applied migration", "version", m.version, "name", m.name)
		}
		return nil
	})
}

// Close closes the file, waiting for transactions in progress. Idempotent;
// other methods return mailbox.ErrClosed afterwards.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close boltstore path=%s: %w", s.path, err)
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

// closedErr maps bbolt's "not open" (a Close that raced the call) to
// mailbox.ErrClosed.
func closedErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w (%w)", mailbox.ErrClosed, err)
	}
	return err
}

// Append implements mailbox.Store.
func (s *Store) Append(ctx context.Context, batch []mailbox.Append) ([]mailbox.AppendResult, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("append mailbox: %w", err)
	}
	if err := validate(batch); err != nil {
		return nil, err
	}
	results := make([]mailbox.AppendResult, len(batch))
	if len(batch) == 0 {
		return results, nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		t := trees{
			mail: tx.Bucket(bucketMail), ids: tx.Bucket(bucketMsgID), keys: tx.Bucket(bucketClientKey),
			outbox: tx.Bucket(bucketOutbox), outboxKeys: tx.Bucket(bucketOutboxKey),
			nowMs: time.Now().UnixMilli(),
		}
		// Each user's seqs and (time-ordered) msg ids are appended at the
		// end of its range, and outbox entries at the end of the outbox:
		// pack the pages a split leaves behind.
		t.mail.FillPercent = 0.9
		t.ids.FillPercent = 0.9
		t.outbox.FillPercent = 0.9
		for i := range batch {
			r, err := t.appendPart(&batch[i])
			if err != nil {
				return fmt.Errorf("append mailbox uid=%s: %w", batch[i].UserID, err)
			}
			results[i] = r
		}
		return nil
	})
	if err != nil {
		return nil, closedErr(err)
	}
	return results, nil
}

// trees are the mailbox buckets of one write transaction.
type trees struct {
	mail, ids, keys    *bolt.Bucket
	outbox, outboxKeys *bolt.Bucket
	nowMs              int64 // the outbox entries' CreatedAtMs
}

// appendPart applies one part inside the batch's transaction. Parts of one
// batch are applied in order, so a second part for the same user sees the
// first one's items.
func (t trees) appendPart(a *mailbox.Append) (mailbox.AppendResult, error) {
	last := lastSeq(t.mail, a.UserID)
	if a.After != last {
		return mailbox.AppendResult{Err: mailbox.ErrConflict, MaxSeq: last}, nil
	}
	items := make([]mailbox.ItemResult, len(a.Items))
	for i, it := range a.Items {
		dup := t.ids.Get(userKey(a.UserID, it.Message.MsgId))
		if dup == nil && it.ClientKey != "" {
			dup = t.keys.Get(userKey(a.UserID, it.ClientKey))
		}
		if dup != nil {
			seq := binary.BigEndian.Uint64(dup)
			existing, err := decode(t.mail.Get(mailKey(a.UserID, seq)))
			if err != nil {
				return mailbox.AppendResult{}, fmt.Errorf("read duplicate seq=%d: %w", seq, err)
			}
			items[i] = mailbox.ItemResult{Seq: seq, Duplicate: true, Existing: existing}
			continue
		}
		last++
		v, err := mailbox.EncodeEntry(it.Message, last)
		if err != nil {
			return mailbox.AppendResult{}, fmt.Errorf("encode msg_id=%s: %w", it.Message.MsgId, err)
		}
		if err := t.mail.Put(mailKey(a.UserID, last), v); err != nil {
			return mailbox.AppendResult{}, fmt.Errorf("put seq=%d: %w", last, err)
		}
		if err := t.ids.Put(userKey(a.UserID, it.Message.MsgId), seqKey(last)); err != nil {
			return mailbox.AppendResult{}, fmt.Errorf("index msg_id=%s: %w", it.Message.MsgId, err)
		}
		if it.ClientKey != "" {
			if err := t.keys.Put(userKey(a.UserID, it.ClientKey), seqKey(last)); err != nil {
				return mailbox.AppendResult{}, fmt.Errorf("index client_key=%s: %w", it.ClientKey, err)
			}
		}
		if it.Outbox != nil {
			if err := t.putOutbox(a.UserID, it.Message.MsgId, it.Outbox); err != nil {
				return mailbox.AppendResult{}, fmt.Errorf("outbox msg_id=%s: %w", it.Message.MsgId, err)
			}
		}
		items[i] = mailbox.ItemResult{Seq: last}
	}
	return mailbox.AppendResult{Items: items, MaxSeq: last}, nil
}

// lastSeq returns the highest seq in uid's mailbox, 0 when empty.
func lastSeq(mail *bolt.Bucket, uid string) uint64 {
	// The first key after uid's range is uid 0x01: step back from it.
	c := mail.Cursor()
	k, _ := c.Seek(append([]byte(uid), 1))
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	if seq, ok := seqOf(k, uid); ok {
		return seq
	}
	return 0
}

// seqOf returns the seq of mail key k when k is in uid's range.
func seqOf(k []byte, uid string) (uint64, bool) {
	if len(k) != len(uid)+1+8 || string(k[:len(uid)]) != uid || k[len(uid)] != 0 {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[len(uid)+1:]), true
}

// MaxSeq implements mailbox.Store.
func (s *Store) MaxSeq(ctx context.Context, uid string) (uint64, error) {
	if err := s.check(ctx); err != nil {
		return 0, fmt.Errorf("max seq uid=%s: %w", uid, err)
	}
	var last uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		last = lastSeq(tx.Bucket(bucketMail), uid)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("max seq uid=%s: %w", uid, closedErr(err))
	}
	return last, nil
}

// Fetch implements mailbox.Store. A limit <= 0 returns nothing.
func (s *Store) Fetch(ctx context.Context, uid string, after, upTo uint64, limit int) ([]*wirepb.Message, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("fetch mailbox uid=%s: %w", uid, err)
	}
	if limit <= 0 || upTo <= after {
		return nil, nil
	}
	var out []*wirepb.Message
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketMail).Cursor()
		for k, v := c.Seek(mailKey(uid, after+1)); k != nil && len(out) < limit; k, v = c.Next() {
			seq, ok := seqOf(k, uid)
			if !ok || seq > upTo {
				break
			}
			if out == nil {
				out = make([]*wirepb.Message, 0, min(uint64(limit), upTo-after, 256))
			}
			m, err := decode(v)
			if err != nil {
				return fmt.Errorf("decode seq=%d: %w", seq, err)
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fetch mailbox uid=%s: %w", uid, closedErr(err))
	}
	return out, nil
}

// SetAcked implements mailbox.Store.
func (s *Store) SetAcked(ctx context.Context, cursors []mailbox.Cursor) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("set acked cursors=%d: %w", len(cursors), err)
	}
	if err := mailbox.CheckCursors(cursors); err != nil {
		return err
	}
	if len(cursors) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDevices)
		for _, c := range cursors {
			k := userKey(c.UserID, c.DeviceID)
			if v := b.Get(k); v != nil && binary.BigEndian.Uint64(v) >= c.Seq {
				continue
			}
			if err := b.Put(k, seqKey(c.Seq)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set acked cursors=%d: %w", len(cursors), closedErr(err))
	}
	return nil
}

// Acked implements mailbox.Store.
func (s *Store) Acked(ctx context.Context, uid, deviceID string) (uint64, error) {
	if err := s.check(ctx); err != nil {
		return 0, fmt.Errorf("acked uid=%s device=%s: %w", uid, deviceID, err)
	}
	var seq uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketDevices).Get(userKey(uid, deviceID)); v != nil {
			seq = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("acked uid=%s device=%s: %w", uid, deviceID, closedErr(err))
	}
	return seq, nil
}

// validate applies mailbox.Validate, plus the embedded store's own rule.
func validate(batch []mailbox.Append) error {
	if err := mailbox.Validate(batch); err != nil {
		return err
	}
	for i := range batch {
		if strings.IndexByte(batch[i].UserID, 0) >= 0 { // 0 separates key parts
			return fmt.Errorf("append mailbox part=%d: NUL in user id", i)
		}
	}
	return nil
}

// seqKey returns seq as an 8-byte big-endian key (sorted like the numbers).
func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}

// userKey returns uid 0x00 rest: ids never hold a NUL byte, so the key is
// unambiguous and a user's keys sort together.
func userKey(uid, rest string) []byte {
	k := make([]byte, 0, len(uid)+1+len(rest))
	k = append(k, uid...)
	k = append(k, 0)
	return append(k, rest...)
}

// mailKey returns uid 0x00 seq, the mail bucket key of one message.
func mailKey(uid string, seq uint64) []byte {
	k := make([]byte, 0, len(uid)+1+8)
	k = append(k, uid...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// decode parses a stored message; it copies v (bbolt memory is only valid
// inside the transaction).
func decode(v []byte) (*wirepb.Message, error) {
	if v == nil {
		return nil, errors.New("missing message")
	}
	m := new(wirepb.Message)
	if err := proto.Unmarshal(v, m); err != nil {
		return nil, err
	}
	return m, nil
}
