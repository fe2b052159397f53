package client

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/schemas/wirepb"
)

// recvRoom reads n messages from c.RoomMessages, failing after testWait.
func recvRoom(t *testing.T, c *Client, n int) []*wirepb.Message {
	t.Helper()
	var out []*wirepb.Message
	timeout := time.After(testWait)
	for len(out) < n {
		select {
		case m, ok := <-c.RoomMessages():
			if !ok {
				t.Fatalf("RoomMessages closed after %d of %d messages; Err() = %v", len(out), n, c.Err())
			}
			out = append(out, m)
		case <-timeout:
			t.Fatalf("got %d of %d room messages in %v: %q", len(out), n, testWait, bodies(out))
		}
	}
	return out
}

// barrier makes one round trip to the fake server: every frame the server
// wrote to c before it has been handled when barrier returns.
func barrier(t *testing.T, c *Client) {
	t.Helper()
	if err := c.Call(testCtx(t), "noop", nil, nil); err != nil {
		t.Fatalf("barrier Call error: %v", err)
	}
}

// expectNoRoom fails if c has a room message waiting, after a barrier.
func expectNoRoom(t *testing.T, c *Client) {
	t.Helper()
	barrier(t, c)
	select {
	case m, ok := <-c.RoomMessages():
		if ok {
			t.Fatalf("unexpected room message %q (msg id %s)", m.GetBody(), m.GetMsgId())
		}
	default:
	}
}

// waitSignIns waits until uid/dev has signed in n times.
func waitSignIns(t *testing.T, s *fakeServer, uid, dev string, n int) {
	t.Helper()
	for s.signInCount(uid, dev) < n {
		waitEvent(t, s, "signin "+uid+" "+dev)
	}
}

func bodies(msgs []*wirepb.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, string(m.GetBody()))
	}
	return out
}

func checkBodies(t *testing.T, what string, msgs []*wirepb.Message, want ...string) {
	t.Helper()
	if got := bodies(msgs); !slices.Equal(got, want) {
		t.Errorf("%s = %q; want %q", what, got, want)
	}
}

func TestRoomJoinReplayAndLive(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := newFakeServer(t)
			for _, b := range []string{"h1", "h2", "h3", "h4", "h5"} {
				s.roomPublish("r1", b)
			}
			alice := dialT(t, tr.addr(s), "alice", "a1")

			replay, err := alice.JoinRoom(testCtx(t), "r1", 3)
			if err != nil {
				t.Fatalf("JoinRoom error: %v", err)
			}
			checkBodies(t, "JoinRoom(r1, 3) replay", replay, "h3", "h4", "h5")
			for _, m := range replay {
				if m.GetSeq() != 0 || m.GetTo().GetType() != wirepb.ConversationType_CONVERSATION_TYPE_ROOM || m.GetTo().GetId() != "r1" {
					t.Errorf("replayed message %v; want seq 0 in room r1", m)
				}
			}

			live := s.roomPublish("r1", "live1")
			checkBodies(t, "live room messages", recvRoom(t, alice, 1), "live1")
			// The server repeats a live message and a replayed one.
			s.roomResend("r1", live)
			s.roomResend("r1", replay[2].GetMsgId())
			expectNoRoom(t, alice)

			// Rooms are not in the mailbox.
			expectNone(t, alice, 50*time.Millisecond)
			if got := alice.MaxSeq(); got != 0 {
				t.Errorf("MaxSeq() after room traffic = %d; want 0", got)
			}
		})
	}
}

func TestRoomLiveBeforeJoinOK(t *testing.T) {
	for _, tc := range []struct {
		name       string
		replay     int
		wantReplay []string
		wantLive   []string
	}{
		// Live messages before JoinRoomOK are in the replay: only there.
		{"in replay", 10, []string{"old", "early1", "early2"}, nil},
		// The replay is cut short: the live one not in it comes out live.
		{"beyond replay", 1, []string{"early2"}, []string{"early1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeServer(t)
			s.onJoin = func(_, room string, n int) *wirepb.Error {
				if n == 1 {
					s.roomPublish(room, "early1")
					s.roomPublish(room, "early2")
				}
				return nil
			}
			s.roomPublish("r1", "old")
			alice := dialT(t, s.tcpURL, "alice", "a1")
			replay, err := alice.JoinRoom(testCtx(t), "r1", tc.replay)
			if err != nil {
				t.Fatalf("JoinRoom error: %v", err)
			}
			checkBodies(t, "replay", replay, tc.wantReplay...)
			checkBodies(t, "live", recvRoom(t, alice, len(tc.wantLive)), tc.wantLive...)
			expectNoRoom(t, alice)
		})
	}
}

