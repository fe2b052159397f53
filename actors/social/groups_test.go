package social

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/actors/events"
	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/directory"
)

// groupState is a group as the store has it.
type groupState struct {
	exists  bool
	group   directory.Group
	members map[string]directory.Member
}

func stateOf(t testing.TB, d *Directory, gid string) groupState {
	t.Helper()
	g, err := d.GroupInfo(t.Context(), "", gid)
	if codeOf(err) == codeNotFound {
		return groupState{}
	}
	must(t, "GroupInfo", err)
	ms, err := d.Members(t.Context(), "", gid)
	must(t, "Members", err)
	s := groupState{exists: true, group: g, members: make(map[string]directory.Member)}
	for _, m := range ms {
		s.members[m.UserID] = m
	}
	return s
}

// matrixActors are the columns of the permission matrix, in the order of
// groupAction.want: the server API (by ""), then users by role in the
// matrix group.
var matrixActors = [...]struct{ name, by string }{
	{"server", ""}, {"owner", "own"}, {"admin", "adm"}, {"member", "mem"}, {"outsider", "out"},
}

// mkMatrixGroup creates the group of the permission matrix: own (owner),
// adm and adm2 (admins), mem and mem2 (members).
func mkMatrixGroup(t testing.TB, d *Directory, gid string) {
	t.Helper()
	mkGroup(t, d, gid, "own", "adm", "adm2", "mem", "mem2")
	for _, u := range []string{"adm", "adm2"} {
		must(t, "SetRole", d.SetRole(t.Context(), "", gid, u, directory.RoleAdmin))
	}
}

// groupAction is a row of the permission matrix.
type groupAction struct {
	name string
	do   func(ctx context.Context, d *Directory, by, gid string) error
	// want is the outcome for each of matrixActors.
	want [len(matrixActors)]wirepb.ErrorCode
	// writes: an allowed run changes the group and sends one system message.
	writes bool
	// check checks the group after an allowed run by by.
	check func(t *testing.T, s groupState, by string)
}

