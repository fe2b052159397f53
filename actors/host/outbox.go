package host

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/schemas/buspb"
	"github.com/parleyim/parley/sync/mailbox"
)

// The transactional outbox: a send's delivery is stored with the message in
// the sender's mailbox transaction (mailbox.Item.Outbox) and cleared once it
// is handed on. What is left — this node died in between, or JetStream
// refused it and the device never retried — is relayed at start and then
// every relayEvery for entries older than relayAge. Relaying twice is
// harmless: recipients' mailboxes dedupe by msg id.
const (
	relayEvery = 30 * time.Second
	relayAge   = 30 * time.Second
	relayPage  = 200

	clearBatch  = 5000
	clearLinger = 500 * time.Millisecond
)

// ackEarlyBacklog is how many bytes of deliveries may wait for JetStream
// while sends are still acked at commit (user.Env.Backlogged). Past it, a
// SendAck waits for its delivery to be in JetStream, which slows senders to
// what the bus carries and bounds the memory the waiting deliveries take.
const ackEarlyBacklog = 8 << 20

// delivered queues an outbox entry for clearing. It never blocks: if the
// queue is full the entry stays and is relayed (harmlessly) later.
func (h *Host) delivered(uid, msgID string) {
	select {
	case h.clears <- mailbox.OutboxKey{UserID: uid, MsgID: msgID}:
	default:
	}
}

// clearLoop clears handed-on outbox entries in batches.
func (h *Host) clearLoop() {
	defer h.ioWG.Done()
	batch := make([]mailbox.OutboxKey, 0, clearBatch)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := h.cfg.Store.ClearOutbox(ctx, batch); err != nil {
			h.log.Warn("clear outbox failed; the entries will be relayed again (harmless)", "entries", len(batch), "err", err)
		}
		cancel()
		batch = batch[:0]
	}
	t := time.NewTicker(clearLinger)
	defer t.Stop()
	for {
		select {
		case k := <-h.clears:
			if batch = append(batch, k); len(batch) >= clearBatch {
				flush()
			}
		case <-t.C:
			flush()
		case <-h.stop:
			for {
				select {
				case k := <-h.clears:
					batch = append(batch, k)
				default:
					flush()
					return
				}
			}
		}
	}
}

// relayLoop relays what the outbox still holds: everything at start, then
// entries older than relayAge every relayEvery.
func (h *Host) relayLoop() {
	defer h.ioWG.Done()
	h.relay(0)
	t := time.NewTicker(relayEvery)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case now := <-t.C:
			h.relay(now.Add(-relayAge).UnixMilli())
		}
	}
}

// relay hands on every outbox entry stored at or before olderThanMs (0 =
// all) and clears it.
func (h *Host) relay(olderThanMs int64) {
	total := 0
	defer func() {
		if total > 0 {
			h.log.Info("relayed deliveries left in the outbox", "entries", total)
		}
	}()
	for {
		select {
		case <-h.stop:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		entries, err := h.cfg.Store.Outbox(ctx, olderThanMs, relayPage)
		if err != nil {
			cancel()
			h.log.Warn("read outbox failed", "err", err)
			return
		}
		var done []mailbox.OutboxKey
		for _, e := range entries {
			var d buspb.Delivery
			if err := proto.Unmarshal(e.Data, &d); err != nil || d.Message == nil {
				h.log.Error("dropping undecodable outbox entry", "uid", e.UserID, "msg_id", e.MsgID, "err", err)
				done = append(done, mailbox.OutboxKey{UserID: e.UserID, MsgID: e.MsgID})
				continue
			}
			if err := h.Fanout(ctx, d.Recipients, d.Message); err != nil {
				h.log.Warn("relay outbox entry failed; retrying later", "uid", e.UserID, "msg_id", e.MsgID, "err", err)
				continue
			}
			done = append(done, mailbox.OutboxKey{UserID: e.UserID, MsgID: e.MsgID})
		}
		if len(done) > 0 {
			if err := h.cfg.Store.ClearOutbox(ctx, done); err != nil {
				h.log.Warn("clear outbox failed", "err", err)
				cancel()
				return
			}
		}
		cancel()
		total += len(done)
		if len(entries) < relayPage || len(done) == 0 {
			return
		}
	}
}
