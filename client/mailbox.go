package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parleyim/parley/schemas/wirepb"
)

// accept takes mailbox entries from any source (push, sync page, own send),
// in any order and with duplicates, and appends the ones that continue the
// seq sequence to the delivery queue. An entry that leaves a gap waits in
// pending, and a Sync fills the gap. When the queue or pending is full the
// entry is dropped from memory and a Sync fetches it again later.
func (c *Client) accept(msgs ...*wirepb.Message) {
	if c.cfg.SendOnly || len(msgs) == 0 {
		return
	}
	added, needSync := false, false
	c.mu.Lock()
	for _, m := range msgs {
		s := m.GetSeq()
		switch {
		case s == 0:
			c.log.Warn("ignoring mailbox entry without seq", "msg_id", m.GetMsgId())
		case s <= c.max:
			// A duplicate: a push that a sync already fetched, or the reverse.
		case s == c.max+1 && len(c.queue) < c.cfg.QueueSize:
			c.queue = append(c.queue, m)
			c.max = s
			delete(c.pending, s) // a copy held while the queue was full
			c.promoteLocked()
			added = true
		default:
			needSync = true
			if _, ok := c.pending[s]; !ok && len(c.pending) < c.cfg.QueueSize {
				c.pending[s] = m
			}
		}
	}
	c.mu.Unlock()
	if added {
		notify(c.wake)
	}
	if needSync {
		notify(c.syncKick)
	}
}

// promoteLocked moves pending entries that now continue the sequence into
// the queue. Pending never holds a seq at or below max: max only grows one
// by one, and each step removes that seq from pending.
func (c *Client) promoteLocked() {
	for len(c.pending) > 0 && len(c.queue) < c.cfg.QueueSize {
		m, ok := c.pending[c.max+1]
		if !ok {
			return
		}
		delete(c.pending, c.max+1)
		c.queue = append(c.queue, m)
		c.max++
	}
}

// dropStalePendingLocked forgets pending entries at or below max, after max
// jumped (ResumeFromAck).
func (c *Client) dropStalePendingLocked() {
	for s := range c.pending {
		if s <= c.max {
			delete(c.pending, s)
		}
	}
}

// deliverLoop feeds the queue to the Messages channel, one at a time, and
// closes it when the client stops.
func (c *Client) deliverLoop() {
	defer c.wg.Done()
	defer close(c.deliverDone)
	defer close(c.msgs)
	for {
		c.mu.Lock()
		for len(c.queue) == 0 {
			c.mu.Unlock()
			select {
			case <-c.wake:
			case <-c.deliverCtx.Done():
				return
			}
			c.mu.Lock()
		}
		m := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		if len(c.queue) == 0 {
			c.queue = nil // let the backing array go
		}
		c.promoteLocked()
		low := len(c.queue) <= c.cfg.QueueSize/2
		c.mu.Unlock()
		if low {
			notify(c.room)
		}
		select {
		case c.msgs <- m:
		case <-c.deliverCtx.Done():
			return
		}
		c.delivered.Store(m.GetSeq())
		notify(c.ackKick)
	}
}

// Sync fetches every mailbox entry after MaxSeq, page by page, until the
// server has no more, and queues them for Messages. The client syncs on its
// own (after sign-in, on a gap, after a reconnect); call Sync to know when
// the client has caught up. It retries timeouts, disconnects and temporary
// errors until ctx ends. It waits for room in the delivery queue, so it
// blocks while the app does not read Messages.
func (c *Client) Sync(ctx context.Context) error {
	if c.cfg.SendOnly {
		return errors.New("client: Sync on a SendOnly client")
	}
	if err := c.syncRetry(ctx); err != nil {
		return fmt.Errorf("client: sync: %w", err)
	}
	return nil
}

// syncLoop syncs whenever something asks for it: sign-in behind the server,
// a gap, an entry dropped for lack of room.
func (c *Client) syncLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.syncKick:
		case <-c.ctx.Done():
			return
		}
		if err := c.syncRetry(c.ctx); err != nil && c.ctx.Err() == nil {
			c.log.Warn("sync failed", "err", err)
		}
	}
}

