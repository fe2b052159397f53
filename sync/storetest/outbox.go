package storetest

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/sync/mailbox"
)

// The transactional outbox: Item.Outbox, Store.Outbox and Store.ClearOutbox.

// clockSlack is how far an entry's CreatedAtMs may lie outside the test's
// own clock readings around the Append (a store may use a server's clock).
const clockSlack = time.Second

// outboxAll returns every outbox entry, oldest first.
func outboxAll(t *testing.T, st mailbox.Store) []mailbox.OutboxEntry {
	t.Helper()
	got, err := st.Outbox(ctx(t), 0, 1_000_000)
	if err != nil {
		t.Fatalf("Outbox(0, 1000000) error = %v; want nil", err)
	}
	return got
}

// checkOutbox checks that the outbox holds exactly want (key -> data), with
// CreatedAtMs never decreasing, and returns its entries.
func checkOutbox(t *testing.T, st mailbox.Store, want map[mailbox.OutboxKey][]byte) []mailbox.OutboxEntry {
	t.Helper()
	got := outboxAll(t, st)
	seen := map[mailbox.OutboxKey]bool{}
	for i, e := range got {
		k := mailbox.OutboxKey{UserID: e.UserID, MsgID: e.MsgID}
		if i > 0 && e.CreatedAtMs < got[i-1].CreatedAtMs {
			t.Errorf("outbox entry %d %q/%q has CreatedAtMs %d, before entry %d's %d; want oldest first",
				i, e.UserID, e.MsgID, e.CreatedAtMs, i-1, got[i-1].CreatedAtMs)
		}
		if seen[k] {
			t.Errorf("outbox holds %q/%q twice", e.UserID, e.MsgID)
		}
		seen[k] = true
		w, ok := want[k]
		switch {
		case !ok:
			t.Errorf("outbox holds %q/%q; want no such entry", e.UserID, e.MsgID)
		case !bytes.Equal(e.Data, w):
			t.Errorf("outbox %q/%q data = %q; want %q", e.UserID, e.MsgID, trunc(e.Data), trunc(w))
		}
	}
	for k := range want {
		if !seen[k] {
			t.Errorf("outbox lacks %q/%q", k.UserID, k.MsgID)
		}
	}
	return got
}

// trunc shortens b for an error message.
func trunc(b []byte) []byte {
	if len(b) > 40 {
		return append(b[:40:40], "…"...)
	}
	return b
}

// waitPast waits until the test's clock is past ms, so that the next
// Append is stored later than an entry created at ms.
func waitPast(ms int64) {
	for time.Now().UnixMilli() <= ms {
		time.Sleep(time.Millisecond)
	}
}

// outboxKeys returns the keys of entries, in order.
func outboxKeys(entries []mailbox.OutboxEntry) []mailbox.OutboxKey {
	out := make([]mailbox.OutboxKey, len(entries))
	for i, e := range entries {
		out[i] = mailbox.OutboxKey{UserID: e.UserID, MsgID: e.MsgID}
	}
	return out
}

