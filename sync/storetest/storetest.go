// Package storetest is the conformance suite of mailbox.Store: every
// implementation runs Run from its tests, so the embedded store and MySQL
// behave the same.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/mailbox"
)

// callTimeout bounds every store call the suite makes.
const callTimeout = 30 * time.Second

// Run runs the conformance suite against the stores open returns, one
// parallel subtest per behaviour.
//
// open must return a new, empty store for a test the first time it is called
// with that t, and a store over the same data (the first one having been
// closed) when it is called again with the same t: the persistence subtest
// closes and reopens. PerTest makes that a one-liner. The suite closes every
// store it opens (in t.Cleanup), so open need not.
func Run(t *testing.T, open func(t *testing.T) mailbox.Store) {
	t.Helper()
	s := suite{open: open}
	tests := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"SeqFromOne", s.testSeqFromOne},
		{"EmptyAppends", s.testEmptyAppends},
		{"ConflictPartOnly", s.testConflictPartOnly},
		{"DuplicateMsgID", s.testDuplicateMsgID},
		{"DuplicateClientKey", s.testDuplicateClientKey},
		{"Fetch", s.testFetch},
		{"MessageKept", s.testMessageKept},
		{"MaxSeq", s.testMaxSeq},
		{"SetAckedMonotonic", s.testSetAcked},
		{"ManyUsersOneBatch", s.testManyUsers},
		{"SameUserTwiceInBatch", s.testSameUserTwice},
		{"ConcurrentUsers", s.testConcurrentUsers},
		{"ConcurrentSameUser", s.testConcurrentSameUser},
		{"OutboxStored", s.testOutboxStored},
		{"OutboxNotForDuplicates", s.testOutboxDuplicates},
		{"OutboxNotForConflicts", s.testOutboxConflict},
		{"OutboxOrderLimit", s.testOutboxOrderLimit},
		{"OutboxOlderThan", s.testOutboxOlderThan},
		{"ClearOutbox", s.testClearOutbox},
		{"OutboxManyUsers", s.testOutboxManyUsers},
		{"InvalidFailsBatch", s.testInvalid},
		{"CanceledContext", s.testCanceled},
		{"Reopen", s.testReopen},
		{"CloseIdempotent", s.testClose},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t)
		})
	}
}

// PerTest returns a function that calls create the first time it sees a
// test and returns that value on every later call with the same test, e.g.
// a file path or a database DSN that open reuses when the suite reopens.
func PerTest[V any](create func(t *testing.T) V) func(t *testing.T) V {
	var (
		mu   sync.Mutex
		seen = map[*testing.T]V{}
	)
	return func(t *testing.T) V {
		t.Helper()
		mu.Lock()
		v, ok := seen[t]
		mu.Unlock()
		if ok {
			return v
		}
		v = create(t)
		mu.Lock()
		seen[t] = v
		mu.Unlock()
		t.Cleanup(func() {
			mu.Lock()
			delete(seen, t)
			mu.Unlock()
		})
		return v
	}
}

type suite struct {
	open func(t *testing.T) mailbox.Store
}

// store opens a store for t and closes it when t ends.
func (s suite) store(t *testing.T) mailbox.Store {
	t.Helper()
	st := s.open(t)
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("Close() = %v; want nil", err)
		}
	})
	return st
}

// ctx returns a context for one store call.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(t.Context(), callTimeout)
	t.Cleanup(cancel)
	return c
}

// msg returns a message with every field set; CreatedAtMs is derived from id.
func msg(id string) *wirepb.Message {
	var h int64
	for _, c := range id {
		h = h*31 + int64(c)
	}
	return &wirepb.Message{
		MsgId:       id,
		To:          &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_USER, Id: "alice"},
		FromUser:    "bob",
		FromDevice:  "phone",
		ClientMsgId: "c-" + id,
		ContentType: wirepb.ContentType_CONTENT_TYPE_TEXT,
		Body:        []byte("body of " + id),
		CreatedAtMs: 1_760_000_000_000 + h%1_000_000,
	}
}

// items returns one Item per id, without client keys.
func items(ids ...string) []mailbox.Item {
	out := make([]mailbox.Item, len(ids))
	for i, id := range ids {
		out[i] = mailbox.Item{Message: msg(id)}
	}
	return out
}

// withSeq returns a copy of m with Seq set.
func withSeq(m *wirepb.Message, seq uint64) *wirepb.Message {
	c := proto.CloneOf(m)
	c.Seq = seq
	return c
}

