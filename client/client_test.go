package client

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/schemas/wirepb"
)

const testWait = 10 * time.Second

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// dialT signs uid in on addr as device dev and closes the client at cleanup.
func dialT(t *testing.T, addr, uid, dev string, mods ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		Addr:       addr,
		Token:      "tok:" + uid,
		DeviceID:   dev,
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond,
		Logger:     testLogger(t).With("user", uid),
	}
	if strings.HasSuffix(addr, "#json") {
		cfg.Addr, cfg.JSON = strings.TrimSuffix(addr, "#json"), true
	}
	for _, m := range mods {
		m(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial(%s, %s/%s) error: %v", addr, uid, dev, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	t.Cleanup(cancel)
	return ctx
}

// recvN reads n messages from c, failing after testWait.
func recvN(t *testing.T, c *Client, n int) []*wirepb.Message {
	t.Helper()
	var out []*wirepb.Message
	timeout := time.After(testWait)
	for len(out) < n {
		select {
		case m, ok := <-c.Messages():
			if !ok {
				t.Fatalf("Messages closed after %d of %d messages; Err() = %v", len(out), n, c.Err())
			}
			out = append(out, m)
		case <-timeout:
			t.Fatalf("got %d of %d messages in %v", len(out), n, testWait)
		}
	}
	return out
}

// checkSeqs fails unless msgs have seqs first, first+1, ….
func checkSeqs(t *testing.T, msgs []*wirepb.Message, first uint64) {
	t.Helper()
	for i, m := range msgs {
		if want := first + uint64(i); m.GetSeq() != want {
			var got []uint64
			for _, m := range msgs {
				got = append(got, m.GetSeq())
			}
			t.Fatalf("message seqs = %v; want consecutive from %d", got, first)
		}
	}
}

// expectNone fails if c delivers a message within d.
func expectNone(t *testing.T, c *Client, d time.Duration) {
	t.Helper()
	select {
	case m, ok := <-c.Messages():
		if ok {
			t.Fatalf("unexpected message seq %d %q", m.GetSeq(), m.GetBody())
		}
	case <-time.After(d):
	}
}

// waitEvent waits for the fake server to report want.
func waitEvent(t *testing.T, s *fakeServer, want string) {
	t.Helper()
	timeout := time.After(testWait)
	for {
		select {
		case got := <-s.events:
			if got == want {
				return
			}
		case <-timeout:
			t.Fatalf("server event %q did not happen in %v", want, testWait)
		}
	}
}

var transports = []struct {
	name string
	addr func(*fakeServer) string
}{
	{"tcp", func(s *fakeServer) string { return s.tcpURL }},
	{"ws-proto", func(s *fakeServer) string { return s.wsURL }},
	{"ws-json", func(s *fakeServer) string { return s.wsURL + "#json" }},
}

func TestSendAndReceive(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := newFakeServer(t)
			addr := tr.addr(s)
			alice := dialT(t, addr, "alice", "a1")
			bob := dialT(t, addr, "bob", "b1")
			if got := alice.UserID(); got != "alice" {
				t.Errorf("UserID() = %q; want alice", got)
			}

			ack, err := alice.SendText(testCtx(t), "bob", "hi bob")
			if err != nil {
				t.Fatalf("SendText error: %v", err)
			}
			if ack.GetSeq() != 1 || ack.GetMsgId() == "" || ack.GetClientMsgId() == "" || ack.GetDuplicate() {
				t.Errorf("SendAck = %v; want seq 1, a msg id and client msg id, not duplicate", ack)
			}

			got := recvN(t, bob, 1)[0]
			if got.GetSeq() != 1 || got.GetFromUser() != "alice" || got.GetFromDevice() != "a1" ||
				string(got.GetBody()) != "hi bob" || got.GetMsgId() != ack.GetMsgId() ||
				got.GetContentType() != wirepb.ContentType_CONTENT_TYPE_TEXT {
				t.Errorf("bob got %v; want seq 1 text %q from alice/a1, msg id %s", got, "hi bob", ack.GetMsgId())
			}

			// The sender's own mailbox entry comes out of Messages too.
			own := recvN(t, alice, 1)[0]
			if own.GetSeq() != ack.GetSeq() || own.GetMsgId() != ack.GetMsgId() || own.GetFromUser() != "alice" ||
				own.GetClientMsgId() != ack.GetClientMsgId() || own.GetTo().GetId() != "bob" ||
				own.GetCreatedAtMs() != ack.GetCreatedAtMs() || string(own.GetBody()) != "hi bob" {
				t.Errorf("alice's own entry = %v; want the sent message at seq %d", own, ack.GetSeq())
			}

			// And the other way, to check bob's sending side.
			if _, err := bob.SendText(testCtx(t), "alice", "hi alice"); err != nil {
				t.Fatalf("SendText error: %v", err)
			}
			if got := recvN(t, alice, 1)[0]; got.GetSeq() != 2 || string(got.GetBody()) != "hi alice" {
				t.Errorf("alice got %v; want seq 2 %q", got, "hi alice")
			}
			if got := alice.MaxSeq(); got != 2 {
				t.Errorf("alice.MaxSeq() = %d; want 2", got)
			}
		})
	}
}

