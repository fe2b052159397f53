package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/parleyim/parley/sync/directory"
)

// RunDirectory runs the conformance suite of directory.Store against the
// stores open returns, one parallel subtest per behaviour.
//
// open must return an empty store for t and close it when t ends (Store has
// no Close). Subtests use ids of their own, so open may also return one
// shared store.
func RunDirectory(t *testing.T, open func(t *testing.T) directory.Store) {
	t.Helper()
	s := dirSuite{open: open}
	tests := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"CreateAndGet", s.testCreateAndGet},
		{"CreateTakenID", s.testCreateTaken},
		{"CreateInvalid", s.testCreateInvalid},
		{"MissingGroup", s.testMissingGroup},
		{"UpdateGroup", s.testUpdateGroup},
		{"MembersOrdered", s.testMembersOrdered},
		{"PutMembersUpsert", s.testPutMembersUpsert},
		{"RemoveMembers", s.testRemoveMembers},
		{"UserGroups", s.testUserGroups},
		{"DeleteGroup", s.testDeleteGroup},
		{"ManyMembers", s.testManyMembers},
		{"ConcurrentGroups", s.testConcurrentGroups},
		{"Friends", s.testFriends},
		{"PutFriendsAtomic", s.testPutFriendsAtomic},
		{"FriendEdgeNotFound", s.testFriendEdgeNotFound},
		{"FriendsOrdered", s.testFriendsOrdered},
		{"DeleteFriends", s.testDeleteFriends},
		{"Blocks", s.testBlocks},
		{"NoLeaks", s.testNoLeaks},
		{"CanceledContext", s.testDirCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t)
		})
	}
}

type dirSuite struct {
	open func(t *testing.T) directory.Store
}

// group returns a group owned by owner with every field set.
func group(gid, owner string) directory.Group {
	return directory.Group{
		ID:          gid,
		Name:        "name of " + gid,
		Owner:       owner,
		Ext:         `{"topic":"` + gid + `"}`,
		CreatedAtMs: 1_760_000_000_000,
	}
}

// member returns a membership with role r, joined at a time derived from uid.
func member(uid string, r directory.Role) directory.Member {
	return directory.Member{UserID: uid, Role: r, JoinedAtMs: 1_760_000_000_000 + int64(len(uid))}
}

// members returns plain memberships of uids.
func members(uids ...string) []directory.Member {
	out := make([]directory.Member, len(uids))
	for i, uid := range uids {
		out[i] = member(uid, directory.RoleMember)
	}
	return out
}

// edge returns uid's view of peer.
func edge(uid, peer string, st directory.FriendState) directory.FriendEdge {
	return directory.FriendEdge{UserID: uid, PeerID: peer, State: st, Message: "hi from " + uid, UpdatedAtMs: 1_760_000_000_500}
}

// createGroup creates gid owned by owner with the other members.
func createGroup(t *testing.T, st directory.Store, gid, owner string, others ...string) directory.Group {
	t.Helper()
	g := group(gid, owner)
	ms := append([]directory.Member{member(owner, directory.RoleOwner)}, members(others...)...)
	if err := st.CreateGroup(ctx(t), g, ms); err != nil {
		t.Fatalf("CreateGroup(%s) error = %v; want nil", gid, err)
	}
	return g
}

func checkGroup(t *testing.T, st directory.Store, want directory.Group) {
	t.Helper()
	got, err := st.Group(ctx(t), want.ID)
	if err != nil {
		t.Fatalf("Group(%s) error = %v; want nil", want.ID, err)
	}
	if got != want {
		t.Errorf("Group(%s) = %+v; want %+v", want.ID, got, want)
	}
}

