package social

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/parleyim/parley/actors/events"
	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/directory"
)

// MaxFriendMessage caps the text of a friend request.
const MaxFriendMessage = 256

func checkPair(uid, peer string) error {
	switch {
	case !wirepb.ValidID(uid):
		return invalid("user must be a valid user id")
	case !wirepb.ValidID(peer):
		return invalid("peer must be a valid user id (1-64 of [A-Za-z0-9_-])")
	case uid == peer:
		return invalid("peer must be another user")
	}
	return nil
}

func userConv(uid string) *wirepb.Conversation {
	return &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_USER, Id: uid}
}

// friendNote is the body of a friend system message.
type friendNote struct {
	Event   string `json:"event"`
	From    string `json:"from"`
	Message string `json:"message,omitempty"`
}

// friendChanged drops both users' cached friends, publishes the event and,
// when note is set, puts it into `to`'s mailbox as a system message from
// `from`.
func (d *Directory) friendChanged(ctx context.Context, typ, uid, peer string, note *friendNote, to string) error {
	d.changed(friendsKey(uid), friendsKey(peer))
	d.events.Publish("friend", uid, events.Friend{Type: typ, User: uid, Peer: peer, AtMs: time.Now().UnixMilli()})
	if note == nil {
		return nil
	}
	body, _ := json.Marshal(note)
	return d.notify(ctx, userConv(to), note.From, []string{to}, body)
}

func (d *Directory) edge(ctx context.Context, uid, peer string) (directory.FriendEdge, bool, error) {
	e, err := d.cfg.Store.FriendEdge(ctx, uid, peer)
	if errors.Is(err, directory.ErrNotFound) {
		return e, false, nil
	}
	if err != nil {
		return e, false, fmt.Errorf("read friendship %s→%s: %w", uid, peer, err)
	}
	return e, true, nil
}