func appendOK(t *testing.T, st mailbox.Store, batch ...mailbox.Append) []mailbox.AppendResult {
	t.Helper()
	res, err := st.Append(ctx(t), batch)
	if err != nil {
		t.Fatalf("Append(%d parts) error = %v; want nil", len(batch), err)
	}
	if len(res) != len(batch) {
		t.Fatalf("Append(%d parts) returned %d results; want %d", len(batch), len(res), len(batch))
	}
	return res
}

// want is the expected result of one item: a new seq, or a duplicate of the
// stored message with id dupOf at seq.
type want struct {
	seq   uint64
	dupOf string
}

func checkPart(t *testing.T, label string, got mailbox.AppendResult, wantMax uint64, wants ...want) {
	t.Helper()
	if got.Err != nil {
		t.Fatalf("%s: Err = %v; want nil", label, got.Err)
	}
	if got.MaxSeq != wantMax {
		t.Errorf("%s: MaxSeq = %d; want %d", label, got.MaxSeq, wantMax)
	}
	if len(got.Items) != len(wants) {
		t.Fatalf("%s: %d item results; want %d", label, len(got.Items), len(wants))
	}
	for i, w := range wants {
		r := got.Items[i]
		if r.Seq != w.seq || r.Duplicate != (w.dupOf != "") {
			t.Errorf("%s: item %d = {Seq:%d Duplicate:%v}; want {Seq:%d Duplicate:%v}",
				label, i, r.Seq, r.Duplicate, w.seq, w.dupOf != "")
			continue
		}
		switch {
		case w.dupOf == "" && r.Existing != nil:
			t.Errorf("%s: item %d Existing = %v; want nil", label, i, r.Existing)
		case w.dupOf != "" && r.Existing == nil:
			t.Errorf("%s: item %d Existing = nil; want msg %s", label, i, w.dupOf)
		case w.dupOf != "" && (r.Existing.MsgId != w.dupOf || r.Existing.Seq != w.seq):
			t.Errorf("%s: item %d Existing = {MsgId:%s Seq:%d}; want {MsgId:%s Seq:%d}",
				label, i, r.Existing.MsgId, r.Existing.Seq, w.dupOf, w.seq)
		}
	}
}

func checkConflict(t *testing.T, label string, got mailbox.AppendResult, wantMax uint64) {
	t.Helper()
	if !errors.Is(got.Err, mailbox.ErrConflict) {
		t.Errorf("%s: Err = %v; want ErrConflict", label, got.Err)
	}
	if got.Items != nil {
		t.Errorf("%s: Items = %v; want nil", label, got.Items)
	}
	if got.MaxSeq != wantMax {
		t.Errorf("%s: MaxSeq = %d; want %d", label, got.MaxSeq, wantMax)
	}
}

func fetchAll(t *testing.T, st mailbox.Store, uid string) []*wirepb.Message {
	t.Helper()
	got, err := st.Fetch(ctx(t), uid, 0, math.MaxUint64, 1_000_000)
	if err != nil {
		t.Fatalf("Fetch(%s) error = %v; want nil", uid, err)
	}
	return got
}

// checkMailbox checks that uid's mailbox holds exactly ids at seq 1, 2, 3 …
func checkMailbox(t *testing.T, st mailbox.Store, uid string, ids ...string) {
	t.Helper()
	got := fetchAll(t, st, uid)
	var gotIDs []string
	for i, m := range got {
		gotIDs = append(gotIDs, m.MsgId)
		if m.Seq != uint64(i+1) {
			t.Errorf("mailbox %s: message %d has Seq %d; want %d", uid, i, m.Seq, i+1)
		}
	}
	if !slices.Equal(gotIDs, ids) {
		t.Errorf("mailbox %s = %v; want %v", uid, gotIDs, ids)
	}
	checkMaxSeq(t, st, uid, uint64(len(ids)))
}

func checkMaxSeq(t *testing.T, st mailbox.Store, uid string, want uint64) {
	t.Helper()
	got, err := st.MaxSeq(ctx(t), uid)
	if err != nil {
		t.Fatalf("MaxSeq(%s) error = %v; want nil", uid, err)
	}
	if got != want {
		t.Errorf("MaxSeq(%s) = %d; want %d", uid, got, want)
	}
}