func checkMembers(t *testing.T, st directory.Store, gid string, want ...directory.Member) {
	t.Helper()
	got, err := st.Members(ctx(t), gid)
	if err != nil {
		t.Fatalf("Members(%s) error = %v; want nil", gid, err)
	}
	if len(got) != len(want) {
		t.Fatalf("Members(%s) = %d members %+v; want %d %+v", gid, len(got), abbrev(got), len(want), abbrev(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Members(%s)[%d] = %+v; want %+v", gid, i, got[i], want[i])
		}
	}
}

// abbrev returns s, or its first 10 elements when it is longer.
func abbrev[T any](s []T) []T { return s[:min(len(s), 10)] }

func checkUserGroups(t *testing.T, st directory.Store, uid string, want ...string) {
	t.Helper()
	got, err := st.UserGroups(ctx(t), uid)
	if err != nil {
		t.Fatalf("UserGroups(%s) error = %v; want nil", uid, err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("UserGroups(%s) = %q; want %q", uid, got, want)
	}
}

func checkNotFound(t *testing.T, call string, err error) {
	t.Helper()
	if !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("%s error = %v; want ErrNotFound", call, err)
	}
}

func putFriends(t *testing.T, st directory.Store, edges ...directory.FriendEdge) {
	t.Helper()
	if err := st.PutFriends(ctx(t), edges); err != nil {
		t.Fatalf("PutFriends(%d edges) error = %v; want nil", len(edges), err)
	}
}

func checkEdge(t *testing.T, st directory.Store, want directory.FriendEdge) {
	t.Helper()
	got, err := st.FriendEdge(ctx(t), want.UserID, want.PeerID)
	if err != nil {
		t.Fatalf("FriendEdge(%s, %s) error = %v; want nil", want.UserID, want.PeerID, err)
	}
	if got != want {
		t.Errorf("FriendEdge(%s, %s) = %+v; want %+v", want.UserID, want.PeerID, got, want)
	}
}

func checkFriends(t *testing.T, st directory.Store, uid string, want ...directory.FriendEdge) {
	t.Helper()
	got, err := st.Friends(ctx(t), uid)
	if err != nil {
		t.Fatalf("Friends(%s) error = %v; want nil", uid, err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Friends(%s) = %+v; want %+v", uid, got, want)
	}
}

func checkBlocks(t *testing.T, st directory.Store, uid string, want ...string) {
	t.Helper()
	got, err := st.Blocks(ctx(t), uid)
	if err != nil {
		t.Fatalf("Blocks(%s) error = %v; want nil", uid, err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Blocks(%s) = %q; want %q", uid, got, want)
	}
}

func (s dirSuite) testCreateAndGet(t *testing.T) {
	st := s.open(t)
	g := group("cg-1", "cg-owner")
	// Ext is opaque bytes: kept exactly, even when not UTF-8.
	odd := "{\"a\":1}\x00'\\\"\xff\n"
	g.Ext = odd + strings.Repeat("e", 4<<10-len(odd))
	g.Name = strings.Repeat("n", 256)
	ms := []directory.Member{
		member("cg-owner", directory.RoleOwner),
		{UserID: "cg-admin", Role: directory.RoleAdmin, MutedUntilMs: 1_760_000_009_000, JoinedAtMs: 7},
	}
	if err := st.CreateGroup(ctx(t), g, ms); err != nil {
		t.Fatalf("CreateGroup error = %v; want nil", err)
	}
	checkGroup(t, st, g)
	checkMembers(t, st, g.ID, ms[1], ms[0])
	checkUserGroups(t, st, "cg-owner", g.ID)
	checkUserGroups(t, st, "cg-admin", g.ID)

	// The longest id is fine.
	long := strings.Repeat("g", 64)
	createGroup(t, st, long, "cg-owner")
	checkUserGroups(t, st, "cg-owner", g.ID, long)
}

func (s dirSuite) testCreateTaken(t *testing.T) {
	st := s.open(t)
	g := createGroup(t, st, "ct-1", "ct-owner", "ct-m1")
	other := group("ct-1", "ct-intruder")
	other.Name = "another name"
	err := st.CreateGroup(ctx(t), other, []directory.Member{member("ct-intruder", directory.RoleOwner)})
	if !errors.Is(err, directory.ErrExists) {
		t.Fatalf("CreateGroup(taken id) error = %v; want ErrExists", err)
	}
	// Nothing of the refused group was stored.
	checkGroup(t, st, g)
	checkMembers(t, st, g.ID, member("ct-m1", directory.RoleMember), member("ct-owner", directory.RoleOwner))
	checkUserGroups(t, st, "ct-intruder")
}

func (s dirSuite) testCreateInvalid(t *testing.T) {
	st := s.open(t)
	owner := []directory.Member{member("ci-owner", directory.RoleOwner)}
	withGroup := func(f func(g *directory.Group)) directory.Group {
		g := group("ci-1", "ci-owner")
		f(&g)
		return g
	}
	bad := []struct {
		name    string
		g       directory.Group
		members []directory.Member
	}{
		{"emptyID", withGroup(func(g *directory.Group) { g.ID = "" }), owner},
		{"longID", withGroup(func(g *directory.Group) { g.ID = strings.Repeat("g", 65) }), owner},
		{"longName", withGroup(func(g *directory.Group) { g.Name = strings.Repeat("n", 257) }), owner},
		{"longExt", withGroup(func(g *directory.Group) { g.Ext = strings.Repeat("e", 4<<10+1) }), owner},
		{"ownerNotMember", group("ci-1", "ci-owner"), members("ci-m1")},
		{"noMembers", group("ci-1", "ci-owner"), nil},
		{"badRole", group("ci-1", "ci-owner"), append(members("ci-m1"), directory.Member{UserID: "ci-owner", Role: "king"})},
		{"emptyUserID", group("ci-1", "ci-owner"), append(members(""), owner...)},
		{"longUserID", group("ci-1", "ci-owner"), append(members(strings.Repeat("u", 65)), owner...)},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if err := st.CreateGroup(ctx(t), tt.g, tt.members); err == nil {
				t.Errorf("CreateGroup with %s error = nil; want an error", tt.name)
			}
		})
	}
	_, err := st.Group(ctx(t), "ci-1")
	checkNotFound(t, "Group(ci-1) after invalid creates", err)
	checkUserGroups(t, st, "ci-owner")
	checkUserGroups(t, st, "ci-m1")
}

func (s dirSuite) testMissingGroup(t *testing.T) {
	st := s.open(t)
	createGroup(t, st, "mg-other", "mg-owner")
	c := ctx(t)
	_, err := st.Group(c, "mg-none")
	checkNotFound(t, "Group", err)
	checkNotFound(t, "UpdateGroup", st.UpdateGroup(c, group("mg-none", "mg-owner")))
	checkNotFound(t, "DeleteGroup", st.DeleteGroup(c, "mg-none"))
	_, err = st.Members(c, "mg-none")
	checkNotFound(t, "Members", err)
	checkNotFound(t, "PutMembers", st.PutMembers(c, "mg-none", members("mg-u1")))
	checkNotFound(t, "PutMembers(none)", st.PutMembers(c, "mg-none", nil))
	checkNotFound(t, "RemoveMembers", st.RemoveMembers(c, "mg-none", []string{"mg-owner"}))
	// Nothing was created on the way.
	checkUserGroups(t, st, "mg-u1")
	checkUserGroups(t, st, "mg-owner", "mg-other")
	_, err = st.Group(c, "mg-none")
	checkNotFound(t, "Group after the calls", err)
}

func (s dirSuite) testUpdateGroup(t *testing.T) {
	st := s.open(t)
	g := createGroup(t, st, "ug-1", "ug-owner", "ug-m1")
	up := directory.Group{ID: g.ID, Name: "renamed", Owner: "ug-m1", Ext: "", CreatedAtMs: 42}
	if err := st.UpdateGroup(ctx(t), up); err != nil {
		t.Fatalf("UpdateGroup error = %v; want nil", err)
	}
	up.CreatedAtMs = g.CreatedAtMs // not replaced
	checkGroup(t, st, up)
	if err := st.UpdateGroup(ctx(t), up); err != nil {
		t.Fatalf("UpdateGroup(unchanged) error = %v; want nil", err)
	}
	checkGroup(t, st, up)
	// Memberships are the caller's to change.
	checkMembers(t, st, g.ID, member("ug-m1", directory.RoleMember), member("ug-owner", directory.RoleOwner))
	if err := st.UpdateGroup(ctx(t), directory.Group{ID: g.ID, Owner: "ug-m1", Name: strings.Repeat("n", 257)}); err == nil {
		t.Errorf("UpdateGroup(long name) error = nil; want an error")
	}
	checkGroup(t, st, up)
}

func (s dirSuite) testMembersOrdered(t *testing.T) {
	st := s.open(t)
	createGroup(t, st, "mo-1", "mo-c", "mo-e", "mo-a", "mo-D", "mo-b", "mo-a_")
	checkMembers(t, st, "mo-1",
		member("mo-D", directory.RoleMember), // bytes: upper case first
		member("mo-a", directory.RoleMember),
		member("mo-a_", directory.RoleMember),
		member("mo-b", directory.RoleMember),
		member("mo-c", directory.RoleOwner),
		member("mo-e", directory.RoleMember))
}

func (s dirSuite) testPutMembersUpsert(t *testing.T) {
	st := s.open(t)
	createGroup(t, st, "pm-1", "pm-owner", "pm-m1", "pm-m2")
	changed := []directory.Member{
		{UserID: "pm-m2", Role: directory.RoleAdmin, MutedUntilMs: 1_760_000_100_000, JoinedAtMs: 5},
		{UserID: "pm-m3", Role: directory.RoleMember, JoinedAtMs: 6},
	}
	if err := st.PutMembers(ctx(t), "pm-1", changed); err != nil {
		t.Fatalf("PutMembers error = %v; want nil", err)
	}
	checkMembers(t, st, "pm-1",
		member("pm-m1", directory.RoleMember), changed[0], changed[1], member("pm-owner", directory.RoleOwner))

	// Unmute and demote; the last copy of a repeated user wins.
	unmuted := directory.Member{UserID: "pm-m2", Role: directory.RoleMember, JoinedAtMs: 5}
	if err := st.PutMembers(ctx(t), "pm-1", []directory.Member{changed[0], unmuted}); err != nil {
		t.Fatalf("PutMembers(unmute) error = %v; want nil", err)
	}
	checkMembers(t, st, "pm-1",
		member("pm-m1", directory.RoleMember), unmuted, changed[1], member("pm-owner", directory.RoleOwner))
	checkUserGroups(t, st, "pm-m3", "pm-1")

	if err := st.PutMembers(ctx(t), "pm-1", nil); err != nil {
		t.Errorf("PutMembers(none) error = %v; want nil", err)
	}
	if err := st.PutMembers(ctx(t), "pm-1", []directory.Member{{UserID: "pm-m4", Role: "king"}}); err == nil {
		t.Errorf("PutMembers(invalid role) error = nil; want an error")
	}
	checkUserGroups(t, st, "pm-m4")
}

func (s dirSuite) testRemoveMembers(t *testing.T) {
	st := s.open(t)
	createGroup(t, st, "rm-1", "rm-owner", "rm-m1", "rm-m2", "rm-m3")
	if err := st.RemoveMembers(ctx(t), "rm-1", []string{"rm-m3", "rm-nobody", "rm-m1"}); err != nil {
		t.Fatalf("RemoveMembers error = %v; want nil", err)
	}
	checkMembers(t, st, "rm-1", member("rm-m2", directory.RoleMember), member("rm-owner", directory.RoleOwner))
	checkUserGroups(t, st, "rm-m1")
	checkUserGroups(t, st, "rm-m3")
	checkUserGroups(t, st, "rm-m2", "rm-1")
	for _, uids := range [][]string{{"rm-m1"}, nil} {
		if err := st.RemoveMembers(ctx(t), "rm-1", uids); err != nil {
			t.Errorf("RemoveMembers(%q) error = %v; want nil", uids, err)
		}
	}
	// Removing every member leaves the group, empty.
	if err := st.RemoveMembers(ctx(t), "rm-1", []string{"rm-owner", "rm-m2"}); err != nil {
		t.Fatalf("RemoveMembers(all) error = %v; want nil", err)
	}
	checkMembers(t, st, "rm-1")
	checkGroup(t, st, group("rm-1", "rm-owner"))
}

func (s dirSuite) testUserGroups(t *testing.T) {
	st := s.open(t)
	for _, gid := range []string{"ug-c", "ug-a", "ug-B", "ug-b"} {
		createGroup(t, st, gid, "ugs-owner", "ugs-u")
	}
	createGroup(t, st, "ug-z", "ugs-other")
	checkUserGroups(t, st, "ugs-u", "ug-B", "ug-a", "ug-b", "ug-c")
	checkUserGroups(t, st, "ugs-nobody")

	if err := st.RemoveMembers(ctx(t), "ug-a", []string{"ugs-u"}); err != nil {
		t.Fatalf("RemoveMembers error = %v; want nil", err)
	}
	checkUserGroups(t, st, "ugs-u", "ug-B", "ug-b", "ug-c")
	if err := st.DeleteGroup(ctx(t), "ug-b"); err != nil {
		t.Fatalf("DeleteGroup error = %v; want nil", err)
	}
	checkUserGroups(t, st, "ugs-u", "ug-B", "ug-c")
	if err := st.PutMembers(ctx(t), "ug-z", members("ugs-u")); err != nil {
		t.Fatalf("PutMembers error = %v; want nil", err)
	}
	checkUserGroups(t, st, "ugs-u", "ug-B", "ug-c", "ug-z")
	checkUserGroups(t, st, "ugs-owner", "ug-B", "ug-a", "ug-c")
}

func (s dirSuite) testDeleteGroup(t *testing.T) {
	st := s.open(t)
	createGroup(t, st, "dg-1", "dg-owner", "dg-m1", "dg-m2")
	createGroup(t, st, "dg-2", "dg-owner", "dg-m1")
	if err := st.DeleteGroup(ctx(t), "dg-1"); err != nil {
		t.Fatalf("DeleteGroup error = %v; want nil", err)
	}
	_, err := st.Group(ctx(t), "dg-1")
	checkNotFound(t, "Group after delete", err)
	_, err = st.Members(ctx(t), "dg-1")
	checkNotFound(t, "Members after delete", err)
	checkNotFound(t, "DeleteGroup again", st.DeleteGroup(ctx(t), "dg-1"))
	checkUserGroups(t, st, "dg-owner", "dg-2")
	checkUserGroups(t, st, "dg-m1", "dg-2")
	checkUserGroups(t, st, "dg-m2")
	checkMembers(t, st, "dg-2", member("dg-m1", directory.RoleMember), member("dg-owner", directory.RoleOwner))

	// The id is free again, with none of the old members.
	g := createGroup(t, st, "dg-1", "dg-m2")
	checkGroup(t, st, g)
	checkMembers(t, st, "dg-1", member("dg-m2", directory.RoleOwner))
	checkUserGroups(t, st, "dg-m1", "dg-2")
}

func (s dirSuite) testManyMembers(t *testing.T) {
	st := s.open(t)
	createGroup(t, st, "mm-1", "mm-owner")
	const n = 500
	var many []directory.Member
	for i := range n {
		uid := fmt.Sprintf("mm-u%03d", (i*7)%n) // not in sorted order
		many = append(many, directory.Member{UserID: uid, Role: directory.RoleMember, JoinedAtMs: int64(i)})
	}
	if err := st.PutMembers(ctx(t), "mm-1", many); err != nil {
		t.Fatalf("PutMembers(%d) error = %v; want nil", n, err)
	}
	want := append(slices.Clone(many), member("mm-owner", directory.RoleOwner))
	slices.SortFunc(want, func(a, b directory.Member) int { return strings.Compare(a.UserID, b.UserID) })
	checkMembers(t, st, "mm-1", want...)
	for _, uid := range []string{"mm-u000", "mm-u250", "mm-u499"} {
		checkUserGroups(t, st, uid, "mm-1")
	}
	if err := st.DeleteGroup(ctx(t), "mm-1"); err != nil {
		t.Fatalf("DeleteGroup error = %v; want nil", err)
	}
	checkUserGroups(t, st, "mm-u250")
}

// testConcurrentGroups writes the groups of one user from several goroutines,
// as group actors on several nodes would.
func (s dirSuite) testConcurrentGroups(t *testing.T) {
	st := s.open(t)
	const writers = 8
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			gid := fmt.Sprintf("cc-%d", w)
			ms := []directory.Member{member("cc-owner", directory.RoleOwner), member("cc-shared", directory.RoleMember)}
			if err := st.CreateGroup(ctx(t), group(gid, "cc-owner"), ms); err != nil {
				t.Errorf("CreateGroup(%s) error = %v; want nil", gid, err)
				return
			}
			if err := st.PutMembers(ctx(t), gid, members(fmt.Sprintf("cc-u%d", w), "cc-shared")); err != nil {
				t.Errorf("PutMembers(%s) error = %v; want nil", gid, err)
			}
			if err := st.RemoveMembers(ctx(t), gid, []string{"cc-owner"}); err != nil {
				t.Errorf("RemoveMembers(%s) error = %v; want nil", gid, err)
			}
		})
	}
	wg.Wait()
	var want []string
	for w := range writers {
		want = append(want, fmt.Sprintf("cc-%d", w))
	}
	checkUserGroups(t, st, "cc-shared", want...)
	checkUserGroups(t, st, "cc-owner")
}