func (s suite) testOutboxStored(t *testing.T) {
	st := s.store(t)
	bin := []byte{0, 0xff, '\'', '"', '\\', '\n', '\r', 0x1a, 0, '%', '_', 0xfe, 0x80}
	big := make([]byte, mailbox.MaxOutboxLen) // the largest allowed
	for i := range big {
		big[i] = byte(i * 7)
	}
	before := time.Now().UnixMilli()
	res := appendOK(t, st,
		mailbox.Append{UserID: "alice", Items: []mailbox.Item{
			{Message: msg("a1"), Outbox: []byte("deliver a1")},
			{Message: msg("a2")}, // no outbox
			{Message: msg("a3"), Outbox: bin, ClientKey: mailbox.ClientKey("phone", "c3")},
			{Message: msg("a4"), Outbox: []byte{}}, // empty, not nil: stored
			{Message: msg("a5"), Outbox: big},
			{Message: msg("a6"), Outbox: nil},
		}},
		// The same msg id in other mailboxes, and keys that would collide
		// if uid and msg id were simply concatenated ("alic"+"ea1").
		mailbox.Append{UserID: "bob", Items: []mailbox.Item{{Message: msg("a1"), Outbox: []byte("bob's a1")}}},
		mailbox.Append{UserID: "alic", Items: []mailbox.Item{{Message: msg("ea1"), Outbox: []byte("alic's ea1")}}},
		mailbox.Append{UserID: "carol", Items: items("a1", "a3")}, // none
	)
	after := time.Now().UnixMilli()
	checkPart(t, "alice", res[0], 6, want{seq: 1}, want{seq: 2}, want{seq: 3}, want{seq: 4}, want{seq: 5}, want{seq: 6})
	checkPart(t, "bob", res[1], 1, want{seq: 1})
	checkPart(t, "alic", res[2], 1, want{seq: 1})
	checkPart(t, "carol", res[3], 2, want{seq: 1}, want{seq: 2})
	got := checkOutbox(t, st, map[mailbox.OutboxKey][]byte{
		{UserID: "alice", MsgID: "a1"}: []byte("deliver a1"),
		{UserID: "alice", MsgID: "a3"}: bin,
		{UserID: "alice", MsgID: "a4"}: {},
		{UserID: "alice", MsgID: "a5"}: big,
		{UserID: "bob", MsgID: "a1"}:   []byte("bob's a1"),
		{UserID: "alic", MsgID: "ea1"}: []byte("alic's ea1"),
	})
	lo, hi := before-clockSlack.Milliseconds(), after+clockSlack.Milliseconds()
	for _, e := range got {
		if e.CreatedAtMs < lo || e.CreatedAtMs > hi {
			t.Errorf("outbox %q/%q CreatedAtMs = %d; want the commit time, in [%d, %d]", e.UserID, e.MsgID, e.CreatedAtMs, lo, hi)
		}
	}
	// The outbox is stored beside the message, not instead of it.
	checkMailbox(t, st, "alice", "a1", "a2", "a3", "a4", "a5", "a6")
}

func (s suite) testOutboxDuplicates(t *testing.T) {
	st := s.store(t)
	k1, k2 := mailbox.ClientKey("phone", "c1"), mailbox.ClientKey("phone", "c2")
	appendOK(t, st, mailbox.Append{UserID: "alice", Items: []mailbox.Item{
		{Message: msg("m1"), ClientKey: k1, Outbox: []byte("first m1")},
	}})
	res := appendOK(t, st,
		mailbox.Append{UserID: "alice", After: 1, Items: []mailbox.Item{
			{Message: msg("m1"), Outbox: []byte("m1 again")},             // msg id stored before
			{Message: msg("m2"), ClientKey: k1, Outbox: []byte("retry")}, // client key stored before
			{Message: msg("m3"), Outbox: []byte("m3")},
			{Message: msg("m3"), Outbox: []byte("m3 again")}, // msg id earlier in this append
			{Message: msg("m4"), ClientKey: k2, Outbox: []byte("m4")},
			{Message: msg("m5"), ClientKey: k2, Outbox: []byte("m5")}, // client key earlier in this append
		}},
		// A second part for the same user in the same batch.
		mailbox.Append{UserID: "alice", After: 3, Items: []mailbox.Item{
			{Message: msg("m4"), Outbox: []byte("m4 again")}, // an earlier part's msg id
			{Message: msg("m6"), Outbox: []byte("m6")},
		}},
	)
	checkPart(t, "part 0", res[0], 3,
		want{seq: 1, dupOf: "m1"}, want{seq: 1, dupOf: "m1"}, want{seq: 2},
		want{seq: 2, dupOf: "m3"}, want{seq: 3}, want{seq: 3, dupOf: "m4"})
	checkPart(t, "part 1", res[1], 4, want{seq: 3, dupOf: "m4"}, want{seq: 4})
	wantOutbox := map[mailbox.OutboxKey][]byte{
		{UserID: "alice", MsgID: "m1"}: []byte("first m1"),
		{UserID: "alice", MsgID: "m3"}: []byte("m3"),
		{UserID: "alice", MsgID: "m4"}: []byte("m4"),
		{UserID: "alice", MsgID: "m6"}: []byte("m6"),
	}
	checkOutbox(t, st, wantOutbox)

	// Once cleared, a duplicate does not bring the entry back.
	if err := st.ClearOutbox(ctx(t), []mailbox.OutboxKey{{UserID: "alice", MsgID: "m1"}}); err != nil {
		t.Fatalf("ClearOutbox(alice/m1) = %v; want nil", err)
	}
	delete(wantOutbox, mailbox.OutboxKey{UserID: "alice", MsgID: "m1"})
	res = appendOK(t, st, mailbox.Append{UserID: "alice", After: 4, Items: []mailbox.Item{
		{Message: msg("m1"), Outbox: []byte("m1 after clear")},
		{Message: msg("m7"), ClientKey: k1, Outbox: []byte("retry after clear")},
	}})
	checkPart(t, "after clear", res[0], 4, want{seq: 1, dupOf: "m1"}, want{seq: 1, dupOf: "m1"})
	checkOutbox(t, st, wantOutbox)
}