func TestRoomRejoinAfterReconnect(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := newFakeServer(t)
			s.onJoin = func(_, room string, n int) *wirepb.Error {
				if n == 2 {
					s.roomInject(room, "missed")  // sent while alice was away
					s.roomPublish(room, "during") // live, before the rejoin's JoinRoomOK
				}
				return nil
			}
			s.roomPublish("r1", "h1")
			alice := dialT(t, tr.addr(s), "alice", "a1")
			replay, err := alice.JoinRoom(testCtx(t), "r1", 5)
			if err != nil {
				t.Fatalf("JoinRoom error: %v", err)
			}
			checkBodies(t, "replay", replay, "h1")
			s.roomPublish("r1", "live1")
			checkBodies(t, "live", recvRoom(t, alice, 1), "live1")

			s.kickAll("alice")
			waitEvent(t, s, "join alice r1")
			// The rejoin's replay is h1 live1 missed during: the app gets the
			// two it missed, once, in order.
			checkBodies(t, "after reconnect", recvRoom(t, alice, 2), "missed", "during")
			s.roomPublish("r1", "live2")
			checkBodies(t, "live after rejoin", recvRoom(t, alice, 1), "live2")
			expectNoRoom(t, alice)
			if got := s.joinCount("alice", "r1"); got != 2 {
				t.Errorf("alice joined r1 %d times; want 2", got)
			}
			if got := s.signInCount("alice", "a1"); got != 2 {
				t.Errorf("alice signed in %d times; want 2", got)
			}
		})
	}
}

func TestRoomLeave(t *testing.T) {
	s := newFakeServer(t)
	alice := dialT(t, s.tcpURL, "alice", "a1")
	if _, err := alice.JoinRoom(testCtx(t), "r1", 0); err != nil {
		t.Fatalf("JoinRoom error: %v", err)
	}
	if _, err := alice.JoinRoom(testCtx(t), "r2", 0); err != nil {
		t.Fatalf("JoinRoom error: %v", err)
	}
	if err := alice.LeaveRoom(testCtx(t), "r1"); err != nil {
		t.Fatalf("LeaveRoom error: %v", err)
	}
	waitEvent(t, s, "leave alice r1")
	s.roomPublish("r1", "after leave")
	s.roomPublish("r2", "still here")
	checkBodies(t, "room messages", recvRoom(t, alice, 1), "still here")

	// After a reconnect the client rejoins r2 only.
	s.kickAll("alice")
	waitEvent(t, s, "join alice r2")
	expectNoRoom(t, alice)
	if got := s.joinCount("alice", "r1"); got != 1 {
		t.Errorf("alice joined r1 %d times; want 1 (no rejoin after LeaveRoom)", got)
	}
	if got := s.joinCount("alice", "r2"); got != 2 {
		t.Errorf("alice joined r2 %d times; want 2", got)
	}
}

func TestRoomSend(t *testing.T) {
	s := newFakeServer(t)
	alice := dialT(t, s.tcpURL, "alice", "a1")
	bob := dialT(t, s.tcpURL, "bob", "b1")
	for _, c := range []*Client{alice, bob} {
		if _, err := c.JoinRoom(testCtx(t), "r1", 10); err != nil {
			t.Fatalf("JoinRoom error: %v", err)
		}
	}
	ack, err := alice.SendRoomText(testCtx(t), "r1", "hello room")
	if err != nil {
		t.Fatalf("SendRoomText error: %v", err)
	}
	if ack.GetSeq() != 0 || ack.GetMsgId() == "" {
		t.Errorf("room SendAck = %v; want seq 0 and a msg id", ack)
	}
	got := recvRoom(t, bob, 1)[0]
	if got.GetMsgId() != ack.GetMsgId() || got.GetFromUser() != "alice" || string(got.GetBody()) != "hello room" {
		t.Errorf("bob got %v; want alice's %q, msg id %s", got, "hello room", ack.GetMsgId())
	}
	// The sender sees its message once: from the SendAck, the server's echo
	// deduplicated.
	own := recvRoom(t, alice, 1)[0]
	if own.GetMsgId() != ack.GetMsgId() || own.GetSeq() != 0 || own.GetTo().GetId() != "r1" || own.GetFromDevice() != "a1" {
		t.Errorf("alice's own room message = %v; want msg id %s, seq 0, room r1", own, ack.GetMsgId())
	}
	expectNoRoom(t, alice)

	// No mailbox entry, no seq change, no Sync.
	expectNone(t, alice, 50*time.Millisecond)
	if got := alice.MaxSeq(); got != 0 {
		t.Errorf("alice.MaxSeq() after a room send = %d; want 0", got)
	}
	if got := s.boxLen("alice"); got != 0 {
		t.Errorf("alice's mailbox holds %d entries; want 0", got)
	}
	if got := s.syncAfters(); len(got) != 0 {
		t.Errorf("server saw syncs after %v; want none", got)
	}
	// A mailbox send afterwards still starts at seq 1.
	if ack, err := alice.SendText(testCtx(t), "bob", "dm"); err != nil || ack.GetSeq() != 1 {
		t.Fatalf("SendText after a room send = %v, %v; want seq 1", ack, err)
	}
	checkSeqs(t, recvN(t, alice, 1), 1)
}

