package user

import (
	"context"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parleyim/parley/actors/delivery"
	"github.com/parleyim/parley/schemas/buspb"
	"github.com/parleyim/parley/sync/mailbox"
)

// Env is what user actors need from their node: shared by every actor,
// immutable after the host builds it, safe for concurrent use.
type Env struct {
	Store     mailbox.Store      // reads (sync, cursors, load)
	Committer *mailbox.Committer // writes, group-committed
	Outbox    *delivery.Outbox   // durable deliveries to other users
	Logger    *slog.Logger

	// Down publishes d to edge edgeID.
	Down func(edgeID string, d *buspb.Down)
	// Go runs a read f off the actor, bounded by the host's read concurrency.
	Go func(f func(ctx context.Context))
	// GoWrite runs a small write f off the actor (ack cursors), bounded
	// separately so writes never make reads (sync) wait.
	GoWrite func(f func(ctx context.Context))
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
	SyncPage    int           // default Sync page size
	MaxSyncPage int           // largest Sync page

	IDs *idGen
}

// NewIDs returns a message id generator for Env.IDs.
func NewIDs() *idGen { return newIDGen() }