func (s suite) testOutboxConflict(t *testing.T) {
	st := s.store(t)
	appendOK(t, st, mailbox.Append{UserID: "alice", Items: items("a1", "a2")})
	res := appendOK(t, st,
		mailbox.Append{UserID: "alice", After: 1, Items: []mailbox.Item{{Message: msg("x1"), Outbox: []byte("x1")}}}, // behind
		mailbox.Append{UserID: "bob", Items: []mailbox.Item{{Message: msg("b1"), Outbox: []byte("b1")}}},
		mailbox.Append{UserID: "carol", After: 4, Items: []mailbox.Item{{Message: msg("c1"), Outbox: []byte("c1")}}}, // ahead
	)
	checkConflict(t, "alice behind", res[0], 2)
	checkPart(t, "bob", res[1], 1, want{seq: 1})
	checkConflict(t, "carol ahead", res[2], 0)
	checkOutbox(t, st, map[mailbox.OutboxKey][]byte{{UserID: "bob", MsgID: "b1"}: []byte("b1")})
}

// appendThreeTimes stores five outbox entries in three appends, each at a
// later store time than the one before, and returns the outbox and the
// three times.
func appendThreeTimes(t *testing.T, st mailbox.Store) (all []mailbox.OutboxEntry, t1, t2, t3 int64) {
	t.Helper()
	with := func(id string) []mailbox.Item {
		return []mailbox.Item{{Message: msg(id), Outbox: []byte("data of " + id)}}
	}
	last := func() int64 {
		t.Helper()
		got := outboxAll(t, st)
		if len(got) == 0 {
			t.Fatalf("outbox empty after an append with entries")
		}
		return got[len(got)-1].CreatedAtMs
	}
	// Users and msg ids out of key order within each append.
	appendOK(t, st, mailbox.Append{UserID: "dave", Items: with("o2")}, mailbox.Append{UserID: "alice", Items: with("o1")})
	t1 = last()
	waitPast(t1)
	appendOK(t, st, mailbox.Append{UserID: "carol", Items: with("o4")}, mailbox.Append{UserID: "alice", After: 1, Items: with("o3")})
	t2 = last()
	waitPast(t2)
	appendOK(t, st, mailbox.Append{UserID: "bob", Items: with("o5")})
	t3 = last()
	all = outboxAll(t, st)
	if len(all) != 5 {
		t.Fatalf("outbox holds %d entries; want 5", len(all))
	}
	if !(t1 < t2 && t2 < t3) {
		t.Fatalf("appends stored at %d, %d, %d; want increasing times", t1, t2, t3)
	}
	groups := [][]string{{"alice/o1", "dave/o2"}, {"alice/o3", "carol/o4"}, {"bob/o5"}}
	var i int
	for g, ids := range groups {
		var got []string
		for range ids {
			got = append(got, all[i].UserID+"/"+all[i].MsgID)
			if wantT := []int64{t1, t2, t3}[g]; all[i].CreatedAtMs != wantT {
				t.Errorf("entry %s CreatedAtMs = %d; want %d (its append's time)", got[len(got)-1], all[i].CreatedAtMs, wantT)
			}
			i++
		}
		slices.Sort(got) // ties: any order
		if !slices.Equal(got, ids) {
			t.Errorf("append %d's entries in the outbox = %v; want %v (oldest first)", g+1, got, ids)
		}
	}
	return all, t1, t2, t3
}

