package social

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/actors/msgid"
	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/boltstore"
	"github.com/parleyim/parley/sync/directory"
)

// Short names for the codes the tables expect.
const (
	codeOK          = wirepb.ErrorCode_ERROR_CODE_UNSPECIFIED // no error
	codeInvalid     = wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT
	codeDenied      = wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED
	codeNotFound    = wirepb.ErrorCode_ERROR_CODE_NOT_FOUND
	codeExists      = wirepb.ErrorCode_ERROR_CODE_ALREADY_EXISTS
	codeBlocked     = wirepb.ErrorCode_ERROR_CODE_BLOCKED
	codeUnavailable = wirepb.ErrorCode_ERROR_CODE_UNAVAILABLE
	// codeNotRefusal stands for an error that is not an *Error (a store
	// failure, or a test's own complaint).
	codeNotRefusal = wirepb.ErrorCode_ERROR_CODE_INTERNAL
)

// codeOf is err's code for the tables: codeOK for nil, codeNotRefusal for
// an error that is not an *Error.
func codeOf(err error) wirepb.ErrorCode {
	if err == nil {
		return codeOK
	}
	var e *Error
	if !errors.As(err, &e) {
		return codeNotRefusal
	}
	return e.Code
}

// sent is one Fanout call.
type sent struct {
	rcpt []string
	msg  *wirepb.Message
}

// fanout is a Config.Fanout that records its calls and fails while fail is
// set.
type fanout struct {
	mu    sync.Mutex // guards the following
	calls []sent
	fail  error
}

func (f *fanout) send(_ context.Context, rcpt []string, msg *wirepb.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, sent{rcpt: slices.Clone(rcpt), msg: msg})
	return f.fail
}

func (f *fanout) failWith(err error) {
	f.mu.Lock()
	f.fail = err
	f.mu.Unlock()
}

// take returns the calls so far and forgets them.
func (f *fanout) take() []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.calls
	f.calls = nil
	return out
}

