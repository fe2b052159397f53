package client

import (
	"testing"
	"time"

	"github.com/parleyim/parley/schemas/wirepb"
)

func TestTransientPush(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := newFakeServer(t)
			alice := dialT(t, tr.addr(s), "alice", "a1", func(c *Config) { c.SendOnly = true })
			bob := dialT(t, tr.addr(s), "bob", "b1")
			if _, err := alice.SendText(testCtx(t), "bob", "one"); err != nil {
				t.Fatalf("SendText error: %v", err)
			}
			checkSeqs(t, recvN(t, bob, 1), 1)

			id := s.pushTransient("bob", "server notice")
			select {
			case m := <-bob.Transient():
				if m.GetMsgId() != id || m.GetSeq() != 0 || string(m.GetBody()) != "server notice" {
					t.Errorf("Transient() got %v; want %s %q with seq 0", m, id, "server notice")
				}
			case <-time.After(testWait):
				t.Fatal("no transient push in time")
			}
			barrier(t, bob)
			if got := bob.MaxSeq(); got != 1 {
				t.Errorf("MaxSeq() after a transient push = %d; want 1", got)
			}
			// The mailbox goes on at seq 2, with no Sync on the way.
			if _, err := alice.SendText(testCtx(t), "bob", "two"); err != nil {
				t.Fatalf("SendText error: %v", err)
			}
			if m := recvN(t, bob, 1)[0]; m.GetSeq() != 2 || string(m.GetBody()) != "two" {
				t.Errorf("next entry = %v; want seq 2 %q", m, "two")
			}
			expectNone(t, bob, 50*time.Millisecond)
			if got := s.syncAfters(); len(got) != 0 {
				t.Errorf("server saw syncs after %v; want none", got)
			}
		})
	}
}

func TestTransientIgnoredBySendOnly(t *testing.T) {
	s := newFakeServer(t)
	alice := dialT(t, s.tcpURL, "alice", "a1", func(c *Config) { c.SendOnly = true })
	s.pushTransient("alice", "x")
	barrier(t, alice)
	select {
	case m := <-alice.Transient():
		t.Errorf("a SendOnly client got transient push %v", m)
	default:
	}
}

func TestSendGroupOwnEntry(t *testing.T) {
	s := newFakeServer(t, func(s *fakeServer) {
		s.groups["g1"] = []string{"alice", "bob", "carol"}
	})
	s.inject("bob", "earlier") // bob's mailbox is one ahead: seqs are per user
	alice := dialT(t, s.tcpURL, "alice", "a1")
	bob := dialT(t, s.tcpURL, "bob", "b1")
	carol := dialT(t, s.tcpURL, "carol", "c1")
	checkSeqs(t, recvN(t, bob, 1), 1)

	ack, err := alice.SendGroupText(testCtx(t), "g1", "hi all")
	if err != nil {
		t.Fatalf("SendGroupText error: %v", err)
	}
	if ack.GetSeq() != 1 {
		t.Errorf("group SendAck seq = %d; want 1 (alice's mailbox)", ack.GetSeq())
	}
	group := &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_GROUP, Id: "g1"}
	for _, tc := range []struct {
		who     string
		c       *Client
		wantSeq uint64
	}{
		{"alice (own entry)", alice, 1},
		{"bob", bob, 2},
		{"carol", carol, 1},
	} {
		m := recvN(t, tc.c, 1)[0]
		if m.GetSeq() != tc.wantSeq || m.GetMsgId() != ack.GetMsgId() || m.GetFromUser() != "alice" ||
			m.GetTo().GetType() != group.GetType() || m.GetTo().GetId() != group.GetId() || string(m.GetBody()) != "hi all" {
			t.Errorf("%s got %v; want seq %d, msg id %s, to group g1, from alice", tc.who, m, tc.wantSeq, ack.GetMsgId())
		}
	}
	expectNone(t, alice, 50*time.Millisecond)
	if got := alice.MaxSeq(); got != 1 {
		t.Errorf("alice.MaxSeq() = %d; want 1", got)
	}
}