func TestDialBadToken(t *testing.T) {
	s := newFakeServer(t)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			addr, json := tr.addr(s), false
			if a, ok := strings.CutSuffix(addr, "#json"); ok {
				addr, json = a, true
			}
			c, err := Dial(testCtx(t), Config{Addr: addr, JSON: json, Token: "nope", DeviceID: "d1"})
			var e *Error
			if !errors.As(err, &e) || e.Code != wirepb.ErrorCode_ERROR_CODE_UNAUTHENTICATED || e.Temporary {
				t.Fatalf("Dial with a bad token = %v, %v; want a non-temporary *Error UNAUTHENTICATED", c, err)
			}
		})
	}
}

func TestDialUnreachable(t *testing.T) {
	s := newFakeServer(t)
	addr := s.tcpURL
	s.close()
	_, err := Dial(testCtx(t), Config{Addr: addr, Token: "tok:alice", DeviceID: "d1"})
	if !errors.Is(err, ErrDisconnected) {
		t.Fatalf("Dial to a closed port error = %v; want ErrDisconnected", err)
	}
}

func TestSendRetriesOnTimeout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		action  sendAction
		wantDup bool
	}{
		{"request lost", sendDrop, false},
		{"reply lost", sendNoReply, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeServer(t, func(s *fakeServer) {
				s.onSend = func(n int, _ *wirepb.Send) (sendAction, *wirepb.Error) {
					if n == 1 {
						return tc.action, nil
					}
					return sendOK, nil
				}
			})
			alice := dialT(t, s.tcpURL, "alice", "a1", func(c *Config) { c.RequestTimeout = 200 * time.Millisecond })
			ack, err := alice.SendText(testCtx(t), "bob", "hello", WithClientMsgID("cm-1"))
			if err != nil {
				t.Fatalf("SendText error: %v", err)
			}
			if ack.GetSeq() != 1 || ack.GetClientMsgId() != "cm-1" || ack.GetDuplicate() != tc.wantDup {
				t.Errorf("SendAck = %v; want seq 1, client msg id cm-1, duplicate %v", ack, tc.wantDup)
			}
			if got := s.sendIDs(); len(got) != 2 || got[0] != "cm-1" || got[1] != "cm-1" {
				t.Errorf("server saw sends %q; want [cm-1 cm-1]", got)
			}
			if got := s.boxLen("alice"); got != 1 {
				t.Errorf("alice's mailbox holds %d entries; want 1", got)
			}
		})
	}
}

