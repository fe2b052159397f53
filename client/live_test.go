package client

import (
	"testing"

	"github.com/parleyim/parley/schemas/wirepb"
)

func TestIDSet(t *testing.T) {
	s := newIDSet(2)
	for _, tc := range []struct {
		id   string
		want bool
	}{{"a", true}, {"a", false}, {"b", true}, {"c", true}, {"a", true}, {"c", false}} {
		if got := s.add(tc.id); got != tc.want {
			t.Errorf("add(%q) = %v; want %v", tc.id, got, tc.want)
		}
	}
	s.setLimit(1)
	if s.has("c") || !s.has("a") || len(s.ids) != 1 {
		t.Errorf("after setLimit(1) the set holds %v; want only the newest, a", s.ids)
	}
}

func TestLiveQueue(t *testing.T) {
	q := newLiveQueue(3)
	for i := range 10 {
		q.push(&wirepb.Message{MsgId: string(rune('0' + i))})
	}
	if got := q.dropped.Load(); got != 7 {
		t.Errorf("dropped = %d; want 7", got)
	}
	q.close()
	q.close()
	q.push(&wirepb.Message{MsgId: "late"}) // ignored, no panic
	var got string
	for m := range q.ch {
		got += m.GetMsgId()
	}
	if got != "789" {
		t.Errorf("queue kept %q; want the newest, 789", got)
	}
}
