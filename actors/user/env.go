package user

import (
	"context"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parleyim/parley/actors/events"
	"github.com/parleyim/parley/actors/msgid"
	"github.com/parleyim/parley/actors/social"
	"github.com/parleyim/parley/schemas/buspb"
	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/mailbox"
)

// Env is what user actors need from their node: shared by every actor,
// immutable after the host builds it, safe for concurrent use.
type Env struct {
	Store     mailbox.Store         // reads (sync, load)
	Committer *mailbox.Committer    // mailbox writes, group-committed
	Cursors   *mailbox.CursorWriter // device ack cursors, coalesced
	Social    *social.Directory     // who a message goes to, and whether it may
	Events    *events.Publisher     // message.created, device.online/offline
	Logger    *slog.Logger

	// Fanout hands msg durably to the recipients' mailboxes (batched per
	// shard); done is called once, on some goroutine, when all of it is on
	// its way or with the first error.
	Fanout func(recipients []string, msg *wirepb.Message, done func(error))
	// Delivered says the outbox entry of (uid, msgID) was handed on and
	// can be cleared. It must not block.
	Delivered func(uid, msgID string)
	// Backlogged reports that fan-out is behind: deliveries wait for
	// JetStream, so a send's SendAck waits for its own (back-pressure).
	// Otherwise a send is acked once committed: its outbox entry, stored
	// with it, is what makes it durable on its way. nil: never behind.
	Backlogged func() bool
	// Call runs a client Call as user uid and returns the JSON result; nil
	// when this node serves no calls. Refusals are *social.Error.
	Call func(ctx context.Context, uid, method, paramsJSON string) (string, error)

	// Down publishes d to edge edgeID.
	Down func(edgeID string, d *buspb.Down)
	// Go runs a read f off the actor, bounded by the host's read concurrency.
	Go func(f func(ctx context.Context))
	// Passivate asks the host to forget the actor; true means it did, and
	// the actor must stop. Later messages for the user start a new actor
	// that waits for this one's Stopped.
	Passivate func(uid string, pid *actor.PID) bool
	// Stopped tells the host the actor has stopped.
	Stopped func(uid string, pid *actor.PID)
	// Forward re-routes a message that reached an actor being passivated.
	Forward func(uid string, msg any)

	IdleTimeout time.Duration // passivate after this long without messages
	Heartbeat   time.Duration // told to devices in SignInOK
	MaxBodySize int           // bytes
	// SendRate and SendBurst limit each user's sends (all devices together):
	// over the limit a send is refused with RATE_LIMITED. Zero rate: no limit.
	SendRate    float64
	SendBurst   int
	SyncPage    int // default Sync page size
	MaxSyncPage int // largest Sync page

	IDs *msgid.Gen
}
