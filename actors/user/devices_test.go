package user

import (
	"fmt"
	"slices"
	"testing"
)

func TestDevices(t *testing.T) {
	var d devices
	d.set(session{deviceID: "phone", edgeID: "e1", connID: 1})
	d.set(session{deviceID: "web", edgeID: "e2", connID: 2})
	d.set(session{deviceID: "desk", edgeID: "e1", connID: 3})
	d.set(session{deviceID: "phone", edgeID: "e1", connID: 4}) // replaces conn 1
	if len(d) != 3 {
		t.Fatalf("%d sessions, want 3: %+v", len(d), d)
	}
	if s, ok := d.get("phone"); !ok || s.connID != 4 {
		t.Fatalf("get(phone) = %+v, %v; want conn 4", s, ok)
	}
	if _, ok := d.get("tablet"); ok {
		t.Fatal("get(tablet) found a session")
	}

	edges := func(skip replyTo) []string {
		var out []string
		d.byEdge(skip, func(edge string, ids []uint64) { out = append(out, fmt.Sprint(edge, ids)) })
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		skip replyTo
		want []string
	}{
		{replyTo{}, []string{"e1[4 3]", "e2[2]"}},
		{replyTo{edgeID: "e1", connID: 4}, []string{"e1[3]", "e2[2]"}},
		{replyTo{edgeID: "e1", connID: 3}, []string{"e1[4]", "e2[2]"}},
		{replyTo{edgeID: "e2", connID: 2}, []string{"e1[4 3]"}},
	} {
		if got := edges(tc.skip); !slices.Equal(got, tc.want) {
			t.Errorf("byEdge(skip %+v) = %v, want %v", tc.skip, got, tc.want)
		}
	}

	gone := d.removeIf(func(s session) bool { return s.edgeID == "e1" })
	if len(gone) != 2 || len(d) != 1 || d[0].deviceID != "web" {
		t.Fatalf("removeIf(e1) gone %+v, left %+v", gone, d)
	}
	d.removeIf(func(session) bool { return true })
	if d != nil {
		t.Fatalf("removing the last session left %+v, want nil", d)
	}
}
