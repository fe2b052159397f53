package node

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/edge/auth"
	"github.com/parleyim/parley/edge/frame"
	"github.com/parleyim/parley/schemas/wirepb"
)

// TestBadInput sends every kind of bad input over real sockets and checks
// that each gets its error frame and/or close, and that a well-behaved
// session on the same server keeps working throughout.
func TestBadInput(t *testing.T) {
	n := startNode(t, "", "", func(c *Config) { c.SignInTimeout = 1 * time.Second })

	good := dialRaw(t, n.TCPAddr())
	good.signIn("carol", "c1")

	expired, err := auth.Mint([]byte(testSecret), "mallory", -time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	otherSecret, err := auth.Mint([]byte("not-the-secret"), "mallory", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	signIn := func(tok, dev string) *wirepb.Frame {
		return &wirepb.Frame{Id: 1, Body: &wirepb.Frame_SignIn{SignIn: &wirepb.SignIn{Token: tok, DeviceId: dev}}}
	}
	oversize := make([]byte, 4)
	binary.BigEndian.PutUint32(oversize, 1<<30)

	closing := []struct {
		name  string
		bytes []byte        // raw bytes to write, or
		frame *wirepb.Frame // a frame to send
		want  wirepb.ErrorCode
	}{
		{name: "garbage", bytes: append([]byte{0, 0, 0, 8}, bytes.Repeat([]byte{0xff}, 8)...), want: wirepb.ErrorCode_ERROR_CODE_BAD_FRAME},
		{name: "oversized prefix", bytes: oversize, want: wirepb.ErrorCode_ERROR_CODE_FRAME_TOO_LARGE},
		{name: "frame before sign-in", frame: &wirepb.Frame{Id: 1, Body: &wirepb.Frame_Ping{Ping: &wirepb.Ping{}}}, want: wirepb.ErrorCode_ERROR_CODE_NOT_SIGNED_IN},
		{name: "bad token", frame: signIn("not.a.jwt", "d1"), want: wirepb.ErrorCode_ERROR_CODE_UNAUTHENTICATED},
		{name: "wrong secret", frame: signIn(otherSecret, "d1"), want: wirepb.ErrorCode_ERROR_CODE_UNAUTHENTICATED},
		{name: "expired token", frame: signIn(expired, "d1"), want: wirepb.ErrorCode_ERROR_CODE_UNAUTHENTICATED},
		{name: "invalid device id", frame: signIn(token(t, "mallory"), "bad device!"), want: wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{name: "sign-in timeout", want: wirepb.ErrorCode_ERROR_CODE_SIGN_IN_TIMEOUT},
	}
	for _, tc := range closing {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, n.TCPAddr())
			switch {
			case tc.bytes != nil:
				c.write(tc.bytes)
			case tc.frame != nil:
				c.send(tc.frame)
			}
			e := c.expectClose()
			if e.GetCode() != tc.want {
				t.Errorf("closing error = %v; want %v", e, tc.want)
			}
		})
	}

	t.Run("truncated frame then close", func(t *testing.T) {
		c := dialRaw(t, n.TCPAddr())
		c.write([]byte{0, 0, 0, 100, 1, 2, 3})
		c.c.Close()
	})

	// Errors that answer a request and keep the connection.
	c := dialRaw(t, n.TCPAddr())
	c.signIn("mallory", "m1")
	replies := []struct {
		name  string
		frame *wirepb.Frame
		want  wirepb.ErrorCode
	}{
		{"second sign-in", signIn(token(t, "mallory"), "m1"), wirepb.ErrorCode_ERROR_CODE_ALREADY_SIGNED_IN},
		{"empty frame", &wirepb.Frame{Id: 7}, wirepb.ErrorCode_ERROR_CODE_UNKNOWN_FRAME},
		{"server-only frame", &wirepb.Frame{Id: 7, Body: &wirepb.Frame_Push{Push: &wirepb.Push{}}}, wirepb.ErrorCode_ERROR_CODE_UNKNOWN_FRAME},
		{"invalid recipient", sendTo("not valid!", "x1", []byte("hi")), wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{"missing client msg id", sendTo("carol", "", []byte("hi")), wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{"oversized body", sendTo("carol", "x2", bytes.Repeat([]byte("a"), 40<<10)), wirepb.ErrorCode_ERROR_CODE_BODY_TOO_LARGE},
		{"missing group", &wirepb.Frame{Id: 7, Body: &wirepb.Frame_Send{Send: &wirepb.Send{
			To: &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_GROUP, Id: "g1"}, ClientMsgId: "x3"}}}, wirepb.ErrorCode_ERROR_CODE_NOT_FOUND},
		{"unknown conversation type", &wirepb.Frame{Id: 8, Body: &wirepb.Frame_Send{Send: &wirepb.Send{
			To: &wirepb.Conversation{Type: 99, Id: "g1"}, ClientMsgId: "x4"}}}, wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{"unknown call", &wirepb.Frame{Id: 9, Body: &wirepb.Frame_Call{Call: &wirepb.Call{Method: "message.broadcast", ParamsJson: "{}"}}}, wirepb.ErrorCode_ERROR_CODE_NOT_FOUND},
		{"malformed call params", &wirepb.Frame{Id: 10, Body: &wirepb.Frame_Call{Call: &wirepb.Call{Method: "friend.list", ParamsJson: "{nope"}}}, wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{"call acting as someone else", &wirepb.Frame{Id: 11, Body: &wirepb.Frame_Call{Call: &wirepb.Call{Method: "friend.list", ParamsJson: `{"user":"someone-else"}`}}}, wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED},
	}
	for _, tc := range replies {
		t.Run(tc.name, func(t *testing.T) {
			c.send(tc.frame)
			f := c.mustRead()
			if f.GetError().GetCode() != tc.want || f.Id != tc.frame.Id {
				t.Errorf("reply = %v; want error %v with id %d", f, tc.want, tc.frame.Id)
			}
		})
	}

	// The good session still works, and nothing bad reached carol's mailbox.
	good.send(sendTo("carol", "ok-1", []byte("still here")))
	var ack *wirepb.SendAck
	for ack == nil {
		f := good.mustRead()
		if e := f.GetError(); e != nil {
			t.Fatalf("good send failed: %v", e)
		}
		ack = f.GetSendAck()
	}
	if ack.Seq != 1 {
		t.Errorf("carol's first seq = %d; want 1 (nothing bad stored)", ack.Seq)
	}
}

func sendTo(uid, cmid string, body []byte) *wirepb.Frame {
	return &wirepb.Frame{Id: 9, Body: &wirepb.Frame_Send{Send: &wirepb.Send{
		To:          &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_USER, Id: uid},
		ClientMsgId: cmid, ContentType: wirepb.ContentType_CONTENT_TYPE_TEXT, Body: body,
	}}}
}

// TestSlowReaderDisconnected checks that a device that never reads is cut
// off once its queue is full while others keep being served.
func TestSlowReaderDisconnected(t *testing.T) {
	n := startNode(t, "", "")
	lazy := dialRaw(t, n.TCPAddr())
	lazy.signIn("lazy", "l1")
	sender := dialRaw(t, n.TCPAddr())
	sender.signIn("pusher", "p1")
	body := []byte(strings.Repeat("x", 30<<10))
	// The lazy device never reads: pushes pile up until the edge cuts it off
	// (4 MiB queue + socket buffers ≈ a few hundred 30 KiB pushes).
	go func() {
		for i := 0; i < 600; i++ {
			b, _ := proto.Marshal(sendTo("lazy", "m"+strconv.Itoa(i), body))
			if _, err := sender.c.Write(frame.Append(nil, b)); err != nil {
				return
			}
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for n.hub.Conns() > 1 && time.Now().Before(deadline) {
		f, err := sender.read(time.Second)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("sender connection broke: %v", err)
		}
		if e := f.GetError(); e != nil {
			t.Logf("sender got error %v", e)
		}
		if n.hub.Conns() == 1 {
			break
		}
	}
	if got := n.hub.Conns(); got != 1 {
		t.Fatalf("open connections = %d; want 1 (the slow reader disconnected)", got)
	}
}

// TestIdleTimeout: a signed-in connection that sends nothing is closed with
// IDLE_TIMEOUT; one that pings stays.
func TestIdleTimeout(t *testing.T) {
	n := startNode(t, "", "", func(c *Config) { c.IdleTimeout = 1500 * time.Millisecond })
	silent := dialRaw(t, n.TCPAddr())
	silent.signIn("sam", "s1")
	pinger := dialRaw(t, n.TCPAddr())
	pinger.signIn("pat", "p1")
	stop := time.After(3 * time.Second)
	for done := false; !done; {
		select {
		case <-stop:
			done = true
		case <-time.After(500 * time.Millisecond):
			pinger.send(&wirepb.Frame{Id: 3, Body: &wirepb.Frame_Ping{Ping: &wirepb.Ping{}}})
			if f := pinger.mustRead(); f.GetPong() == nil {
				t.Fatalf("ping answered with %v", f)
			}
		}
	}
	if e := silent.expectClose(); e.GetCode() != wirepb.ErrorCode_ERROR_CODE_IDLE_TIMEOUT {
		t.Errorf("silent connection closed with %v; want IDLE_TIMEOUT", e)
	}
}