func (s suite) testSeqFromOne(t *testing.T) {
	st := s.store(t)
	first := items("a1", "a2", "a3")
	res := appendOK(t, st, mailbox.Append{UserID: "alice", Items: first})
	checkPart(t, "first append", res[0], 3, want{seq: 1}, want{seq: 2}, want{seq: 3})
	res = appendOK(t, st, mailbox.Append{UserID: "alice", After: 3, Items: items("a4", "a5")})
	checkPart(t, "second append", res[0], 5, want{seq: 4}, want{seq: 5})
	checkMailbox(t, st, "alice", "a1", "a2", "a3", "a4", "a5")
	for i, it := range first {
		if it.Message.Seq != 0 {
			t.Errorf("caller's message %d has Seq %d after Append; want 0 (store must not mutate it)", i, it.Message.Seq)
		}
	}
}

func (s suite) testEmptyAppends(t *testing.T) {
	st := s.store(t)
	res, err := st.Append(ctx(t), nil)
	if err != nil || len(res) != 0 {
		t.Fatalf("Append(nil) = %v, %v; want [], nil", res, err)
	}
	res = appendOK(t, st,
		mailbox.Append{UserID: "alice"},
		mailbox.Append{UserID: "bob", After: 1})
	checkPart(t, "no items", res[0], 0)
	checkConflict(t, "no items, After ahead", res[1], 0)
	appendOK(t, st, mailbox.Append{UserID: "alice", Items: items("a1")})
	res = appendOK(t, st, mailbox.Append{UserID: "alice", After: 1})
	checkPart(t, "no items after one", res[0], 1)
}

func (s suite) testConflictPartOnly(t *testing.T) {
	st := s.store(t)
	appendOK(t, st, mailbox.Append{UserID: "alice", Items: items("a1", "a2")})
	res := appendOK(t, st,
		mailbox.Append{UserID: "alice", After: 1, Items: items("x1")}, // behind
		mailbox.Append{UserID: "bob", Items: items("b1")},
		mailbox.Append{UserID: "carol", After: 4, Items: items("c1")}, // ahead
		mailbox.Append{UserID: "dave", Items: items("d1", "d2")},
	)
	checkConflict(t, "alice behind", res[0], 2)
	checkPart(t, "bob", res[1], 1, want{seq: 1})
	checkConflict(t, "carol ahead", res[2], 0)
	checkPart(t, "dave", res[3], 2, want{seq: 1}, want{seq: 2})
	checkMailbox(t, st, "alice", "a1", "a2")
	checkMailbox(t, st, "bob", "b1")
	checkMailbox(t, st, "carol")
	checkMailbox(t, st, "dave", "d1", "d2")
	// Nothing of the refused part was stored: x1 is new, not a duplicate.
	res = appendOK(t, st, mailbox.Append{UserID: "alice", After: 2, Items: items("x1")})
	checkPart(t, "alice reloaded", res[0], 3, want{seq: 3})
}

func (s suite) testDuplicateMsgID(t *testing.T) {
	st := s.store(t)
	appendOK(t, st, mailbox.Append{UserID: "alice", Items: items("m1")})
	m2again := msg("m2")
	m2again.Body = []byte("a different body, same id")
	res := appendOK(t, st, mailbox.Append{UserID: "alice", After: 1, Items: []mailbox.Item{
		{Message: msg("m1")},  // stored before
		{Message: msg("m2")},  // new
		{Message: m2again},    // earlier in this append
		{Message: msg("M2")},  // ids are case-sensitive
		{Message: msg("m3")},  // new, right after the duplicates: no hole
		{Message: msg("m1")},  // stored before, again
		{Message: msg("m1 ")}, // trailing space is a different id
	}})
	checkPart(t, "append", res[0], 5,
		want{seq: 1, dupOf: "m1"}, want{seq: 2}, want{seq: 2, dupOf: "m2"},
		want{seq: 3}, want{seq: 4}, want{seq: 1, dupOf: "m1"}, want{seq: 5})
	if e := res[0].Items[2].Existing; e != nil && !proto.Equal(e, withSeq(msg("m2"), 2)) {
		t.Errorf("Existing of in-append duplicate = %v; want the first copy %v", e, withSeq(msg("m2"), 2))
	}
	if e := res[0].Items[0].Existing; e != nil && !proto.Equal(e, withSeq(msg("m1"), 1)) {
		t.Errorf("Existing of stored duplicate = %v; want %v", e, withSeq(msg("m1"), 1))
	}
	checkMailbox(t, st, "alice", "m1", "m2", "M2", "m3", "m1 ")

	// Msg ids are unique per mailbox, not globally: fan-out stores one
	// message in many mailboxes.
	res = appendOK(t, st, mailbox.Append{UserID: "bob", Items: items("m1")})
	checkPart(t, "bob", res[0], 1, want{seq: 1})
}

