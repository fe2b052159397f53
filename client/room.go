package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/parleyim/parley/schemas/wirepb"
)

const (
	// roomSeenBase is how many recent msg ids of a room the client keeps to
	// drop duplicates, on top of the room's replay size.
	roomSeenBase = 1024
	// roomSeenMaxReplay caps the replay size's share of the dedupe set, so
	// a huge replay request cannot grow it without bound (the server caps
	// replays far below this).
	roomSeenMaxReplay = 10000
)

// roomState is a room the app joined and has not left. Guarded by
// Client.roomMu.
type roomState struct {
	// replay is the replay size of the last JoinRoom; rejoins use it too.
	replay uint32
	// joinedOn is the connection on which the server last confirmed the
	// join (JoinRoomOK), nil before the first confirmation. A live message
	// that arrives on any other connection waits in held until the join on
	// that connection is confirmed, so that it comes after the replay.
	joinedOn *conn
	// seen holds the msg ids the app has been given (replay, live, own
	// sends), the most recent first to go last.
	seen *idSet
	// held are live messages waiting for the join's confirmation, at most
	// Config.RoomQueueSize.
	held []*wirepb.Message
}

// RoomMessages returns the channel of live room messages: messages of the
// rooms joined with JoinRoom, from other users and from this user (a
// message sent with SendRoomText comes out here too, once its SendAck
// arrives). Each message comes out at most once: the client drops a
// message whose msg id it has already given the app, in a JoinRoom replay
// or on this channel, among the last ~1000 ids plus the replay size of that
// room. Room messages have seq 0 and are in no mailbox: they never come out
// of Messages and never move MaxSeq.
//
// The channel holds up to Config.RoomQueueSize messages. The client never
// waits for the app: when the buffer is full the oldest waiting message is
// dropped and counted in Stats().RoomDropped, since a room message cannot
// be fetched again (only a later JoinRoom replay may still hold it). The
// channel is closed when the client stops.
func (c *Client) RoomMessages() <-chan *wirepb.Message { return c.roomQ.ch }

// JoinRoom joins a chat room on this connection and returns up to replay of
// the room's latest messages, oldest first (the server caps the replay by
// the room's history). From then on the room's live messages come out of
// RoomMessages, after the replay and without repeating it. Joining a room
// already joined asks for the replay again and returns only the messages
// the app has not been given yet.
//
// The client remembers the room: after a reconnect it joins it again on
// its own, with the same replay size, and sends the part of that replay the
// app has not seen yet (missed while disconnected) to RoomMessages. If the
// server then refuses the room, the client forgets it and calls
// Config.OnRoomLost.
//
// JoinRoom retries timeouts, disconnects and temporary errors until ctx
// ends (joining twice is harmless). When it fails the room is not joined
// (unless an earlier JoinRoom joined it on the current connection); a
// refusal is a *Error, such as PERMISSION_DENIED or NOT_FOUND.
func (c *Client) JoinRoom(ctx context.Context, roomID string, replay int) ([]*wirepb.Message, error) {
	if roomID == "" {
		return nil, errors.New("client: join room: no room id")
	}
	if replay < 0 {
		return nil, fmt.Errorf("client: join room %s: replay is %d, want at least 0", roomID, replay)
	}
	req := &wirepb.JoinRoom{RoomId: roomID, Replay: uint32(min(uint64(replay), math.MaxUint32))}
	st := c.beginJoin(req)
	var msgs []*wirepb.Message
	err := c.retry(ctx, func() error {
		for {
			cn, err := c.waitConn(ctx)
			if err != nil {
				return err
			}
			f := &wirepb.Frame{Body: &wirepb.Frame_JoinRoom{JoinRoom: req}}
			r, err := c.roundTripOn(ctx, cn, f, &waiter{join: req})
			if err != nil {
				return err
			}
			ok := r.GetJoinRoomOk()
			if ok == nil {
				return fmt.Errorf("%w: join room answered with %T", ErrProtocol, r.GetBody())
			}
			// Deduplicated by the reader (onJoined), so appending a second
			// round repeats nothing.
			msgs = append(msgs, ok.GetMessages()...)
			if c.joinSettled(req.GetRoomId(), st) {
				return nil
			}
			// The connection was replaced after the reply, possibly after
			// the reconnect's rejoin looked at this room: join on the new one.
		}
	})
	c.endJoin(req, st, err)
	if err != nil {
		return nil, fmt.Errorf("client: join room %s: %w", roomID, err)
	}
	return msgs, nil
}

