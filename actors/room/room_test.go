package room

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/actors/natstest"
	"github.com/parleyim/parley/schemas/wirepb"
)

// startJS runs an embedded NATS server with JetStream on a random port and
// returns a connection and its JetStream context.
func startJS(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc := natstest.Connect(t, natstest.Start(t))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func roomMsg(roomID string, i int) *wirepb.Message {
	return &wirepb.Message{
		MsgId:       fmt.Sprintf("m%05d", i),
		To:          &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_ROOM, Id: roomID},
		FromUser:    "alice",
		FromDevice:  "phone",
		ClientMsgId: fmt.Sprintf("c%d", i),
		ContentType: wirepb.ContentType_CONTENT_TYPE_TEXT,
		Body:        []byte(fmt.Sprintf("hello %d", i)),
		CreatedAtMs: int64(i),
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestReplayKeepsLastPerRoom(t *testing.T) {
	_, js := startJS(t)
	ctx := ctxT(t)
	if _, err := EnsureStream(ctx, js, Config{MaxPerRoom: 100}); err != nil {
		t.Fatal(err)
	}
	for i := range 150 {
		if _, _, err := Publish(ctx, js, roomMsg("lobby", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if _, _, err := Publish(ctx, js, roomMsg("other", 1000+i), ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		room        string
		n           int
		first, want int // msg index of the first message, count
	}{
		{"lobby", 10, 140, 10},
		{"lobby", 100, 50, 100},
		{"lobby", 500, 50, 100},
		{"lobby", 1, 149, 1},
		{"other", 10, 1000, 3},
		{"other", 2, 1001, 2},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.room, tc.n), func(t *testing.T) {
			got, err := Replay(ctx, js, tc.room, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want {
				t.Fatalf("Replay(%q, %d) returned %d messages; want %d", tc.room, tc.n, len(got), tc.want)
			}
			for i, m := range got {
				if want := roomMsg(tc.room, tc.first+i); !proto.Equal(m, want) {
					t.Fatalf("Replay(%q, %d)[%d] = %v; want %v", tc.room, tc.n, i, m, want)
				}
			}
		})
	}
}

func TestReplayEmptyRoomIsFast(t *testing.T) {
	_, js := startJS(t)
	ctx := ctxT(t)
	if _, err := EnsureStream(ctx, js, Config{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, err := Replay(ctx, js, "nobody-here", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("Replay of an empty room returned %d messages", len(got))
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("Replay of an empty room took %v; want a round trip, not a wait", d)
	}
	// No consumer is left behind.
	st, err := js.Stream(ctx, Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 0 {
		t.Errorf("stream has %d consumers after replay; want 0", info.State.Consumers)
	}
}

func TestReplaySkipsUndecodable(t *testing.T) {
	_, js := startJS(t)
	ctx := ctxT(t)
	if _, err := EnsureStream(ctx, js, Config{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Publish(ctx, js, roomMsg("r", 1), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, Subject("r"), []byte{0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Publish(ctx, js, roomMsg("r", 2), ""); err != nil {
		t.Fatal(err)
	}
	got, err := Replay(ctx, js, "r", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].MsgId != "m00001" || got[1].MsgId != "m00002" {
		t.Fatalf("Replay = %v; want m00001, m00002", got)
	}
}

func TestPublishDedupe(t *testing.T) {
	_, js := startJS(t)
	ctx := ctxT(t)
	if _, err := EnsureStream(ctx, js, Config{}); err != nil {
		t.Fatal(err)
	}
	first := roomMsg("r", 1)
	stored, dup, err := Publish(ctx, js, first, "alice/phone/c1")
	if err != nil || dup || stored != first {
		t.Fatalf("first Publish = %v, %v, %v; want the message, false, nil", stored, dup, err)
	}
	resend := roomMsg("r", 1)
	resend.MsgId, resend.CreatedAtMs = "another-id", 99
	stored, dup, err = Publish(ctx, js, resend, "alice/phone/c1")
	if err != nil || !dup {
		t.Fatalf("resend Publish = %v, %v; want duplicate", dup, err)
	}
	if !proto.Equal(stored, first) {
		t.Errorf("resend returned %v; want the original %v", stored, first)
	}
	got, err := Replay(ctx, js, "r", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Errorf("room holds %d messages after a resend; want 1", len(got))
	}
}

func TestLiveSubject(t *testing.T) {
	nc, js := startJS(t)
	ctx := ctxT(t)
	if _, err := EnsureStream(ctx, js, Config{}); err != nil {
		t.Fatal(err)
	}
	sub, err := nc.SubscribeSync(LiveSubject("r"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := nc.SubscribeSync(LiveSubject("elsewhere"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	sent := roomMsg("r", 7)
	if _, _, err := Publish(ctx, js, sent, "d1", FromConn("edge-1", 42)); err != nil {
		t.Fatal(err)
	}
	// A resend is not stored, so it is not delivered live either.
	if _, _, err := Publish(ctx, js, sent, "d1", FromConn("edge-1", 42)); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got wirepb.Message
	if err := proto.Unmarshal(m.Data, &got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, sent) {
		t.Errorf("live message = %v; want %v", &got, sent)
	}
	edgeID, connID, ok := Origin(m.Header)
	if !ok || edgeID != "edge-1" || connID != 42 {
		t.Errorf("Origin = %q, %d, %v; want edge-1, 42, true", edgeID, connID, ok)
	}
	if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
		t.Errorf("the resend was delivered live: %s", m.Subject)
	}
	if m, err := other.NextMsg(50 * time.Millisecond); err == nil {
		t.Errorf("another room's subscriber got %s", m.Subject)
	}
}

func TestPublishRejectsNonRoom(t *testing.T) {
	_, js := startJS(t)
	ctx := ctxT(t)
	m := roomMsg("r", 1)
	m.To.Type = wirepb.ConversationType_CONVERSATION_TYPE_USER
	if _, _, err := Publish(ctx, js, m, ""); err == nil {
		t.Error("Publish to a user conversation succeeded; want an error")
	}
	m = roomMsg("bad.id", 1)
	if _, _, err := Publish(ctx, js, m, ""); err == nil {
		t.Error("Publish to room \"bad.id\" succeeded; want an error")
	}
	if _, err := Replay(ctx, js, "bad.id", 1); err == nil {
		t.Error("Replay of room \"bad.id\" succeeded; want an error")
	}
}
