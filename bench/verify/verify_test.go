package verify

import "testing"

func k(sender, lane int32, n uint64) Key { return Key{Lane{sender, lane}, n} }

// stream numbers keys with seqs from 1.
func stream(keys ...Key) []Received {
	out := make([]Received, len(keys))
	for i, key := range keys {
		out[i] = Received{Seq: uint64(i + 1), Key: key}
	}
	return out
}

func TestCheck(t *testing.T) {
	a1, a2, a3 := k(0, 0, 1), k(0, 0, 2), k(0, 0, 3)
	b1, b2 := k(1, 0, 1), k(1, 0, 2)
	for _, tc := range []struct {
		name     string
		got      []Received
		expected []Key
		max      uint64
		want     Report // only the counters are compared
	}{
		{"all once in order", stream(a1, b1, a2, b2, a3), []Key{a1, a2, a3, b1, b2}, 5,
			Report{Expected: 5, Received: 5}},
		{"lost", stream(a1, a3), []Key{a1, a2, a3}, 2,
			Report{Expected: 3, Received: 2, Lost: 1}},
		{"duplicated", stream(a1, a2, a2, a3), []Key{a1, a2, a3}, 4,
			Report{Expected: 3, Received: 4, Duplicates: 1}},
		{"lost and duplicated", stream(a1, a1, a3), []Key{a1, a2, a3}, 3,
			Report{Expected: 3, Received: 3, Lost: 1, Duplicates: 1}},
		{"out of lane order", stream(a2, a1, a3), []Key{a1, a2, a3}, 3,
			Report{Expected: 3, Received: 3, Reordered: 1}},
		{"lanes interleave freely", stream(b1, a1, b2, a2), []Key{a1, a2, b1, b2}, 4,
			Report{Expected: 4, Received: 4}},
		{"unacknowledged", stream(a1, b1), []Key{a1}, 2,
			Report{Expected: 1, Received: 2, Unexpected: 1}},
		{"unacknowledged twice", stream(a1, b1, b1), []Key{a1}, 3,
			Report{Expected: 1, Received: 3, Unexpected: 1, Duplicates: 1}},
		{"seq gap", []Received{{Seq: 1, Key: a1}, {Seq: 3, Key: a2}}, []Key{a1, a2}, 3,
			Report{Expected: 2, Received: 2, SeqErrors: 1}},
		{"seq repeated", []Received{{Seq: 1, Key: a1}, {Seq: 1, Key: a2}}, []Key{a1, a2}, 0,
			Report{Expected: 2, Received: 2, SeqErrors: 1}},
		{"mailbox has more", stream(a1), []Key{a1}, 2,
			Report{Expected: 1, Received: 1, SeqErrors: 1}},
		{"nothing received, mailbox not empty", nil, nil, 1,
			Report{SeqErrors: 1}},
		{"foreign entry", []Received{{Seq: 1, Foreign: true}, {Seq: 2, Key: a1}}, []Key{a1}, 2,
			Report{Expected: 1, Received: 2, Unexpected: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Check(tc.got, tc.expected, 1, tc.max)
			problems := got.Problems
			got.Problems = nil
			if got.Expected != tc.want.Expected || got.Received != tc.want.Received || got.Lost != tc.want.Lost ||
				got.Duplicates != tc.want.Duplicates || got.Reordered != tc.want.Reordered ||
				got.Unexpected != tc.want.Unexpected || got.SeqErrors != tc.want.SeqErrors {
				t.Errorf("Check = %+v; want %+v (problems %q)", got, tc.want, problems)
			}
			if wantOK := tc.want.OK(); got.OK() != wantOK {
				t.Errorf("OK() = %v; want %v", got.OK(), wantOK)
			}
			if !got.OK() && len(problems) == 0 {
				t.Errorf("a failing report has no problem descriptions")
			}
		})
	}
}

func TestReportAdd(t *testing.T) {
	var total Report
	total.Add("r1", Check(stream(k(0, 0, 1)), []Key{k(0, 0, 1)}, 1, 1))
	total.Add("r2", Check(stream(k(1, 0, 1), k(1, 0, 1)), []Key{k(1, 0, 1)}, 1, 2))
	if total.OK() || total.Duplicates != 1 || total.Expected != 2 || total.Received != 3 {
		t.Fatalf("Add = %+v; want 1 duplicate of 2 expected, 3 received, not OK", total)
	}
	if len(total.Problems) != 1 || total.Problems[0][:4] != "r2: " {
		t.Errorf("Problems = %q; want one prefixed with r2", total.Problems)
	}
}

func TestCheckSystemEntries(t *testing.T) {
	a1, a2 := k(0, 0, 1), k(0, 0, 2)
	sys := func(seq uint64) Received { return Received{Seq: seq, System: true} }
	got := []Received{sys(1), {Seq: 2, Key: a1}, sys(3), {Seq: 4, Key: a2}}
	if r := Check(got, []Key{a1, a2}, 1, 4); !r.OK() || r.System != 2 || r.Unexpected != 0 {
		t.Errorf("Check with system entries = %+v; want OK with 2 system entries", r)
	}
	// A system entry still takes its seq: a gap around it is an error.
	got = []Received{sys(1), {Seq: 3, Key: a1}}
	if r := Check(got, []Key{a1}, 1, 3); r.OK() || r.SeqErrors != 1 {
		t.Errorf("Check with a gap after a system entry = %+v; want 1 seq error", r)
	}
}

func TestCheckUnsequenced(t *testing.T) {
	a1, a2, a3 := k(0, 0, 1), k(0, 0, 2), k(0, 0, 3)
	b1 := k(1, 0, 1)
	unseq := func(keys ...Key) []Received {
		out := make([]Received, len(keys))
		for i, key := range keys {
			out[i] = Received{Key: key} // seq 0, as room messages have
		}
		return out
	}
	for _, tc := range []struct {
		name string
		got  []Received
		want Report
	}{
		{"all once in lane order", unseq(b1, a1, a2, a3), Report{Expected: 4, Received: 4}},
		{"lost", unseq(a1, a3, b1), Report{Expected: 4, Received: 3, Lost: 1}},
		{"duplicated", unseq(a1, a2, a2, a3, b1), Report{Expected: 4, Received: 5, Duplicates: 1}},
		{"out of lane order", unseq(a1, a3, a2, b1), Report{Expected: 4, Received: 4, Reordered: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckUnsequenced(tc.got, []Key{a1, a2, a3, b1})
			got.Problems = nil
			if got.Expected != tc.want.Expected || got.Received != tc.want.Received || got.Lost != tc.want.Lost ||
				got.Duplicates != tc.want.Duplicates || got.Reordered != tc.want.Reordered || got.SeqErrors != 0 {
				t.Errorf("CheckUnsequenced = %+v; want %+v", got, tc.want)
			}
		})
	}
}