// groupActions is the permission matrix of groups.go, for the group of
// mkMatrixGroup.
func groupActions(muteUntil int64) []groupAction {
	const ok, denied, invalid = codeOK, codeDenied, codeInvalid
	role := func(t *testing.T, s groupState, uid string, want directory.Role) {
		t.Helper()
		if m, in := s.members[uid]; !in || m.Role != want {
			t.Errorf("%s: member=%v role=%q; want a member with role %q", uid, in, m.Role, want)
		}
	}
	gone := func(t *testing.T, s groupState, uid string) {
		t.Helper()
		if _, in := s.members[uid]; in {
			t.Errorf("%s is still a member", uid)
		}
	}
	remove := func(uids ...string) func(ctx context.Context, d *Directory, by, gid string) error {
		return func(ctx context.Context, d *Directory, by, gid string) error {
			who := uids
			if len(who) == 0 { // themselves
				who = []string{by}
			}
			removed, err := d.RemoveMembers(ctx, by, gid, who)
			if err == nil && !slices.Equal(removed, who) {
				return fmt.Errorf("removed %q; want %q", removed, who)
			}
			return err
		}
	}
	setRole := func(uid string, r directory.Role) func(ctx context.Context, d *Directory, by, gid string) error {
		return func(ctx context.Context, d *Directory, by, gid string) error { return d.SetRole(ctx, by, gid, uid, r) }
	}
	mute := func(uid string) func(ctx context.Context, d *Directory, by, gid string) error {
		return func(ctx context.Context, d *Directory, by, gid string) error {
			return d.Mute(ctx, by, gid, uid, muteUntil)
		}
	}
	muted := func(uid string) func(t *testing.T, s groupState, by string) {
		return func(t *testing.T, s groupState, _ string) {
			if got := s.members[uid].MutedUntilMs; got != muteUntil {
				t.Errorf("%s muted until %d; want %d", uid, got, muteUntil)
			}
		}
	}
	return []groupAction{
		// want: server, owner, admin, member, outsider.
		{name: "update", writes: true, want: [...]wirepb.ErrorCode{ok, ok, ok, denied, denied},
			do: func(ctx context.Context, d *Directory, by, gid string) error {
				name, ext := "renamed", `{"k":1}`
				_, err := d.UpdateGroup(ctx, by, gid, &name, &ext)
				return err
			},
			check: func(t *testing.T, s groupState, _ string) {
				if s.group.Name != "renamed" || s.group.Ext != `{"k":1}` {
					t.Errorf("group = %+v; want name renamed, the new ext", s.group)
				}
			}},
		{name: "dissolve", writes: true, want: [...]wirepb.ErrorCode{ok, ok, denied, denied, denied},
			do: func(ctx context.Context, d *Directory, by, gid string) error { return d.DissolveGroup(ctx, by, gid) },
			check: func(t *testing.T, s groupState, _ string) {
				if s.exists {
					t.Errorf("the group still exists")
				}
			}},
		{name: "add members", writes: true, want: [...]wirepb.ErrorCode{ok, ok, ok, denied, denied},
			do: func(ctx context.Context, d *Directory, by, gid string) error {
				added, err := d.AddMembers(ctx, by, gid, []string{"new", "mem"})
				if err == nil && !slices.Equal(added, []string{"new"}) {
					return fmt.Errorf("added %q; want [new]", added)
				}
				return err
			},
			check: func(t *testing.T, s groupState, _ string) { role(t, s, "new", directory.RoleMember) }},
		{name: "remove a member", writes: true, want: [...]wirepb.ErrorCode{ok, ok, ok, denied, denied},
			do:    remove("mem2"),
			check: func(t *testing.T, s groupState, _ string) { gone(t, s, "mem2") }},
		{name: "remove an admin", writes: true, want: [...]wirepb.ErrorCode{ok, ok, denied, denied, denied},
			do:    remove("adm2"),
			check: func(t *testing.T, s groupState, _ string) { gone(t, s, "adm2") }},
		{name: "remove the owner", writes: true, want: [...]wirepb.ErrorCode{denied, denied, denied, denied, denied},
			do: remove("own")},
		{name: "remove self", writes: true, want: [...]wirepb.ErrorCode{invalid, denied, ok, ok, denied},
			do:    remove(),
			check: func(t *testing.T, s groupState, by string) { gone(t, s, by) }},
		{name: "make admin", writes: true, want: [...]wirepb.ErrorCode{ok, ok, denied, denied, denied},
			do:    setRole("mem2", directory.RoleAdmin),
			check: func(t *testing.T, s groupState, _ string) { role(t, s, "mem2", directory.RoleAdmin) }},
		{name: "demote an admin", writes: true, want: [...]wirepb.ErrorCode{ok, ok, denied, denied, denied},
			do:    setRole("adm2", directory.RoleMember),
			check: func(t *testing.T, s groupState, _ string) { role(t, s, "adm2", directory.RoleMember) }},
		{name: "demote the owner", writes: true, want: [...]wirepb.ErrorCode{denied, denied, denied, denied, denied},
			do: setRole("own", directory.RoleAdmin)},
		{name: "transfer ownership", writes: true, want: [...]wirepb.ErrorCode{ok, ok, denied, denied, denied},
			do: setRole("mem2", directory.RoleOwner),
			check: func(t *testing.T, s groupState, _ string) {
				if s.group.Owner != "mem2" {
					t.Errorf("owner = %s; want mem2", s.group.Owner)
				}
				role(t, s, "mem2", directory.RoleOwner)
				role(t, s, "own", directory.RoleAdmin)
			}},
		{name: "mute a member", writes: true, want: [...]wirepb.ErrorCode{ok, ok, ok, denied, denied},
			do: mute("mem2"), check: muted("mem2")},
		{name: "mute an admin", writes: true, want: [...]wirepb.ErrorCode{ok, ok, denied, denied, denied},
			do: mute("adm2"), check: muted("adm2")},
		{name: "mute the owner", writes: true, want: [...]wirepb.ErrorCode{denied, denied, denied, denied, denied},
			do: mute("own")},
		{name: "list members", want: [...]wirepb.ErrorCode{ok, ok, ok, ok, denied},
			do: func(ctx context.Context, d *Directory, by, gid string) error {
				ms, err := d.Members(ctx, by, gid)
				var ids []string
				for _, m := range ms {
					ids = append(ids, m.UserID)
				}
				if want := []string{"adm", "adm2", "mem", "mem2", "own"}; err == nil && !slices.Equal(ids, want) {
					return fmt.Errorf("members %q; want %q", ids, want)
				}
				return err
			}},
		{name: "info", want: [...]wirepb.ErrorCode{ok, ok, ok, ok, denied},
			do: func(ctx context.Context, d *Directory, by, gid string) error {
				g, err := d.GroupInfo(ctx, by, gid)
				if err == nil && (g.ID != gid || g.Owner != "own") {
					return fmt.Errorf("group %+v; want %s owned by own", g, gid)
				}
				return err
			}},
	}
}