func (s suite) testDuplicateClientKey(t *testing.T) {
	st := s.store(t)
	k1, k2 := mailbox.ClientKey("phone", "c1"), mailbox.ClientKey("phone", "c2")
	appendOK(t, st, mailbox.Append{UserID: "alice", Items: []mailbox.Item{{Message: msg("s1"), ClientKey: k1}}})
	res := appendOK(t, st, mailbox.Append{UserID: "alice", After: 1, Items: []mailbox.Item{
		{Message: msg("s2"), ClientKey: k1}, // a retried send got a new msg id
		{Message: msg("s3"), ClientKey: k2},
		{Message: msg("s4"), ClientKey: k2}, // earlier in this append
		{Message: msg("s5")},                // no key: never a key duplicate
		{Message: msg("s6")},
		{Message: msg("s7"), ClientKey: mailbox.ClientKey("phone", "C1")}, // case-sensitive
		{Message: msg("s8"), ClientKey: mailbox.ClientKey("laptop", "c1")},
	}})
	checkPart(t, "append", res[0], 6,
		want{seq: 1, dupOf: "s1"}, want{seq: 2}, want{seq: 2, dupOf: "s3"},
		want{seq: 3}, want{seq: 4}, want{seq: 5}, want{seq: 6})
	checkMailbox(t, st, "alice", "s1", "s3", "s5", "s6", "s7", "s8")

	res = appendOK(t, st, mailbox.Append{UserID: "bob", Items: []mailbox.Item{{Message: msg("s9"), ClientKey: k1}}})
	checkPart(t, "other mailbox, same key", res[0], 1, want{seq: 1})
}

func (s suite) testFetch(t *testing.T) {
	st := s.store(t)
	var ids []string
	for i := 1; i <= 10; i++ {
		ids = append(ids, fmt.Sprintf("f%02d", i))
	}
	appendOK(t, st, mailbox.Append{UserID: "alice", Items: items(ids...)})
	appendOK(t, st, mailbox.Append{UserID: "alicf", Items: items("neighbour")})
	tests := []struct {
		name        string
		after, upTo uint64
		limit       int
		want        []uint64
	}{
		{"all", 0, math.MaxUint64, 100, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"upToMax", 0, 10, 100, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"range", 3, 7, 100, []uint64{4, 5, 6, 7}},
		{"limit", 3, 7, 2, []uint64{4, 5}},
		{"limitOne", 4, 5, 1, []uint64{5}},
		{"upToBeyondMax", 8, 50, 100, []uint64{9, 10}},
		{"afterMax", 10, math.MaxUint64, 100, nil},
		{"afterBeyondMax", 20, 30, 100, nil},
		{"emptyRange", 5, 5, 100, nil},
		{"upToBelowAfter", 6, 2, 100, nil},
		{"limitZero", 0, math.MaxUint64, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := st.Fetch(ctx(t), "alice", tt.after, tt.upTo, tt.limit)
			if err != nil {
				t.Fatalf("Fetch(alice, %d, %d, %d) error = %v; want nil", tt.after, tt.upTo, tt.limit, err)
			}
			var seqs []uint64
			for _, m := range got {
				seqs = append(seqs, m.Seq)
				if wantMsg := withSeq(msg(ids[m.Seq-1]), m.Seq); !proto.Equal(m, wantMsg) {
					t.Errorf("Fetch(alice, %d, %d, %d) seq %d = %v; want %v", tt.after, tt.upTo, tt.limit, m.Seq, m, wantMsg)
				}
			}
			if !slices.Equal(seqs, tt.want) {
				t.Errorf("Fetch(alice, %d, %d, %d) seqs = %v; want %v", tt.after, tt.upTo, tt.limit, seqs, tt.want)
			}
		})
	}
	got, err := st.Fetch(ctx(t), "nobody", 0, math.MaxUint64, 100)
	if err != nil || len(got) != 0 {
		t.Errorf("Fetch(nobody) = %v, %v; want [], nil", got, err)
	}
}

