package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/mysqlstore/mysqltest"
)

const testAPIKey = "node-test-api-key"

func withAPIKey(c *Config) { c.APIKey = testAPIKey }

// apiPost calls the HTTP server API and returns the status and body.
func apiPost(t testing.TB, n *Node, key, method string, params any) (int, []byte) {
	t.Helper()
	var body []byte
	switch p := params.(type) {
	case []byte:
		body = p
	default:
		var err error
		if body, err = json.Marshal(params); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+n.HTTPAddr().String()+"/api/v1/"+method, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", method, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// apiOK calls the HTTP API, fails the test unless it answers 200, and
// decodes the result into out (if not nil).
func apiOK(t testing.TB, n *Node, method string, params, out any) {
	t.Helper()
	code, body := apiPost(t, n, testAPIKey, method, params)
	if code != http.StatusOK {
		t.Fatalf("%s: status %d %s", method, code, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s: decode %s: %v", method, body, err)
		}
	}
}

func groupSend(gid, cmid, text string) *wirepb.Frame {
	return &wirepb.Frame{Id: 7, Body: &wirepb.Frame_Send{Send: &wirepb.Send{
		To:          &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_GROUP, Id: gid},
		ClientMsgId: cmid, ContentType: wirepb.ContentType_CONTENT_TYPE_TEXT, Body: []byte(text),
	}}}
}

// syncAll reads uid's whole mailbox over a fresh connection.
func syncAll(t testing.TB, n *Node, uid string) []*wirepb.Message {
	t.Helper()
	c := dialRaw(t, n.TCPAddr())
	c.signIn(uid, "syncer")
	defer c.c.Close()
	var out []*wirepb.Message
	var after uint64
	for {
		c.send(&wirepb.Frame{Id: 9, Body: &wirepb.Frame_Sync{Sync: &wirepb.Sync{AfterSeq: after, Limit: 1000}}})
		f := c.mustRead()
		for f.GetSyncBatch() == nil { // pushes may interleave
			f = c.mustRead()
		}
		b := f.GetSyncBatch()
		out = append(out, b.Messages...)
		if len(b.Messages) > 0 {
			after = b.Messages[len(b.Messages)-1].Seq
		}
		if !b.HasMore {
			return out
		}
	}
}

// TestGroupFanout: a 500-member group, 100 members online on TCP, 400
// offline. One send reaches every online member exactly once, every offline
// member syncs it once, every mailbox's seqs stay contiguous, membership
// changes land as system messages, and non-members are refused.
func TestGroupFanout(t *testing.T) {
	for _, store := range []string{"embedded", "mysql"} {
		t.Run(store, func(t *testing.T) {
			url := ""
			if store == "mysql" {
				url = mysqltest.NewURL(t)
			}
			n := startNode(t, "", url, withAPIKey)
			const size, online = 500, 100
			uids := make([]string, size)
			for i := range uids {
				uids[i] = fmt.Sprintf("gm%03d", i)
			}
			conns := make([]*rawConn, online)
			for i := range conns {
				conns[i] = dialRaw(t, n.TCPAddr())
				conns[i].signIn(uids[i], "phone")
			}

			var created struct {
				Group struct {
					ID    string `json:"group_id"`
					Owner string `json:"owner"`
				} `json:"group"`
			}
			apiOK(t, n, "group.create", map[string]any{"group_id": "big", "name": "Big group", "owner": uids[0], "members": uids[1:]}, &created)
			if created.Group.ID != "big" || created.Group.Owner != uids[0] {
				t.Fatalf("group.create = %+v", created)
			}

			// Every online member gets the group.created system message.
			for i, c := range conns {
				m := nextPush(t, c)
				if m.ContentType != wirepb.ContentType_CONTENT_TYPE_SYSTEM || m.To.GetId() != "big" || m.Seq != 1 {
					t.Fatalf("member %d: first push %v; want the group.created system message at seq 1", i, m)
				}
			}

			// A non-member is refused.
			out := dialRaw(t, n.TCPAddr())
			out.signIn("outsider", "d")
			out.send(groupSend("big", "x1", "let me in"))
			if e := out.mustRead().GetError(); e.GetCode() != wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED {
				t.Fatalf("non-member send: got %v; want PERMISSION_DENIED", e)
			}
			out.send(groupSend("nosuchgroup", "x2", "hello?"))
			if e := out.mustRead().GetError(); e.GetCode() != wirepb.ErrorCode_ERROR_CODE_NOT_FOUND {
				t.Fatalf("send to a missing group: got %v; want NOT_FOUND", e)
			}

			// The owner sends once.
			conns[0].send(groupSend("big", "m1", "hello all"))
			ack := conns[0].mustRead().GetSendAck()
			if ack == nil || ack.Seq != 2 {
				t.Fatalf("owner's SendAck = %v; want seq 2", ack)
			}
			var wg sync.WaitGroup
			for i, c := range conns[1:] {
				wg.Go(func() {
					m := nextPush(t, c)
					if m.MsgId != ack.MsgId || m.Seq != 2 || string(m.Body) != "hello all" || m.FromUser != uids[0] {
						t.Errorf("member %d: push %v; want %s at seq 2", i+1, m, ack.MsgId)
					}
				})
			}
			wg.Wait()

			// Membership changes: one member added, one removed.
			apiOK(t, n, "group.members.add", map[string]any{"group_id": "big", "users": []string{"gmnew"}}, nil)
			apiOK(t, n, "group.members.remove", map[string]any{"group_id": "big", "users": []string{uids[size-1]}}, nil)

			// No online member got anything twice: the next pushes are the
			// two system messages, in order.
			for i, c := range conns {
				a, b := nextPush(t, c), nextPush(t, c)
				if a.Seq != 3 || b.Seq != 4 || a.ContentType != wirepb.ContentType_CONTENT_TYPE_SYSTEM || b.ContentType != wirepb.ContentType_CONTENT_TYPE_SYSTEM {
					t.Fatalf("member %d: pushes after the message %v, %v; want system messages at seq 3, 4", i, a, b)
				}
			}

			// Every member's mailbox: created (1), the message (2), added
			// (3), removed (4) — contiguous, each once. The removed member
			// gets the removal as its last entry; the new member only
			// what happened since it joined.
			for i, uid := range uids {
				if i%7 != 0 && i < size-1 && i >= online { // a sample of the offline members, plus the edges
					continue
				}
				msgs := syncUntil(t, n, uid, 4)
				if len(msgs) != 4 {
					t.Fatalf("%s: %d entries; want 4", uid, len(msgs))
				}
				for j, m := range msgs {
					if m.Seq != uint64(j+1) {
						t.Fatalf("%s: entry %d has seq %d", uid, j, m.Seq)
					}
				}
				if msgs[1].MsgId != ack.MsgId {
					t.Fatalf("%s: seq 2 is %s; want the group message %s", uid, msgs[1].MsgId, ack.MsgId)
				}
			}
			newbie := syncUntil(t, n, "gmnew", 2)
			if len(newbie) != 2 || newbie[0].Seq != 1 {
				t.Fatalf("new member's mailbox = %v; want the added and removed system messages", newbie)
			}

			// The removed member can no longer send.
			gone := dialRaw(t, n.TCPAddr())
			gone.signIn(uids[size-1], "d")
			gone.send(groupSend("big", "late", "still here?"))
			if e := gone.mustRead().GetError(); e.GetCode() != wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED {
				t.Fatalf("removed member's send: got %v; want PERMISSION_DENIED", e)
			}
		})
	}
}

// nextPush returns the next Push on c.
func nextPush(t testing.TB, c *rawConn) *wirepb.Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		f, err := c.read(time.Until(deadline))
		if err != nil {
			t.Errorf("waiting for a push: %v", err)
			return &wirepb.Message{}
		}
		if p := f.GetPush(); p != nil {
			return p.Message
		}
	}
	t.Errorf("no push within 10s")
	return &wirepb.Message{}
}

// syncUntil syncs uid's mailbox until it holds at least want entries (a
// SendAck or a push elsewhere does not mean this mailbox committed yet), or
// 10s passed, and returns what it holds.
func syncUntil(t testing.TB, n *Node, uid string, want int) []*wirepb.Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		msgs := syncAll(t, n, uid)
		if len(msgs) >= want || time.Now().After(deadline) {
			return msgs
		}
		time.Sleep(50 * time.Millisecond)
	}
}
