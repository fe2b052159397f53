package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/schemas/wirepb"
)

// conn is one connection and its in-flight requests. Each conn has one
// reader goroutine (readLoop) and, once signed in, one keepAlive goroutine;
// writes from any goroutine are serialized by wmu.
type conn struct {
	// Immutable after newConn.
	t        transport
	signInID uint64
	done     chan struct{} // closed by Client.failConn

	// Set before done is closed; read only after done is closed.
	err error

	// Written by the reader on SignInOK before the sign-in waiter wakes;
	// read by keepAlive and supervise after that.
	heartbeat time.Duration
	readyAt   time.Time

	lastRecv atomic.Int64 // Unix nanoseconds of the last frame read

	wmu sync.Mutex // serializes t.writeFrame

	mu      sync.Mutex // guards waiters
	waiters map[uint64]*waiter
}

// waiter is one request waiting for its reply. The reader handles some
// replies before it wakes the waiter, so that their effects are ordered with
// the frames around them; the request fields say how.
type waiter struct {
	reply chan *wirepb.Frame // buffered 1; the reader sends at most once
	// send is the request when it is a Send: its SendAck lets the client add
	// the sent message to its own mailbox stream without a Sync (or, for a
	// room, to RoomMessages).
	send *wirepb.Send
	// join is the request when it is a JoinRoom: the reader dedupes the
	// replay in JoinRoomOK against what the app already has.
	join *wirepb.JoinRoom
	// rejoin marks a JoinRoom the client sent itself after a reconnect: the
	// new part of its replay goes to RoomMessages.
	rejoin bool
}

func newConn(t transport, signInID uint64) *conn {
	cn := &conn{t: t, signInID: signInID, done: make(chan struct{}), waiters: make(map[uint64]*waiter)}
	cn.lastRecv.Store(time.Now().UnixNano())
	return cn
}

// register installs w (nil for a plain request) as the waiter for id and
// returns it with its reply channel set.
func (cn *conn) register(id uint64, w *waiter) *waiter {
	if w == nil {
		w = &waiter{}
	}
	w.reply = make(chan *wirepb.Frame, 1)
	cn.mu.Lock()
	cn.waiters[id] = w
	cn.mu.Unlock()
	return w
}

// alive reports whether cn is non-nil and has not failed.
func (cn *conn) alive() bool {
	if cn == nil {
		return false
	}
	select {
	case <-cn.done:
		return false
	default:
		return true
	}
}

// take removes and returns the waiter for id, or nil.
func (cn *conn) take(id uint64) *waiter {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	w := cn.waiters[id]
	delete(cn.waiters, id)
	return w
}

// failConn ends cn with err (the first error wins) and, if cn is the
// current connection, marks the client disconnected. Idempotent.
func (c *Client) failConn(cn *conn, err error) {
	c.mu.Lock()
	select {
	case <-cn.done:
		c.mu.Unlock()
		return
	default:
	}
	if c.cn == cn {
		c.cn = nil
		c.connCh = make(chan struct{})
	}
	cn.err = err
	close(cn.done)
	c.mu.Unlock()
	_ = cn.t.close()
	if !errors.Is(err, ErrClosed) {
		c.log.Debug("connection ended", "err", err)
	}
}

// waitConn returns the signed-in connection, waiting while the client
// reconnects.
func (c *Client) waitConn(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		cn, ch, err := c.cn, c.connCh, c.err
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if cn != nil {
			return cn, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ctx.Done():
		}
	}
}

// write writes f on cn within timeout. A failed write ends cn: the stream
// is in an unknown state. A frame too large to send leaves cn alone.
func (c *Client) write(cn *conn, f *wirepb.Frame, timeout time.Duration) error {
	cn.wmu.Lock()
	err := cn.t.writeFrame(f, time.Now().Add(timeout))
	cn.wmu.Unlock()
	if err == nil || errors.Is(err, ErrFrameTooLarge) {
		return err
	}
	err = fmt.Errorf("%w: write: %w", ErrDisconnected, err)
	c.failConn(cn, err)
	return err
}

// roundTrip sends one request on the current connection (waiting for one if
// the client is reconnecting) and waits for its reply, one RequestTimeout at
// most. An Error reply is returned as *Error. send, when set, is the Send
// body of f.
func (c *Client) roundTrip(ctx context.Context, f *wirepb.Frame, send *wirepb.Send) (*wirepb.Frame, error) {
	cn, err := c.waitConn(ctx)
	if err != nil {
		return nil, err
	}
	return c.roundTripOn(ctx, cn, f, &waiter{send: send})
}

// roundTripOn is roundTrip on the connection cn, with w (nil for a plain
// request) describing the request to the reader.
func (c *Client) roundTripOn(ctx context.Context, cn *conn, f *wirepb.Frame, w *waiter) (*wirepb.Frame, error) {
	w, err := c.request(cn, f, w)
	defer cn.take(f.Id)
	if err != nil {
		return nil, err
	}
	return c.await(ctx, cn, w)
}

// request gives f a fresh id, registers w (nil for a plain request) for its
// reply and writes f on cn. The caller must cn.take(f.Id) when done.
func (c *Client) request(cn *conn, f *wirepb.Frame, w *waiter) (*waiter, error) {
	f.Id = c.reqID.Add(1)
	w = cn.register(f.Id, w)
	return w, c.write(cn, f, c.cfg.RequestTimeout)
}