func (s suite) testMessageKept(t *testing.T) {
	st := s.store(t)
	big := make([]byte, 256<<10)
	for i := range big {
		big[i] = byte(i * 7)
	}
	msgs := []*wirepb.Message{
		{MsgId: "k1", CreatedAtMs: 0},
		{MsgId: "k2", CreatedAtMs: 1},
		{MsgId: "k3", CreatedAtMs: 1_760_000_000_123, Body: big, ContentType: wirepb.ContentType_CONTENT_TYPE_FILE},
		{MsgId: "k4", CreatedAtMs: math.MaxInt64, To: &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_GROUP, Id: "g1"}},
		{MsgId: "k5", CreatedAtMs: 42, Seq: 99, Body: []byte("caller set a seq; the store replaces it")},
		{MsgId: "k6", CreatedAtMs: -5, Body: []byte{0, '\'', '\\', '"', 0xff, '\n'}},
		msg("k7"),
	}
	var its []mailbox.Item
	for _, m := range msgs {
		its = append(its, mailbox.Item{Message: m})
	}
	appendOK(t, st, mailbox.Append{UserID: "alice", Items: its})
	got := fetchAll(t, st, "alice")
	if len(got) != len(msgs) {
		t.Fatalf("Fetch returned %d messages; want %d", len(got), len(msgs))
	}
	for i, m := range msgs {
		if w := withSeq(m, uint64(i+1)); !proto.Equal(got[i], w) {
			t.Errorf("message %s: Fetch = %v; want %v", m.MsgId, got[i], w)
		}
	}
	if msgs[4].Seq != 99 {
		t.Errorf("caller's message Seq = %d after Append; want 99 (unchanged)", msgs[4].Seq)
	}
}

func (s suite) testMaxSeq(t *testing.T) {
	st := s.store(t)
	checkMaxSeq(t, st, "alice", 0)
	appendOK(t, st, mailbox.Append{UserID: "alice", Items: items("a1", "a2", "a3")})
	checkMaxSeq(t, st, "alice", 3)
	appendOK(t, st, mailbox.Append{UserID: "alice", After: 1, Items: items("a4")})
	checkMaxSeq(t, st, "alice", 3)
	appendOK(t, st, mailbox.Append{UserID: "alice", After: 3, Items: items("a1", "a2")})
	checkMaxSeq(t, st, "alice", 3)
	checkMaxSeq(t, st, "alic", 0)
	checkMaxSeq(t, st, "Alice", 0)
}

func (s suite) testSetAcked(t *testing.T) {
	st := s.store(t)
	acked := func(uid, dev string, want uint64) {
		t.Helper()
		got, err := st.Acked(ctx(t), uid, dev)
		if err != nil || got != want {
			t.Errorf("Acked(%s, %s) = %d, %v; want %d, nil", uid, dev, got, err, want)
		}
	}
	set := func(uid, dev string, seq uint64) {
		t.Helper()
		if err := st.SetAcked(ctx(t), []mailbox.Cursor{{UserID: uid, DeviceID: dev, Seq: seq}}); err != nil {
			t.Fatalf("SetAcked(%s, %s, %d) = %v; want nil", uid, dev, seq, err)
		}
	}
	acked("alice", "phone", 0)
	set("alice", "phone", 5)
	acked("alice", "phone", 5)
	set("alice", "phone", 3)
	acked("alice", "phone", 5)
	set("alice", "phone", 5)
	acked("alice", "phone", 5)
	set("alice", "phone", 9)
	acked("alice", "phone", 9)
	set("alice", "phone", 0)
	acked("alice", "phone", 9)
	acked("alice", "laptop", 0)
	acked("bob", "phone", 0)
	acked("alice", "Phone", 0)

	set("alice", "laptop", 2)
	acked("alice", "laptop", 2)
	acked("alice", "phone", 9)
	set("bob", "phone", 1<<40)
	acked("bob", "phone", 1<<40)

	// Many in one call: new, raised, lowered (ignored), and one pair twice.
	many := []mailbox.Cursor{
		{UserID: "fay", DeviceID: "laptop", Seq: 4},
		{UserID: "fay", DeviceID: "phone", Seq: 12},
		{UserID: "gus", DeviceID: "phone", Seq: 2},
		{UserID: "gus", DeviceID: "phone", Seq: 7},
		{UserID: "gus", DeviceID: "phone", Seq: 3},
		{UserID: "carol", DeviceID: "tab", Seq: 1},
	}
	if err := st.SetAcked(ctx(t), many); err != nil {
		t.Fatalf("SetAcked(%d cursors) = %v; want nil", len(many), err)
	}
	acked("fay", "laptop", 4)
	acked("fay", "phone", 12)
	acked("gus", "phone", 7)
	acked("carol", "tab", 1)
	if err := st.SetAcked(ctx(t), []mailbox.Cursor{{UserID: "fay", DeviceID: "phone", Seq: 8}, {UserID: "dave", DeviceID: "x", Seq: 5}}); err != nil {
		t.Fatalf("SetAcked = %v; want nil", err)
	}
	acked("fay", "phone", 12)
	acked("dave", "x", 5)
	if err := st.SetAcked(ctx(t), nil); err != nil {
		t.Errorf("SetAcked(nil) = %v; want nil", err)
	}
	if err := st.SetAcked(ctx(t), []mailbox.Cursor{{UserID: "erin", DeviceID: "ok", Seq: 1}, {UserID: "", DeviceID: "x", Seq: 1}}); err == nil {
		t.Errorf("SetAcked with an empty user id = nil; want an error")
	}
	acked("erin", "ok", 0)
}