// TestGroupPermissions runs the permission matrix at the top of groups.go:
// every action by every kind of actor, each on a fresh group. An allowed
// action makes its change and sends one system message (none for reads); a
// refused one changes nothing and sends nothing.
func TestGroupPermissions(t *testing.T) {
	const gid = "club"
	for _, a := range groupActions(time.Now().Add(time.Hour).UnixMilli()) {
		for i, actor := range matrixActors {
			t.Run(a.name+"/"+actor.name, func(t *testing.T) {
				d, out := newDir(t)
				mkMatrixGroup(t, d, gid)
				out.take()
				before := stateOf(t, d, gid)
				err := a.do(t.Context(), d, actor.by, gid)
				if got := codeOf(err); got != a.want[i] {
					t.Fatalf("%s by %s = %v (%v); want %v", a.name, actor.name, got, err, a.want[i])
				}
				calls, after := out.take(), stateOf(t, d, gid)
				if err != nil {
					if len(calls) != 0 {
						t.Errorf("refused: %d system messages; want none", len(calls))
					}
					if !reflect.DeepEqual(before, after) {
						t.Errorf("refused, but the group changed:\nbefore %+v\nafter  %+v", before, after)
					}
					return
				}
				if want := map[bool]int{true: 1, false: 0}[a.writes]; len(calls) != want {
					t.Errorf("%d system messages; want %d", len(calls), want)
				}
				if a.check != nil {
					a.check(t, after, actor.by)
				}
			})
		}
	}
}

// TestGroupActionsOnBadGroups: every action on a group that does not exist
// is NOT_FOUND, and on an invalid group id INVALID_ARGUMENT, whoever acts.
func TestGroupActionsOnBadGroups(t *testing.T) {
	d, out := newDir(t)
	for _, a := range groupActions(time.Now().Add(time.Hour).UnixMilli()) {
		for _, tc := range []struct {
			gid  string
			want wirepb.ErrorCode
		}{
			{"nope", codeNotFound},
			{"", codeInvalid},
			{"bad id!", codeInvalid},
			{strings.Repeat("g", 65), codeInvalid},
		} {
			for _, by := range []string{"", "own"} {
				if a.name == "remove self" && by == "" {
					continue // the server has no self
				}
				if err := a.do(t.Context(), d, by, tc.gid); codeOf(err) != tc.want {
					t.Errorf("%s on %q by %q = %v (%v); want %v", a.name, tc.gid, by, codeOf(err), err, tc.want)
				}
			}
		}
	}
	if calls := out.take(); len(calls) != 0 {
		t.Errorf("%d system messages; want none", len(calls))
	}
}