func (s suite) testOutboxOrderLimit(t *testing.T) {
	st := s.store(t)
	all, _, _, _ := appendThreeTimes(t, st)
	for _, limit := range []int{-1, 0, 1, 2, 3, 4, 5, 6, 100} {
		got, err := st.Outbox(ctx(t), 0, limit)
		if err != nil {
			t.Fatalf("Outbox(0, %d) error = %v; want nil", limit, err)
		}
		want := outboxKeys(all[:min(max(limit, 0), len(all))])
		if !slices.Equal(outboxKeys(got), want) {
			t.Errorf("Outbox(0, %d) = %v; want %v (a prefix of the full list, same order)", limit, outboxKeys(got), want)
		}
	}
}

func (s suite) testOutboxOlderThan(t *testing.T) {
	st := s.store(t)
	all, t1, t2, t3 := appendThreeTimes(t, st)
	tests := []struct {
		olderThanMs int64
		limit       int
		want        int // a prefix of all
	}{
		{0, 100, 5},
		{t1 - 1, 100, 0},
		{t1, 100, 2},
		{t2 - 1, 100, 2},
		{t2, 100, 4},
		{t2, 3, 3},
		{t3 - 1, 100, 4},
		{t3, 100, 5},
		{math.MaxInt64, 100, 5},
	}
	for _, tt := range tests {
		got, err := st.Outbox(ctx(t), tt.olderThanMs, tt.limit)
		if err != nil {
			t.Fatalf("Outbox(%d, %d) error = %v; want nil", tt.olderThanMs, tt.limit, err)
		}
		if want := outboxKeys(all[:tt.want]); !slices.Equal(outboxKeys(got), want) {
			t.Errorf("Outbox(%d, %d) = %v; want %v (times %d, %d, %d)", tt.olderThanMs, tt.limit, outboxKeys(got), want, t1, t2, t3)
		}
		for i, e := range got {
			if w := all[i]; e.CreatedAtMs != w.CreatedAtMs || !bytes.Equal(e.Data, w.Data) {
				t.Errorf("Outbox(%d, %d) entry %d = {%d %q}; want {%d %q}", tt.olderThanMs, tt.limit, i, e.CreatedAtMs, e.Data, w.CreatedAtMs, w.Data)
			}
		}
	}
}

