package node

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/schemas/wirepb"
)

func (r *rawConn) joinRoom(room string, replay uint32) []*wirepb.Message {
	r.t.Helper()
	r.send(&wirepb.Frame{Id: 3, Body: &wirepb.Frame_JoinRoom{JoinRoom: &wirepb.JoinRoom{RoomId: room, Replay: replay}}})
	for {
		f := r.mustRead()
		if ok := f.GetJoinRoomOk(); ok != nil {
			return ok.Messages
		}
		if f.GetRoomMessage() == nil {
			r.t.Fatalf("join %s: got %v", room, f)
		}
	}
}

func roomSend(room, cmid, text string) *wirepb.Frame {
	return &wirepb.Frame{Id: 4, Body: &wirepb.Frame_Send{Send: &wirepb.Send{
		To:          &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_ROOM, Id: room},
		ClientMsgId: cmid, ContentType: wirepb.ContentType_CONTENT_TYPE_TEXT, Body: []byte(text),
	}}}
}

// nextRoomMessage returns the next RoomMessage on c, or nil when none comes
// within wait.
func nextRoomMessage(t testing.TB, c *rawConn, wait time.Duration) *wirepb.Message {
	t.Helper()
	for {
		f, err := c.read(wait)
		if err != nil {
			return nil
		}
		if m := f.GetRoomMessage(); m != nil {
			return m.Message
		}
	}
}

// TestRoomsAcrossEdges: one logic node and two edge-only nodes, three
// connections on each joined to one room. Every message reaches every other
// member once, on every edge; a late joiner replays the last N; leaving
// stops delivery; nothing of the room lands in a mailbox.
func TestRoomsAcrossEdges(t *testing.T) {
	logic := startNode(t, "", "")
	edgeOnly := func(c *Config) {
		c.Roles = []string{RoleEdge}
		c.NATSURL = logic.NATSURL()
	}
	nodes := []*Node{logic, startNode(t, "", "", edgeOnly), startNode(t, "", "", edgeOnly)}
	var conns []*rawConn
	for i, n := range nodes {
		for j := range 3 {
			c := dialRaw(t, n.TCPAddr())
			c.signIn(fmt.Sprintf("r%d%d", i, j), "d")
			c.joinRoom("lobby", 0)
			conns = append(conns, c)
		}
	}
	const sends = 7
	for k := range sends {
		sender := conns[(k*4)%len(conns)] // senders on all three nodes
		sender.send(roomSend("lobby", fmt.Sprint("c", k), fmt.Sprint("hello ", k)))
		var ack *wirepb.SendAck
		for ack == nil {
			f := sender.mustRead()
			if f.GetRoomMessage() != nil {
				continue
			}
			if ack = f.GetSendAck(); ack == nil || ack.Seq != 0 {
				t.Fatalf("room send %d: got %v; want a SendAck with seq 0", k, f)
			}
		}
		for i, c := range conns {
			if c == sender {
				continue
			}
			m := nextRoomMessage(t, c, 5*time.Second)
			if m == nil || m.MsgId != ack.MsgId || string(m.Body) != fmt.Sprint("hello ", k) {
				t.Fatalf("send %d: conn %d got %v; want %s", k, i, m, ack.MsgId)
			}
		}
	}
	// Exactly once: nothing more is queued for anyone.
	for i, c := range conns {
		if m := nextRoomMessage(t, c, 100*time.Millisecond); m != nil {
			t.Fatalf("conn %d got an extra room message %v", i, m)
		}
	}

	late := dialRaw(t, nodes[2].TCPAddr())
	late.signIn("latecomer", "d")
	replay := late.joinRoom("lobby", 5)
	if len(replay) != 5 {
		t.Fatalf("replay of 5: got %d messages", len(replay))
	}
	for i, m := range replay {
		if want := fmt.Sprint("hello ", sends-5+i); string(m.Body) != want {
			t.Fatalf("replay[%d] = %q; want %q", i, m.Body, want)
		}
	}

	// Leaving stops delivery.
	leaver := conns[4]
	leaver.send(&wirepb.Frame{Id: 6, Body: &wirepb.Frame_LeaveRoom{LeaveRoom: &wirepb.LeaveRoom{RoomId: "lobby"}}})
	if f := leaver.mustRead(); f.GetLeaveRoomOk() == nil {
		t.Fatalf("leave: got %v", f)
	}
	conns[0].send(roomSend("lobby", "after-leave", "bye"))
	if m := nextRoomMessage(t, late, 5*time.Second); m == nil || string(m.Body) != "bye" {
		t.Fatalf("late joiner got %v; want the live message", m)
	}
	if m := nextRoomMessage(t, leaver, 300*time.Millisecond); m != nil {
		t.Fatalf("a connection that left got %v", m)
	}

	// Rooms are read diffusion: no mailbox holds any of it.
	for _, uid := range []string{"r00", "r11", "r22", "latecomer"} {
		if msgs := syncAll(t, logic, uid); len(msgs) != 0 {
			t.Fatalf("%s's mailbox has %d entries; want none from the room", uid, len(msgs))
		}
	}
}

// TestRoleErrors: a role configuration that cannot work is refused at
// start with a message naming the flag.
func TestRoleErrors(t *testing.T) {
	for _, tc := range []struct {
		roles []string
		want  string
	}{
		{[]string{"gateway"}, "--roles"},
		{[]string{RoleEdge}, "--nats-url"},
	} {
		_, err := Start(t.Context(), Config{DataDir: t.TempDir(), Roles: tc.roles, NATSListen: "127.0.0.1:0", TCPListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0"})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("roles %v: err = %v; want one naming %s", tc.roles, err, tc.want)
		}
	}
}