func (s dirSuite) testFriends(t *testing.T) {
	st := s.open(t)
	// A request, then the acceptance.
	req := edge("fr-a", "fr-b", directory.FriendRequested)
	pend := edge("fr-b", "fr-a", directory.FriendPending)
	pend.Message = req.Message
	putFriends(t, st, req, pend)
	checkEdge(t, st, req)
	checkEdge(t, st, pend)

	accA, accB := req, pend
	accA.State, accB.State = directory.Friend, directory.Friend
	accA.UpdatedAtMs, accB.UpdatedAtMs = 1_760_000_900_000, 1_760_000_900_000
	putFriends(t, st, accA, accB)
	checkEdge(t, st, accA)
	checkEdge(t, st, accB)
	checkFriends(t, st, "fr-a", accA)
	checkFriends(t, st, "fr-b", accB)

	odd := edge("fr-c", "fr-a", directory.FriendRequested)
	odd.Message = "\x00'\\\"\xff" + strings.Repeat("m", 251) // 256 opaque bytes
	putFriends(t, st, odd)
	checkEdge(t, st, odd)
	if err := st.PutFriends(ctx(t), nil); err != nil {
		t.Errorf("PutFriends(none) error = %v; want nil", err)
	}
}

func (s dirSuite) testPutFriendsAtomic(t *testing.T) {
	st := s.open(t)
	bad := []struct {
		name string
		e    directory.FriendEdge
	}{
		{"badState", directory.FriendEdge{UserID: "fa-b", PeerID: "fa-a", State: "enemy"}},
		{"emptyPeer", edge("fa-b", "", directory.FriendPending)},
		{"longUser", edge(strings.Repeat("u", 65), "fa-a", directory.FriendPending)},
		{"longMessage", directory.FriendEdge{UserID: "fa-b", PeerID: "fa-a", State: directory.FriendPending, Message: strings.Repeat("m", 257)}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			err := st.PutFriends(ctx(t), []directory.FriendEdge{edge("fa-a", "fa-b", directory.FriendRequested), tt.e})
			if err == nil {
				t.Errorf("PutFriends with %s error = nil; want an error", tt.name)
			}
		})
	}
	// The valid edge of each refused batch was not stored either.
	_, err := st.FriendEdge(ctx(t), "fa-a", "fa-b")
	checkNotFound(t, "FriendEdge(fa-a, fa-b) after refused batches", err)
	checkFriends(t, st, "fa-a")
}