// TestGroupArguments: the checks of each change's arguments, on the matrix
// group, by its owner.
func TestGroupArguments(t *testing.T) {
	str := func(s string) *string { return &s }
	update := func(name, ext *string) func(ctx context.Context, d *Directory) error {
		return func(ctx context.Context, d *Directory) error {
			_, err := d.UpdateGroup(ctx, "own", "club", name, ext)
			return err
		}
	}
	add := func(want []string, uids ...string) func(ctx context.Context, d *Directory) error {
		return func(ctx context.Context, d *Directory) error {
			added, err := d.AddMembers(ctx, "own", "club", uids)
			if err == nil && (added == nil || !slices.Equal(added, want)) {
				return fmt.Errorf("added %#v; want %q", added, want)
			}
			return err
		}
	}
	remove := func(want []string, uids ...string) func(ctx context.Context, d *Directory) error {
		return func(ctx context.Context, d *Directory) error {
			removed, err := d.RemoveMembers(ctx, "own", "club", uids)
			if err == nil && (removed == nil || !slices.Equal(removed, want)) {
				return fmt.Errorf("removed %#v; want %q", removed, want)
			}
			return err
		}
	}
	tests := []struct {
		name    string
		cfg     func(*Config)
		do      func(ctx context.Context, d *Directory) error
		want    wirepb.ErrorCode
		notices int // system messages sent
	}{
		{name: "update empty name", do: update(str(""), nil), want: codeInvalid},
		{name: "update name of 257 bytes", do: update(str(strings.Repeat("n", MaxGroupName+1)), nil), want: codeInvalid},
		{name: "update ext of 4097 bytes", do: update(nil, str(strings.Repeat("e", MaxGroupExt+1))), want: codeInvalid},
		{name: "update at the limits", do: update(str(strings.Repeat("n", MaxGroupName)), str(strings.Repeat("e", MaxGroupExt))), notices: 1},
		{name: "update ext to empty", do: update(nil, str("")), notices: 1},
		{name: "add nobody", do: add(nil), want: codeInvalid},
		{name: "add an invalid id", do: add(nil, "ok", "not ok"), want: codeInvalid},
		{name: "add members already in", do: add([]string{}, "mem", "adm")},
		{name: "add duplicates", do: add([]string{"x", "y"}, "x", "y", "x", "mem"), notices: 1},
		{name: "add over the cap", cfg: func(c *Config) { c.MaxGroupMembers = 6 }, do: add(nil, "x", "y"), want: codeInvalid},
		{name: "add up to the cap", cfg: func(c *Config) { c.MaxGroupMembers = 6 }, do: add([]string{"x"}, "x"), notices: 1},
		{name: "remove nobody", do: remove(nil), want: codeInvalid},
		{name: "remove an invalid id", do: remove(nil, "not ok"), want: codeInvalid},
		{name: "remove outsiders", do: remove([]string{}, "out", "nobody")},
		{name: "remove duplicates", do: remove([]string{"mem"}, "mem", "out", "mem"), notices: 1},
		{name: "remove the owner among others", do: remove(nil, "mem", "own"), want: codeDenied},
		{name: "set an unknown role", do: func(ctx context.Context, d *Directory) error {
			return d.SetRole(ctx, "own", "club", "mem", "boss")
		}, want: codeInvalid},
		{name: "set the role of an outsider", do: func(ctx context.Context, d *Directory) error {
			return d.SetRole(ctx, "own", "club", "out", directory.RoleAdmin)
		}, want: codeNotFound},
		{name: "set the same role", do: func(ctx context.Context, d *Directory) error {
			return d.SetRole(ctx, "own", "club", "adm", directory.RoleAdmin)
		}},
		{name: "owner to owner", do: func(ctx context.Context, d *Directory) error {
			return d.SetRole(ctx, "own", "club", "own", directory.RoleOwner)
		}},
		{name: "mute an outsider", do: func(ctx context.Context, d *Directory) error {
			return d.Mute(ctx, "own", "club", "out", time.Now().Add(time.Hour).UnixMilli())
		}, want: codeNotFound},
		{name: "mute with a negative time unmutes", do: func(ctx context.Context, d *Directory) error {
			if err := d.Mute(ctx, "own", "club", "mem", -5); err != nil {
				return err
			}
			ms, err := d.Members(ctx, "", "club")
			for _, m := range ms {
				if m.UserID == "mem" && m.MutedUntilMs != 0 {
					return fmt.Errorf("muted until %d; want 0", m.MutedUntilMs)
				}
			}
			return err
		}, notices: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []func(*Config)
			if tc.cfg != nil {
				opts = append(opts, tc.cfg)
			}
			d, out := newDir(t, opts...)
			mkMatrixGroup(t, d, "club")
			out.take()
			err := tc.do(t.Context(), d)
			if got := codeOf(err); got != tc.want {
				t.Fatalf("got %v (%v); want %v", got, err, tc.want)
			}
			if got := len(out.take()); got != tc.notices {
				t.Errorf("%d system messages; want %d", got, tc.notices)
			}
		})
	}
}