// TestRoomSendRetriedAfterRejoin: a room Send cut by a disconnect is
// retried on the new connection, where the server accepts it only after the
// client's automatic JoinRoom.
func TestRoomSendRetriedAfterRejoin(t *testing.T) {
	for i := range 5 {
		s := newFakeServer(t, func(s *fakeServer) {
			s.onSend = func(n int, _ *wirepb.Send) (sendAction, *wirepb.Error) {
				if n == 1 {
					return sendStoreKill, nil // stored, then the connection dies before the ack
				}
				return sendOK, nil
			}
		})
		alice := dialT(t, s.tcpURL, "alice", "a1")
		if _, err := alice.JoinRoom(testCtx(t), "r1", 10); err != nil {
			t.Fatalf("JoinRoom error: %v", err)
		}
		ack, err := alice.SendRoomText(testCtx(t), "r1", "survives")
		if err != nil {
			t.Fatalf("round %d: SendRoomText across a reconnect error: %v", i, err)
		}
		if !ack.GetDuplicate() || ack.GetSeq() != 0 {
			t.Errorf("SendAck = %v; want the original, duplicate set, seq 0", ack)
		}
		// In the rejoin's replay and in the SendAck: once on RoomMessages.
		if m := recvRoom(t, alice, 1)[0]; m.GetMsgId() != ack.GetMsgId() {
			t.Errorf("room message %v; want msg id %s", m, ack.GetMsgId())
		}
		expectNoRoom(t, alice)
	}
}

func TestRoomSendNotJoined(t *testing.T) {
	s := newFakeServer(t)
	alice := dialT(t, s.tcpURL, "alice", "a1")
	_, err := alice.SendRoomText(testCtx(t), "r1", "x")
	if !errors.Is(err, &Error{Code: wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED}) {
		t.Fatalf("SendRoomText to a room not joined error = %v; want *Error PERMISSION_DENIED", err)
	}
}

func TestRoomJoinRefused(t *testing.T) {
	s := newFakeServer(t, func(s *fakeServer) {
		s.onJoin = func(string, string, int) *wirepb.Error {
			return &wirepb.Error{Code: wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, Message: "banned"}
		}
	})
	alice := dialT(t, s.tcpURL, "alice", "a1")
	_, err := alice.JoinRoom(testCtx(t), "r1", 5)
	if !errors.Is(err, &Error{Code: wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED}) {
		t.Fatalf("JoinRoom error = %v; want *Error PERMISSION_DENIED", err)
	}
	// The client forgot the room: no rejoin after a reconnect.
	s.kickAll("alice")
	waitSignIns(t, s, "alice", "a1", 2)
	barrier(t, alice)
	if got := s.joinCount("alice", "r1"); got != 1 {
		t.Errorf("alice joined r1 %d times; want 1", got)
	}
}