func (s suite) testManyUsers(t *testing.T) {
	st := s.store(t)
	const users = 300
	uid := func(i int) string { return fmt.Sprintf("u%03d", (i*7)%users) } // not in sorted order
	var batch []mailbox.Append
	for i := range users {
		u := uid(i)
		batch = append(batch, mailbox.Append{UserID: u, Items: items("shared", u+"-1", u+"-2")})
	}
	res := appendOK(t, st, batch...)
	for i, r := range res {
		checkPart(t, uid(i), r, 3, want{seq: 1}, want{seq: 2}, want{seq: 3})
	}
	batch = batch[:0]
	for i := range users {
		u := uid(i)
		batch = append(batch, mailbox.Append{UserID: u, After: 3, Items: items(u+"-3", "shared")})
	}
	res = appendOK(t, st, batch...)
	for i, r := range res {
		checkPart(t, uid(i), r, 4, want{seq: 4}, want{seq: 1, dupOf: "shared"})
	}
	for _, i := range []int{0, 1, users / 2, users - 1} {
		u := uid(i)
		checkMailbox(t, st, u, "shared", u+"-1", u+"-2", u+"-3")
	}
}

func (s suite) testSameUserTwice(t *testing.T) {
	st := s.store(t)
	res := appendOK(t, st,
		mailbox.Append{UserID: "alice", Items: items("a1", "a2")},
		mailbox.Append{UserID: "alice", After: 2, Items: items("a3", "a1")},
		mailbox.Append{UserID: "alice", After: 2, Items: items("a4")},
	)
	checkPart(t, "part 0", res[0], 2, want{seq: 1}, want{seq: 2})
	checkPart(t, "part 1", res[1], 3, want{seq: 3}, want{seq: 1, dupOf: "a1"})
	checkConflict(t, "part 2", res[2], 3)
	checkMailbox(t, st, "alice", "a1", "a2", "a3")
}

func (s suite) testConcurrentUsers(t *testing.T) {
	st := s.store(t)
	const writers, rounds = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			uid := fmt.Sprintf("w%d", w)
			var after uint64
			for r := range rounds {
				res, err := st.Append(ctx(t), []mailbox.Append{{
					UserID: uid, After: after,
					Items: items(fmt.Sprintf("%s-%d-a", uid, r), fmt.Sprintf("%s-%d-b", uid, r)),
				}})
				if err != nil {
					t.Errorf("%s round %d: Append error = %v; want nil", uid, r, err)
					return
				}
				if res[0].Err != nil || res[0].MaxSeq != after+2 {
					t.Errorf("%s round %d: result = {Err:%v MaxSeq:%d}; want {nil %d}", uid, r, res[0].Err, res[0].MaxSeq, after+2)
					return
				}
				after = res[0].MaxSeq
			}
		})
	}
	wg.Wait()
	for w := range writers {
		uid := fmt.Sprintf("w%d", w)
		var ids []string
		for r := range rounds {
			ids = append(ids, fmt.Sprintf("%s-%d-a", uid, r), fmt.Sprintf("%s-%d-b", uid, r))
		}
		checkMailbox(t, st, uid, ids...)
	}
}