// newDir returns a Directory on a fresh embedded store, NATS nil, Fanout
// recorded by the returned fanout; opts adjust the Config before New.
func newDir(t testing.TB, opts ...func(*Config)) (*Directory, *fanout) {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "dir.db"), boltstore.Options{})
	if err != nil {
		t.Fatalf("boltstore.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	out := &fanout{}
	cfg := Config{
		Store:  st,
		Fanout: out.send,
		IDs:    msgid.New(),
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
	for _, o := range opts {
		o(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d, out
}

// coldCopy is another Directory on d's store and Fanout (another node, or d
// after a restart): its cache is empty.
func coldCopy(t testing.TB, d *Directory) *Directory {
	t.Helper()
	c, err := New(d.cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func requireFriendship(c *Config) { c.RequireFriendship = true }

// must fails the test on err; what names the call.
func must(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// mkGroup creates gid (by the server API) owned by owner with members.
func mkGroup(t testing.TB, d *Directory, gid, owner string, members ...string) {
	t.Helper()
	_, err := d.CreateGroup(t.Context(), "", NewGroup{ID: gid, Name: gid, Owner: owner, Members: members})
	must(t, "CreateGroup "+gid, err)
}

// befriend makes a and b friends.
func befriend(t testing.TB, d *Directory, a, b string) {
	t.Helper()
	_, err := d.RequestFriend(t.Context(), a, b, "")
	must(t, "RequestFriend", err)
	must(t, "AcceptFriend", d.AcceptFriend(t.Context(), b, a))
}

// outcome is a routing decision: recipients, or a refusal's code.
type outcome struct {
	rcpt []string
	code wirepb.ErrorCode
}

func (o outcome) String() string { return fmt.Sprintf("(%q, %v)", o.rcpt, o.code) }

func (o outcome) equal(p outcome) bool { return o.code == p.code && slices.Equal(o.rcpt, p.rcpt) }

func routed(rcpt ...string) outcome         { return outcome{rcpt: rcpt} }
func refused(code wirepb.ErrorCode) outcome { return outcome{code: code} }

// route is Route as an outcome, and whether it was cached.
func route(d *Directory, from string, to *wirepb.Conversation, now time.Time) (outcome, bool) {
	rcpt, err, ok := d.Route(from, to, now)
	return outcome{rcpt, codeOf(err)}, ok
}

func routeLoad(t testing.TB, d *Directory, from string, to *wirepb.Conversation, now time.Time) outcome {
	rcpt, err := d.RouteLoad(t.Context(), from, to, now)
	return outcome{rcpt, codeOf(err)}
}

// checkRoute checks that from→to routes to want: Route, if it answers from
// the cache, answers want (no stale entry); RouteLoad answers want; and
// Route answers it from the cache afterwards.
func checkRoute(t testing.TB, d *Directory, from string, to *wirepb.Conversation, now time.Time, want outcome) {
	t.Helper()
	if got, ok := route(d, from, to, now); ok && !got.equal(want) {
		t.Errorf("Route(%s→%s) = %v from the cache; want %v (stale entry)", from, to.GetId(), got, want)
	}
	if got := routeLoad(t, d, from, to, now); !got.equal(want) {
		t.Errorf("RouteLoad(%s→%s) = %v; want %v", from, to.GetId(), got, want)
	}
	if got, ok := route(d, from, to, now); !ok || !got.equal(want) {
		t.Errorf("Route(%s→%s) after RouteLoad = %v, ok=%v; want %v, ok=true", from, to.GetId(), got, ok, want)
	}
}

func TestNewRequiresStoreFanoutIDs(t *testing.T) {
	d, _ := newDir(t)
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"no store", func(c *Config) { c.Store = nil }},
		{"no fanout", func(c *Config) { c.Fanout = nil }},
		{"no ids", func(c *Config) { c.IDs = nil }},
	} {
		cfg := d.cfg
		tc.edit(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%s) error = nil; want an error", tc.name)
		}
	}
	if got := d.MaxGroupMembers(); got != 10_000 {
		t.Errorf("MaxGroupMembers() = %d; want the default 10000", got)
	}
}

// TestRoute: who a message goes to, or why not, for every kind of
// conversation; each row runs on a cold Directory, which Route cannot
// answer until RouteLoad has read the store.
func TestRoute(t *testing.T) {
	now := time.Now()
	hour := time.Hour.Milliseconds()
	tests := []struct {
		name  string
		cfg   func(*Config)
		setup func(t *testing.T, d *Directory)
		from  string
		to    *wirepb.Conversation
		at    time.Time // zero: now
		want  outcome
	}{
		{name: "user", from: "ann", to: userConv("ben"), want: routed("ben")},
		{name: "user blocked by the recipient", from: "ann", to: userConv("ben"),
			setup: func(t *testing.T, d *Directory) { must(t, "Block", d.Block(t.Context(), "ben", "ann")) },
			want:  refused(codeBlocked)},
		{name: "user the sender blocked (one-way)", from: "ann", to: userConv("ben"),
			setup: func(t *testing.T, d *Directory) { must(t, "Block", d.Block(t.Context(), "ann", "ben")) },
			want:  routed("ben")},
		{name: "user self", from: "ann", to: userConv("ann"), want: routed()},
		{name: "friendship: friend", cfg: requireFriendship, from: "ann", to: userConv("ben"),
			setup: func(t *testing.T, d *Directory) { befriend(t, d, "ann", "ben") },
			want:  routed("ben")},
		{name: "friendship: friend, other way", cfg: requireFriendship, from: "ben", to: userConv("ann"),
			setup: func(t *testing.T, d *Directory) { befriend(t, d, "ann", "ben") },
			want:  routed("ann")},
		{name: "friendship: stranger", cfg: requireFriendship, from: "ann", to: userConv("ben"),
			want: refused(codeDenied)},
		{name: "friendship: requested is not enough", cfg: requireFriendship, from: "ann", to: userConv("ben"),
			setup: func(t *testing.T, d *Directory) {
				_, err := d.RequestFriend(t.Context(), "ann", "ben", "hi")
				must(t, "RequestFriend", err)
			},
			want: refused(codeDenied)},
		{name: "friendship: pending is not enough", cfg: requireFriendship, from: "ben", to: userConv("ann"),
			setup: func(t *testing.T, d *Directory) {
				_, err := d.RequestFriend(t.Context(), "ann", "ben", "hi")
				must(t, "RequestFriend", err)
			},
			want: refused(codeDenied)},
		{name: "friendship: blocked friend", cfg: requireFriendship, from: "ann", to: userConv("ben"),
			setup: func(t *testing.T, d *Directory) {
				befriend(t, d, "ann", "ben")
				must(t, "Block", d.Block(t.Context(), "ben", "ann"))
			},
			want: refused(codeBlocked)},
		{name: "friendship: self", cfg: requireFriendship, from: "ann", to: userConv("ann"), want: routed()},

		{name: "group member", from: "cid", to: groupConv("g"),
			setup: func(t *testing.T, d *Directory) { mkGroup(t, d, "g", "own", "zed", "ann", "cid", "bob") },
			want:  routed("ann", "bob", "own", "zed")},
		{name: "group owner", from: "own", to: groupConv("g"),
			setup: func(t *testing.T, d *Directory) { mkGroup(t, d, "g", "own", "zed", "ann") },
			want:  routed("ann", "zed")},
		{name: "group of one", from: "own", to: groupConv("g"),
			setup: func(t *testing.T, d *Directory) { mkGroup(t, d, "g", "own") },
			want:  routed()},
		{name: "group outsider", from: "out", to: groupConv("g"),
			setup: func(t *testing.T, d *Directory) { mkGroup(t, d, "g", "own", "ann") },
			want:  refused(codeDenied)},
		{name: "group muted until later", from: "ann", to: groupConv("g"),
			setup: func(t *testing.T, d *Directory) {
				mkGroup(t, d, "g", "own", "ann")
				must(t, "Mute", d.Mute(t.Context(), "own", "g", "ann", now.UnixMilli()+hour))
			},
			want: refused(codeDenied)},
		{name: "group mute expired", from: "ann", to: groupConv("g"),
			setup: func(t *testing.T, d *Directory) {
				mkGroup(t, d, "g", "own", "ann")
				must(t, "Mute", d.Mute(t.Context(), "own", "g", "ann", now.UnixMilli()-1))
			},
			want: routed("own")},
		{name: "group mute over by the time of the send", from: "ann", to: groupConv("g"),
			setup: func(t *testing.T, d *Directory) {
				mkGroup(t, d, "g", "own", "ann")
				must(t, "Mute", d.Mute(t.Context(), "own", "g", "ann", now.UnixMilli()+hour))
			},
			at: now.Add(2 * time.Hour), want: routed("own")},
		{name: "group unmuted", from: "ann", to: groupConv("g"),
			setup: func(t *testing.T, d *Directory) {
				mkGroup(t, d, "g", "own", "ann")
				must(t, "Mute", d.Mute(t.Context(), "own", "g", "ann", now.UnixMilli()+hour))
				must(t, "Mute", d.Mute(t.Context(), "own", "g", "ann", 0))
			},
			want: routed("own")},
		{name: "group missing", from: "ann", to: groupConv("nope"), want: refused(codeNotFound)},
		{name: "group dissolved", from: "ann", to: groupConv("g"),
			setup: func(t *testing.T, d *Directory) {
				mkGroup(t, d, "g", "own", "ann")
				must(t, "DissolveGroup", d.DissolveGroup(t.Context(), "own", "g"))
			},
			want: refused(codeNotFound)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []func(*Config)
			if tc.cfg != nil {
				opts = append(opts, tc.cfg)
			}
			d, _ := newDir(t, opts...)
			if tc.setup != nil {
				tc.setup(t, d)
			}
			at := tc.at
			if at.IsZero() {
				at = now
			}
			cold := coldCopy(t, d)
			if got, ok := route(cold, tc.from, tc.to, at); ok {
				t.Errorf("Route on a cold cache = %v, ok=true; want ok=false", got)
			}
			checkRoute(t, cold, tc.from, tc.to, at, tc.want)
		})
	}
}

// TestRouteUnknownConversationType: anything but user and group is refused,
// from the cache (ok=true) as from RouteLoad.
func TestRouteUnknownConversationType(t *testing.T) {
	d, _ := newDir(t)
	for _, to := range []*wirepb.Conversation{
		nil,
		{Id: "ann"},
		{Type: wirepb.ConversationType_CONVERSATION_TYPE_ROOM, Id: "lobby"},
		{Type: 99, Id: "g"},
	} {
		got, ok := route(d, "ann", to, time.Now())
		if want := refused(codeInvalid); !ok || !got.equal(want) {
			t.Errorf("Route(%v) = %v, ok=%v; want %v, ok=true", to, got, ok, want)
		}
		if got, want := routeLoad(t, d, "ann", to, time.Now()), refused(codeInvalid); !got.equal(want) {
			t.Errorf("RouteLoad(%v) = %v; want %v", to, got, want)
		}
	}
}

// TestCacheCoherence: once a route is cached, every change that affects it
// shows at once: Route never answers from a stale entry.
func TestCacheCoherence(t *testing.T) {
	tests := []struct {
		name   string
		cfg    func(*Config)
		setup  func(t *testing.T, d *Directory)
		from   string
		to     *wirepb.Conversation
		before outcome
		change func(ctx context.Context, d *Directory) error
		after  outcome
	}{
		{name: "AddMembers", from: "own", to: groupConv("g"),
			setup:  func(t *testing.T, d *Directory) { mkGroup(t, d, "g", "own", "ann") },
			before: routed("ann"),
			change: func(ctx context.Context, d *Directory) error {
				_, err := d.AddMembers(ctx, "own", "g", []string{"bob"})
				return err
			},
			after: routed("ann", "bob")},
		{name: "AddMembers, the new member sends", from: "bob", to: groupConv("g"),
			setup:  func(t *testing.T, d *Directory) { mkGroup(t, d, "g", "own", "ann") },
			before: refused(codeDenied),
			change: func(ctx context.Context, d *Directory) error {
				_, err := d.AddMembers(ctx, "", "g", []string{"bob"})
				return err
			},
			after: routed("ann", "own")},
		{name: "RemoveMembers, the removed member sends", from: "ann", to: groupConv("g"),
			setup:  func(t *testing.T, d *Directory) { mkGroup(t, d, "g", "own", "ann", "bob") },
			before: routed("bob", "own"),
			change: func(ctx context.Context, d *Directory) error {
				_, err := d.RemoveMembers(ctx, "own", "g", []string{"ann"})
				return err
			},
			after: refused(codeDenied)},
		{name: "RemoveMembers (leave), another member sends", from: "own", to: groupConv("g"),
			setup:  func(t *testing.T, d *Directory) { mkGroup(t, d, "g", "own", "ann", "bob") },
			before: routed("ann", "bob"),
			change: func(ctx context.Context, d *Directory) error {
				_, err := d.RemoveMembers(ctx, "bob", "g", []string{"bob"})
				return err
			},
			after: routed("ann")},
		{name: "Mute", from: "ann", to: groupConv("g"),
			setup:  func(t *testing.T, d *Directory) { mkGroup(t, d, "g", "own", "ann") },
			before: routed("own"),
			change: func(ctx context.Context, d *Directory) error {
				return d.Mute(ctx, "own", "g", "ann", time.Now().Add(time.Hour).UnixMilli())
			},
			after: refused(codeDenied)},
		{name: "DissolveGroup", from: "ann", to: groupConv("g"),
			setup:  func(t *testing.T, d *Directory) { mkGroup(t, d, "g", "own", "ann") },
			before: routed("own"),
			change: func(ctx context.Context, d *Directory) error { return d.DissolveGroup(ctx, "own", "g") },
			after:  refused(codeNotFound)},
		{name: "CreateGroup over a cached miss", from: "ann", to: groupConv("g"),
			before: refused(codeNotFound),
			change: func(ctx context.Context, d *Directory) error {
				_, err := d.CreateGroup(ctx, "ann", NewGroup{ID: "g", Name: "G", Members: []string{"bob"}})
				return err
			},
			after: routed("bob")},
		{name: "Block", from: "ann", to: userConv("ben"),
			before: routed("ben"),
			change: func(ctx context.Context, d *Directory) error { return d.Block(ctx, "ben", "ann") },
			after:  refused(codeBlocked)},
		{name: "Unblock", from: "ann", to: userConv("ben"),
			setup:  func(t *testing.T, d *Directory) { must(t, "Block", d.Block(t.Context(), "ben", "ann")) },
			before: refused(codeBlocked),
			change: func(ctx context.Context, d *Directory) error { return d.Unblock(ctx, "ben", "ann") },
			after:  routed("ben")},
		{name: "DeleteFriend by the peer", cfg: requireFriendship, from: "ann", to: userConv("ben"),
			setup:  func(t *testing.T, d *Directory) { befriend(t, d, "ann", "ben") },
			before: routed("ben"),
			change: func(ctx context.Context, d *Directory) error { return d.DeleteFriend(ctx, "ben", "ann") },
			after:  refused(codeDenied)},
		{name: "DeleteFriend by the sender", cfg: requireFriendship, from: "ann", to: userConv("ben"),
			setup:  func(t *testing.T, d *Directory) { befriend(t, d, "ann", "ben") },
			before: routed("ben"),
			change: func(ctx context.Context, d *Directory) error { return d.DeleteFriend(ctx, "ann", "ben") },
			after:  refused(codeDenied)},
		{name: "AcceptFriend", cfg: requireFriendship, from: "ann", to: userConv("ben"),
			setup: func(t *testing.T, d *Directory) {
				_, err := d.RequestFriend(t.Context(), "ann", "ben", "")
				must(t, "RequestFriend", err)
			},
			before: refused(codeDenied),
			change: func(ctx context.Context, d *Directory) error { return d.AcceptFriend(ctx, "ben", "ann") },
			after:  routed("ben")},
		{name: "RequestFriend accepting", cfg: requireFriendship, from: "ann", to: userConv("ben"),
			setup: func(t *testing.T, d *Directory) {
				_, err := d.RequestFriend(t.Context(), "ann", "ben", "")
				must(t, "RequestFriend", err)
			},
			before: refused(codeDenied),
			change: func(ctx context.Context, d *Directory) error {
				_, err := d.RequestFriend(ctx, "ben", "ann", "")
				return err
			},
			after: routed("ben")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []func(*Config)
			if tc.cfg != nil {
				opts = append(opts, tc.cfg)
			}
			d, _ := newDir(t, opts...)
			if tc.setup != nil {
				tc.setup(t, d)
			}
			now := time.Now()
			checkRoute(t, d, tc.from, tc.to, now, tc.before)
			if got, ok := route(d, tc.from, tc.to, now); !ok {
				t.Fatalf("Route before the change = %v, ok=false; want it cached", got)
			}
			must(t, "change", tc.change(t.Context(), d))
			checkRoute(t, d, tc.from, tc.to, time.Now(), tc.after)
		})
	}
}

// hookStore is a directory.Store that runs a hook once, right after one of
// its reads has read the store: a change that lands while a load is in
// flight, between the load's reading of the generation and its insert.
type hookStore struct {
	directory.Store

	mu    sync.Mutex        // guards after
	after map[string]func() // "members", "blocks" or "friends" → hook
}

func (s *hookStore) arm(read string, f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.after == nil {
		s.after = make(map[string]func())
	}
	s.after[read] = f
}

// fire runs and disarms the hook of read, if one is armed.
func (s *hookStore) fire(read string) {
	s.mu.Lock()
	f := s.after[read]
	delete(s.after, read)
	s.mu.Unlock()
	if f != nil {
		f()
	}
}

func (s *hookStore) armed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.after)
}