func (s suite) testClearOutbox(t *testing.T) {
	st := s.store(t)
	with := func(ids ...string) []mailbox.Item {
		out := make([]mailbox.Item, len(ids))
		for i, id := range ids {
			out[i] = mailbox.Item{Message: msg(id), Outbox: []byte("data of " + id)}
		}
		return out
	}
	appendOK(t, st,
		mailbox.Append{UserID: "alice", Items: with("c1", "c2", "c3", "c4")},
		mailbox.Append{UserID: "bob", Items: with("c1", "c2")},
		mailbox.Append{UserID: "alic", Items: with("ec1")},
		mailbox.Append{UserID: "u", Items: with("x\x00y")}, // a NUL in a msg id
	)
	wantOutbox := map[mailbox.OutboxKey][]byte{}
	for _, k := range []mailbox.OutboxKey{
		{UserID: "alice", MsgID: "c1"}, {UserID: "alice", MsgID: "c2"}, {UserID: "alice", MsgID: "c3"}, {UserID: "alice", MsgID: "c4"},
		{UserID: "bob", MsgID: "c1"}, {UserID: "bob", MsgID: "c2"}, {UserID: "alic", MsgID: "ec1"}, {UserID: "u", MsgID: "x\x00y"},
	} {
		wantOutbox[k] = []byte("data of " + k.MsgID)
	}
	checkOutbox(t, st, wantOutbox)

	for _, keys := range [][]mailbox.OutboxKey{nil, {}} {
		if err := st.ClearOutbox(ctx(t), keys); err != nil {
			t.Fatalf("ClearOutbox(%#v) = %v; want nil", keys, err)
		}
	}
	checkOutbox(t, st, wantOutbox)

	keys := []mailbox.OutboxKey{
		{UserID: "alice", MsgID: "c3"},
		{UserID: "bob", MsgID: "c2"},
		{UserID: "alice", MsgID: "c1"},
		{UserID: "alice", MsgID: "c3"}, // twice
		// Absent: ignored.
		{UserID: "carol", MsgID: "c1"},
		{UserID: "alice", MsgID: "c9"},
		{UserID: "bob", MsgID: "c3"},
		{UserID: "Alice", MsgID: "c2"},
		{UserID: "alice", MsgID: "C2"},
		{UserID: "alic", MsgID: "ec2"},
		{UserID: "alice", MsgID: ""},
		{UserID: "", MsgID: ""},
		{UserID: "u\x00x", MsgID: "y"}, // not u/"x\x00y"
		{UserID: strings.Repeat("u", 100), MsgID: "c1"},
	}
	if err := st.ClearOutbox(ctx(t), keys); err != nil {
		t.Fatalf("ClearOutbox(%d keys) = %v; want nil", len(keys), err)
	}
	for _, k := range keys {
		delete(wantOutbox, k)
	}
	checkOutbox(t, st, wantOutbox)
	// Clearing again is a no-op.
	if err := st.ClearOutbox(ctx(t), keys); err != nil {
		t.Fatalf("ClearOutbox(%d keys) again = %v; want nil", len(keys), err)
	}
	checkOutbox(t, st, wantOutbox)
	// The messages stay.
	checkMailbox(t, st, "alice", "c1", "c2", "c3", "c4")
	checkMailbox(t, st, "bob", "c1", "c2")

	if err := st.ClearOutbox(ctx(t), outboxKeys(outboxAll(t, st))); err != nil {
		t.Fatalf("ClearOutbox(all) = %v; want nil", err)
	}
	checkOutbox(t, st, nil)
}

// testOutboxManyUsers stores and clears more entries than one statement of
// a SQL store holds.
func (s suite) testOutboxManyUsers(t *testing.T) {
	st := s.store(t)
	const users = 300
	uid := func(i int) string { return fmt.Sprintf("u%03d", (i*7)%users) } // not in sorted order
	wantOutbox := map[mailbox.OutboxKey][]byte{}
	var batch []mailbox.Append
	for i := range users {
		u := uid(i)
		var its []mailbox.Item
		for _, id := range []string{"shared", u + "-1", u + "-2"} {
			data := []byte(u + " " + id)
			its = append(its, mailbox.Item{Message: msg(id), Outbox: data})
			wantOutbox[mailbox.OutboxKey{UserID: u, MsgID: id}] = data
		}
		batch = append(batch, mailbox.Append{UserID: u, Items: its})
	}
	appendOK(t, st, batch...)
	batch = batch[:0]
	for i := range users {
		u := uid(i)
		data := []byte(u + " -3")
		wantOutbox[mailbox.OutboxKey{UserID: u, MsgID: u + "-3"}] = data
		batch = append(batch, mailbox.Append{UserID: u, After: 3, Items: []mailbox.Item{
			{Message: msg("shared"), Outbox: []byte("duplicate")},
			{Message: msg(u + "-3"), Outbox: data},
		}})
	}
	appendOK(t, st, batch...)
	all := checkOutbox(t, st, wantOutbox)

	// Clear all but every 10th, plus as many absent keys.
	var keys []mailbox.OutboxKey
	for i, k := range outboxKeys(all) {
		if i%10 == 0 {
			continue
		}
		delete(wantOutbox, k)
		keys = append(keys, k, mailbox.OutboxKey{UserID: k.UserID, MsgID: k.MsgID + "-absent"})
	}
	if err := st.ClearOutbox(ctx(t), keys); err != nil {
		t.Fatalf("ClearOutbox(%d keys) = %v; want nil", len(keys), err)
	}
	checkOutbox(t, st, wantOutbox)
}
