package node

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/schemas/buspb"
	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/boltstore"
	"github.com/parleyim/parley/sync/mailbox"
	"github.com/parleyim/parley/sync/mysqlstore"
	"github.com/parleyim/parley/sync/mysqlstore/mysqltest"
)

// TestOutboxRelayedAtStart: a message committed in the sender's mailbox
// whose delivery never left (the node died between the commit and the
// hand-off, and the device never retried) is delivered by the next start.
func TestOutboxRelayedAtStart(t *testing.T) {
	for _, store := range []string{"embedded", "mysql"} {
		t.Run(store, func(t *testing.T) {
			dir, url := t.TempDir(), ""
			var st mailbox.Store
			var err error
			if store == "mysql" {
				url = mysqltest.NewURL(t)
				dsn, perr := mysqlstore.ParseURL(url)
				if perr != nil {
					t.Fatal(perr)
				}
				st, err = mysqlstore.Open(t.Context(), dsn, mysqlstore.Options{})
			} else {
				st, err = boltstore.Open(filepath.Join(dir, "parley.db"), boltstore.Options{})
			}
			if err != nil {
				t.Fatal(err)
			}
			// What the actor commits for a send to a group of two, just
			// before the node dies.
			msg := &wirepb.Message{
				MsgId: "06h0000000000000000000orph", To: &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_GROUP, Id: "g"},
				FromUser: "olga", FromDevice: "d", ClientMsgId: "c1", ContentType: wirepb.ContentType_CONTENT_TYPE_TEXT,
				Body: []byte("did this arrive?"), CreatedAtMs: time.Now().UnixMilli(),
			}
			out, err := proto.Marshal(&buspb.Delivery{Recipients: []string{"pia", "quinn"}, Message: msg})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			res, err := st.Append(ctx, []mailbox.Append{{UserID: "olga", Items: []mailbox.Item{{Message: msg, ClientKey: "d/c1", Outbox: out}}}})
			if err != nil || res[0].Err != nil {
				t.Fatalf("append: %v %v", err, res)
			}
			st.Close()

			n := startNode(t, dir, url)
			for _, uid := range []string{"pia", "quinn"} {
				deadline := time.Now().Add(10 * time.Second)
				for {
					msgs := syncAll(t, n, uid)
					if len(msgs) == 1 && msgs[0].MsgId == msg.MsgId && msgs[0].Seq == 1 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s's mailbox = %v; want the relayed message at seq 1", uid, msgs)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			// Relayed entries, and those of ordinary sends, are cleared.
			c := dialRaw(t, n.TCPAddr())
			c.signIn("olga", "d2")
			for i := range 20 {
				if f := c.sendText("pia", fmt.Sprint("n", i), "hi"); f.GetSendAck() == nil {
					t.Fatalf("send: %v", f)
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				left, err := n.store.Outbox(ctx, 0, 100)
				if err != nil {
					t.Fatal(err)
				}
				if len(left) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d outbox entries left 10s after their deliveries: %v", len(left), left[0])
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}