func TestCreateGroup(t *testing.T) {
	tests := []struct {
		name    string
		by      string
		ng      NewGroup
		want    wirepb.ErrorCode
		owner   string   // the owner it gets
		members []string // its members, sorted
	}{
		{name: "by the server", ng: NewGroup{ID: "g", Name: "G", Owner: "own", Ext: "x", Members: []string{"b", "a"}},
			owner: "own", members: []string{"a", "b", "own"}},
		{name: "by a user, who owns it", by: "usr", ng: NewGroup{ID: "g", Name: "G", Owner: "someone", Members: []string{"a"}},
			owner: "usr", members: []string{"a", "usr"}},
		{name: "alone", by: "usr", ng: NewGroup{ID: "g", Name: "G"}, owner: "usr", members: []string{"usr"}},
		{name: "duplicates collapse", ng: NewGroup{ID: "g", Name: "G", Owner: "own", Members: []string{"a", "own", "a", "b", "b"}},
			owner: "own", members: []string{"a", "b", "own"}},
		{name: "at the member cap (4)", ng: NewGroup{ID: "g", Name: "G", Owner: "own", Members: []string{"a", "b", "c", "a"}},
			owner: "own", members: []string{"a", "b", "c", "own"}},
		{name: "over the member cap (4)", ng: NewGroup{ID: "g", Name: "G", Owner: "own", Members: []string{"a", "b", "c", "d"}},
			want: codeInvalid},
		{name: "id of 64", ng: NewGroup{ID: strings.Repeat("g", 64), Name: "G", Owner: "own"}, owner: "own", members: []string{"own"}},
		{name: "id of 65", ng: NewGroup{ID: strings.Repeat("g", 65), Name: "G", Owner: "own"}, want: codeInvalid},
		{name: "invalid id", ng: NewGroup{ID: "g/1", Name: "G", Owner: "own"}, want: codeInvalid},
		{name: "no owner", ng: NewGroup{ID: "g", Name: "G"}, want: codeInvalid},
		{name: "invalid owner", ng: NewGroup{ID: "g", Name: "G", Owner: "o w n"}, want: codeInvalid},
		{name: "invalid member", ng: NewGroup{ID: "g", Name: "G", Owner: "own", Members: []string{"a", ""}}, want: codeInvalid},
		{name: "no name", ng: NewGroup{ID: "g", Owner: "own"}, want: codeInvalid},
		{name: "name of 256", ng: NewGroup{ID: "g", Name: strings.Repeat("n", MaxGroupName), Owner: "own"}, owner: "own", members: []string{"own"}},
		{name: "name of 257", ng: NewGroup{ID: "g", Name: strings.Repeat("n", MaxGroupName+1), Owner: "own"}, want: codeInvalid},
		{name: "ext of 4096", ng: NewGroup{ID: "g", Name: "G", Owner: "own", Ext: strings.Repeat("e", MaxGroupExt)}, owner: "own", members: []string{"own"}},
		{name: "ext of 4097", ng: NewGroup{ID: "g", Name: "G", Owner: "own", Ext: strings.Repeat("e", MaxGroupExt+1)}, want: codeInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, out := newDir(t, func(c *Config) { c.MaxGroupMembers = 4 })
			g, err := d.CreateGroup(t.Context(), tc.by, tc.ng)
			if got := codeOf(err); got != tc.want {
				t.Fatalf("CreateGroup = %v (%v); want %v", got, err, tc.want)
			}
			if err != nil {
				if calls := out.take(); len(calls) != 0 {
					t.Errorf("refused, yet %d system messages", len(calls))
				}
				if s := stateOf(t, d, "g"); s.exists {
					t.Errorf("refused, yet the group was stored: %+v", s.group)
				}
				return
			}
			if g.ID != tc.ng.ID || g.Name != tc.ng.Name || g.Ext != tc.ng.Ext || g.Owner != tc.owner || g.CreatedAtMs == 0 {
				t.Errorf("CreateGroup = %+v; want id %s, name %s, ext %q, owner %s and a creation time", g, tc.ng.ID, tc.ng.Name, tc.ng.Ext, tc.owner)
			}
			s := stateOf(t, d, g.ID)
			if !reflect.DeepEqual(s.group, g) {
				t.Errorf("stored %+v; returned %+v", s.group, g)
			}
			var ids []string
			for _, m := range s.members {
				ids = append(ids, m.UserID)
				want := directory.RoleMember
				if m.UserID == tc.owner {
					want = directory.RoleOwner
				}
				if m.Role != want || m.JoinedAtMs == 0 || m.MutedUntilMs != 0 {
					t.Errorf("member %+v; want role %s, a join time, not muted", m, want)
				}
			}
			slices.Sort(ids)
			if !slices.Equal(ids, tc.members) {
				t.Errorf("members %q; want %q", ids, tc.members)
			}
			if calls := out.take(); len(calls) != 1 || !slices.Equal(calls[0].rcpt, tc.members) {
				t.Errorf("system messages %v; want one to %q", calls, tc.members)
			}
		})
	}
}