// testConcurrentSameUser races writers on one mailbox, as a zombie owner
// would: each append must either commit at exactly After+1 … or get
// ErrConflict, so the mailbox ends up gap-free with every message once.
func (s suite) testConcurrentSameUser(t *testing.T) {
	st := s.store(t)
	const writers, each, maxAttempts = 4, 10, 2000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; i < each; {
				id := fmt.Sprintf("z%d-%d", w, i)
				after, err := st.MaxSeq(ctx(t), "alice")
				if err != nil {
					t.Errorf("writer %d: MaxSeq error = %v", w, err)
					return
				}
				res, err := st.Append(ctx(t), []mailbox.Append{{UserID: "alice", After: after, Items: []mailbox.Item{
					{Message: msg(id), Outbox: []byte(id)},
				}}})
				if err != nil {
					t.Errorf("writer %d: Append error = %v; want nil or a part ErrConflict", w, err)
					return
				}
				switch r := res[0]; {
				case errors.Is(r.Err, mailbox.ErrConflict):
				case r.Err != nil:
					t.Errorf("writer %d: part Err = %v; want nil or ErrConflict", w, r.Err)
					return
				case r.Items[0].Duplicate || r.Items[0].Seq != after+1:
					t.Errorf("writer %d: %s stored at {Seq:%d Duplicate:%v}; want {Seq:%d Duplicate:false}",
						w, id, r.Items[0].Seq, r.Items[0].Duplicate, after+1)
					return
				default:
					i++
				}
			}
		})
	}
	wg.Wait()
	got := fetchAll(t, st, "alice")
	seen := map[string]bool{}
	for i, m := range got {
		if m.Seq != uint64(i+1) {
			t.Errorf("message %d has Seq %d; want %d", i, m.Seq, i+1)
		}
		if seen[m.MsgId] {
			t.Errorf("message %s stored twice", m.MsgId)
		}
		seen[m.MsgId] = true
	}
	if len(got) != writers*each {
		t.Errorf("mailbox holds %d messages; want %d", len(got), writers*each)
	}
	// One outbox entry per stored message: none from refused attempts.
	wantOutbox := map[mailbox.OutboxKey][]byte{}
	for _, m := range got {
		wantOutbox[mailbox.OutboxKey{UserID: "alice", MsgID: m.MsgId}] = []byte(m.MsgId)
	}
	checkOutbox(t, st, wantOutbox)
}

func (s suite) testInvalid(t *testing.T) {
	st := s.store(t)
	bad := []struct {
		name string
		part mailbox.Append
	}{
		{"nilMessage", mailbox.Append{UserID: "bob", Items: []mailbox.Item{{}}}},
		{"emptyMsgID", mailbox.Append{UserID: "bob", Items: []mailbox.Item{{Message: &wirepb.Message{Body: []byte("x")}}}}},
		{"emptyUserID", mailbox.Append{Items: items("x1")}},
		// Ids are at most 64 bytes, client keys 140 (the MySQL schema).
		{"longUserID", mailbox.Append{UserID: strings.Repeat("u", 65), Items: items("x1")}},
		{"longMsgID", mailbox.Append{UserID: "bob", Items: items(strings.Repeat("m", 65))}},
		{"longClientKey", mailbox.Append{UserID: "bob", Items: []mailbox.Item{{Message: msg("x1"), ClientKey: strings.Repeat("k", 141)}}}},
		{"longOutbox", mailbox.Append{UserID: "bob", Items: []mailbox.Item{{Message: msg("x1"), Outbox: make([]byte, mailbox.MaxOutboxLen+1)}}}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			valid := mailbox.Append{UserID: "alice", Items: []mailbox.Item{{Message: msg("a1"), Outbox: []byte("a1")}}}
			res, err := st.Append(ctx(t), []mailbox.Append{valid, tt.part})
			if err == nil {
				t.Fatalf("Append with %s = %v, nil; want an error", tt.name, res)
			}
		})
	}
	checkMailbox(t, st, "alice")
	checkMailbox(t, st, "bob")
	checkOutbox(t, st, nil)

	// The longest valid ids are fine.
	long := strings.Repeat("u", 64)
	res := appendOK(t, st, mailbox.Append{UserID: long, Items: []mailbox.Item{
		{Message: msg(strings.Repeat("m", 64)), ClientKey: strings.Repeat("k", 140), Outbox: []byte("longest")},
	}})
	checkPart(t, "longest ids", res[0], 1, want{seq: 1})
	checkMailbox(t, st, long, strings.Repeat("m", 64))
	checkOutbox(t, st, map[mailbox.OutboxKey][]byte{{UserID: long, MsgID: strings.Repeat("m", 64)}: []byte("longest")})
}