func (s *hookStore) Members(ctx context.Context, gid string) ([]directory.Member, error) {
	ms, err := s.Store.Members(ctx, gid)
	s.fire("members")
	return ms, err
}

func (s *hookStore) Blocks(ctx context.Context, uid string) ([]string, error) {
	ids, err := s.Store.Blocks(ctx, uid)
	s.fire("blocks")
	return ids, err
}

func (s *hookStore) Friends(ctx context.Context, uid string) ([]directory.FriendEdge, error) {
	edges, err := s.Store.Friends(ctx, uid)
	s.fire("friends")
	return edges, err
}

// TestLoadRacingAChangeIsNotCached: a change that lands while RouteLoad is
// reading the store (after its read, before its insert) leaves the loaded,
// now stale, value uncached: it answers that one call, and the next Route
// misses instead of answering from it.
func TestLoadRacingAChangeIsNotCached(t *testing.T) {
	tests := []struct {
		name         string
		cfg          func(*Config)
		setup        func(t *testing.T, d *Directory)
		read         string
		change       func(ctx context.Context, d *Directory) error
		from         string
		to           *wirepb.Conversation
		stale, fresh outcome
	}{
		{name: "group members", read: "members", from: "own", to: groupConv("g"),
			setup: func(t *testing.T, d *Directory) { mkGroup(t, d, "g", "own", "ann") },
			change: func(ctx context.Context, d *Directory) error {
				_, err := d.AddMembers(ctx, "", "g", []string{"late"})
				return err
			},
			stale: routed("ann"), fresh: routed("ann", "late")},
		{name: "blocks", read: "blocks", from: "ann", to: userConv("ben"),
			change: func(ctx context.Context, d *Directory) error { return d.Block(ctx, "ben", "ann") },
			stale:  routed("ben"), fresh: refused(codeBlocked)},
		{name: "friends", cfg: requireFriendship, read: "friends", from: "ann", to: userConv("ben"),
			setup:  func(t *testing.T, d *Directory) { befriend(t, d, "ann", "ben") },
			change: func(ctx context.Context, d *Directory) error { return d.DeleteFriend(ctx, "ann", "ben") },
			stale:  routed("ben"), fresh: refused(codeDenied)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs := &hookStore{}
			d, _ := newDir(t, func(c *Config) {
				hs.Store, c.Store = c.Store, hs
				if tc.cfg != nil {
					tc.cfg(c)
				}
			})
			if tc.setup != nil {
				tc.setup(t, d)
			}
			d = coldCopy(t, d)
			ctx := t.Context()
			hs.arm(tc.read, func() {
				if err := tc.change(ctx, d); err != nil {
					t.Errorf("change during the load: %v", err)
				}
			})
			now := time.Now()
			if got := routeLoad(t, d, tc.from, tc.to, now); !got.equal(tc.stale) {
				t.Errorf("RouteLoad racing the change = %v; want %v (what it read)", got, tc.stale)
			}
			if n := hs.armed(); n != 0 {
				t.Fatalf("the hook on %s did not run", tc.read)
			}
			if got, ok := route(d, tc.from, tc.to, now); ok {
				t.Errorf("Route after the racing load = %v, ok=true; want ok=false (the stale load must not be cached)", got)
			}
			checkRoute(t, d, tc.from, tc.to, now, tc.fresh)
		})
	}
}

// TestCacheIsBounded: the cache never holds more than CacheGroups groups
// and CacheUsers users per map, and an evicted entry routes correctly.
func TestCacheIsBounded(t *testing.T) {
	d, _ := newDir(t, func(c *Config) { c.CacheGroups, c.CacheUsers = 2, 3 })
	now := time.Now()
	for i := range 5 {
		gid := fmt.Sprintf("g%d", i)
		mkGroup(t, d, gid, "own", "ann")
		checkRoute(t, d, "ann", groupConv(gid), now, routed("own"))
		checkRoute(t, d, "ann", userConv(fmt.Sprintf("u%d", i)), now, routed(fmt.Sprintf("u%d", i)))
	}
	d.mu.Lock()
	groups, blocks := len(d.groups), len(d.blocks)
	d.mu.Unlock()
	if groups > 2 || blocks > 3 {
		t.Errorf("cache holds %d groups and %d block sets; want at most 2 and 3", groups, blocks)
	}
	checkRoute(t, d, "ann", groupConv("g0"), now, routed("own"))
}
