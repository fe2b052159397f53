package social

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/directory"
)

// relation is ann's view of ben and ben's view of ann ("" for none).
type relation [2]directory.FriendState

func relationOf(t testing.TB, d *Directory) relation {
	t.Helper()
	var r relation
	for i, pair := range [][2]string{{"ann", "ben"}, {"ben", "ann"}} {
		edges, err := d.Friends(t.Context(), pair[0])
		must(t, "Friends", err)
		for _, e := range edges {
			if e.PeerID == pair[1] {
				r[i] = e.State
			}
		}
	}
	return r
}

// note is a friend system message: its recipient and body.
type note struct {
	to   string
	body friendNote
}

// request is RequestFriend expecting state want on success.
func request(uid, peer, message string, want directory.FriendState) func(ctx context.Context, d *Directory) error {
	return func(ctx context.Context, d *Directory) error {
		st, err := d.RequestFriend(ctx, uid, peer, message)
		if err == nil && st != want {
			return fmt.Errorf("state %q; want %q", st, want)
		}
		return err
	}
}

// TestFriends: requests, accepts, declines, deletes and blocks between ann
// and ben: the outcome, the relation left in the store, and the system
// messages sent.
func TestFriends(t *testing.T) {
	const (
		none      = directory.FriendState("")
		requested = directory.FriendRequested
		pending   = directory.FriendPending
		friend    = directory.Friend
	)
	accept := func(uid, peer string) func(ctx context.Context, d *Directory) error {
		return func(ctx context.Context, d *Directory) error { return d.AcceptFriend(ctx, uid, peer) }
	}
	decline := func(uid, peer string) func(ctx context.Context, d *Directory) error {
		return func(ctx context.Context, d *Directory) error { return d.DeclineFriend(ctx, uid, peer) }
	}
	del := func(uid, peer string) func(ctx context.Context, d *Directory) error {
		return func(ctx context.Context, d *Directory) error { return d.DeleteFriend(ctx, uid, peer) }
	}
	block := func(uid, peer string) func(ctx context.Context, d *Directory) error {
		return func(ctx context.Context, d *Directory) error { return d.Block(ctx, uid, peer) }
	}
	annAsked := []func(ctx context.Context, d *Directory) error{request("ann", "ben", "it's ann", requested)}
	friends := append(slices.Clone(annAsked), accept("ben", "ann"))
	tests := []struct {
		name  string
		setup []func(ctx context.Context, d *Directory) error
		do    func(ctx context.Context, d *Directory) error
		want  wirepb.ErrorCode
		rel   relation
		notes []note
	}{
		{name: "request", do: request("ann", "ben", "it's ann", requested),
			rel:   relation{requested, pending},
			notes: []note{{"ben", friendNote{Event: "friend_request", From: "ann", Message: "it's ann"}}}},
		{name: "request again", setup: annAsked, do: request("ann", "ben", "again", requested),
			rel: relation{requested, pending}},
		{name: "request when the peer asked first accepts", setup: annAsked, do: request("ben", "ann", "", friend),
			rel:   relation{friend, friend},
			notes: []note{{"ann", friendNote{Event: "friend_accepted", From: "ben"}}}},
		{name: "request a friend", setup: friends, do: request("ann", "ben", "", none), want: codeExists,
			rel: relation{friend, friend}},
		{name: "request someone who blocked you", setup: []func(ctx context.Context, d *Directory) error{block("ben", "ann")},
			do: request("ann", "ben", "", none), want: codeBlocked},
		{name: "request someone you blocked", setup: []func(ctx context.Context, d *Directory) error{block("ann", "ben")},
			do:    request("ann", "ben", "", requested),
			rel:   relation{requested, pending},
			notes: []note{{"ben", friendNote{Event: "friend_request", From: "ann"}}}},
		{name: "request yourself", do: request("ann", "ann", "", none), want: codeInvalid},
		{name: "request an invalid peer", do: request("ann", "b b", "", none), want: codeInvalid},
		{name: "request as an invalid user", do: request("", "ben", "", none), want: codeInvalid},
		{name: "request with a message of 256 bytes", do: request("ann", "ben", strings.Repeat("m", MaxFriendMessage), requested),
			rel:   relation{requested, pending},
			notes: []note{{"ben", friendNote{Event: "friend_request", From: "ann", Message: strings.Repeat("m", MaxFriendMessage)}}}},
		{name: "request with a message of 257 bytes", do: request("ann", "ben", strings.Repeat("m", MaxFriendMessage+1), none),
			want: codeInvalid},

		{name: "accept", setup: annAsked, do: accept("ben", "ann"),
			rel:   relation{friend, friend},
			notes: []note{{"ann", friendNote{Event: "friend_accepted", From: "ben"}}}},
		{name: "accept again", setup: friends, do: accept("ben", "ann"), rel: relation{friend, friend}},
		{name: "accept without a request", do: accept("ben", "ann"), want: codeNotFound},
		{name: "accept your own request", setup: annAsked, do: accept("ann", "ben"), want: codeNotFound,
			rel: relation{requested, pending}},
		{name: "accept yourself", do: accept("ann", "ann"), want: codeInvalid},

		{name: "decline", setup: annAsked, do: decline("ben", "ann")},
		{name: "decline without a request", do: decline("ben", "ann"), want: codeNotFound},
		{name: "decline your own request", setup: annAsked, do: decline("ann", "ben"), want: codeNotFound,
			rel: relation{requested, pending}},
		{name: "decline a friend", setup: friends, do: decline("ben", "ann"), want: codeNotFound,
			rel: relation{friend, friend}},

		{name: "delete a friend", setup: friends, do: del("ben", "ann")},
		{name: "delete twice", setup: append(slices.Clone(friends), del("ann", "ben")), do: del("ann", "ben")},
		{name: "delete a stranger", do: del("ann", "ben")},
		{name: "delete withdraws a request", setup: annAsked, do: del("ann", "ben")},
		{name: "delete yourself", do: del("ann", "ann"), want: codeInvalid},

		{name: "block keeps the friendship", setup: friends, do: block("ben", "ann"), rel: relation{friend, friend}},
		{name: "block yourself", do: block("ann", "ann"), want: codeInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, out := newDir(t)
			ctx := t.Context()
			for i, f := range tc.setup {
				must(t, fmt.Sprintf("setup step %d", i), f(ctx, d))
			}
			out.take()
			err := tc.do(ctx, d)
			if got := codeOf(err); got != tc.want {
				t.Fatalf("got %v (%v); want %v", got, err, tc.want)
			}
			if got := relationOf(t, d); got != tc.rel {
				t.Errorf("relation (ann→ben, ben→ann) = %q; want %q", got, tc.rel)
			}
			checkNotes(t, out.take(), tc.notes)
		})
	}
}