// await waits for the reply to a request written on cn, one
// RequestTimeout at most. An Error reply is returned as *Error.
func (c *Client) await(ctx context.Context, cn *conn, w *waiter) (*wirepb.Frame, error) {
	timer := time.NewTimer(c.cfg.RequestTimeout)
	defer timer.Stop()
	var r *wirepb.Frame
	select {
	case r = <-w.reply:
	case <-cn.done:
		// The reply may have arrived just before the connection ended.
		select {
		case r = <-w.reply:
		default:
			return nil, fmt.Errorf("%w: %w", ErrDisconnected, cn.err)
		}
	case <-timer.C:
		return nil, ErrTimeout
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if e := r.GetError(); e != nil {
		return nil, wireError(e)
	}
	return r, nil
}

// readLoop reads and dispatches frames until cn fails.
func (c *Client) readLoop(cn *conn) {
	defer c.wg.Done()
	for {
		f, err := cn.t.readFrame()
		if err != nil {
			c.failConn(cn, fmt.Errorf("%w: read: %w", ErrDisconnected, err))
			return
		}
		cn.lastRecv.Store(time.Now().UnixNano())
		if err := c.dispatch(cn, f); err != nil {
			c.failConn(cn, err)
			return
		}
	}
}

// dispatch handles one frame from the server on the reader goroutine.
// Mailbox entries (pushes, sync pages, the client's own sends) are accepted
// here, in the order they arrived. A non-nil error ends the connection.
func (c *Client) dispatch(cn *conn, f *wirepb.Frame) error {
	if f.GetId() == 0 {
		switch b := f.GetBody().(type) {
		case *wirepb.Frame_Push:
			if m := b.Push.GetMessage(); m.GetSeq() == 0 {
				c.onTransient(m)
			} else {
				c.accept(m)
			}
		case *wirepb.Frame_RoomMessage:
			c.onRoomMessage(cn, b.RoomMessage.GetMessage())
		case *wirepb.Frame_Error:
			return fmt.Errorf("%w: closed by server: %w", ErrDisconnected, wireError(b.Error))
		default:
			c.log.Debug("ignoring unsolicited frame", "type", fmt.Sprintf("%T", b))
		}
		return nil
	}
	if sb := f.GetSyncBatch(); sb != nil {
		c.accept(sb.GetMessages()...)
	}
	w := cn.take(f.GetId())
	if w == nil {
		return nil // a late reply to a request that gave up, or a Pong
	}
	if f.GetId() == cn.signInID {
		if ok := f.GetSignInOk(); ok != nil {
			c.onSignIn(cn, ok)
		}
	}
	if ack := f.GetSendAck(); ack != nil && w.send != nil {
		c.onSendAck(cn, w.send, ack)
	}
	if ok := f.GetJoinRoomOk(); ok != nil && w.join != nil {
		c.onJoined(cn, w, ok)
	}
	w.reply <- f
	return nil
}

// onSendAck records a message this client sent: a mailbox entry at the
// sender's seq (user and group sends), or a live message of a room (room
// sends, seq 0, in no mailbox).
func (c *Client) onSendAck(cn *conn, s *wirepb.Send, ack *wirepb.SendAck) {
	m := c.ownEntry(s, ack)
	switch {
	case s.GetTo().GetType() == wirepb.ConversationType_CONVERSATION_TYPE_ROOM:
		c.onRoomMessage(cn, m)
	case ack.GetSeq() == 0:
		c.log.Warn("send acked without a seq", "to_type", s.GetTo().GetType().String(), "msg_id", ack.GetMsgId())
	default:
		c.accept(m)
	}
}

// ownEntry builds the mailbox entry for a message this client sent, from
// the Send and its SendAck, as the server stored it.
func (c *Client) ownEntry(s *wirepb.Send, ack *wirepb.SendAck) *wirepb.Message {
	return &wirepb.Message{
		MsgId:       ack.GetMsgId(),
		To:          s.GetTo(),
		FromUser:    c.UserID(),
		FromDevice:  c.cfg.DeviceID,
		ClientMsgId: s.GetClientMsgId(),
		ContentType: s.GetContentType(),
		Body:        s.GetBody(),
		CreatedAtMs: ack.GetCreatedAtMs(),
		Seq:         ack.GetSeq(),
	}
}

// keepAlive pings every heartbeat and ends cn when nothing has arrived for
// two heartbeats.
func (c *Client) keepAlive(cn *conn) {
	defer c.wg.Done()
	hb := cn.heartbeat
	t := time.NewTicker(hb)
	defer t.Stop()
	for {
		select {
		case <-cn.done:
			return
		case <-t.C:
		}
		idle := time.Since(time.Unix(0, cn.lastRecv.Load()))
		if idle > 2*hb {
			c.failConn(cn, fmt.Errorf("%w: nothing from the server for %v", ErrDisconnected, idle.Round(time.Millisecond)))
			return
		}
		ping := &wirepb.Frame{Id: c.reqID.Add(1), Body: &wirepb.Frame_Ping{Ping: &wirepb.Ping{}}}
		if err := c.write(cn, ping, c.cfg.RequestTimeout); err != nil {
			return
		}
	}
}