// RequestFriend asks peer to be uid's friend; peer gets a system message
// (event "friend_request"). If peer had already asked uid, this accepts.
func (d *Directory) RequestFriend(ctx context.Context, uid, peer, message string) (directory.FriendState, error) {
	if err := checkPair(uid, peer); err != nil {
		return "", err
	}
	if len(message) > MaxFriendMessage {
		return "", invalid("message must be at most %d bytes", MaxFriendMessage)
	}
	blocks, err := d.blockSet(ctx, peer)
	if err != nil {
		return "", err
	}
	if _, ok := blocks[uid]; ok {
		return "", errorf(wirepb.ErrorCode_ERROR_CODE_BLOCKED, "%s has blocked you", peer)
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	e, ok, err := d.edge(ctx, uid, peer)
	if err != nil {
		return "", err
	}
	switch {
	case ok && e.State == directory.Friend:
		return "", errorf(wirepb.ErrorCode_ERROR_CODE_ALREADY_EXISTS, "%s is already your friend", peer)
	case ok && e.State == directory.FriendPending:
		return directory.Friend, d.accept(ctx, uid, peer, e.Message)
	case ok && e.State == directory.FriendRequested:
		return directory.FriendRequested, nil // asked before: once is enough
	}
	now := time.Now().UnixMilli()
	if err := d.cfg.Store.PutFriends(ctx, []directory.FriendEdge{
		{UserID: uid, PeerID: peer, State: directory.FriendRequested, Message: message, UpdatedAtMs: now},
		{UserID: peer, PeerID: uid, State: directory.FriendPending, Message: message, UpdatedAtMs: now},
	}); err != nil {
		return "", fmt.Errorf("store friend request %s→%s: %w", uid, peer, err)
	}
	return directory.FriendRequested, d.friendChanged(ctx, "friend.requested", uid, peer,
		&friendNote{Event: "friend_request", From: uid, Message: message}, peer)
}

// AcceptFriend accepts peer's pending request to uid; peer gets a system
// message (event "friend_accepted").
func (d *Directory) AcceptFriend(ctx context.Context, uid, peer string) error {
	if err := checkPair(uid, peer); err != nil {
		return err
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	e, ok, err := d.edge(ctx, uid, peer)
	if err != nil {
		return err
	}
	switch {
	case ok && e.State == directory.Friend:
		return nil
	case !ok || e.State != directory.FriendPending:
		return errorf(wirepb.ErrorCode_ERROR_CODE_NOT_FOUND, "no friend request from %s", peer)
	}
	return d.accept(ctx, uid, peer, e.Message)
}

func (d *Directory) accept(ctx context.Context, uid, peer, message string) error {
	now := time.Now().UnixMilli()
	if err := d.cfg.Store.PutFriends(ctx, []directory.FriendEdge{
		{UserID: uid, PeerID: peer, State: directory.Friend, Message: message, UpdatedAtMs: now},
		{UserID: peer, PeerID: uid, State: directory.Friend, Message: message, UpdatedAtMs: now},
	}); err != nil {
		return fmt.Errorf("accept friend %s→%s: %w", peer, uid, err)
	}
	return d.friendChanged(ctx, "friend.accepted", uid, peer, &friendNote{Event: "friend_accepted", From: uid}, peer)
}

// DeclineFriend drops peer's pending request to uid. The requester is not
// told (its request just stays unanswered), as most apps do.
func (d *Directory) DeclineFriend(ctx context.Context, uid, peer string) error {
	if err := checkPair(uid, peer); err != nil {
		return err
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	e, ok, err := d.edge(ctx, uid, peer)
	if err != nil {
		return err
	}
	if !ok || e.State != directory.FriendPending {
		return errorf(wirepb.ErrorCode_ERROR_CODE_NOT_FOUND, "no friend request from %s", peer)
	}
	if err := d.cfg.Store.DeleteFriends(ctx, uid, peer); err != nil {
		return fmt.Errorf("decline friend %s→%s: %w", peer, uid, err)
	}
	return d.friendChanged(ctx, "friend.declined", uid, peer, nil, "")
}

// DeleteFriend ends a friendship, or withdraws uid's own request. Idempotent.
func (d *Directory) DeleteFriend(ctx context.Context, uid, peer string) error {
	if err := checkPair(uid, peer); err != nil {
		return err
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if err := d.cfg.Store.DeleteFriends(ctx, uid, peer); err != nil {
		return fmt.Errorf("delete friend %s-%s: %w", uid, peer, err)
	}
	return d.friendChanged(ctx, "friend.deleted", uid, peer, nil, "")
}

// Friends lists uid's relations (friends, requests sent, requests pending).
func (d *Directory) Friends(ctx context.Context, uid string) ([]directory.FriendEdge, error) {
	if !wirepb.ValidID(uid) {
		return nil, invalid("user must be a valid user id")
	}
	edges, err := d.cfg.Store.Friends(ctx, uid)
	if err != nil {
		return nil, fmt.Errorf("list friends of %s: %w", uid, err)
	}
	return edges, nil
}

// Block refuses peer's 1:1 messages and friend requests to uid.
func (d *Directory) Block(ctx context.Context, uid, peer string) error {
	return d.setBlock(ctx, uid, peer, true)
}

// Unblock lifts a block.
func (d *Directory) Unblock(ctx context.Context, uid, peer string) error {
	return d.setBlock(ctx, uid, peer, false)
}

func (d *Directory) setBlock(ctx context.Context, uid, peer string, on bool) error {
	if err := checkPair(uid, peer); err != nil {
		return err
	}
	write, typ := d.cfg.Store.Block, "friend.blocked"
	if !on {
		write, typ = d.cfg.Store.Unblock, "friend.unblocked"
	}
	if err := write(ctx, uid, peer); err != nil {
		return fmt.Errorf("%s %s for %s: %w", typ, peer, uid, err)
	}
	d.changed(blocksKey(uid))
	d.events.Publish("friend", uid, events.Friend{Type: typ, User: uid, Peer: peer, AtMs: time.Now().UnixMilli()})
	return nil
}

// Blocks lists the users uid blocks.
func (d *Directory) Blocks(ctx context.Context, uid string) ([]string, error) {
	if !wirepb.ValidID(uid) {
		return nil, invalid("user must be a valid user id")
	}
	ids, err := d.cfg.Store.Blocks(ctx, uid)
	if err != nil {
		return nil, fmt.Errorf("list blocks of %s: %w", uid, err)
	}
	return ids, nil
}
