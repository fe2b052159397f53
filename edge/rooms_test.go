package edge_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/actors/natstest"
	"github.com/parleyim/parley/actors/shard"
	"github.com/parleyim/parley/edge"
	"github.com/parleyim/parley/edge/auth"
	"github.com/parleyim/parley/edge/edgetest"
	"github.com/parleyim/parley/schemas/buspb"
	"github.com/parleyim/parley/schemas/wirepb"
)

var (
	startNATS = natstest.Start
	connect   = natstest.Connect
)

// startHub runs a Hub named edgeID on its own NATS connection, as a separate
// edge node would.
func startHub(t testing.TB, s *server.Server, edgeID string, mod func(*edge.HubConfig)) *edge.Hub {
	t.Helper()
	v, err := auth.NewVerifier([]byte(auth.DevSecret))
	if err != nil {
		t.Fatal(err)
	}
	cfg := edge.HubConfig{
		EdgeID: edgeID, NATS: connect(t, s), Verifier: v,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := edge.NewHub(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return h
}

// signIn opens a connection on h and signs it in as uid. No actor runs in
// these tests: the hub treats a connection as signed in once its token
// verifies, before the actor's SignInOK.
func signIn(t testing.TB, h *edge.Hub, uid, device string) *edgetest.Conn {
	t.Helper()
	tok, err := auth.Mint([]byte(auth.DevSecret), uid, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := edgetest.NewConn()
	h.Opened(c)
	h.Frame(c, &wirepb.Frame{Id: 1, Body: &wirepb.Frame_SignIn{SignIn: &wirepb.SignIn{Token: tok, DeviceId: device}}})
	return c
}

var reqIDs atomic.Uint64

func nextID() uint64 { return reqIDs.Add(1) + 100 }

// request sends body on c and returns the reply (the next frame c gets that
// echoes the request id; frames received meanwhile are returned as well).
func request(t testing.TB, h *edge.Hub, c *edgetest.Conn, f *wirepb.Frame) (reply *wirepb.Frame, others []*wirepb.Frame) {
	t.Helper()
	f.Id = nextID()
	h.Frame(c, f)
	for {
		got := edgetest.Recv(t, c.Frames, fmt.Sprintf("reply to request %d", f.Id))
		if got.Id == f.Id {
			return got, others
		}
		others = append(others, got)
	}
}

func join(t testing.TB, h *edge.Hub, c *edgetest.Conn, roomID string, replay uint32) *wirepb.JoinRoomOK {
	t.Helper()
	r, _ := request(t, h, c, &wirepb.Frame{Body: &wirepb.Frame_JoinRoom{JoinRoom: &wirepb.JoinRoom{RoomId: roomID, Replay: replay}}})
	ok := r.GetJoinRoomOk()
	if ok == nil || ok.RoomId != roomID {
		t.Fatalf("JoinRoom(%q) answered %v; want JoinRoomOK", roomID, r)
	}
	return ok
}

func roomSend(roomID, clientMsgID, body string) *wirepb.Frame {
	return &wirepb.Frame{Body: &wirepb.Frame_Send{Send: &wirepb.Send{
		To:          &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_ROOM, Id: roomID},
		ClientMsgId: clientMsgID, ContentType: wirepb.ContentType_CONTENT_TYPE_TEXT, Body: []byte(body),
	}}}
}

// send sends body to roomID from c and returns its SendAck.
func send(t testing.TB, h *edge.Hub, c *edgetest.Conn, roomID, clientMsgID, body string) *wirepb.SendAck {
	t.Helper()
	r, others := request(t, h, c, roomSend(roomID, clientMsgID, body))
	for _, o := range others {
		if m := o.GetRoomMessage(); m != nil && m.Message.ClientMsgId == clientMsgID {
			t.Errorf("the sender's connection got its own room message %q", clientMsgID)
		}
	}
	ack := r.GetSendAck()
	if ack == nil {
		t.Fatalf("room Send answered %v; want SendAck", r)
	}
	if ack.Seq != 0 || ack.MsgId == "" || ack.ClientMsgId != clientMsgID || ack.CreatedAtMs == 0 {
		t.Fatalf("SendAck = %v; want seq 0, a msg id, client_msg_id %q and a time", ack, clientMsgID)
	}
	return ack
}

// wantRoomMessage fails t unless the next frame of c is the room message
// with msgID.
func wantRoomMessage(t testing.TB, c *edgetest.Conn, msgID, body string) {
	t.Helper()
	f := edgetest.Recv(t, c.Frames, "room message "+msgID)
	m := f.GetRoomMessage().GetMessage()
	if m == nil || m.MsgId != msgID || string(m.Body) != body || m.Seq != 0 || f.Id != 0 {
		t.Fatalf("conn %d got %v; want room message %s %q", c.ID(), f, msgID, body)
	}
}

func wantError(t testing.TB, r *wirepb.Frame, code wirepb.ErrorCode) {
	t.Helper()
	if r.GetError().GetCode() != code {
		t.Fatalf("got %v; want error %v", r, code)
	}
}

func wantNothing(t testing.TB, c *edgetest.Conn) {
	t.Helper()
	select {
	case f := <-c.Frames:
		t.Fatalf("conn %d got %v; want nothing", c.ID(), f)
	default:
	}
}

// TestRoomAcrossEdges runs one room over three edges with three members
// each: every message reaches every other member once and in order, never
// the sending connection, and the history replays.
func TestRoomAcrossEdges(t *testing.T) {
	s := startNATS(t)
	var hubs []*edge.Hub
	var conns [3][3]*edgetest.Conn
	for i := range 3 {
		h := startHub(t, s, fmt.Sprintf("edge-%d", i), nil)
		hubs = append(hubs, h)
		for j := range 3 {
			conns[i][j] = signIn(t, h, fmt.Sprintf("u%d%d", i, j), "phone")
			join(t, h, conns[i][j], "lobby", 0)
		}
	}
	// Joining twice is a no-op.
	join(t, hubs[0], conns[0][0], "lobby", 0)
	for i, h := range hubs {
		if got := h.Rooms(); got != 1 {
			t.Errorf("hub %d subscribes to %d rooms; want 1", i, got)
		}
	}

	// Two messages from two edges: every other member sees m1 then m2, so
	// neither was delivered twice (live delivery of one room is ordered).
	ack1 := send(t, hubs[0], conns[0][0], "lobby", "c1", "hello")
	ack2 := send(t, hubs[1], conns[1][0], "lobby", "c2", "hi")
	for i := range 3 {
		for j := range 3 {
			c := conns[i][j]
			if !(i == 0 && j == 0) && !(i == 1 && j == 0) {
				wantRoomMessage(t, c, ack1.MsgId, "hello")
			}
			if !(i == 1 && j == 0) {
				wantRoomMessage(t, c, ack2.MsgId, "hi")
			}
		}
	}
	// conns[1][0] got m1 before its own SendAck; the sender of m2 got
	// nothing else.
	wantNothing(t, conns[1][0])

	// A resend stores nothing and answers with the original.
	dup := send(t, hubs[0], conns[0][0], "lobby", "c1", "hello")
	if !dup.Duplicate || dup.MsgId != ack1.MsgId || dup.CreatedAtMs != ack1.CreatedAtMs {
		t.Errorf("resend SendAck = %v; want duplicate of %v", dup, ack1)
	}

	// A late joiner replays the last 5, oldest first.
	var acks []*wirepb.SendAck
	for k := range 6 {
		acks = append(acks, send(t, hubs[2], conns[2][2], "lobby", fmt.Sprintf("r%d", k), fmt.Sprintf("msg %d", k)))
	}
	late := signIn(t, hubs[2], "late", "tablet")
	ok := join(t, hubs[2], late, "lobby", 5)
	if len(ok.Messages) != 5 {
		t.Fatalf("replay returned %d messages; want 5", len(ok.Messages))
	}
	for k, m := range ok.Messages {
		want := acks[k+1]
		if m.MsgId != want.MsgId || string(m.Body) != fmt.Sprintf("msg %d", k+1) || m.FromUser != "u22" || m.FromDevice != "phone" ||
			m.To.GetType() != wirepb.ConversationType_CONVERSATION_TYPE_ROOM || m.To.GetId() != "lobby" {
			t.Errorf("replay[%d] = %v; want msg %s from u22/phone", k, m, want.MsgId)
		}
	}
}

func TestRoomLeave(t *testing.T) {
	s := startNATS(t)
	h := startHub(t, s, "edge-a", nil)
	a := signIn(t, h, "alice", "phone")
	b := signIn(t, h, "bob", "phone")
	c := signIn(t, h, "carol", "phone")
	for _, x := range []*edgetest.Conn{a, b, c} {
		join(t, h, x, "r1", 0)
	}
	r, _ := request(t, h, b, &wirepb.Frame{Body: &wirepb.Frame_LeaveRoom{LeaveRoom: &wirepb.LeaveRoom{RoomId: "r1"}}})
	if r.GetLeaveRoomOk().GetRoomId() != "r1" {
		t.Fatalf("LeaveRoom answered %v; want LeaveRoomOK", r)
	}
	// Leaving a room one is not in succeeds too.
	r, _ = request(t, h, b, &wirepb.Frame{Body: &wirepb.Frame_LeaveRoom{LeaveRoom: &wirepb.LeaveRoom{RoomId: "never"}}})
	if r.GetLeaveRoomOk().GetRoomId() != "never" {
		t.Fatalf("LeaveRoom of a room not joined answered %v; want LeaveRoomOK", r)
	}
	// Once carol has both messages, the callback that delivered the first
	// has returned: bob would have it by now.
	m1 := send(t, h, a, "r1", "c1", "one")
	m2 := send(t, h, a, "r1", "c2", "two")
	wantRoomMessage(t, c, m1.MsgId, "one")
	wantRoomMessage(t, c, m2.MsgId, "two")
	wantNothing(t, b)
	// bob may no longer send there.
	r, _ = request(t, h, b, roomSend("r1", "c3", "x"))
	wantError(t, r, wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED)

	// The last local member leaving drops the subscription; a closing
	// connection leaves its rooms.
	if got := h.Rooms(); got != 1 {
		t.Fatalf("Rooms() = %d; want 1", got)
	}
	request(t, h, a, &wirepb.Frame{Body: &wirepb.Frame_LeaveRoom{LeaveRoom: &wirepb.LeaveRoom{RoomId: "r1"}}})
	h.Closed(c)
	if got := h.Rooms(); got != 0 {
		t.Errorf("Rooms() = %d after every member left; want 0", got)
	}
	// A rejoin subscribes again.
	join(t, h, a, "r1", 0)
	if got := h.Rooms(); got != 1 {
		t.Errorf("Rooms() = %d after a rejoin; want 1", got)
	}
}

func TestRoomRefusals(t *testing.T) {
	s := startNATS(t)
	h := startHub(t, s, "edge-a", func(c *edge.HubConfig) { c.MaxRoomsPerConn = 2; c.MaxBodySize = 16 })
	a := signIn(t, h, "alice", "phone")
	for _, tc := range []struct {
		name string
		f    *wirepb.Frame
		want wirepb.ErrorCode
	}{
		{"send without join", roomSend("r1", "c1", "x"), wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED},
		{"send to invalid room", roomSend("bad.id", "c1", "x"), wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{"join invalid room", &wirepb.Frame{Body: &wirepb.Frame_JoinRoom{JoinRoom: &wirepb.JoinRoom{RoomId: "bad room"}}}, wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{"join empty room id", &wirepb.Frame{Body: &wirepb.Frame_JoinRoom{JoinRoom: &wirepb.JoinRoom{}}}, wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{"leave invalid room", &wirepb.Frame{Body: &wirepb.Frame_LeaveRoom{LeaveRoom: &wirepb.LeaveRoom{RoomId: strings.Repeat("x", 65)}}}, wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{"call without method", &wirepb.Frame{Body: &wirepb.Frame_Call{Call: &wirepb.Call{}}}, wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{"call with long method", &wirepb.Frame{Body: &wirepb.Frame_Call{Call: &wirepb.Call{Method: strings.Repeat("m", 65)}}}, wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{"call with large params", &wirepb.Frame{Body: &wirepb.Frame_Call{Call: &wirepb.Call{Method: "friends.list", ParamsJson: `{"x":"0123456789"}`}}}, wirepb.ErrorCode_ERROR_CODE_BODY_TOO_LARGE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := request(t, h, a, tc.f)
			wantError(t, r, tc.want)
		})
	}
	t.Run("room cap", func(t *testing.T) {
		join(t, h, a, "r1", 0)
		join(t, h, a, "r2", 0)
		join(t, h, a, "r2", 0) // already in: not a third room
		r, _ := request(t, h, a, &wirepb.Frame{Body: &wirepb.Frame_JoinRoom{JoinRoom: &wirepb.JoinRoom{RoomId: "r3"}}})
		wantError(t, r, wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT)
		if got := h.Rooms(); got != 2 {
			t.Errorf("Rooms() = %d; want 2", got)
		}
	})
	t.Run("body too large", func(t *testing.T) {
		r, _ := request(t, h, a, roomSend("r1", "c1", strings.Repeat("x", 17)))
		wantError(t, r, wirepb.ErrorCode_ERROR_CODE_BODY_TOO_LARGE)
	})
}

func TestRoomShutdownUnsubscribes(t *testing.T) {
	s := startNATS(t)
	h := startHub(t, s, "edge-a", nil)
	a := signIn(t, h, "alice", "phone")
	join(t, h, a, "r1", 0)
	join(t, h, a, "r2", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := h.Rooms(); got != 0 {
		t.Errorf("Rooms() = %d after Shutdown; want 0", got)
	}
	if code := edgetest.Recv(t, a.Closes, "close").Code; code != wirepb.ErrorCode_ERROR_CODE_SHUTTING_DOWN {
		t.Errorf("closed with %v; want SHUTTING_DOWN", code)
	}
	h.Closed(a) // as the transport would
}

// TestBroadcast publishes a Down on im.edge.all: every signed-in connection
// of every edge gets its frame, and a close code closes them all.
func TestBroadcast(t *testing.T) {
	s := startNATS(t)
	var signed []*edgetest.Conn
	var anon []*edgetest.Conn
	for i := range 3 {
		h := startHub(t, s, fmt.Sprintf("edge-%d", i), nil)
		for j := range 2 {
			signed = append(signed, signIn(t, h, fmt.Sprintf("u%d%d", i, j), "phone"))
		}
		c := edgetest.NewConn()
		h.Opened(c) // never signs in
		anon = append(anon, c)
	}
	push := &wirepb.Frame{Body: &wirepb.Frame_Push{Push: &wirepb.Push{Message: &wirepb.Message{
		MsgId: "notice-1", ContentType: wirepb.ContentType_CONTENT_TYPE_SYSTEM, Body: []byte("maintenance at noon"),
	}}}}
	fb, err := proto.Marshal(push)
	if err != nil {
		t.Fatal(err)
	}
	nc := connect(t, s)
	publish := func(d *buspb.Down) {
		t.Helper()
		b, err := proto.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish(shard.BroadcastSubject, b); err != nil {
			t.Fatal(err)
		}
	}
	publish(&buspb.Down{Frame: fb})
	for _, c := range signed {
		f := edgetest.Recv(t, c.Frames, "broadcast")
		if !proto.Equal(f, push) {
			t.Errorf("conn %d got %v; want %v", c.ID(), f, push)
		}
	}
	publish(&buspb.Down{Frame: fb, ConnIds: []uint64{signed[0].ID()}}) // dropped: ids are per edge
	publish(&buspb.Down{CloseCode: wirepb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, CloseMessage: "bye"})
	for _, c := range signed {
		e := edgetest.Recv(t, c.Closes, "broadcast close")
		if e.Code != wirepb.ErrorCode_ERROR_CODE_SHUTTING_DOWN || e.Message != "bye" {
			t.Errorf("conn %d closed with %v; want SHUTTING_DOWN bye", c.ID(), e)
		}
		wantNothing(t, c)
	}
	for _, c := range anon {
		wantNothing(t, c)
	}
}

// TestCall checks that a Call goes up to the user's actor like the other ops.
func TestCall(t *testing.T) {
	s := startNATS(t)
	h := startHub(t, s, "edge-a", nil)
	nc := connect(t, s)
	sub, err := nc.SubscribeSync(shard.UpSubject("*", "call"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	a := signIn(t, h, "alice", "phone")
	call := &wirepb.Call{Method: "friends.add", ParamsJson: `{"user_id":"bob"}`}
	h.Frame(a, &wirepb.Frame{Id: 7, Body: &wirepb.Frame_Call{Call: call}})
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != shard.UpSubject("alice", "call") {
		t.Errorf("published on %s; want %s", m.Subject, shard.UpSubject("alice", "call"))
	}
	var up buspb.Up
	if err := proto.Unmarshal(m.Data, &up); err != nil {
		t.Fatal(err)
	}
	if up.EdgeId != "edge-a" || up.ConnId != a.ID() || up.DeviceId != "phone" || up.RequestId != 7 || !proto.Equal(up.GetCall(), call) {
		t.Errorf("Up = %v; want the call from edge-a conn %d phone request 7", &up, a.ID())
	}
}