func TestCreateGroupIDs(t *testing.T) {
	d, _ := newDir(t)
	ctx := t.Context()
	seen := map[string]bool{}
	for range 3 {
		g, err := d.CreateGroup(ctx, "usr", NewGroup{Name: "G"})
		must(t, "CreateGroup", err)
		if !wirepb.ValidID(g.ID) || !strings.HasPrefix(g.ID, "g") || seen[g.ID] {
			t.Errorf("generated id %q; want a new valid id starting with g", g.ID)
		}
		seen[g.ID] = true
		if got := stateOf(t, d, g.ID); !got.exists {
			t.Errorf("group %s not stored", g.ID)
		}
	}
	mkGroup(t, d, "dup", "own", "a")
	_, err := d.CreateGroup(ctx, "", NewGroup{ID: "dup", Name: "other", Owner: "x"})
	if got := codeOf(err); got != codeExists {
		t.Errorf("CreateGroup(existing id) = %v (%v); want %v", got, err, codeExists)
	}
	if s := stateOf(t, d, "dup"); s.group.Owner != "own" || len(s.members) != 2 {
		t.Errorf("after the duplicate create the group is %+v with %d members; want it unchanged", s.group, len(s.members))
	}
}

func TestUserGroups(t *testing.T) {
	d, _ := newDir(t)
	ctx := t.Context()
	mkGroup(t, d, "g1", "own", "ann")
	mkGroup(t, d, "g2", "ann")
	mkGroup(t, d, "g3", "own")
	ids := func(uid string) []string {
		t.Helper()
		gs, err := d.UserGroups(ctx, uid)
		must(t, "UserGroups", err)
		var out []string
		for _, g := range gs {
			out = append(out, g.ID)
		}
		return out
	}
	if got := ids("ann"); !slices.Equal(got, []string{"g1", "g2"}) {
		t.Errorf("UserGroups(ann) = %q; want [g1 g2]", got)
	}
	must(t, "DissolveGroup", d.DissolveGroup(ctx, "", "g1"))
	if got := ids("ann"); !slices.Equal(got, []string{"g2"}) {
		t.Errorf("after dissolving g1, UserGroups(ann) = %q; want [g2]", got)
	}
	if got := ids("nobody"); len(got) != 0 {
		t.Errorf("UserGroups(nobody) = %q; want none", got)
	}
	if _, err := d.UserGroups(ctx, "not valid"); codeOf(err) != codeInvalid {
		t.Errorf("UserGroups(invalid id) = %v; want %v", err, codeInvalid)
	}
}

