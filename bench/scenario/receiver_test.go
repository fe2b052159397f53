package scenario

import (
	"context"
	"testing"
	"time"

	"github.com/parleyim/parley/bench/verify"
	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/schemas/wirepb"
)

// TestVerifyAllFails runs the receiving side against a real server and
// makes sure a lost, a duplicated and an unacknowledged message each fail
// the verification.
func TestVerifyAllFails(t *testing.T) {
	ctx := context.Background()
	tg, err := openTarget(ctx, Common{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.close() })
	sender, err := tg.dial(ctx, "", tg.user("s", 0), "d", func(c *client.Config) { c.SendOnly = true })
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	rc, err := tg.dial(ctx, "", tg.user("r", 0), "d", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	r := newReceiver(tg.user("r", 0), rc, nil, func(int32) string { return tg.user("s", 0) })

	key := func(n uint64) verify.Key { return verify.Key{Lane: verify.Lane{Sender: 0, Lane: 0}, N: n} }
	to := &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_USER, Id: tg.user("r", 0)}
	// n=1, n=2, n=2 again (a duplicate as the server would store one), n=3.
	for _, n := range []uint64{1, 2, 2, 3} {
		if _, err := sender.Send(ctx, to, wirepb.ContentType_CONTENT_TYPE_TEXT, encodeBody(key(n), time.Now(), 64)); err != nil {
			t.Fatal(err)
		}
	}
	<-r.expect(4)

	for _, tc := range []struct {
		name     string
		expected []verify.Key
		check    func(verify.Report) bool
	}{
		// The duplicate of n=2 is in every case.
		{"duplicate", []verify.Key{key(1), key(2), key(3)},
			func(r verify.Report) bool { return r.Duplicates == 1 && r.Lost == 0 && r.Unexpected == 0 }},
		{"lost", []verify.Key{key(1), key(2), key(3), key(4)},
			func(r verify.Report) bool { return r.Duplicates == 1 && r.Lost == 1 }},
		{"unacknowledged", []verify.Key{key(1), key(2)},
			func(r verify.Report) bool { return r.Duplicates == 1 && r.Unexpected == 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := verifyAll(ctx, []*receiver{r}, [][]verify.Key{tc.expected}, 10*time.Second, nil)
			if rep.OK() || !tc.check(rep) {
				t.Errorf("verifyAll = %v; want it to fail with the %s", rep, tc.name)
			}
		})
	}
}
