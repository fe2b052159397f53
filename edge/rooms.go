package edge

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/actors/room"
	"github.com/parleyim/parley/edge/auth"
	"github.com/parleyim/parley/schemas/wirepb"
)

// Chat rooms are served by the edge alone: read diffusion, no user actor.
// A room's messages live in the shared JetStream stream of actors/room; the
// edge subscribes to the room's live subject while at least one of its
// connections is a member (one subscription per room per edge, never one per
// connection) and writes each live message, encoded once, to every local
// member except the connection that sent it (which has its SendAck).

const (
	// maxRoomReplays bounds joins answered off the caller's goroutine (a
	// replay reads the stream); more at once are refused as UNAVAILABLE.
	maxRoomReplays = 16
	// maxRoomPublishes bounds room sends waiting for their JetStream ack;
	// more at once are refused as UNAVAILABLE.
	maxRoomPublishes = 1024
	// roomTaskTimeout bounds one replay or publish.
	roomTaskTimeout = 5 * time.Second
)

// roomState is this edge's view of one room with local members.
type roomState struct {
	sub     *nats.Subscription    // immutable after creation
	members map[uint64]*connState // guarded by Hub.roomsMu

	// scratch is reused for the member snapshot of each live message. Owned
	// by the subscription's callback, which NATS never runs concurrently.
	scratch []Conn
}

// Rooms returns the number of rooms with local members: this edge holds
// one NATS subscription for each.
func (h *Hub) Rooms() int {
	h.roomsMu.RLock()
	defer h.roomsMu.RUnlock()
	return len(h.rooms)
}

// acquire takes a slot of sem without waiting.
func acquire(sem chan struct{}) bool {
	select {
	case sem <- struct{}{}:
		return true
	default:
		return false
	}
}

// spawn runs fn on its own goroutine, tracked by Shutdown; false (and fn not
// run) once the hub is shutting down.
func (h *Hub) spawn(fn func()) bool {
	// A read lock is enough: closeRooms sets roomsClosed under the write
	// lock, so every Add happens before Shutdown's Wait.
	h.roomsMu.RLock()
	defer h.roomsMu.RUnlock()
	if h.roomsClosed {
		return false
	}
	h.tasks.Add(1)
	go func() {
		defer h.tasks.Done()
		fn()
	}()
	return true
}

// joinRoom handles JoinRoom. It never blocks: a replay, or making sure a new
// subscription reached the NATS server, runs on a goroutine that sends
// JoinRoomOK when done.
func (h *Hub) joinRoom(st *connState, reqID uint64, j *wirepb.JoinRoom) {
	roomID := j.GetRoomId()
	if !auth.ValidID(roomID) {
		h.replyError(st, reqID, wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "room_id must be 1-64 of [A-Za-z0-9_-]", "")
		return
	}
	// Take the replay slot before joining so that a refusal leaves the
	// connection as it was.
	slot := false
	n := int(j.GetReplay())
	if n > 0 {
		if slot = acquire(h.replays); !slot {
			h.replyError(st, reqID, wirepb.ErrorCode_ERROR_CODE_UNAVAILABLE, "too many room joins in progress, retry", "")
			return
		}
	}
	newSub, code, msg := h.addMember(st, roomID)
	if code != wirepb.ErrorCode_ERROR_CODE_UNSPECIFIED {
		if slot {
			<-h.replays
		}
		h.replyError(st, reqID, code, msg, "")
		return
	}
	// A new subscription must reach the NATS server before the device hears
	// it is in the room, or a message sent meanwhile on another edge is
	// missed. A replay needs no flush: its request follows the SUB on the
	// same connection. Without a free slot the flush is skipped (best
	// effort; the device can ask for a replay).
	if !slot && newSub {
		slot = acquire(h.replays)
	}
	ok := &wirepb.Frame{Id: reqID, Body: &wirepb.Frame_JoinRoomOk{JoinRoomOk: &wirepb.JoinRoomOK{RoomId: roomID}}}
	if !slot {
		h.reply(st, ok)
		return
	}
	if !h.spawn(func() { defer func() { <-h.replays }(); h.answerJoin(st, ok, n) }) {
		<-h.replays
		h.replyError(st, reqID, wirepb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, "server is shutting down", "")
	}
}