func (s dirSuite) testFriendEdgeNotFound(t *testing.T) {
	st := s.open(t)
	putFriends(t, st, edge("fn-a", "fn-b", directory.FriendRequested))
	for _, pair := range [][2]string{{"fn-b", "fn-a"}, {"fn-a", "fn-c"}, {"fn-x", "fn-y"}, {"fn-a", "fn-b_"}, {"fn-a", "fn-"}} {
		_, err := st.FriendEdge(ctx(t), pair[0], pair[1])
		checkNotFound(t, fmt.Sprintf("FriendEdge(%s, %s)", pair[0], pair[1]), err)
	}
	checkFriends(t, st, "fn-b")
}

func (s dirSuite) testFriendsOrdered(t *testing.T) {
	st := s.open(t)
	var edges []directory.FriendEdge
	for _, peer := range []string{"fo-d", "fo-a", "fo-C", "fo-b", "fo-a_"} {
		edges = append(edges, edge("fo-me", peer, directory.Friend))
	}
	putFriends(t, st, edges...)
	want := slices.Clone(edges)
	slices.SortFunc(want, func(a, b directory.FriendEdge) int { return strings.Compare(a.PeerID, b.PeerID) })
	checkFriends(t, st, "fo-me", want...)
}

func (s dirSuite) testDeleteFriends(t *testing.T) {
	st := s.open(t)
	ab, ba := edge("df-a", "df-b", directory.Friend), edge("df-b", "df-a", directory.Friend)
	ac, ca := edge("df-a", "df-c", directory.Friend), edge("df-c", "df-a", directory.Friend)
	bc := edge("df-b", "df-c", directory.FriendRequested)
	putFriends(t, st, ab, ba, ac, ca, bc)
	if err := st.DeleteFriends(ctx(t), "df-b", "df-a"); err != nil {
		t.Fatalf("DeleteFriends error = %v; want nil", err)
	}
	for _, pair := range [][2]string{{"df-a", "df-b"}, {"df-b", "df-a"}} {
		_, err := st.FriendEdge(ctx(t), pair[0], pair[1])
		checkNotFound(t, fmt.Sprintf("FriendEdge(%s, %s) after delete", pair[0], pair[1]), err)
	}
	checkFriends(t, st, "df-a", ac)
	checkFriends(t, st, "df-b", bc)
	checkFriends(t, st, "df-c", ca)

	// Absent edges are ignored, including one side only.
	if err := st.DeleteFriends(ctx(t), "df-a", "df-b"); err != nil {
		t.Errorf("DeleteFriends(again) error = %v; want nil", err)
	}
	if err := st.DeleteFriends(ctx(t), "df-c", "df-b"); err != nil {
		t.Errorf("DeleteFriends(one side) error = %v; want nil", err)
	}
	checkFriends(t, st, "df-b")
	checkFriends(t, st, "df-c", ca)
}