func TestSendRetriesTemporaryError(t *testing.T) {
	s := newFakeServer(t, func(s *fakeServer) {
		s.onSend = func(n int, _ *wirepb.Send) (sendAction, *wirepb.Error) {
			if n == 1 {
				return sendOK, &wirepb.Error{Code: wirepb.ErrorCode_ERROR_CODE_RATE_LIMITED, Temporary: true}
			}
			return sendOK, nil
		}
	})
	alice := dialT(t, s.tcpURL, "alice", "a1")
	ack, err := alice.SendText(testCtx(t), "bob", "hello")
	if err != nil {
		t.Fatalf("SendText error: %v", err)
	}
	got := s.sendIDs()
	if len(got) != 2 || got[0] != got[1] || got[0] != ack.GetClientMsgId() {
		t.Errorf("server saw sends %q; want the client msg id %q twice", got, ack.GetClientMsgId())
	}
}

func TestSendNonTemporaryErrorReturned(t *testing.T) {
	s := newFakeServer(t, func(s *fakeServer) {
		s.onSend = func(int, *wirepb.Send) (sendAction, *wirepb.Error) {
			return sendOK, &wirepb.Error{Code: wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, Message: "blocked"}
		}
	})
	alice := dialT(t, s.tcpURL, "alice", "a1")
	_, err := alice.SendText(testCtx(t), "bob", "hello", WithClientMsgID("cm-9"))
	var e *Error
	if !errors.As(err, &e) || e.Code != wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED || e.ClientMsgID != "cm-9" || e.Message != "blocked" {
		t.Fatalf("SendText error = %v; want *Error PERMISSION_DENIED for cm-9", err)
	}
	if !errors.Is(err, &Error{Code: wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED}) {
		t.Errorf("errors.Is(%v, &Error{PERMISSION_DENIED}) = false; want true", err)
	}
	if got := s.sendIDs(); len(got) != 1 {
		t.Errorf("server saw %d sends; want 1 (no retry)", len(got))
	}
}

func TestSendOversizedReturnsError(t *testing.T) {
	s := newFakeServer(t)
	alice := dialT(t, s.tcpURL, "alice", "a1")
	_, err := alice.Send(testCtx(t), &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_USER, Id: "bob"},
		wirepb.ContentType_CONTENT_TYPE_FILE, make([]byte, maxSendFrame+1))
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Send of %d bytes error = %v; want ErrFrameTooLarge", maxSendFrame+1, err)
	}
	if _, err := alice.SendText(testCtx(t), "bob", "still connected"); err != nil {
		t.Fatalf("SendText after an oversized Send error: %v", err)
	}
}

func TestGapTriggersSync(t *testing.T) {
	s := newFakeServer(t, func(s *fakeServer) {
		s.skipPush = func(uid, _ string, m *wirepb.Message) bool {
			return uid == "bob" && (m.GetSeq() == 2 || m.GetSeq() == 3)
		}
	})
	alice := dialT(t, s.tcpURL, "alice", "a1")
	bob := dialT(t, s.tcpURL, "bob", "b1")
	for i := range 4 {
		if _, err := alice.SendText(testCtx(t), "bob", string(rune('a'+i))); err != nil {
			t.Fatalf("SendText error: %v", err)
		}
	}
	msgs := recvN(t, bob, 4)
	checkSeqs(t, msgs, 1)
	for i, m := range msgs {
		if want := string(rune('a' + i)); string(m.GetBody()) != want {
			t.Errorf("message %d body = %q; want %q", i, m.GetBody(), want)
		}
	}
	found := false
	for _, a := range s.syncAfters() {
		found = found || a == 1
	}
	if !found {
		t.Errorf("server saw syncs after %v; want one after 1", s.syncAfters())
	}
	expectNone(t, bob, 100*time.Millisecond)
}

func TestDuplicatesDropped(t *testing.T) {
	s := newFakeServer(t, func(s *fakeServer) { s.dupPush = true })
	alice := dialT(t, s.tcpURL, "alice", "a1")
	bob := dialT(t, s.tcpURL, "bob", "b1")
	for range 5 {
		if _, err := alice.SendText(testCtx(t), "bob", "x"); err != nil {
			t.Fatalf("SendText error: %v", err)
		}
	}
	checkSeqs(t, recvN(t, bob, 5), 1)
	// A sync over entries the client holds delivers nothing again.
	if err := bob.Sync(testCtx(t)); err != nil {
		t.Fatalf("Sync error: %v", err)
	}
	s.mu.Lock()
	replay := append([]*wirepb.Message(nil), s.boxes["bob"]...)
	s.mu.Unlock()
	bob.accept(replay...) // a replayed page, as a late SyncBatch would be
	expectNone(t, bob, 100*time.Millisecond)
}