// checkNotes checks that calls are the friend system messages want.
func checkNotes(t *testing.T, calls []sent, want []note) {
	t.Helper()
	if len(calls) != len(want) {
		t.Fatalf("%d system messages; want %d", len(calls), len(want))
	}
	for i, c := range calls {
		w := want[i]
		m := c.msg
		if !slices.Equal(c.rcpt, []string{w.to}) || !proto.Equal(m.To, userConv(w.to)) ||
			m.FromUser != w.body.From || m.ContentType != wirepb.ContentType_CONTENT_TYPE_SYSTEM || m.MsgId == "" {
			t.Errorf("system message to %q: %v; want a SYSTEM message from %s to user %s", c.rcpt, m, w.body.From, w.to)
		}
		var got friendNote
		if err := json.Unmarshal(m.Body, &got); err != nil || got != w.body {
			t.Errorf("body %s (%v); want %+v", m.Body, err, w.body)
		}
	}
}

// TestFriendNotificationFails: when the Fanout fails, the request and the
// accept are saved and the caller gets UNAVAILABLE.
func TestFriendNotificationFails(t *testing.T) {
	d, out := newDir(t, requireFriendship)
	ctx := t.Context()
	out.failWith(errors.New("delivery stream down"))
	if _, err := d.RequestFriend(ctx, "ann", "ben", "hi"); codeOf(err) != codeUnavailable {
		t.Errorf("RequestFriend = %v; want %v", err, codeUnavailable)
	}
	if got, want := relationOf(t, d), (relation{directory.FriendRequested, directory.FriendPending}); got != want {
		t.Errorf("after the request: %q; want %q", got, want)
	}
	if err := d.AcceptFriend(ctx, "ben", "ann"); codeOf(err) != codeUnavailable {
		t.Errorf("AcceptFriend = %v; want %v", err, codeUnavailable)
	}
	if got, want := relationOf(t, d), (relation{directory.Friend, directory.Friend}); got != want {
		t.Errorf("after the accept: %q; want %q", got, want)
	}
	if n := len(out.take()); n != 2 {
		t.Errorf("%d Fanout calls; want 2", n)
	}
	out.failWith(nil)
	checkRoute(t, d, "ann", userConv("ben"), time.Now(), routed("ben"))
}

func TestBlocks(t *testing.T) {
	d, out := newDir(t)
	ctx := t.Context()
	list := func(uid string) []string {
		t.Helper()
		ids, err := d.Blocks(ctx, uid)
		must(t, "Blocks", err)
		return ids
	}
	must(t, "Block", d.Block(ctx, "ann", "zed"))
	must(t, "Block", d.Block(ctx, "ann", "ben"))
	must(t, "Block again", d.Block(ctx, "ann", "ben"))
	if got := list("ann"); !slices.Equal(got, []string{"ben", "zed"}) {
		t.Errorf("Blocks(ann) = %q; want [ben zed]", got)
	}
	if got := list("ben"); len(got) != 0 {
		t.Errorf("Blocks(ben) = %q; want none (blocks are one-way)", got)
	}
	must(t, "Unblock", d.Unblock(ctx, "ann", "zed"))
	must(t, "Unblock again", d.Unblock(ctx, "ann", "zed"))
	must(t, "Unblock a stranger", d.Unblock(ctx, "ann", "nobody"))
	if got := list("ann"); !slices.Equal(got, []string{"ben"}) {
		t.Errorf("Blocks(ann) after unblocking zed = %q; want [ben]", got)
	}
	for _, tc := range []struct{ uid, peer string }{{"ann", "ann"}, {"ann", ""}, {"a a", "ben"}} {
		if err := d.Block(ctx, tc.uid, tc.peer); codeOf(err) != codeInvalid {
			t.Errorf("Block(%q, %q) = %v; want %v", tc.uid, tc.peer, err, codeInvalid)
		}
		if err := d.Unblock(ctx, tc.uid, tc.peer); codeOf(err) != codeInvalid {
			t.Errorf("Unblock(%q, %q) = %v; want %v", tc.uid, tc.peer, err, codeInvalid)
		}
	}
	if _, err := d.Blocks(ctx, "not valid"); codeOf(err) != codeInvalid {
		t.Errorf("Blocks(invalid id) = %v; want %v", err, codeInvalid)
	}
	if _, err := d.Friends(ctx, "not valid"); codeOf(err) != codeInvalid {
		t.Errorf("Friends(invalid id) = %v; want %v", err, codeInvalid)
	}
	if n := len(out.take()); n != 0 {
		t.Errorf("%d system messages for blocks; want none", n)
	}
}