func (s dirSuite) testBlocks(t *testing.T) {
	st := s.open(t)
	block := func(uid, peer string) {
		t.Helper()
		if err := st.Block(ctx(t), uid, peer); err != nil {
			t.Fatalf("Block(%s, %s) error = %v; want nil", uid, peer, err)
		}
	}
	unblock := func(uid, peer string) {
		t.Helper()
		if err := st.Unblock(ctx(t), uid, peer); err != nil {
			t.Fatalf("Unblock(%s, %s) error = %v; want nil", uid, peer, err)
		}
	}
	checkBlocks(t, st, "bl-me")
	block("bl-me", "bl-c")
	block("bl-me", "bl-a")
	block("bl-me", "bl-c") // idempotent
	block("bl-me", "bl-B")
	checkBlocks(t, st, "bl-me", "bl-B", "bl-a", "bl-c")
	checkBlocks(t, st, "bl-a") // a block has a direction
	unblock("bl-me", "bl-a")
	unblock("bl-me", "bl-a") // idempotent
	unblock("bl-me", "bl-nobody")
	checkBlocks(t, st, "bl-me", "bl-B", "bl-c")
	if err := st.Block(ctx(t), "bl-me", ""); err == nil {
		t.Errorf("Block(bl-me, \"\") error = nil; want an error")
	}
	checkBlocks(t, st, "bl-me", "bl-B", "bl-c")
}