func TestLastSeqAndSync(t *testing.T) {
	s := newFakeServer(t, func(s *fakeServer) { s.syncLimit = 2 })
	for i := range 7 {
		s.inject("bob", string(rune('a'+i)))
	}
	bob := dialT(t, s.tcpURL, "bob", "b1", func(c *Config) { c.LastSeq = 2 })
	if err := bob.Sync(testCtx(t)); err != nil {
		t.Fatalf("Sync error: %v", err)
	}
	if got := bob.MaxSeq(); got != 7 {
		t.Errorf("MaxSeq() after Sync = %d; want 7", got)
	}
	msgs := recvN(t, bob, 5)
	checkSeqs(t, msgs, 3)
	if string(msgs[0].GetBody()) != "c" {
		t.Errorf("first message body = %q; want %q", msgs[0].GetBody(), "c")
	}
	expectNone(t, bob, 100*time.Millisecond)
}

// TestCatchUpPages checks that a catch-up asks for the server's largest page:
// one round trip per page is what bounds the sync rate.
func TestCatchUpPages(t *testing.T) {
	s := newFakeServer(t)
	for range 2500 {
		s.inject("bob", "x")
	}
	bob := dialT(t, s.tcpURL, "bob", "b1")
	checkSeqs(t, recvN(t, bob, 2500), 1)
	if got, want := s.syncAfters(), []uint64{0, 1000, 2000}; !slices.Equal(got, want) {
		t.Errorf("server saw syncs after %v; want %v (pages of %d)", got, want, syncPage)
	}
}

func TestResumeFromAck(t *testing.T) {
	s := newFakeServer(t)
	for range 3 {
		s.inject("bob", "old")
	}
	bob := dialT(t, s.tcpURL, "bob", "b1")
	checkSeqs(t, recvN(t, bob, 3), 1)
	bob.Close()
	waitEvent(t, s, "ack bob b1 3")
	s.inject("bob", "new")

	again := dialT(t, s.tcpURL, "bob", "b1", func(c *Config) { c.ResumeFromAck = true })
	msgs := recvN(t, again, 1)
	if msgs[0].GetSeq() != 4 || string(msgs[0].GetBody()) != "new" {
		t.Errorf("after resuming from ack 3 got %v; want seq 4 %q", msgs[0], "new")
	}
}

func TestReconnectResyncs(t *testing.T) {
	for _, tc := range []struct {
		name string
		code []wirepb.ErrorCode
	}{
		{"socket closed", nil},
		{"shutting down", []wirepb.ErrorCode{wirepb.ErrorCode_ERROR_CODE_SHUTTING_DOWN}},
		{"slow consumer", []wirepb.ErrorCode{wirepb.ErrorCode_ERROR_CODE_SLOW_CONSUMER}},
	} {
		for _, tr := range transports {
			t.Run(tc.name+"/"+tr.name, func(t *testing.T) {
				s := newFakeServer(t)
				addr := tr.addr(s)
				alice := dialT(t, addr, "alice", "a1")
				bob := dialT(t, addr, "bob", "b1")
				if _, err := alice.SendText(testCtx(t), "bob", "one"); err != nil {
					t.Fatalf("SendText error: %v", err)
				}
				checkSeqs(t, recvN(t, bob, 1), 1)

				// Entries committed while bob's pushes are lost.
				s.inject("bob", "two")
				s.inject("bob", "three")
				s.kickAll("bob", tc.code...)

				msgs := recvN(t, bob, 2)
				checkSeqs(t, msgs, 2)
				if string(msgs[0].GetBody()) != "two" || string(msgs[1].GetBody()) != "three" {
					t.Errorf("after reconnect got %q, %q; want two, three", msgs[0].GetBody(), msgs[1].GetBody())
				}
				if got := s.signInCount("bob", "b1"); got != 2 {
					t.Errorf("bob signed in %d times; want 2", got)
				}
				// The new connection works both ways.
				if _, err := bob.SendText(testCtx(t), "alice", "back"); err != nil {
					t.Fatalf("SendText after reconnect error: %v", err)
				}
				checkSeqs(t, recvN(t, bob, 1), 4)
			})
		}
	}
}