// TestGroupSystemMessages: each change sends one system message to the
// group's members (the removed ones too, the added ones too), from the
// acting user, with the event's JSON as body. When the Fanout fails the
// change is saved all the same and the caller gets UNAVAILABLE.
func TestGroupSystemMessages(t *testing.T) {
	until := time.Now().Add(time.Hour).UnixMilli()
	tests := []struct {
		name  string
		by    string
		gid   string // the group it is about; "team" when empty
		do    func(ctx context.Context, d *Directory, by string) error
		ev    events.Group // the body, less AtMs; GroupID and By are filled in
		rcpt  []string     // sorted
		saved func(t *testing.T, d *Directory)
	}{
		{name: "create", by: "own", gid: "new",
			do: func(ctx context.Context, d *Directory, by string) error {
				_, err := d.CreateGroup(ctx, by, NewGroup{ID: "new", Name: "N", Members: []string{"bob", "ann", "bob"}})
				return err
			},
			ev:   events.Group{Type: "group.created", Users: []string{"ann", "bob", "own"}},
			rcpt: []string{"ann", "bob", "own"},
			saved: func(t *testing.T, d *Directory) {
				if s := stateOf(t, d, "new"); !s.exists || len(s.members) != 3 {
					t.Errorf("group new = %+v", s)
				}
			}},
		{name: "create by the server", gid: "new",
			do: func(ctx context.Context, d *Directory, by string) error {
				_, err := d.CreateGroup(ctx, by, NewGroup{ID: "new", Name: "N", Owner: "own"})
				return err
			},
			ev:   events.Group{Type: "group.created", Users: []string{"own"}},
			rcpt: []string{"own"},
			saved: func(t *testing.T, d *Directory) {
				if s := stateOf(t, d, "new"); !s.exists {
					t.Errorf("group new not stored")
				}
			}},
		{name: "update", by: "own",
			do: func(ctx context.Context, d *Directory, by string) error {
				name := "Renamed"
				_, err := d.UpdateGroup(ctx, by, "team", &name, nil)
				return err
			},
			ev:   events.Group{Type: "group.updated"},
			rcpt: []string{"ann", "bob", "own"},
			saved: func(t *testing.T, d *Directory) {
				if s := stateOf(t, d, "team"); s.group.Name != "Renamed" {
					t.Errorf("name = %q; want Renamed", s.group.Name)
				}
			}},
		{name: "add", by: "own",
			do: func(ctx context.Context, d *Directory, by string) error {
				_, err := d.AddMembers(ctx, by, "team", []string{"cal", "ann"})
				return err
			},
			ev:   events.Group{Type: "group.members_added", Users: []string{"cal"}},
			rcpt: []string{"ann", "bob", "cal", "own"},
			saved: func(t *testing.T, d *Directory) {
				if _, in := stateOf(t, d, "team").members["cal"]; !in {
					t.Errorf("cal not added")
				}
				checkRoute(t, d, "cal", groupConv("team"), time.Now(), routed("ann", "bob", "own"))
			}},
		{name: "remove", by: "own",
			do: func(ctx context.Context, d *Directory, by string) error {
				_, err := d.RemoveMembers(ctx, by, "team", []string{"bob"})
				return err
			},
			ev:   events.Group{Type: "group.members_removed", Users: []string{"bob"}},
			rcpt: []string{"ann", "bob", "own"},
			saved: func(t *testing.T, d *Directory) {
				if _, in := stateOf(t, d, "team").members["bob"]; in {
					t.Errorf("bob not removed")
				}
				checkRoute(t, d, "bob", groupConv("team"), time.Now(), refused(codeDenied))
			}},
		{name: "leave", by: "ann",
			do: func(ctx context.Context, d *Directory, by string) error {
				_, err := d.RemoveMembers(ctx, by, "team", []string{by})
				return err
			},
			ev:   events.Group{Type: "group.members_removed", Users: []string{"ann"}},
			rcpt: []string{"ann", "bob", "own"},
			saved: func(t *testing.T, d *Directory) {
				if _, in := stateOf(t, d, "team").members["ann"]; in {
					t.Errorf("ann did not leave")
				}
			}},
		{name: "role", by: "own",
			do: func(ctx context.Context, d *Directory, by string) error {
				return d.SetRole(ctx, by, "team", "ann", directory.RoleAdmin)
			},
			ev:   events.Group{Type: "group.member_role", Users: []string{"ann"}, Role: "admin"},
			rcpt: []string{"ann", "bob", "own"},
			saved: func(t *testing.T, d *Directory) {
				if r := stateOf(t, d, "team").members["ann"].Role; r != directory.RoleAdmin {
					t.Errorf("ann's role = %s; want admin", r)
				}
			}},
		{name: "transfer", by: "own",
			do: func(ctx context.Context, d *Directory, by string) error {
				return d.SetRole(ctx, by, "team", "ann", directory.RoleOwner)
			},
			ev:   events.Group{Type: "group.member_role", Users: []string{"ann"}, Role: "owner"},
			rcpt: []string{"ann", "bob", "own"},
			saved: func(t *testing.T, d *Directory) {
				s := stateOf(t, d, "team")
				if s.group.Owner != "ann" || s.members["ann"].Role != directory.RoleOwner || s.members["own"].Role != directory.RoleAdmin {
					t.Errorf("after the transfer: owner %s, ann %s, own %s; want ann, owner, admin",
						s.group.Owner, s.members["ann"].Role, s.members["own"].Role)
				}
			}},
		{name: "mute", by: "own",
			do: func(ctx context.Context, d *Directory, by string) error {
				return d.Mute(ctx, by, "team", "ann", until)
			},
			ev:   events.Group{Type: "group.member_muted", Users: []string{"ann"}, Until: until},
			rcpt: []string{"ann", "bob", "own"},
			saved: func(t *testing.T, d *Directory) {
				if got := stateOf(t, d, "team").members["ann"].MutedUntilMs; got != until {
					t.Errorf("ann muted until %d; want %d", got, until)
				}
				checkRoute(t, d, "ann", groupConv("team"), time.Now(), refused(codeDenied))
			}},
		{name: "dissolve", by: "own",
			do:   func(ctx context.Context, d *Directory, by string) error { return d.DissolveGroup(ctx, by, "team") },
			ev:   events.Group{Type: "group.dissolved"},
			rcpt: []string{"ann", "bob", "own"},
			saved: func(t *testing.T, d *Directory) {
				if stateOf(t, d, "team").exists {
					t.Errorf("team not dissolved")
				}
				checkRoute(t, d, "ann", groupConv("team"), time.Now(), refused(codeNotFound))
			}},
	}
	for _, tc := range tests {
		gid := cmp.Or(tc.gid, "team")
		for _, failing := range []bool{false, true} {
			name := tc.name
			if failing {
				name += "/fanout fails"
			}
			t.Run(name, func(t *testing.T) {
				d, out := newDir(t)
				mkGroup(t, d, "team", "own", "ann", "bob")
				// Warm the cache, so that a change must drop it.
				checkRoute(t, d, "own", groupConv("team"), time.Now(), routed("ann", "bob"))
				out.take()
				want := codeOK
				if failing {
					out.failWith(errors.New("delivery stream down"))
					want = codeUnavailable
				}
				start := time.Now().UnixMilli()
				err := tc.do(t.Context(), d, tc.by)
				if got := codeOf(err); got != want {
					t.Fatalf("got %v (%v); want %v", got, err, want)
				}
				out.failWith(nil)
				tc.saved(t, d)
				calls := out.take()
				if len(calls) != 1 {
					t.Fatalf("%d Fanout calls; want 1", len(calls))
				}
				c := calls[0]
				if rcpt := slices.Sorted(slices.Values(c.rcpt)); !slices.Equal(rcpt, tc.rcpt) || len(c.rcpt) != len(tc.rcpt) {
					t.Errorf("recipients %q; want %q", c.rcpt, tc.rcpt)
				}
				m := c.msg
				if !proto.Equal(m.To, groupConv(gid)) || m.ContentType != wirepb.ContentType_CONTENT_TYPE_SYSTEM ||
					m.FromUser != tc.by || len(m.MsgId) != 26 || m.CreatedAtMs < start {
					t.Errorf("message %v; want a SYSTEM message to group %s from %q with an id and a time", m, gid, tc.by)
				}
				var raw map[string]any
				if err := json.Unmarshal(m.Body, &raw); err != nil || raw["type"] != tc.ev.Type {
					t.Errorf("body %s (%v); want JSON with \"type\": %q", m.Body, err, tc.ev.Type)
				}
				var ev events.Group
				if err := json.Unmarshal(m.Body, &ev); err != nil {
					t.Fatalf("body %s: %v", m.Body, err)
				}
				wantEv := tc.ev
				wantEv.GroupID, wantEv.By, wantEv.AtMs = gid, tc.by, ev.AtMs
				if !reflect.DeepEqual(ev, wantEv) || ev.AtMs < start {
					t.Errorf("body %+v; want %+v at ≥ %d", ev, wantEv, start)
				}
			})
		}
	}
}