func (s suite) testCanceled(t *testing.T) {
	st := s.store(t)
	c, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := st.Append(c, []mailbox.Append{{UserID: "alice", Items: []mailbox.Item{
		{Message: msg("a1"), Outbox: []byte("a1")},
	}}}); !errors.Is(err, context.Canceled) {
		t.Errorf("Append(canceled ctx) error = %v; want context.Canceled", err)
	}
	checkMailbox(t, st, "alice")
	checkOutbox(t, st, nil)
	if _, err := st.Outbox(c, 0, 10); !errors.Is(err, context.Canceled) {
		t.Errorf("Outbox(canceled ctx) error = %v; want context.Canceled", err)
	}
	if err := st.ClearOutbox(c, []mailbox.OutboxKey{{UserID: "alice", MsgID: "a1"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("ClearOutbox(canceled ctx) error = %v; want context.Canceled", err)
	}
}

func (s suite) testReopen(t *testing.T) {
	st := s.store(t)
	appendOK(t, st, mailbox.Append{UserID: "alice", Items: []mailbox.Item{
		{Message: msg("a1")}, {Message: msg("a2"), ClientKey: "phone/c2", Outbox: []byte("a2\x00\xff")},
	}})
	if err := st.SetAcked(ctx(t), []mailbox.Cursor{{UserID: "alice", DeviceID: "phone", Seq: 2}}); err != nil {
		t.Fatalf("SetAcked = %v; want nil", err)
	}
	before := outboxAll(t, st)
	if err := st.Close(); err != nil {
		t.Fatalf("Close() = %v; want nil", err)
	}

	st = s.store(t)
	checkMailbox(t, st, "alice", "a1", "a2")
	got := fetchAll(t, st, "alice")
	if len(got) == 2 && !proto.Equal(got[1], withSeq(msg("a2"), 2)) {
		t.Errorf("after reopen, seq 2 = %v; want %v", got[1], withSeq(msg("a2"), 2))
	}
	if seq, err := st.Acked(ctx(t), "alice", "phone"); err != nil || seq != 2 {
		t.Errorf("after reopen, Acked = %d, %v; want 2, nil", seq, err)
	}
	after := checkOutbox(t, st, map[mailbox.OutboxKey][]byte{{UserID: "alice", MsgID: "a2"}: []byte("a2\x00\xff")})
	if len(before) != 1 || len(after) != 1 || after[0].CreatedAtMs != before[0].CreatedAtMs {
		t.Errorf("after reopen, outbox = %+v; want %+v", after, before)
	}
	res := appendOK(t, st, mailbox.Append{UserID: "alice", After: 2, Items: []mailbox.Item{
		{Message: msg("a3")}, {Message: msg("a1")}, {Message: msg("a9"), ClientKey: "phone/c2"},
	}})
	checkPart(t, "after reopen", res[0], 3, want{seq: 3}, want{seq: 1, dupOf: "a1"}, want{seq: 2, dupOf: "a2"})
}

func (s suite) testClose(t *testing.T) {
	st := s.store(t)
	appendOK(t, st, mailbox.Append{UserID: "alice", Items: items("a1")})
	for i := range 2 {
		if err := st.Close(); err != nil {
			t.Fatalf("Close() #%d = %v; want nil", i+1, err)
		}
	}
	c := ctx(t)
	if _, err := st.Append(c, []mailbox.Append{{UserID: "alice", After: 1, Items: items("a2")}}); !errors.Is(err, mailbox.ErrClosed) {
		t.Errorf("Append after Close error = %v; want ErrClosed", err)
	}
	if _, err := st.MaxSeq(c, "alice"); !errors.Is(err, mailbox.ErrClosed) {
		t.Errorf("MaxSeq after Close error = %v; want ErrClosed", err)
	}
	if _, err := st.Fetch(c, "alice", 0, 10, 10); !errors.Is(err, mailbox.ErrClosed) {
		t.Errorf("Fetch after Close error = %v; want ErrClosed", err)
	}
	if err := st.SetAcked(c, []mailbox.Cursor{{UserID: "alice", DeviceID: "phone", Seq: 1}}); !errors.Is(err, mailbox.ErrClosed) {
		t.Errorf("SetAcked after Close error = %v; want ErrClosed", err)
	}
	if _, err := st.Acked(c, "alice", "phone"); !errors.Is(err, mailbox.ErrClosed) {
		t.Errorf("Acked after Close error = %v; want ErrClosed", err)
	}
	if _, err := st.Outbox(c, 0, 10); !errors.Is(err, mailbox.ErrClosed) {
		t.Errorf("Outbox after Close error = %v; want ErrClosed", err)
	}
	if err := st.ClearOutbox(c, []mailbox.OutboxKey{{UserID: "alice", MsgID: "a1"}}); !errors.Is(err, mailbox.ErrClosed) {
		t.Errorf("ClearOutbox after Close error = %v; want ErrClosed", err)
	}
}