func TestSendRetriedAcrossReconnect(t *testing.T) {
	s := newFakeServer(t, func(s *fakeServer) {
		s.onSend = func(n int, _ *wirepb.Send) (sendAction, *wirepb.Error) {
			if n == 1 {
				return sendStoreKill, nil // stored, then the connection dies before the ack
			}
			return sendOK, nil
		}
	})
	alice := dialT(t, s.tcpURL, "alice", "a1")
	ack, err := alice.SendText(testCtx(t), "bob", "survives")
	if err != nil {
		t.Fatalf("SendText error: %v", err)
	}
	if !ack.GetDuplicate() || ack.GetSeq() != 1 {
		t.Errorf("SendAck = %v; want the original seq 1 with duplicate set", ack)
	}
	if got := s.sendIDs(); len(got) != 2 || got[0] != got[1] {
		t.Errorf("server saw sends %q; want one client msg id twice", got)
	}
	if got := s.boxLen("bob"); got != 1 {
		t.Errorf("bob's mailbox holds %d entries; want 1", got)
	}
	if got := s.signInCount("alice", "a1"); got != 2 {
		t.Errorf("alice signed in %d times; want 2", got)
	}
	msgs := recvN(t, alice, 1)
	if msgs[0].GetSeq() != 1 || string(msgs[0].GetBody()) != "survives" {
		t.Errorf("alice's own entry = %v; want seq 1 %q", msgs[0], "survives")
	}
}

func TestReplacedStops(t *testing.T) {
	s := newFakeServer(t)
	bob := dialT(t, s.tcpURL, "bob", "b1")
	s.kickAll("bob", wirepb.ErrorCode_ERROR_CODE_REPLACED)
	select {
	case _, ok := <-bob.Messages():
		if ok {
			t.Fatal("got a message; want Messages closed")
		}
	case <-time.After(testWait):
		t.Fatal("Messages not closed after REPLACED")
	}
	if err := bob.Err(); !errors.Is(err, &Error{Code: wirepb.ErrorCode_ERROR_CODE_REPLACED}) {
		t.Errorf("Err() = %v; want *Error REPLACED", err)
	}
	if _, err := bob.SendText(testCtx(t), "alice", "x"); !errors.Is(err, &Error{Code: wirepb.ErrorCode_ERROR_CODE_REPLACED}) {
		t.Errorf("SendText after REPLACED error = %v; want *Error REPLACED", err)
	}
	if got := s.signInCount("bob", "b1"); got != 1 {
		t.Errorf("bob signed in %d times; want 1 (no reconnect)", got)
	}
}

func TestDisableReconnect(t *testing.T) {
	s := newFakeServer(t)
	bob := dialT(t, s.tcpURL, "bob", "b1", func(c *Config) { c.DisableReconnect = true })
	s.kickAll("bob")
	select {
	case _, ok := <-bob.Messages():
		if ok {
			t.Fatal("got a message; want Messages closed")
		}
	case <-time.After(testWait):
		t.Fatal("Messages not closed after a disconnect with DisableReconnect")
	}
	if err := bob.Err(); !errors.Is(err, ErrDisconnected) {
		t.Errorf("Err() = %v; want ErrDisconnected", err)
	}
	if _, err := bob.SendText(testCtx(t), "alice", "x"); !errors.Is(err, ErrDisconnected) {
		t.Errorf("SendText after the end error = %v; want ErrDisconnected", err)
	}
}

