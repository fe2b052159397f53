// Package user implements the user actor: one protoactor-go actor per active
// user, the single writer of that user's mailbox seq and the owner of its
// device set.
//
// A send from device D of user A:
//
//	A's actor dedupes (D, client msg id) → appends to A's mailbox with the
//	delivery for the recipient as an outbox entry, in one transaction (group
//	commit, at most one append in flight per user) → answers D with SendAck
//	→ pushes the entry to A's other online devices and hands the delivery
//	to JetStream (the outbox relays it if that fails or the node dies), then
//	clears the outbox entry. While hand-on is backlogged, the SendAck waits
//	for JetStream instead (back-pressure).
//
// The recipient's owner consumes the delivery, B's actor appends it (a message
// id is stored at most once per mailbox), pushes it to B's devices, and only
// then is the JetStream message acked. So a SendAck means: durable in A's
// mailbox and durably on its way to B. A resend after a lost ack finds the
// stored copy by its client msg id and publishes the delivery again; B's
// mailbox ignores the second copy.
package user

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/actors/events"
	"github.com/parleyim/parley/actors/social"
	"github.com/parleyim/parley/edge/auth"
	"github.com/parleyim/parley/schemas/buspb"
	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/mailbox"
)

// Deliver asks a user actor to append messages that other users sent. Done
// is called exactly once, on some goroutine, after they are committed (nil)
// or failed.
type Deliver struct {
	Messages []*wirepb.Message
	Done     func(error)
}

// op is one item on its way into the mailbox.
type op struct {
	item       mailbox.Item
	recipients []string      // a send's recipients (other users' mailboxes)
	replies    []replyTo     // devices waiting for the SendAck (a send and its resends)
	dones      []func(error) // delivery callbacks (a delivery and its redeliveries)
}

// heldSend is a send waiting for its route (who it goes to, whether it is
// allowed) to be read from the store. Sends queue behind it so a device's
// sends enter the mailbox in the order they arrived.
type heldSend struct {
	m  *buspb.Up
	to replyTo
	s  *wirepb.Send
}

// routeLoaded carries the route of the first held send back into the actor.
type routeLoaded struct {
	rcpt []string
	err  error
}

type replyTo struct {
	edgeID string
	connID uint64
	reqID  uint64
}

// commitDone carries the committer's answer back into the actor.
type commitDone struct {
	res mailbox.AppendResult
	err error
}

// Actor is one user's actor. All fields are owned by the actor: touched only
// inside Receive.
type Actor struct {
	uid    string
	env    *Env
	waitOn <-chan struct{} // closed when the previous incarnation stopped

	loaded    bool
	committed uint64 // highest committed seq
	devices   devices

	pending  []*op // waiting for the next append
	inflight []*op // in the append in flight; nil when none
	byKey    map[string]*op
	byMsgID  map[string]*op

	held    []heldSend    // sends waiting for a route load; the first one's is in flight
	limiter *rate.Limiter // made at the first send when Env.SendRate is set

	passivating bool
}

// logger is for the rare log line: an actor keeps no logger of its own
// (memory per idle actor matters: one per online user).
func (a *Actor) logger() *slog.Logger { return a.env.Logger.With("uid", a.uid) }

// index makes o findable by msg id and, for a send, by client key. The maps
// exist only while something is in flight.
func (a *Actor) index(o *op) {
	if a.byMsgID == nil {
		a.byMsgID, a.byKey = make(map[string]*op), make(map[string]*op)
	}
	a.byMsgID[o.item.Message.MsgId] = o
	if o.item.ClientKey != "" {
		a.byKey[o.item.ClientKey] = o
	}
}

// New returns the actor of uid. waitOn, if not nil, is closed when the
// user's previous actor has stopped; the new one loads nothing before that.
func New(uid string, env *Env, waitOn <-chan struct{}) *Actor {
	return &Actor{
		uid:    uid,
		env:    env,
		waitOn: waitOn,
	}
}