// answerJoin replays the last n messages of the room into ok (or, with n 0,
// flushes the new subscription) and sends it.
func (h *Hub) answerJoin(st *connState, ok *wirepb.Frame, n int) {
	ctx, cancel := context.WithTimeout(h.tasksCtx, roomTaskTimeout)
	defer cancel()
	res := ok.GetJoinRoomOk()
	if n == 0 {
		if err := h.cfg.NATS.FlushWithContext(ctx); err != nil {
			h.log.Warn("flush room subscription failed", "room", res.RoomId, "err", err)
		}
		h.reply(st, ok)
		return
	}
	msgs, err := room.Replay(ctx, h.js, res.RoomId, n)
	if err != nil {
		// The connection stays in the room; joining again is idempotent.
		h.log.Warn("room replay failed", "room", res.RoomId, "uid", st.uid, "err", err)
		h.replyError(st, ok.Id, wirepb.ErrorCode_ERROR_CODE_UNAVAILABLE, "could not read the room's history, retry", "")
		return
	}
	res.Messages = msgs
	h.reply(st, ok)
}

// addMember puts st in roomID, subscribing this edge to the room if st is
// its first local member. Joining twice is a no-op. A refusal comes back as
// an error code and message for the device.
func (h *Hub) addMember(st *connState, roomID string) (newSub bool, code wirepb.ErrorCode, msg string) {
	h.roomsMu.Lock()
	defer h.roomsMu.Unlock()
	if h.roomsClosed {
		return false, wirepb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, "server is shutting down"
	}
	if _, ok := st.rooms[roomID]; ok {
		return false, wirepb.ErrorCode_ERROR_CODE_UNSPECIFIED, ""
	}
	if len(st.rooms) >= h.cfg.MaxRoomsPerConn {
		// Not RATE_LIMITED: waiting does not help, leaving a room does.
		return false, wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT,
			fmt.Sprintf("a connection may be in at most %d rooms; leave one first", h.cfg.MaxRoomsPerConn)
	}
	rs := h.rooms[roomID]
	if rs == nil {
		rs = &roomState{members: make(map[uint64]*connState)}
		// Subscribe only queues the SUB on the NATS connection: it does not
		// wait for the server, so holding roomsMu here is fine.
		sub, err := h.cfg.NATS.Subscribe(room.LiveSubject(roomID), func(m *nats.Msg) { h.onRoomMsg(rs, m) })
		if err != nil {
			h.log.Warn("subscribe to room failed", "room", roomID, "err", err)
			return false, wirepb.ErrorCode_ERROR_CODE_UNAVAILABLE, "server busy, retry"
		}
		rs.sub = sub
		h.rooms[roomID] = rs
		newSub = true
	}
	rs.members[st.conn.ID()] = st
	if st.rooms == nil {
		st.rooms = make(map[string]struct{})
	}
	st.rooms[roomID] = struct{}{}
	return newSub, wirepb.ErrorCode_ERROR_CODE_UNSPECIFIED, ""
}

// leaveRoom handles LeaveRoom; leaving a room one is not in succeeds too.
func (h *Hub) leaveRoom(st *connState, reqID uint64, l *wirepb.LeaveRoom) {
	roomID := l.GetRoomId()
	if !auth.ValidID(roomID) {
		h.replyError(st, reqID, wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "room_id must be 1-64 of [A-Za-z0-9_-]", "")
		return
	}
	h.roomsMu.Lock()
	h.removeMemberLocked(st, roomID)
	h.roomsMu.Unlock()
	h.reply(st, &wirepb.Frame{Id: reqID, Body: &wirepb.Frame_LeaveRoomOk{LeaveRoomOk: &wirepb.LeaveRoomOK{RoomId: roomID}}})
}

// leaveAllRooms takes a closed connection out of all its rooms.
func (h *Hub) leaveAllRooms(st *connState) {
	h.roomsMu.Lock()
	defer h.roomsMu.Unlock()
	for roomID := range st.rooms {
		h.removeMemberLocked(st, roomID)
	}
}

// removeMemberLocked takes st out of roomID and unsubscribes this edge from
// the room when st was its last local member. roomsMu must be held.
func (h *Hub) removeMemberLocked(st *connState, roomID string) {
	delete(st.rooms, roomID)
	rs := h.rooms[roomID]
	if rs == nil {
		return // not joined, or closeRooms already dropped it
	}
	delete(rs.members, st.conn.ID())
	if len(rs.members) > 0 {
		return
	}
	delete(h.rooms, roomID)
	if err := rs.sub.Unsubscribe(); err != nil {
		h.log.Warn("unsubscribe from room failed", "room", roomID, "err", err)
	}
}