func TestAcks(t *testing.T) {
	s := newFakeServer(t)
	alice := dialT(t, s.tcpURL, "alice", "a1", func(c *Config) { c.SendOnly = true })
	bob := dialT(t, s.tcpURL, "bob", "b1")
	for range 3 {
		if _, err := alice.SendText(testCtx(t), "bob", "x"); err != nil {
			t.Fatalf("SendText error: %v", err)
		}
	}
	checkSeqs(t, recvN(t, bob, 3), 1)
	waitEvent(t, s, "ack bob b1 3")
	// Close acks what was received since the last Ack.
	for range 2 {
		if _, err := alice.SendText(testCtx(t), "bob", "x"); err != nil {
			t.Fatalf("SendText error: %v", err)
		}
	}
	checkSeqs(t, recvN(t, bob, 2), 4)
	bob.Close()
	waitEvent(t, s, "ack bob b1 5")
	if _, ok := <-bob.Messages(); ok {
		t.Error("Messages delivered after Close; want it closed")
	}
	if err := bob.Err(); !errors.Is(err, ErrClosed) {
		t.Errorf("Err() after Close = %v; want ErrClosed", err)
	}
}

func TestSlowReaderBounded(t *testing.T) {
	const n, queue = 40, 4
	s := newFakeServer(t)
	alice := dialT(t, s.tcpURL, "alice", "a1", func(c *Config) { c.SendOnly = true })
	bob := dialT(t, s.tcpURL, "bob", "b1", func(c *Config) { c.QueueSize = queue })
	for range n {
		if _, err := alice.SendText(testCtx(t), "bob", "x"); err != nil {
			t.Fatalf("SendText error: %v", err)
		}
	}
	bob.mu.Lock()
	q, p := len(bob.queue), len(bob.pending)
	bob.mu.Unlock()
	if q > queue || p > queue {
		t.Errorf("with QueueSize %d the client holds %d queued and %d pending; want at most %d each", queue, q, p, queue)
	}
	checkSeqs(t, recvN(t, bob, n), 1)
	expectNone(t, bob, 100*time.Millisecond)
}

func TestSendOnly(t *testing.T) {
	s := newFakeServer(t)
	for range 3 {
		s.inject("alice", "x")
	}
	alice := dialT(t, s.tcpURL, "alice", "a1", func(c *Config) { c.SendOnly = true })
	if _, err := alice.SendText(testCtx(t), "bob", "hi"); err != nil {
		t.Fatalf("SendText error: %v", err)
	}
	expectNone(t, alice, 100*time.Millisecond)
	if got := s.syncAfters(); len(got) != 0 {
		t.Errorf("a SendOnly client synced after %v; want no Sync", got)
	}
}

func TestTokenFuncCalledOnReconnect(t *testing.T) {
	s := newFakeServer(t)
	calls := make(chan struct{}, 10)
	bob := dialT(t, s.tcpURL, "bob", "b1", func(c *Config) {
		c.Token = ""
		c.TokenFunc = func(context.Context) (string, error) {
			calls <- struct{}{}
			return "tok:bob", nil
		}
	})
	s.kickAll("bob")
	waitEvent(t, s, "signin bob b1")
	waitEvent(t, s, "signin bob b1")
	if got := len(calls); got != 2 {
		t.Errorf("TokenFunc called %d times; want 2", got)
	}
	_ = bob
}

func TestExpiredTokenOnReconnectStops(t *testing.T) {
	s := newFakeServer(t)
	var calls atomic.Int32
	bob := dialT(t, s.tcpURL, "bob", "b1", func(c *Config) {
		c.Token = ""
		c.TokenFunc = func(context.Context) (string, error) {
			if calls.Add(1) == 1 {
				return "tok:bob", nil
			}
			return "expired", nil
		}
	})
	s.kickAll("bob")
	select {
	case _, ok := <-bob.Messages():
		if ok {
			t.Fatal("got a message; want Messages closed")
		}
	case <-time.After(testWait):
		t.Fatal("Messages not closed after the reconnect sign-in was refused")
	}
	if err := bob.Err(); !errors.Is(err, &Error{Code: wirepb.ErrorCode_ERROR_CODE_UNAUTHENTICATED}) {
		t.Errorf("Err() = %v; want *Error UNAUTHENTICATED", err)
	}
}
