package scenario

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/bench/verify"
	"github.com/parleyim/parley/schemas/wirepb"
)

func TestRoom(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  RoomConfig
	}{
		{"late joiners", RoomConfig{Rooms: 3, Members: 20, Senders: 2, Rate: 150, Late: 2, Replay: 10}},
		{"flat out", RoomConfig{Rooms: 2, Members: 6, Senders: 2, Inflight: 2, Messages: 300, Late: 1}},
		{"ws", RoomConfig{Rooms: 1, Members: 5, Rate: 50, Late: 1, Common: Common{WS: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Duration = time.Second
			cfg.Progress = t.Output()
			res, err := Room(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			res.WriteText(t.Output())
			if !res.Pass {
				t.Fatalf("room did not pass")
			}
		})
	}
}

// TestRoomFailsOnLossAndDuplicate runs the room scenario with one room
// message lost, then one duplicated, on the way to a member, and makes sure
// the run fails for that reason.
func TestRoomFailsOnLossAndDuplicate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		copies int
		want   string
	}{
		{"lost", 0, "1 lost"},
		{"duplicated", 2, "1 duplicated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var done atomic.Bool
			cfg := RoomConfig{Rooms: 2, Members: 5, Senders: 1, Rate: 40, Drain: 2 * time.Second,
				Common: Common{Duration: 500 * time.Millisecond, Progress: t.Output()},
				tamper: func(member int, r verify.Received) int {
					if member == 7 && r.Key.N == 3 && done.CompareAndSwap(false, true) {
						return tc.copies
					}
					return 1
				},
			}
			res, err := Room(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			res.WriteText(t.Output())
			if !done.Load() {
				t.Fatalf("the tampered message never arrived")
			}
			failed := failedCheck(res, "exactly once, in sender order")
			if res.Pass || failed == nil || !strings.Contains(failed.Detail, tc.want) {
				t.Errorf("pass=%v, check %+v; want the run to fail with %q", res.Pass, failed, tc.want)
			}
		})
	}
}

func TestCheckLateJoiner(t *testing.T) {
	key := func(n uint64) verify.Key { return verify.Key{Lane: verify.Lane{Sender: 0}, N: n} }
	var ref []verify.Received
	for n := uint64(1); n <= 10; n++ {
		ref = append(ref, verify.Received{Seq: n, Key: key(n)})
	}
	msg := func(n uint64) *wirepb.Message {
		return &wirepb.Message{MsgId: "m" + string(rune('a'+n)), Body: encodeBody(key(n), time.Now(), 0)}
	}
	decode := func(m *wirepb.Message) (verify.Key, bool) {
		k, _, ok := decodeBody(m.GetBody())
		return k, ok
	}
	late := func(replay []uint64, live []uint64) *roomMember {
		m := &roomMember{}
		for _, n := range replay {
			m.replay = append(m.replay, msg(n))
		}
		for _, n := range live {
			m.liveIDs = append(m.liveIDs, msg(n).MsgId)
			m.st.add(verify.Received{Key: key(n)}, time.Now())
		}
		return m
	}
	for _, tc := range []struct {
		name         string
		replay, live []uint64
		ask          int
		overlap      int
		ok           bool
	}{
		{"replay then live", []uint64{5, 6, 7}, []uint64{8, 9, 10}, 3, 0, true},
		{"live repeats the replay", []uint64{5, 6, 7}, []uint64{7, 8, 9, 10}, 3, 1, true},
		{"short replay from the start", []uint64{1, 2, 3}, []uint64{4, 5, 6, 7, 8, 9, 10}, 5, 0, true},
		{"gap between replay and live", []uint64{5, 6}, []uint64{8, 9, 10}, 2, 0, false},
		{"short replay, not from the start", []uint64{3, 4}, []uint64{5, 6, 7, 8, 9, 10}, 5, 0, false},
		{"live twice", []uint64{8}, []uint64{9, 9, 10}, 1, 0, false},
		{"behind the room", []uint64{5, 6}, []uint64{7, 8}, 2, 0, false},
	} {
		o, problem := checkLateJoiner(late(tc.replay, tc.live), ref, tc.ask, decode)
		if (problem == "") != tc.ok || (tc.ok && o != tc.overlap) {
			t.Errorf("%s: checkLateJoiner = %d, %q; want ok=%v overlap %d", tc.name, o, problem, tc.ok, tc.overlap)
		}
	}
}