// closeRooms unsubscribes from every room and refuses new members and tasks.
func (h *Hub) closeRooms() {
	h.roomsMu.Lock()
	defer h.roomsMu.Unlock()
	h.roomsClosed = true
	for roomID, rs := range h.rooms {
		if err := rs.sub.Unsubscribe(); err != nil {
			h.log.Warn("unsubscribe from room failed", "room", roomID, "err", err)
		}
	}
	clear(h.rooms)
}

// onRoomMsg writes one live room message to the room's local members.
func (h *Hub) onRoomMsg(rs *roomState, m *nats.Msg) {
	var msg wirepb.Message
	if err := proto.Unmarshal(m.Data, &msg); err != nil {
		h.log.Warn("dropping undecodable room message", "subject", m.Subject, "err", err)
		return
	}
	b, err := proto.Marshal(&wirepb.Frame{Body: &wirepb.Frame_RoomMessage{RoomMessage: &wirepb.RoomMessage{Message: &msg}}})
	if err != nil {
		h.log.Error("encode room message failed", "subject", m.Subject, "err", err)
		return
	}
	// The sending connection already has its SendAck.
	var sender uint64
	if edgeID, connID, ok := room.Origin(m.Header); ok && edgeID == h.cfg.EdgeID {
		sender = connID // connection ids start at 1
	}
	h.roomsMu.RLock()
	targets := rs.scratch[:0]
	for id, st := range rs.members {
		if id != sender {
			targets = append(targets, st.conn)
		}
	}
	h.roomsMu.RUnlock()
	for _, c := range targets {
		_ = c.Send(b) // a full queue closes the connection
	}
	clear(targets) // keep no closed connection reachable
	rs.scratch = targets[:0]
}

// sendToRoom handles a Send to a room the connection joined: the edge stores
// it in the room stream (which delivers it live) and answers SendAck with seq
// 0 once stored. The publish runs on a goroutine: Frame never blocks.
func (h *Hub) sendToRoom(st *connState, reqID uint64, s *wirepb.Send) {
	h.roomsMu.RLock()
	_, joined := st.rooms[s.To.Id]
	h.roomsMu.RUnlock()
	if !joined {
		h.replyError(st, reqID, wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "join the room first", s.ClientMsgId)
		return
	}
	if !st.allowRoomSend(h.cfg.RoomSendRate, h.cfg.RoomSendBurst) {
		h.replyError(st, reqID, wirepb.ErrorCode_ERROR_CODE_RATE_LIMITED,
			fmt.Sprintf("over %g room messages/s on this connection; retry later with the same client_msg_id", h.cfg.RoomSendRate), s.ClientMsgId)
		return
	}
	if !acquire(h.publishes) {
		h.replyError(st, reqID, wirepb.ErrorCode_ERROR_CODE_UNAVAILABLE, "server busy, retry", s.ClientMsgId)
		return
	}
	id, ms := h.ids.Next(time.Now())
	msg := &wirepb.Message{
		MsgId:       id,
		To:          s.To,
		FromUser:    st.uid,
		FromDevice:  st.device,
		ClientMsgId: s.ClientMsgId,
		ContentType: s.ContentType,
		Body:        s.Body,
		CreatedAtMs: ms,
	}
	// uid and device never contain '/', so the key cannot collide across
	// devices; it makes a resend within the stream's dedupe window store
	// nothing and answer with the original.
	dedupeID := st.uid + "/" + st.device + "/" + s.ClientMsgId
	if !h.spawn(func() { defer func() { <-h.publishes }(); h.publishRoom(st, reqID, msg, dedupeID) }) {
		<-h.publishes
		h.replyError(st, reqID, wirepb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, "server is shutting down", s.ClientMsgId)
	}
}

// publishRoom stores msg and answers the sender.
func (h *Hub) publishRoom(st *connState, reqID uint64, msg *wirepb.Message, dedupeID string) {
	ctx, cancel := context.WithTimeout(h.tasksCtx, roomTaskTimeout)
	defer cancel()
	stored, dup, err := room.Publish(ctx, h.js, msg, dedupeID, room.FromConn(h.cfg.EdgeID, st.conn.ID()))
	if err != nil {
		h.log.Warn("room publish failed", "room", msg.To.Id, "uid", st.uid, "err", err)
		h.replyError(st, reqID, wirepb.ErrorCode_ERROR_CODE_UNAVAILABLE, "server busy, retry", msg.ClientMsgId)
		return
	}
	h.reply(st, &wirepb.Frame{Id: reqID, Body: &wirepb.Frame_SendAck{SendAck: &wirepb.SendAck{
		MsgId: stored.MsgId, CreatedAtMs: stored.CreatedAtMs, ClientMsgId: msg.ClientMsgId, Duplicate: dup,
	}}})
}