// testNoLeaks gives users and groups ids that are prefixes of one another:
// nothing of one may show in another's lists.
func (s dirSuite) testNoLeaks(t *testing.T) {
	st := s.open(t)
	users := []string{"nl-a", "nl-a_b", "nl-ab", "nl-a-", "nl-aa"}
	for i, u := range users {
		gid := "nl-g" + u[len("nl-"):]
		createGroup(t, st, gid, u)
		putFriends(t, st, edge(u, fmt.Sprintf("nl-peer%d", i), directory.Friend))
		if err := st.Block(ctx(t), u, fmt.Sprintf("nl-blocked%d", i)); err != nil {
			t.Fatalf("Block(%s) error = %v", u, err)
		}
	}
	for i, u := range users {
		gid := "nl-g" + u[len("nl-"):]
		checkUserGroups(t, st, u, gid)
		checkMembers(t, st, gid, member(u, directory.RoleOwner))
		checkFriends(t, st, u, edge(u, fmt.Sprintf("nl-peer%d", i), directory.Friend))
		checkBlocks(t, st, u, fmt.Sprintf("nl-blocked%d", i))
	}
	checkUserGroups(t, st, "nl-")
	checkFriends(t, st, "nl-")
	checkBlocks(t, st, "nl-")
	_, err := st.Members(ctx(t), "nl-g")
	checkNotFound(t, "Members(nl-g)", err)
	if err := st.DeleteGroup(ctx(t), "nl-ga"); err != nil {
		t.Fatalf("DeleteGroup(nl-ga) error = %v", err)
	}
	checkMembers(t, st, "nl-ga_b", member("nl-a_b", directory.RoleOwner))
	checkMembers(t, st, "nl-gaa", member("nl-aa", directory.RoleOwner))
}

func (s dirSuite) testDirCanceled(t *testing.T) {
	st := s.open(t)
	c, cancel := context.WithCancel(t.Context())
	cancel()
	calls := []struct {
		name string
		call func() error
	}{
		{"CreateGroup", func() error { return st.CreateGroup(c, group("cx-1", "cx-owner"), members("cx-owner")) }},
		{"Group", func() error { _, err := st.Group(c, "cx-1"); return err }},
		{"PutFriends", func() error { return st.PutFriends(c, []directory.FriendEdge{edge("cx-a", "cx-b", directory.Friend)}) }},
		{"Friends", func() error { _, err := st.Friends(c, "cx-a"); return err }},
		{"Block", func() error { return st.Block(c, "cx-a", "cx-b") }},
	}
	for _, tt := range calls {
		if err := tt.call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s(canceled ctx) error = %v; want context.Canceled", tt.name, err)
		}
	}
	_, err := st.Group(ctx(t), "cx-1")
	checkNotFound(t, "Group(cx-1) after canceled create", err)
	checkFriends(t, st, "cx-a")
	checkBlocks(t, st, "cx-a")
}