func TestRoomLostOnRejoin(t *testing.T) {
	type lost struct {
		room string
		err  error
	}
	lostCh := make(chan lost, 1)
	s := newFakeServer(t, func(s *fakeServer) {
		s.onJoin = func(_, _ string, n int) *wirepb.Error {
			if n > 1 {
				return &wirepb.Error{Code: wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, Message: "kicked"}
			}
			return nil
		}
	})
	alice := dialT(t, s.tcpURL, "alice", "a1", func(c *Config) {
		c.OnRoomLost = func(room string, err error) { lostCh <- lost{room, err} }
	})
	if _, err := alice.JoinRoom(testCtx(t), "r1", 0); err != nil {
		t.Fatalf("JoinRoom error: %v", err)
	}
	s.kickAll("alice")
	select {
	case l := <-lostCh:
		if l.room != "r1" || !errors.Is(l.err, &Error{Code: wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED}) {
			t.Errorf("OnRoomLost(%q, %v); want r1, *Error PERMISSION_DENIED", l.room, l.err)
		}
	case <-time.After(testWait):
		t.Fatal("OnRoomLost not called after the rejoin was refused")
	}
	s.kickAll("alice")
	waitSignIns(t, s, "alice", "a1", 3)
	barrier(t, alice)
	if got := s.joinCount("alice", "r1"); got != 2 {
		t.Errorf("alice joined r1 %d times; want 2 (no rejoin once lost)", got)
	}
}

func TestLiveQueuesDropOldest(t *testing.T) {
	s := newFakeServer(t)
	alice := dialT(t, s.tcpURL, "alice", "a1", func(c *Config) {
		c.RoomQueueSize = 2
		c.TransientQueueSize = 2
	})
	if _, err := alice.JoinRoom(testCtx(t), "r1", 0); err != nil {
		t.Fatalf("JoinRoom error: %v", err)
	}
	for _, b := range []string{"1", "2", "3", "4", "5"} {
		s.roomPublish("r1", "room"+b)
		s.pushTransient("alice", "note"+b)
	}
	barrier(t, alice) // the reader never waited for the app
	if got := alice.Stats(); got.RoomDropped != 3 || got.TransientDropped != 3 {
		t.Errorf("Stats() = %+v; want 3 room and 3 transient messages dropped", got)
	}
	checkBodies(t, "room messages kept", recvRoom(t, alice, 2), "room4", "room5")
	var notes []*wirepb.Message
	for range 2 {
		notes = append(notes, <-alice.Transient())
	}
	checkBodies(t, "transient pushes kept", notes, "note4", "note5")
}

func TestLiveChannelsClosedOnClose(t *testing.T) {
	s := newFakeServer(t)
	alice := dialT(t, s.tcpURL, "alice", "a1")
	if _, err := alice.JoinRoom(testCtx(t), "r1", 0); err != nil {
		t.Fatalf("JoinRoom error: %v", err)
	}
	s.roomPublish("r1", "buffered")
	barrier(t, alice)
	alice.Close()
	// What was buffered can still be read, then the channel ends.
	if m, ok := <-alice.RoomMessages(); !ok || string(m.GetBody()) != "buffered" {
		t.Errorf("first read after Close = %v, %v; want the buffered message", m, ok)
	}
	if _, ok := <-alice.RoomMessages(); ok {
		t.Error("RoomMessages open after Close; want closed")
	}
	if _, ok := <-alice.Transient(); ok {
		t.Error("Transient open after Close; want closed")
	}
	if _, err := alice.JoinRoom(testCtx(t), "r1", 0); !errors.Is(err, ErrClosed) {
		t.Errorf("JoinRoom after Close error = %v; want ErrClosed", err)
	}
}

// TestRoomConcurrentJoinsAndReconnects stresses joins, leaves and live
// traffic across reconnects under the race detector: no message twice.
func TestRoomConcurrentJoinsAndReconnects(t *testing.T) {
	s := newFakeServer(t)
	alice := dialT(t, s.tcpURL, "alice", "a1")
	rooms := []string{"r1", "r2", "r3"}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.roomPublish(rooms[i%len(rooms)], "x")
			if i%50 == 49 {
				s.kickAll("alice")
			}
			time.Sleep(time.Millisecond)
		}
	})
	seen := make(map[string]bool)
	var dups []string
	wg.Go(func() {
		for m := range alice.RoomMessages() {
			if seen[m.GetMsgId()] {
				dups = append(dups, m.GetMsgId())
			}
			seen[m.GetMsgId()] = true
		}
	})
	for i := range 30 {
		r := rooms[i%len(rooms)]
		if _, err := alice.JoinRoom(testCtx(t), r, 5); err != nil {
			t.Errorf("JoinRoom(%s) error: %v", r, err)
		}
		if i%4 == 3 {
			_ = alice.LeaveRoom(testCtx(t), r)
		}
		time.Sleep(3 * time.Millisecond)
	}
	close(stop)
	alice.Close()
	wg.Wait()
	if len(dups) > 0 {
		t.Errorf("RoomMessages repeated msg ids %q", dups)
	}
}
