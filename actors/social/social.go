// Package social holds the rules of groups, friends and blocks: who may do
// what, which system messages a change puts into the members' mailboxes, and
// who a message goes to. It is the only writer of sync/directory and keeps a
// bounded cache of what user actors read on every send (a group's members, a
// user's blocks and friends), so a send costs no store read once warm.
//
// Cache coherence: every change drops the cached entry and publishes its key
// on im.dir.changed; every node's Directory drops the same key. A load that
// raced with a change (the generation moved while it read) is used once and
// not cached, so a stale entry never outlives the change that made it stale.
package social

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parleyim/parley/actors/events"
	"github.com/parleyim/parley/actors/msgid"
	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/directory"
)

// ChangedSubject carries cache keys dropped by a change, for every node.
const ChangedSubject = "im.dir.changed"

// Error is a refusal with the wire error code it maps to.
type Error struct {
	Code wirepb.ErrorCode
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

func errorf(code wirepb.ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Code returns err's wire code: its own if it is an *Error, UNAVAILABLE
// (temporary) otherwise.
func Code(err error) wirepb.ErrorCode {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return wirepb.ErrorCode_ERROR_CODE_UNAVAILABLE
}

// Config configures a Directory.
type Config struct {
	Store directory.Store
	// NATS carries cache invalidations and events; nil in single-process tests.
	NATS *nats.Conn
	// Fanout durably hands msg to the recipients' mailboxes (the delivery
	// stream); it returns once all of it is on its way.
	Fanout func(ctx context.Context, recipients []string, msg *wirepb.Message) error
	IDs    *msgid.Gen
	// RequireFriendship refuses 1:1 messages between users who are not friends.
	RequireFriendship bool
	// MaxGroupMembers caps a group's size; zero means 10,000.
	MaxGroupMembers int
	// CacheGroups and CacheUsers bound the cache; zero means 10,000 and 100,000.
	CacheGroups, CacheUsers int
	Logger                  *slog.Logger
}

// Directory is safe for concurrent use.
type Directory struct {
	cfg    Config
	log    *slog.Logger
	events *events.Publisher
	sub    *nats.Subscription

	// wmu serializes changes: they read, decide and write, and are rare.
	// (One logic node; several would need the store's transactions to carry
	// the decision.)
	wmu sync.Mutex

	mu      sync.Mutex // guards the following
	gen     uint64     // bumped by every invalidation
	groups  map[string]*groupView
	blocks  map[string]set // uid → users uid blocks
	friends map[string]set // uid → uid's friends (state friend)
}

type set map[string]struct{}

// groupView is a cached group; nil in the map means "known not to exist".
type groupView struct {
	group   directory.Group
	members map[string]directory.Member
	ids     []string // sorted member ids
}

// New returns a Directory; Start subscribes it to invalidations.
func New(cfg Config) (*Directory, error) {
	if cfg.Store == nil || cfg.Fanout == nil || cfg.IDs == nil {
		return nil, errors.New("social: Store, Fanout and IDs are required")
	}
	if cfg.MaxGroupMembers <= 0 {
		cfg.MaxGroupMembers = 10_000
	}
	if cfg.CacheGroups <= 0 {
		cfg.CacheGroups = 10_000
	}
	if cfg.CacheUsers <= 0 {
		cfg.CacheUsers = 100_000
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Directory{
		cfg:     cfg,
		log:     log,
		events:  &events.Publisher{NATS: cfg.NATS, Log: log},
		groups:  make(map[string]*groupView),
		blocks:  make(map[string]set),
		friends: make(map[string]set),
	}, nil
}

// Start subscribes to other nodes' invalidations.
func (d *Directory) Start() error {
	if d.cfg.NATS == nil {
		return nil
	}
	sub, err := d.cfg.NATS.Subscribe(ChangedSubject, func(m *nats.Msg) { d.drop(string(m.Data)) })
	if err != nil {
		return fmt.Errorf("social: subscribe %s: %w", ChangedSubject, err)
	}
	d.sub = sub
	return nil
}

// Close unsubscribes.
func (d *Directory) Close() error {
	if d.sub != nil {
		return d.sub.Unsubscribe()
	}
	return nil
}

// MaxGroupMembers is the configured group size cap.
func (d *Directory) MaxGroupMembers() int { return d.cfg.MaxGroupMembers }

// Cache keys.
func groupKey(gid string) string   { return "g:" + gid }
func blocksKey(uid string) string  { return "b:" + uid }
func friendsKey(uid string) string { return "f:" + uid }

// drop forgets one cached entry.
func (d *Directory) drop(key string) {
	if len(key) < 3 {
		return
	}
	d.mu.Lock()
	d.gen++
	switch id := key[2:]; key[:2] {
	case "g:":
		delete(d.groups, id)
	case "b:":
		delete(d.blocks, id)
	case "f:":
		delete(d.friends, id)
	}
	d.mu.Unlock()
}

// changed drops keys here and on every other node.
func (d *Directory) changed(keys ...string) {
	for _, k := range keys {
		d.drop(k)
		if d.cfg.NATS != nil {
			if err := d.cfg.NATS.Publish(ChangedSubject, []byte(k)); err != nil {
				d.log.Warn("publish cache invalidation failed", "key", k, "err", err)
			}
		}
	}
}

// evictOne makes room in a full cache map (Go's map order is random enough
// for a cache whose misses cost one indexed read).
func evictOne[V any](m map[string]V, limit int) {
	if len(m) < limit {
		return
	}
	for k := range m {
		delete(m, k)
		return
	}
}

// Route returns the users a message from `from` to `to` is handed to (the
// recipient of a 1:1 message, every other member of a group), or why it is
// refused. It reads only the cache: ok=false means something was not cached;
// call RouteLoad (which reads the store) off the caller's hot loop.
func (d *Directory) Route(from string, to *wirepb.Conversation, now time.Time) (rcpt []string, err error, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch to.GetType() {
	case wirepb.ConversationType_CONVERSATION_TYPE_USER:
		blocks, ok1 := d.blocks[to.Id]
		friends, ok2 := d.friends[from]
		if !ok1 || (d.cfg.RequireFriendship && !ok2 && from != to.Id) {
			return nil, nil, false
		}
		rcpt, err = d.routeUser(from, to.Id, blocks, friends)
		return rcpt, err, true
	case wirepb.ConversationType_CONVERSATION_TYPE_GROUP:
		gv, ok := d.groups[to.Id]
		if !ok {
			return nil, nil, false
		}
		rcpt, err = routeGroup(from, to.Id, gv, now)
		return rcpt, err, true
	}
	return nil, errorf(wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "to.type must be user or group"), true
}

// RouteLoad is Route reading what the cache misses from the store.
func (d *Directory) RouteLoad(ctx context.Context, from string, to *wirepb.Conversation, now time.Time) ([]string, error) {
	switch to.GetType() {
	case wirepb.ConversationType_CONVERSATION_TYPE_USER:
		blocks, err := d.blockSet(ctx, to.Id)
		if err != nil {
			return nil, err
		}
		var friends set
		if d.cfg.RequireFriendship && from != to.Id {
			if friends, err = d.friendSet(ctx, from); err != nil {
				return nil, err
			}
		}
		return d.routeUser(from, to.Id, blocks, friends)
	case wirepb.ConversationType_CONVERSATION_TYPE_GROUP:
		gv, err := d.group(ctx, to.Id)
		if err != nil {
			return nil, err
		}
		return routeGroup(from, to.Id, gv, now)
	}
	return nil, errorf(wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "to.type must be user or group")
}

func (d *Directory) routeUser(from, to string, blocks, friends set) ([]string, error) {
	if from == to {
		return nil, nil // a note to self
	}
	if _, blocked := blocks[from]; blocked {
		return nil, errorf(wirepb.ErrorCode_ERROR_CODE_BLOCKED, "%s has blocked you", to)
	}
	if d.cfg.RequireFriendship {
		if _, ok := friends[to]; !ok {
			return nil, errorf(wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "this server allows 1:1 messages between friends only; %s is not your friend", to)
		}
	}
	return []string{to}, nil
}

func routeGroup(from, gid string, gv *groupView, now time.Time) ([]string, error) {
	if gv == nil {
		return nil, errorf(wirepb.ErrorCode_ERROR_CODE_NOT_FOUND, "group %s does not exist", gid)
	}
	m, ok := gv.members[from]
	if !ok {
		return nil, errorf(wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "you are not a member of group %s", gid)
	}
	if m.MutedUntilMs > now.UnixMilli() {
		return nil, errorf(wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "you are muted in group %s until %s", gid,
			time.UnixMilli(m.MutedUntilMs).UTC().Format(time.RFC3339))
	}
	rcpt := make([]string, 0, len(gv.ids)-1)
	for _, id := range gv.ids {
		if id != from {
			rcpt = append(rcpt, id)
		}
	}
	return rcpt, nil
}

// group returns the cached view of gid, loading it on a miss; nil view and a
// NOT_FOUND error when there is no such group.
func (d *Directory) group(ctx context.Context, gid string) (*groupView, error) {
	d.mu.Lock()
	gv, ok := d.groups[gid]
	gen := d.gen
	d.mu.Unlock()
	if !ok {
		var err error
		if gv, err = d.loadGroup(ctx, gid); err != nil {
			return nil, err
		}
		d.mu.Lock()
		if d.gen == gen {
			evictOne(d.groups, d.cfg.CacheGroups)
			d.groups[gid] = gv
		}
		d.mu.Unlock()
	}
	if gv == nil {
		return nil, errorf(wirepb.ErrorCode_ERROR_CODE_NOT_FOUND, "group %s does not exist", gid)
	}
	return gv, nil
}

func (d *Directory) loadGroup(ctx context.Context, gid string) (*groupView, error) {
	g, err := d.cfg.Store.Group(ctx, gid)
	if errors.Is(err, directory.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load group %s: %w", gid, err)
	}
	ms, err := d.cfg.Store.Members(ctx, gid)
	if errors.Is(err, directory.ErrNotFound) {
		return nil, nil // dissolved meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("load members of group %s: %w", gid, err)
	}
	gv := &groupView{group: g, members: make(map[string]directory.Member, len(ms)), ids: make([]string, 0, len(ms))}
	for _, m := range ms {
		gv.members[m.UserID] = m
		gv.ids = append(gv.ids, m.UserID)
	}
	slices.Sort(gv.ids)
	return gv, nil
}

func (d *Directory) blockSet(ctx context.Context, uid string) (set, error) {
	return d.userSet(ctx, d.blocks, uid, func(ctx context.Context) ([]string, error) {
		ids, err := d.cfg.Store.Blocks(ctx, uid)
		if err != nil {
			return nil, fmt.Errorf("load blocks of %s: %w", uid, err)
		}
		return ids, nil
	})
}

func (d *Directory) friendSet(ctx context.Context, uid string) (set, error) {
	return d.userSet(ctx, d.friends, uid, func(ctx context.Context) ([]string, error) {
		edges, err := d.cfg.Store.Friends(ctx, uid)
		if err != nil {
			return nil, fmt.Errorf("load friends of %s: %w", uid, err)
		}
		var ids []string
		for _, e := range edges {
			if e.State == directory.Friend {
				ids = append(ids, e.PeerID)
			}
		}
		return ids, nil
	})
}

// userSet returns cache[uid], loading it on a miss. cache is d.blocks or
// d.friends.
func (d *Directory) userSet(ctx context.Context, cache map[string]set, uid string, load func(context.Context) ([]string, error)) (set, error) {
	d.mu.Lock()
	s, ok := cache[uid]
	gen := d.gen
	d.mu.Unlock()
	if ok {
		return s, nil
	}
	ids, err := load(ctx)
	if err != nil {
		return nil, err
	}
	s = make(set, len(ids))
	for _, id := range ids {
		s[id] = struct{}{}
	}
	d.mu.Lock()
	if d.gen == gen {
		evictOne(cache, d.cfg.CacheUsers)
		cache[uid] = s
	}
	d.mu.Unlock()
	return s, nil
}

// notify puts a system message into the recipients' mailboxes.
func (d *Directory) notify(ctx context.Context, to *wirepb.Conversation, from string, recipients []string, body []byte) error {
	if len(recipients) == 0 {
		return nil
	}
	id, ms := d.cfg.IDs.Next(time.Now())
	msg := &wirepb.Message{
		MsgId:       id,
		To:          to,
		FromUser:    from,
		ContentType: wirepb.ContentType_CONTENT_TYPE_SYSTEM,
		Body:        body,
		CreatedAtMs: ms,
	}
	if err := d.cfg.Fanout(ctx, recipients, msg); err != nil {
		d.log.Warn("system message not delivered", "to", to.GetId(), "recipients", len(recipients), "err", err)
		return errorf(wirepb.ErrorCode_ERROR_CODE_UNAVAILABLE, "the change is saved but its notification could not be sent: %v", err)
	}
	return nil
}