// LeaveRoom leaves a chat room: the client forgets it at once (no more of
// its messages on RoomMessages, no rejoin after a reconnect) and tells the
// server. A connection that ends meanwhile leaves every room anyway, so a
// disconnect is not an error; a refusal is a *Error. LeaveRoom does not
// retry.
func (c *Client) LeaveRoom(ctx context.Context, roomID string) error {
	if roomID == "" {
		return errors.New("client: leave room: no room id")
	}
	c.roomMu.Lock()
	delete(c.rooms, roomID)
	c.roomMu.Unlock()
	if err := c.Err(); err != nil {
		return fmt.Errorf("client: leave room %s: %w", roomID, err)
	}
	c.mu.Lock()
	cn := c.cn
	c.mu.Unlock()
	if cn == nil {
		return nil // the room went with the connection
	}
	f := &wirepb.Frame{Body: &wirepb.Frame_LeaveRoom{LeaveRoom: &wirepb.LeaveRoom{RoomId: roomID}}}
	r, err := c.roundTripOn(ctx, cn, f, nil)
	switch {
	case errors.Is(err, ErrDisconnected):
		return nil
	case err != nil:
		return fmt.Errorf("client: leave room %s: %w", roomID, err)
	case r.GetLeaveRoomOk() == nil:
		return fmt.Errorf("client: leave room %s: %w: answered with %T", roomID, ErrProtocol, r.GetBody())
	}
	return nil
}

// SendRoomText sends a text message to a chat room this client joined. The
// SendAck has seq 0: room messages are in no mailbox. See Send.
func (c *Client) SendRoomText(ctx context.Context, roomID, text string, opts ...SendOption) (*wirepb.SendAck, error) {
	to := &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_ROOM, Id: roomID}
	return c.Send(ctx, to, wirepb.ContentType_CONTENT_TYPE_TEXT, []byte(text), opts...)
}

// beginJoin records the app's wish to be in the room before the JoinRoom
// goes out, so that live messages arriving before JoinRoomOK are held, not
// dropped.
func (c *Client) beginJoin(req *wirepb.JoinRoom) *roomState {
	c.roomMu.Lock()
	defer c.roomMu.Unlock()
	st := c.rooms[req.GetRoomId()]
	if st == nil {
		st = &roomState{seen: newIDSet(0)}
		c.rooms[req.GetRoomId()] = st
	}
	st.replay = req.GetReplay()
	st.seen.setLimit(roomSeenBase + int(min(req.GetReplay(), roomSeenMaxReplay)))
	return st
}

// joinSettled reports whether a confirmed join of the app needs no more
// work: the room is joined on the current connection, or the client is
// between connections (the next one rejoins it, since it is confirmed), or
// the app left the room meanwhile.
func (c *Client) joinSettled(id string, st *roomState) bool {
	c.mu.Lock()
	cur := c.cn
	c.mu.Unlock()
	c.roomMu.Lock()
	defer c.roomMu.Unlock()
	return cur == nil || c.rooms[id] != st || st.joinedOn == cur
}

// endJoin settles a failed JoinRoom of the app: it forgets the room unless
// it is joined on the current connection.
func (c *Client) endJoin(req *wirepb.JoinRoom, st *roomState, err error) {
	if err == nil {
		return
	}
	c.mu.Lock()
	cur := c.cn
	c.mu.Unlock()
	id := req.GetRoomId()
	c.roomMu.Lock()
	forget := c.rooms[id] == st && (st.joinedOn == nil || st.joinedOn != cur)
	if forget {
		delete(c.rooms, id)
	}
	c.roomMu.Unlock()
	var e *Error
	if forget && cur != nil && !errors.As(err, &e) {
		// The server may have joined us before the reply was lost.
		c.writeLeave(cur, id)
	}
}

