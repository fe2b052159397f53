// Package mailbox defines Parley's durable state: every user's mailbox (an
// append-only sequence of messages numbered 1, 2, 3 … with no gaps) and every
// device's ack cursor, behind one Store interface with two implementations:
// sync/boltstore (embedded, the default) and sync/mysqlstore (production).
//
// Seq assignment belongs to the user's actor, the single writer of its
// mailbox. The actor keeps at most one Append in flight for its user and names
// the max seq it believes committed (Append.After); the store numbers the new,
// non-duplicate items After+1, After+2 … inside the transaction, so a
// duplicate never leaves a hole, and refuses the append (ErrConflict) when the
// mailbox does not end at After — a second writer (a zombie owner) can never
// reuse or skip a seq.
package mailbox

import (
	"context"
	"errors"

	"github.com/parleyim/parley/schemas/wirepb"
)

// ErrConflict means the mailbox did not end at Append.After: another writer
// appended since the actor loaded it. The actor must reload.
var ErrConflict = errors.New("mailbox: seq conflict (another writer)")

// ErrClosed is returned by a store or committer used after Close.
var ErrClosed = errors.New("mailbox: closed")

// Item is one message to append to a user's mailbox.
type Item struct {
	// Message is stored as given except Seq, which the store assigns.
	// Message.MsgId must be set; it is unique within a mailbox.
	Message *wirepb.Message
	// ClientKey, when not empty, marks the sender's own copy of a send: a
	// second item with the same ClientKey in the same mailbox is a duplicate.
	// The user actor sets it to ClientKey(device, clientMsgID).
	ClientKey string
	// Outbox, when not nil, is stored in the same transaction as the item
	// (only if the item is not a duplicate): the delivery still to hand on
	// to other mailboxes (the transactional outbox). It stays until
	// ClearOutbox, so a crash between the commit and the hand-off loses
	// nothing: the next start relays it (recipients dedupe by msg id).
	// Opaque to the store; at most MaxOutboxLen bytes.
	Outbox []byte
}

// MaxOutboxLen caps Item.Outbox.
const MaxOutboxLen = 1 << 20

// OutboxEntry is a delivery not yet known to be handed on.
type OutboxEntry struct {
	UserID string // the sender, whose mailbox holds the message
	MsgID  string
	Data   []byte // Item.Outbox as stored
	// CreatedAtMs is when the entry was stored (Unix ms, the store's clock).
	CreatedAtMs int64
}

// OutboxKey names an outbox entry.
type OutboxKey struct {
	UserID, MsgID string
}

// ClientKey returns the idempotency key of a device's send.
func ClientKey(deviceID, clientMsgID string) string {
	return deviceID + "/" + clientMsgID
}

// Append is one user's part of a group commit.
type Append struct {
	UserID string
	// After is the highest seq the writer believes committed in this mailbox.
	After uint64
	Items []Item
}

// ItemResult says what became of one Item.
type ItemResult struct {
	// Seq is the seq the item was stored at, or, for a duplicate, the seq of
	// the copy already stored.
	Seq uint64
	// Duplicate is true when the mailbox already held the item's MsgId or
	// ClientKey (stored before, or earlier in the same Append); nothing new
	// was stored for it.
	Duplicate bool
	// Existing is the stored message when Duplicate (Seq set), nil otherwise.
	Existing *wirepb.Message
}

// AppendResult is the outcome of one Append.
type AppendResult struct {
	// Err is ErrConflict, or nil. Other failures fail the whole batch.
	Err error
	// Items has one result per Append.Items, in order (nil when Err != nil).
	Items []ItemResult
	// MaxSeq is the mailbox's highest seq after the commit.
	MaxSeq uint64
}

// Store is durable mailbox state. Implemented by sync/boltstore and
// sync/mysqlstore; sync/storetest is the conformance suite both pass.
// All methods are safe for concurrent use.
type Store interface {
	// Append commits every part of batch in one transaction (group commit)
	// and returns one result per part, in order. A part whose After does not
	// match the mailbox gets ErrConflict and changes nothing; the others
	// commit. An error return means nothing was committed, unless the
	// outcome of the commit itself was lost (a connection broken during
	// COMMIT): then all of it may have been, so a retry gets ErrConflict
	// and the reload finds the items by msg id.
	Append(ctx context.Context, batch []Append) ([]AppendResult, error)
	// MaxSeq returns the highest seq in uid's mailbox, 0 when empty.
	MaxSeq(ctx context.Context, uid string) (uint64, error)
	// Fetch returns uid's messages with after < seq <= upTo, in seq order, at
	// most limit of them.
	Fetch(ctx context.Context, uid string, after, upTo uint64, limit int) ([]*wirepb.Message, error)
	// SetAcked raises each cursor's (user, device) ack cursor to its Seq, in
	// one transaction; a lower seq is ignored. CursorWriter batches them.
	SetAcked(ctx context.Context, cursors []Cursor) error
	// Acked returns (uid, device)'s ack cursor, 0 when never set.
	Acked(ctx context.Context, uid, deviceID string) (uint64, error)
	// Outbox returns up to limit entries stored at or before olderThanMs
	// (Unix ms; 0 = any age), oldest first.
	Outbox(ctx context.Context, olderThanMs int64, limit int) ([]OutboxEntry, error)
	// ClearOutbox deletes entries (absent ones are ignored).
	ClearOutbox(ctx context.Context, keys []OutboxKey) error
	// Close releases the store. Idempotent.
	Close() error
}
