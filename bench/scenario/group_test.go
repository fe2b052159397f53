package scenario

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/bench/verify"
)

func TestGroup(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  GroupConfig
	}{
		{"offline members", GroupConfig{Groups: 2, Members: 30, Senders: 2, Offline: 0.2, Rate: 100, Inflight: 2}},
		// A member list over the Call limit: group.create, then group.members.add calls.
		{"created in several calls", GroupConfig{Members: 40, Senders: 3, Offline: 0.25, Rate: 50, callParams: 300}},
		{"flat out", GroupConfig{Members: 12, Senders: 2, Messages: 200}},
		{"ws", GroupConfig{Members: 10, Senders: 2, Rate: 50, Common: Common{WS: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Duration = time.Second
			cfg.Progress = t.Output()
			res, err := Group(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			res.WriteText(t.Output())
			if !res.Pass {
				t.Fatalf("group did not pass")
			}
		})
	}
}

// TestGroupFailsOnLossAndDuplicate runs the group scenario with one pushed
// message lost, then one duplicated, on the way to a member, and makes sure
// the run fails for that reason.
func TestGroupFailsOnLossAndDuplicate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		copies int
		want   string // in the failing check's detail
	}{
		{"lost", 0, "1 lost"},
		{"duplicated", 2, "1 duplicated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var done atomic.Bool
			cfg := GroupConfig{Members: 8, Senders: 2, Rate: 40, Drain: 2 * time.Second,
				Common: Common{Duration: 500 * time.Millisecond, Progress: t.Output()},
				tamper: func(member int, r verify.Received) int {
					if member == 5 && r.Key.N == 3 && done.CompareAndSwap(false, true) {
						return tc.copies
					}
					return 1
				},
			}
			res, err := Group(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			res.WriteText(t.Output())
			if !done.Load() {
				t.Fatalf("the tampered message never arrived")
			}
			failed := failedCheck(res, "exactly once, in seq order")
			if res.Pass || failed == nil || !strings.Contains(failed.Detail, tc.want) {
				t.Errorf("pass=%v, check %+v; want the run to fail with %q", res.Pass, failed, tc.want)
			}
		})
	}
}

// failedCheck returns the check named name if it failed.
func failedCheck(res *Result, name string) *Check {
	for i, c := range res.Checks {
		if c.Name == name && !c.Pass {
			return &res.Checks[i]
		}
	}
	return nil
}

func TestCheckSenderDevice(t *testing.T) {
	push := func(seqs ...uint64) []verify.Received {
		out := make([]verify.Received, len(seqs))
		for i, q := range seqs {
			out[i] = verify.Received{Seq: q}
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		pushes []verify.Received
		acks   []uint64
		max    uint64
		ok     bool
	}{
		{"pushes and acks interleave", push(1, 2, 4, 6), []uint64{3, 5}, 6, true},
		{"nothing", nil, nil, 0, true},
		{"push missing", push(1, 4), []uint64{2}, 4, false},
		{"push out of order", push(2, 1), []uint64{3}, 3, false},
		{"pushed twice", push(1, 1), nil, 1, false},
		{"pushed and acked", push(1, 2), []uint64{2}, 2, false},
		{"ack beyond the mailbox", push(1), []uint64{3}, 2, false},
	} {
		got := checkSenderDevice(tc.pushes, tc.acks, tc.max)
		if (got == "") != tc.ok {
			t.Errorf("%s: checkSenderDevice = %q; want ok=%v", tc.name, got, tc.ok)
		}
	}
}