// onJoined handles a JoinRoomOK on the reader goroutine, before the waiter
// wakes: it drops the replayed messages the app already has and marks the
// rest seen, then releases the live messages held while joining. For the
// app's JoinRoom the new part of the replay is left in ok for JoinRoom to
// return; for a rejoin it goes to RoomMessages, before the held messages.
func (c *Client) onJoined(cn *conn, w *waiter, ok *wirepb.JoinRoomOK) {
	c.roomMu.Lock()
	defer c.roomMu.Unlock()
	st := c.rooms[w.join.GetRoomId()]
	if st == nil {
		// Left meanwhile. The app's JoinRoom gets the replay as it is; a
		// rejoin's is dropped (rejoin then leaves the room on the server).
		if w.rejoin {
			ok.Messages = nil
		}
		return
	}
	var fresh []*wirepb.Message
	for _, m := range ok.GetMessages() {
		if st.add(m) {
			fresh = append(fresh, m)
		}
	}
	if w.rejoin {
		for _, m := range fresh {
			c.roomQ.push(m)
		}
		fresh = nil
	}
	ok.Messages = fresh
	st.joinedOn = cn
	for _, m := range st.held {
		if st.add(m) {
			c.roomQ.push(m)
		}
	}
	st.held = nil
}

// add marks m seen and reports whether it is new to the app. A message
// without a msg id cannot be deduplicated and always counts as new.
func (st *roomState) add(m *wirepb.Message) bool {
	return m.GetMsgId() == "" || st.seen.add(m.GetMsgId())
}

// onRoomMessage handles a live room message, from the reader goroutine of
// cn (or this client's own room send, acked on cn). It goes to
// RoomMessages unless the room is not joined, it is a duplicate, or the
// join on cn is not confirmed yet (then it is held until it is).
func (c *Client) onRoomMessage(cn *conn, m *wirepb.Message) {
	if m == nil {
		return
	}
	id := m.GetTo().GetId()
	c.roomMu.Lock()
	defer c.roomMu.Unlock()
	st := c.rooms[id]
	switch {
	case st == nil:
		c.log.Debug("ignoring message of a room not joined", "room", id, "msg_id", m.GetMsgId())
	case st.joinedOn != cn && !st.joinedOn.alive():
		// Joining, or rejoining after a reconnect. (A late frame of a dead
		// connection while the join is confirmed on the live one goes
		// straight through, deduplicated.)
		if m.GetMsgId() != "" && st.seen.has(m.GetMsgId()) {
			return
		}
		if len(st.held) >= c.cfg.RoomQueueSize {
			st.held[0] = nil
			st.held = st.held[1:]
			c.roomHeldDropped.Add(1)
		}
		st.held = append(st.held, m)
	case st.add(m):
		c.roomQ.push(m)
	}
}

// pendingJoin is a rejoin written on a new connection, awaiting its reply.
type pendingJoin struct {
	req *wirepb.JoinRoom
	id  uint64 // the request id
	w   *waiter
	err error // the write's error
}

// writeRejoins writes a JoinRoom on the new connection cn, before it is
// installed, for every room the app joined that the server had confirmed
// on an earlier connection: a room Send retried on cn then reaches the
// server after the JoinRoom. Rooms whose first JoinRoom is still in flight
// are left to it. awaitRejoins handles the replies.
func (c *Client) writeRejoins(cn *conn) []pendingJoin {
	c.roomMu.Lock()
	var reqs []*wirepb.JoinRoom
	for id, st := range c.rooms {
		if st.joinedOn != nil && st.joinedOn != cn {
			reqs = append(reqs, &wirepb.JoinRoom{RoomId: id, Replay: st.replay})
		}
	}
	c.roomMu.Unlock()
	var out []pendingJoin
	for _, req := range reqs {
		f := &wirepb.Frame{Body: &wirepb.Frame_JoinRoom{JoinRoom: req}}
		w, err := c.request(cn, f, &waiter{join: req, rejoin: true})
		out = append(out, pendingJoin{req: req, id: f.GetId(), w: w, err: err})
		if err != nil {
			break // cn failed; the next connection rejoins
		}
	}
	return out
}