// TestTransferToAMutedMember: the owner cannot be muted (nor unmuted), so
// a muted member who is made the owner is unmuted by the transfer, or they
// could not send until the mute ran out.
func TestTransferToAMutedMember(t *testing.T) {
	d, _ := newDir(t)
	ctx := t.Context()
	mkGroup(t, d, "g", "own", "ann", "bob")
	must(t, "Mute", d.Mute(ctx, "own", "g", "ann", time.Now().Add(time.Hour).UnixMilli()))
	checkRoute(t, d, "ann", groupConv("g"), time.Now(), refused(codeDenied))
	must(t, "SetRole", d.SetRole(ctx, "own", "g", "ann", directory.RoleOwner))
	if m := stateOf(t, d, "g").members["ann"]; m.Role != directory.RoleOwner || m.MutedUntilMs != 0 {
		t.Errorf("new owner %+v; want role owner, not muted", m)
	}
	checkRoute(t, d, "ann", groupConv("g"), time.Now(), routed("bob", "own"))
	if err := d.Mute(ctx, "", "g", "ann", 0); codeOf(err) != codeDenied {
		t.Errorf("Mute(owner, 0) = %v; want %v", err, codeDenied)
	}
}

// TestNoticeNamesFewUsers: a large change's notice in every member's
// mailbox names MaxNoticeUsers users and says how many there were, so a
// group of N does not store N² names.
func TestNoticeNamesFewUsers(t *testing.T) {
	d, f := newDir(t)
	members := make([]string, 100)
	for i := range members {
		members[i] = fmt.Sprintf("m%03d", i)
	}
	if _, err := d.CreateGroup(t.Context(), "", NewGroup{ID: "big", Name: "Big", Owner: "own", Members: members}); err != nil {
		t.Fatal(err)
	}
	got := f.take()
	if len(got) != 1 || len(got[0].rcpt) != 101 {
		t.Fatalf("fanouts = %d; want one to all 101 members", len(got))
	}
	var ev events.Group
	if err := json.Unmarshal(got[0].msg.Body, &ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.Users) != MaxNoticeUsers || ev.UsersCount != 101 {
		t.Fatalf("notice names %d users, users_count %d; want %d and 101", len(ev.Users), ev.UsersCount, MaxNoticeUsers)
	}
}