// Receive implements actor.Actor.
func (a *Actor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		if a.waitOn != nil {
			<-a.waitOn
			a.waitOn = nil
		}
		a.load()
		ctx.SetReceiveTimeout(a.env.IdleTimeout)
	case *actor.Stopped:
		a.env.Stopped(a.uid, ctx.Self())
	case *actor.ReceiveTimeout:
		a.maybePassivate(ctx)
	case *buspb.Up:
		if a.passivating {
			a.env.Forward(a.uid, m)
			return
		}
		a.up(ctx, m)
	case *Deliver:
		if a.passivating {
			a.env.Forward(a.uid, m)
			return
		}
		a.deliver(ctx, m)
	case *commitDone:
		a.committedBatch(ctx, m)
	case *routeLoaded:
		a.routed(ctx, m)
	case *PresenceQuery:
		a.presence(m)
	case *Disconnect:
		a.disconnect(m)
	case *TransientPush:
		a.transient(m)
	case *EdgeGone:
		a.edgeGone(m)
	}
}

// load reads the mailbox's committed max seq. One read per activation.
func (a *Actor) load() bool {
	if a.loaded {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	max, err := a.env.Store.MaxSeq(ctx, a.uid)
	if err != nil {
		a.logger().Error("load mailbox failed", "err", err)
		return false
	}
	a.committed, a.loaded = max, true
	return true
}

func (a *Actor) maybePassivate(ctx actor.Context) {
	if a.passivating || len(a.devices) > 0 || len(a.pending) > 0 || len(a.held) > 0 || a.inflight != nil {
		return
	}
	if a.env.Passivate(a.uid, ctx.Self()) {
		a.passivating = true
		ctx.CancelReceiveTimeout()
		ctx.Poison(ctx.Self())
	}
}

func (a *Actor) up(ctx actor.Context, m *buspb.Up) {
	to := replyTo{edgeID: m.EdgeId, connID: m.ConnId, reqID: m.RequestId}
	if !a.load() {
		a.replyError(to, wirepb.ErrorCode_ERROR_CODE_UNAVAILABLE, "mailbox unavailable, retry", "")
		return
	}
	switch op := m.Op.(type) {
	case *buspb.Up_Online:
		a.online(m, op.Online)
	case *buspb.Up_Offline:
		gone := a.devices.removeIf(func(s session) bool {
			return s.deviceID == m.DeviceId && s.edgeID == m.EdgeId && s.connID == m.ConnId
		})
		a.offline(gone)
	case *buspb.Up_Send:
		a.send(ctx, m, to, op.Send)
	case *buspb.Up_Sync:
		a.sync(to, op.Sync)
	case *buspb.Up_Ack:
		a.env.Cursors.Set(a.uid, m.DeviceId, min(op.Ack.Seq, a.committed))
	case *buspb.Up_Call:
		a.call(to, op.Call)
	case *buspb.Up_Read:
		a.replyError(to, wirepb.ErrorCode_ERROR_CODE_UNKNOWN_FRAME, "read cursors are not implemented yet", "")
	default:
		a.replyError(to, wirepb.ErrorCode_ERROR_CODE_UNKNOWN_FRAME, "unknown operation", "")
	}
}

// online makes the connection the device's current session. A second
// sign-in of the same device replaces the first: the old connection is closed
// with REPLACED, and its later Offline (which names the old connection) is
// ignored, so a late-closing stale socket never silences the new one.
func (a *Actor) online(m *buspb.Up, on *buspb.Online) {
	if on.Resume {
		// A connection re-announced after a logic restart: register it
		// unless the device has a session already (the same one, or a
		// newer one), and answer nothing: it signed in long ago.
		if _, ok := a.devices.get(m.DeviceId); !ok {
			a.devices.set(session{deviceID: m.DeviceId, edgeID: m.EdgeId, connID: m.ConnId, platform: on.Platform})
		}
		return
	}
	if old, ok := a.devices.get(m.DeviceId); ok && (old.edgeID != m.EdgeId || old.connID != m.ConnId) {
		a.env.Down(old.edgeID, &buspb.Down{
			ConnIds:      []uint64{old.connID},
			CloseCode:    wirepb.ErrorCode_ERROR_CODE_REPLACED,
			CloseMessage: "this device signed in on another connection",
		})
	}
	a.devices.set(session{deviceID: m.DeviceId, edgeID: m.EdgeId, connID: m.ConnId, platform: on.Platform})
	a.env.Events.Publish("device", a.uid, events.Device{Type: "device.online", User: a.uid, Device: m.DeviceId,
		Edge: m.EdgeId, Platform: on.Platform, AtMs: time.Now().UnixMilli()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	acked, err := a.env.Cursors.Acked(ctx, a.uid, m.DeviceId)
	cancel()
	if err != nil {
		a.logger().Warn("read device ack cursor failed", "device", m.DeviceId, "err", err)
	}
	a.reply(replyTo{m.EdgeId, m.ConnId, m.RequestId}, &wirepb.Frame{Body: &wirepb.Frame_SignInOk{SignInOk: &wirepb.SignInOK{
		UserId:       a.uid,
		DeviceId:     m.DeviceId,
		MaxSeq:       a.committed,
		AckedSeq:     acked,
		ServerTimeMs: time.Now().UnixMilli(),
		HeartbeatMs:  uint32(a.env.Heartbeat / time.Millisecond),
	}}})
}

func (a *Actor) send(ctx actor.Context, m *buspb.Up, to replyTo, s *wirepb.Send) {
	if msg := validateSend(s, a.env.MaxBodySize); msg != "" {
		code := wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT
		if len(s.Body) > a.env.MaxBodySize {
			code = wirepb.ErrorCode_ERROR_CODE_BODY_TOO_LARGE
		}
		a.replyError(to, code, msg, s.ClientMsgId)
		return
	}
	key := mailbox.ClientKey(m.DeviceId, s.ClientMsgId)
	if o, ok := a.byKey[key]; ok { // a resend while the original is still on its way
		o.replies = append(o.replies, to)
		return
	}
	if !a.allowSend() {
		a.replyError(to, wirepb.ErrorCode_ERROR_CODE_RATE_LIMITED,
			fmt.Sprintf("over %g messages/s; retry later with the same client_msg_id", a.env.SendRate), s.ClientMsgId)
		return
	}
	if len(a.held) > 0 { // keep arrival order behind a send whose route is loading
		a.held = append(a.held, heldSend{m, to, s})
		return
	}
	rcpt, err, ok := a.env.Social.Route(a.uid, s.To, time.Now())
	if !ok {
		a.held = append(a.held, heldSend{m, to, s})
		a.loadRoute(ctx, s.To)
		return
	}
	a.admit(ctx, m, to, s, rcpt, err)
}

// allowSend takes a token of the user's send budget.
func (a *Actor) allowSend() bool {
	if a.env.SendRate <= 0 {
		return true
	}
	if a.limiter == nil {
		a.limiter = rate.NewLimiter(rate.Limit(a.env.SendRate), max(a.env.SendBurst, 1))
	}
	return a.limiter.Allow()
}

// loadRoute reads the route of conv off the actor.
func (a *Actor) loadRoute(ctx actor.Context, conv *wirepb.Conversation) {
	self, system := ctx.Self(), ctx.ActorSystem()
	a.env.Go(func(c context.Context) {
		rcpt, err := a.env.Social.RouteLoad(c, a.uid, conv, time.Now())
		system.Root.Send(self, &routeLoaded{rcpt: rcpt, err: err})
	})
}

// routed admits the first held send with its loaded route, then as many of
// the following as the cache can route.
func (a *Actor) routed(ctx actor.Context, r *routeLoaded) {
	if len(a.held) == 0 {
		return
	}
	h := a.held[0]
	a.held = a.held[1:]
	a.admit(ctx, h.m, h.to, h.s, r.rcpt, r.err)
	for len(a.held) > 0 {
		h = a.held[0]
		rcpt, err, ok := a.env.Social.Route(a.uid, h.s.To, time.Now())
		if !ok {
			a.loadRoute(ctx, h.s.To)
			return
		}
		a.held = a.held[1:]
		a.admit(ctx, h.m, h.to, h.s, rcpt, err)
	}
	a.held = nil
}

// admit queues a routed send for the next append, or refuses it.
func (a *Actor) admit(ctx actor.Context, m *buspb.Up, to replyTo, s *wirepb.Send, rcpt []string, err error) {
	if err != nil {
		var refusal *social.Error
		if !errors.As(err, &refusal) {
			a.logger().Warn("route lookup failed", "to", s.To.GetId(), "err", err)
			err = errors.New("could not check the recipient, retry")
		}
		a.replyError(to, social.Code(err), err.Error(), s.ClientMsgId)
		return
	}
	key := mailbox.ClientKey(m.DeviceId, s.ClientMsgId)
	if o, ok := a.byKey[key]; ok { // a resend held behind its original
		o.replies = append(o.replies, to)
		return
	}
	id, ms := a.env.IDs.Next(time.Now())
	o := &op{
		item: mailbox.Item{ClientKey: key, Message: &wirepb.Message{
			MsgId:       id,
			To:          s.To,
			FromUser:    a.uid,
			FromDevice:  m.DeviceId,
			ClientMsgId: s.ClientMsgId,
			ContentType: s.ContentType,
			Body:        s.Body,
			CreatedAtMs: ms,
		}},
		recipients: rcpt,
		replies:    []replyTo{to},
	}
	if len(rcpt) > 0 {
		// The delivery is stored with the message (transactional outbox):
		// if this node dies before handing it on, the next start does.
		out, err := proto.Marshal(&buspb.Delivery{Recipients: rcpt, Message: o.item.Message})
		if err != nil {
			a.logger().Error("encode outbox entry failed", "err", err)
			a.replyError(to, wirepb.ErrorCode_ERROR_CODE_INTERNAL, "could not encode the message", s.ClientMsgId)
			return
		}
		o.item.Outbox = out
	}
	a.index(o)
	a.pending = append(a.pending, o)
	a.flush(ctx)
}

// validateSend returns why s is refused, or "".
func validateSend(s *wirepb.Send, maxBody int) string {
	switch {
	case s.ClientMsgId == "" || len(s.ClientMsgId) > 64:
		return "client_msg_id must be 1-64 bytes"
	case s.To == nil:
		return "to is required"
	case s.To.Type == wirepb.ConversationType_CONVERSATION_TYPE_ROOM:
		return "room messages are handled by the edge: join the room first"
	case s.To.Type != wirepb.ConversationType_CONVERSATION_TYPE_USER && s.To.Type != wirepb.ConversationType_CONVERSATION_TYPE_GROUP:
		return "to.type must be user, group or room"
	case !auth.ValidID(s.To.Id):
		return "to.id is not a valid id"
	case len(s.Body) > maxBody:
		return "body is too large"
	}
	return ""
}

func (a *Actor) deliver(ctx actor.Context, d *Deliver) {
	if !a.load() {
		d.Done(errors.New("mailbox unavailable"))
		return
	}
	// One Done for the whole Deliver: count its messages down.
	left := len(d.Messages)
	var firstErr error
	done := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if left--; left == 0 {
			d.Done(firstErr)
		}
	}
	if left == 0 {
		d.Done(nil)
		return
	}
	for _, msg := range d.Messages {
		if o, ok := a.byMsgID[msg.MsgId]; ok { // redelivered while the first copy is in flight
			o.dones = append(o.dones, done)
			continue
		}
		o := &op{item: mailbox.Item{Message: msg}, dones: []func(error){done}}
		a.index(o)
		a.pending = append(a.pending, o)
	}
	a.flush(ctx)
}

// flush starts an append of everything pending unless one is in flight.
func (a *Actor) flush(ctx actor.Context) {
	if a.inflight != nil || len(a.pending) == 0 {
		return
	}
	a.inflight, a.pending = a.pending, nil
	items := make([]mailbox.Item, len(a.inflight))
	for i, o := range a.inflight {
		items[i] = o.item
	}
	self, system := ctx.Self(), ctx.ActorSystem()
	a.env.Committer.Submit(mailbox.Append{UserID: a.uid, After: a.committed, Items: items},
		func(res mailbox.AppendResult, err error) {
			system.Root.Send(self, &commitDone{res: res, err: err})
		})
}

func (a *Actor) committedBatch(ctx actor.Context, c *commitDone) {
	ops := a.inflight
	a.inflight = nil
	for _, o := range ops {
		delete(a.byMsgID, o.item.Message.MsgId)
		if o.item.ClientKey != "" {
			delete(a.byKey, o.item.ClientKey)
		}
	}
	if len(a.byMsgID) == 0 {
		a.byMsgID, a.byKey = nil, nil // maps never shrink: drop them
	}
	err := c.err
	if err == nil {
		err = c.res.Err
	}
	if err != nil {
		a.logger().Warn("mailbox append failed", "items", len(ops), "err", err)
		if errors.Is(err, mailbox.ErrConflict) {
			a.loaded = false
			a.load()
		}
		for _, o := range ops {
			for _, r := range o.replies {
				a.replyError(r, wirepb.ErrorCode_ERROR_CODE_UNAVAILABLE, "could not store the message, retry", o.item.Message.ClientMsgId)
			}
			for _, done := range o.dones {
				done(err)
			}
		}
		a.flush(ctx)
		return
	}
	a.committed = c.res.MaxSeq
	var fresh []pushItem
	for i, o := range ops {
		r := c.res.Items[i]
		msg := o.item.Message
		if r.Duplicate {
			msg = r.Existing
		} else {
			msg.Seq = r.Seq
			p := pushItem{msg: msg}
			if len(o.replies) > 0 {
				p.skip = o.replies[0] // the sending device learns the seq from its SendAck
			}
			fresh = append(fresh, p)
		}
		for _, done := range o.dones {
			done(nil)
		}
		if len(o.replies) > 0 {
			a.acknowledge(msg, r.Duplicate, o.recipients, o.replies)
			if !r.Duplicate {
				a.messageCreated(msg, len(o.recipients))
			}
		}
	}
	a.push(fresh)
	a.flush(ctx)
}

// acknowledge hands the committed message on to its recipients and sends
// the SendAck to every waiting device. The outbox entry committed with the
// message already makes it durable on its way (if the hand-on fails, or
// this node dies first, the outbox is relayed), so the ack goes at once —
// unless fan-out is backlogged, when it waits for JetStream to take the
// delivery, so that senders slow down to what the bus carries.
func (a *Actor) acknowledge(msg *wirepb.Message, dup bool, recipients []string, replies []replyTo) {
	ack := &wirepb.SendAck{MsgId: msg.MsgId, Seq: msg.Seq, CreatedAtMs: msg.CreatedAtMs, ClientMsgId: msg.ClientMsgId, Duplicate: dup}
	answer := func(err error) {
		for _, r := range replies {
			if err != nil {
				a.replyError(r, wirepb.ErrorCode_ERROR_CODE_UNAVAILABLE, "could not hand the message on, retry", msg.ClientMsgId)
				continue
			}
			a.reply(r, &wirepb.Frame{Body: &wirepb.Frame_SendAck{SendAck: ack}})
		}
	}
	if len(recipients) == 0 { // a note to self, a group of one: nothing to hand on
		answer(nil)
		return
	}
	out := proto.CloneOf(msg)
	out.Seq = 0
	wait := a.env.Backlogged != nil && a.env.Backlogged()
	a.env.Fanout(recipients, out, func(err error) {
		if err == nil {
			a.env.Delivered(a.uid, msg.MsgId) // the outbox entry is done
		}
		if wait {
			answer(err)
		}
	})
	if !wait {
		answer(nil)
	}
}

// messageCreated publishes the message.created event.
func (a *Actor) messageCreated(msg *wirepb.Message, recipients int) {
	if a.env.Events == nil {
		return
	}
	a.env.Events.Publish("message", a.uid, events.Message{
		Type:        "message.created",
		MsgID:       msg.MsgId,
		From:        msg.FromUser,
		FromDevice:  msg.FromDevice,
		To:          events.Conv(msg.To),
		ContentType: events.ContentType(msg.ContentType),
		Body:        msg.Body,
		CreatedAtMs: msg.CreatedAtMs,
		SenderSeq:   msg.Seq,
		ClientMsgID: msg.ClientMsgId,
		Recipients:  recipients,
	})
}

// pushItem is a new mailbox entry and the connection that needs no push of
// it (the sender's, which gets a SendAck instead).
type pushItem struct {
	msg  *wirepb.Message
	skip replyTo
}

// push sends new mailbox entries to every online device, one bus message per
// edge per entry.
func (a *Actor) push(items []pushItem) {
	if len(items) == 0 || len(a.devices) == 0 {
		return
	}
	for _, it := range items {
		frame, err := proto.Marshal(&wirepb.Frame{Body: &wirepb.Frame_Push{Push: &wirepb.Push{Message: it.msg}}})
		if err != nil {
			a.logger().Error("encode push failed", "err", err)
			continue
		}
		a.devices.byEdge(it.skip, func(edgeID string, ids []uint64) {
			a.env.Down(edgeID, &buspb.Down{ConnIds: ids, Frame: frame})
		})
	}
}

// sync reads one page off the actor's goroutine. It never reads past the
// committed seq, and seqs up to it never change, so a page never skips a seq
// that commits later.
func (a *Actor) sync(to replyTo, s *wirepb.Sync) {
	upTo := a.committed
	limit := int(s.Limit)
	if limit <= 0 {
		limit = a.env.SyncPage
	}
	limit = min(limit, a.env.MaxSyncPage)
	if s.AfterSeq >= upTo {
		a.reply(to, &wirepb.Frame{Body: &wirepb.Frame_SyncBatch{SyncBatch: &wirepb.SyncBatch{MaxSeq: upTo}}})
		return
	}
	a.env.Go(func(ctx context.Context) {
		msgs, err := a.env.Store.Fetch(ctx, a.uid, s.AfterSeq, upTo, limit)
		if err != nil {
			a.logger().Warn("sync read failed", "err", err)
			a.replyError(to, wirepb.ErrorCode_ERROR_CODE_UNAVAILABLE, "could not read the mailbox, retry", "")
			return
		}
		msgs = fitPage(msgs, syncPageBytes)
		more := len(msgs) > 0 && msgs[len(msgs)-1].Seq < upTo
		a.reply(to, &wirepb.Frame{Body: &wirepb.Frame_SyncBatch{SyncBatch: &wirepb.SyncBatch{Messages: msgs, MaxSeq: upTo, HasMore: more}}})
	})
}

// syncPageBytes caps the encoded size of one SyncBatch: it travels as one
// NATS message (1 MiB max payload by default) and must fit a connection's
// outbound queue.
const syncPageBytes = 512 << 10

// fitPage returns the longest prefix of msgs (at least one) whose encoded
// size stays within max bytes.
func fitPage(msgs []*wirepb.Message, max int) []*wirepb.Message {
	total := 0
	for i, m := range msgs {
		total += proto.Size(m) + 4
		if total > max && i > 0 {
			return msgs[:i]
		}
	}
	return msgs
}

func (a *Actor) reply(to replyTo, f *wirepb.Frame) {
	f.Id = to.reqID
	b, err := proto.Marshal(f)
	if err != nil {
		a.logger().Error("encode reply failed", "err", err)
		return
	}
	a.env.Down(to.edgeID, &buspb.Down{ConnIds: []uint64{to.connID}, Frame: b})
}

func (a *Actor) replyError(to replyTo, code wirepb.ErrorCode, msg, clientMsgID string) {
	a.reply(to, wirepb.ErrorFrame(to.reqID, code, msg, clientMsgID))
}