// awaitRejoins waits for the replies to the JoinRooms writeRejoins wrote
// on cn; a room whose rejoin timed out or failed for now is joined again by
// rejoinRoom.
func (c *Client) awaitRejoins(cn *conn, pending []pendingJoin) {
	defer c.wg.Done()
	defer func() {
		for _, p := range pending {
			cn.take(p.id)
		}
	}()
	for _, p := range pending {
		err := p.err
		var r *wirepb.Frame
		if err == nil {
			r, err = c.await(c.ctx, cn, p.w)
		}
		switch c.rejoined(cn, p.req, r, err) {
		case rejoinGone:
			return
		case rejoinRetry:
			if !c.rejoinRoom(cn, p.req) {
				return
			}
		}
	}
}

type rejoinOutcome int

const (
	rejoinDone  rejoinOutcome = iota // joined, or the room was given up
	rejoinRetry                      // a timeout or temporary error: try again on cn
	rejoinGone                       // cn or the client is gone
)

// rejoined handles the outcome of a rejoin on cn.
func (c *Client) rejoined(cn *conn, req *wirepb.JoinRoom, r *wirepb.Frame, err error) rejoinOutcome {
	var e *Error
	switch {
	case err == nil:
		if r.GetJoinRoomOk() == nil {
			c.log.Warn("rejoin answered with the wrong frame", "room", req.GetRoomId(), "type", fmt.Sprintf("%T", r.GetBody()))
			return rejoinDone
		}
		c.roomMu.Lock()
		left := c.rooms[req.GetRoomId()] == nil
		c.roomMu.Unlock()
		if left {
			c.writeLeave(cn, req.GetRoomId())
		}
		c.log.Debug("rejoined room", "room", req.GetRoomId())
		return rejoinDone
	case c.ctx.Err() != nil || errors.Is(err, ErrDisconnected):
		return rejoinGone
	case errors.As(err, &e) && !e.Temporary:
		c.loseRoom(req.GetRoomId(), err)
		return rejoinDone
	}
	c.log.Debug("rejoin failed", "room", req.GetRoomId(), "err", err)
	return rejoinRetry
}

// rejoinRoom joins one room again on cn, after a backoff, retrying
// timeouts and temporary errors while cn lasts. It reports false when cn or
// the client is gone.
func (c *Client) rejoinRoom(cn *conn, req *wirepb.JoinRoom) bool {
	for attempt := 0; ; attempt++ {
		select {
		case <-time.After(backoff(c.cfg.MinBackoff, c.cfg.MaxBackoff, attempt)):
		case <-cn.done:
			return false
		case <-c.ctx.Done():
			return false
		}
		c.roomMu.Lock()
		st := c.rooms[req.GetRoomId()]
		wanted := st != nil && st.joinedOn != cn
		c.roomMu.Unlock()
		if !wanted {
			return true // left, or joined here by the app meanwhile
		}
		f := &wirepb.Frame{Body: &wirepb.Frame_JoinRoom{JoinRoom: req}}
		r, err := c.roundTripOn(c.ctx, cn, f, &waiter{join: req, rejoin: true})
		switch c.rejoined(cn, req, r, err) {
		case rejoinDone:
			return true
		case rejoinGone:
			return false
		}
	}
}

// loseRoom forgets a room the server refused to rejoin, unless the app
// left it or it is joined on a live connection again, and tells the app.
func (c *Client) loseRoom(id string, err error) {
	c.roomMu.Lock()
	st := c.rooms[id]
	lost := st != nil && !st.joinedOn.alive()
	if lost {
		delete(c.rooms, id)
	}
	c.roomMu.Unlock()
	if !lost {
		return
	}
	c.log.Warn("room lost: rejoin refused", "room", id, "err", err)
	if c.cfg.OnRoomLost != nil {
		c.cfg.OnRoomLost(id, err)
	}
}

// writeLeave sends a LeaveRoom on cn without waiting for the reply: for a
// join the app no longer wants.
func (c *Client) writeLeave(cn *conn, id string) {
	f := &wirepb.Frame{Id: c.reqID.Add(1), Body: &wirepb.Frame_LeaveRoom{LeaveRoom: &wirepb.LeaveRoom{RoomId: id}}}
	_ = c.write(cn, f, c.cfg.RequestTimeout)
}