// syncRetry runs sync rounds until one succeeds, retrying what may succeed.
func (c *Client) syncRetry(ctx context.Context) error {
	return c.retry(ctx, func() error { return c.syncRound(ctx) })
}

// syncRound fetches pages until the server reports no more.
func (c *Client) syncRound(ctx context.Context) error {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	for {
		limit, err := c.waitRoom(ctx)
		if err != nil {
			return err
		}
		after := c.MaxSeq()
		f := &wirepb.Frame{Body: &wirepb.Frame_Sync{Sync: &wirepb.Sync{AfterSeq: after, Limit: uint32(limit)}}}
		r, err := c.roundTrip(ctx, f, nil)
		if err != nil {
			return err
		}
		b := r.GetSyncBatch()
		if b == nil {
			return fmt.Errorf("%w: sync answered with %T", ErrProtocol, r.GetBody())
		}
		// The reader accepted b's messages before handing us the reply.
		got := c.MaxSeq()
		switch {
		case got >= b.GetMaxSeq() && !b.GetHasMore():
			return nil
		case len(b.GetMessages()) == 0 && !b.GetHasMore():
			return nil // the server says there is no more
		case got == after:
			// No progress: the page did not continue our sequence.
			return fmt.Errorf("%w: sync after %d returned %d messages, none with seq %d (max_seq %d)",
				ErrProtocol, after, len(b.GetMessages()), after+1, b.GetMaxSeq())
		}
	}
}

// waitRoom waits until the delivery queue is at most half full and returns
// the page size to ask for.
func (c *Client) waitRoom(ctx context.Context) (int, error) {
	for {
		c.mu.Lock()
		n := len(c.queue)
		c.mu.Unlock()
		if n <= c.cfg.QueueSize/2 {
			return min(syncPage, c.cfg.QueueSize-n), nil
		}
		select {
		case <-c.room:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-c.ctx.Done():
			return 0, ErrClosed
		}
	}
}

// retry calls op until it succeeds, fails for good, the client stops or ctx
// ends. Timeouts and disconnects are retried at once (the request waits for
// the reconnect); temporary server errors after a jittered backoff.
func (c *Client) retry(ctx context.Context, op func() error) error {
	attempt := 0
	var last error
	for {
		if err := c.Err(); err != nil {
			return err
		}
		err := op()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			if last == nil || last == ctx.Err() {
				return ctx.Err()
			}
			return fmt.Errorf("%w; last attempt: %w", ctx.Err(), last)
		}
		if !retryable(err) {
			return err
		}
		last = err
		var e *Error
		if errors.As(err, &e) {
			d := backoff(c.cfg.MinBackoff, c.cfg.MaxBackoff, attempt)
			attempt++
			c.log.Debug("temporary error, retrying", "err", err, "in", d)
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return fmt.Errorf("%w; last attempt: %w", ctx.Err(), last)
			case <-c.ctx.Done():
				return c.Err()
			}
		}
	}
}

// ackLoop sends Ack for what the app has received, at most once per
// ackDelay.
func (c *Client) ackLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ackKick:
		case <-c.ctx.Done():
			return
		}
		select {
		case <-time.After(ackDelay):
		case <-c.ctx.Done():
			return
		}
		c.sendAck(c.cfg.RequestTimeout)
	}
}

// sendAck tells the server this device holds everything up to the last seq
// the app received, if the server does not know it yet. Without a
// connection it does nothing: the next sign-in kicks ackLoop again.
func (c *Client) sendAck(timeout time.Duration) {
	if c.cfg.SendOnly {
		return
	}
	seq := c.delivered.Load()
	if seq == 0 || seq <= c.ackedSent.Load() {
		return
	}
	c.mu.Lock()
	cn := c.cn
	c.mu.Unlock()
	if cn == nil {
		return
	}
	f := &wirepb.Frame{Id: c.reqID.Add(1), Body: &wirepb.Frame_Ack{Ack: &wirepb.Ack{Seq: seq}}}
	if err := c.write(cn, f, timeout); err != nil {
		return
	}
	c.ackedSent.Store(seq)
}
