package api

import (
	"context"
	"time"

	"github.com/parleyim/parley/actors/social"
	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/directory"
)

const (
	permissionDenied = wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED
	notFound         = wirepb.ErrorCode_ERROR_CODE_NOT_FOUND
)

// methods is the API. Keep docs/API.md in step.
var methods = map[string]method{
	"friend.request": {client: true, run: run(friendRequest)},
	"friend.accept":  {client: true, run: run(friendAccept)},
	"friend.decline": {client: true, run: run(friendDecline)},
	"friend.delete":  {client: true, run: run(friendDelete)},
	"friend.list":    {client: true, run: run(friendList)},
	"block.add":      {client: true, run: run(blockAdd)},
	"block.remove":   {client: true, run: run(blockRemove)},
	"block.list":     {client: true, run: run(blockList)},

	"group.create":         {client: true, run: run(groupCreate)},
	"group.get":            {client: true, run: run(groupGet)},
	"group.update":         {client: true, run: run(groupUpdate)},
	"group.dissolve":       {client: true, run: run(groupDissolve)},
	"group.leave":          {client: true, run: run(groupLeave)},
	"group.members.add":    {client: true, run: run(membersAdd)},
	"group.members.remove": {client: true, run: run(membersRemove)},
	"group.members.list":   {client: true, run: run(membersList)},
	"group.members.role":   {client: true, run: run(membersRole)},
	"group.members.mute":   {client: true, run: run(membersMute)},
	"user.groups":          {client: true, run: run(userGroups)},

	"message.push":       {run: run(messagePush)},
	"message.push_group": {run: run(messagePushGroup)},
	"message.push_room":  {run: run(messagePushRoom)},
	"message.broadcast":  {run: run(messageBroadcast)},
	"presence.get":       {run: run(presenceGet)},
	"history.fetch":      {run: run(historyFetch)},
	"device.disconnect":  {run: run(deviceDisconnect)},
}

// Friends and blocks.

type pairParams struct {
	User    string `json:"user"`
	Peer    string `json:"peer"`
	Message string `json:"message"`
}

type userParams struct {
	User string `json:"user"`
}

func friendRequest(ctx context.Context, s *Service, c caller, p *pairParams) (any, error) {
	uid, err := acting(c, p.User)
	if err != nil {
		return nil, err
	}
	st, err := s.dir.RequestFriend(ctx, uid, p.Peer, p.Message)
	if err != nil {
		return nil, err
	}
	return struct {
		State directory.FriendState `json:"state"`
	}{st}, nil
}

func friendAccept(ctx context.Context, s *Service, c caller, p *pairParams) (any, error) {
	return onPair(c, p, func(uid, peer string) error { return s.dir.AcceptFriend(ctx, uid, peer) })
}

func friendDecline(ctx context.Context, s *Service, c caller, p *pairParams) (any, error) {
	return onPair(c, p, func(uid, peer string) error { return s.dir.DeclineFriend(ctx, uid, peer) })
}

func friendDelete(ctx context.Context, s *Service, c caller, p *pairParams) (any, error) {
	return onPair(c, p, func(uid, peer string) error { return s.dir.DeleteFriend(ctx, uid, peer) })
}

func blockAdd(ctx context.Context, s *Service, c caller, p *pairParams) (any, error) {
	return onPair(c, p, func(uid, peer string) error { return s.dir.Block(ctx, uid, peer) })
}

func blockRemove(ctx context.Context, s *Service, c caller, p *pairParams) (any, error) {
	return onPair(c, p, func(uid, peer string) error { return s.dir.Unblock(ctx, uid, peer) })
}

func onPair(c caller, p *pairParams, f func(uid, peer string) error) (any, error) {
	uid, err := acting(c, p.User)
	if err != nil {
		return nil, err
	}
	if p.Message != "" {
		return nil, invalid("message is only for friend.request")
	}
	if err := f(uid, p.Peer); err != nil {
		return nil, err
	}
	return empty{}, nil
}

// Friend is a relation in friend.list.
type Friend struct {
	Peer        string                `json:"peer"`
	State       directory.FriendState `json:"state"`
	Message     string                `json:"message,omitempty"`
	UpdatedAtMs int64                 `json:"updated_at_ms"`
}

func friendList(ctx context.Context, s *Service, c caller, p *userParams) (any, error) {
	uid, err := acting(c, p.User)
	if err != nil {
		return nil, err
	}
	edges, err := s.dir.Friends(ctx, uid)
	if err != nil {
		return nil, err
	}
	out := make([]Friend, len(edges))
	for i, e := range edges {
		out[i] = Friend{Peer: e.PeerID, State: e.State, Message: e.Message, UpdatedAtMs: e.UpdatedAtMs}
	}
	return struct {
		Friends []Friend `json:"friends"`
	}{out}, nil
}

func blockList(ctx context.Context, s *Service, c caller, p *userParams) (any, error) {
	uid, err := acting(c, p.User)
	if err != nil {
		return nil, err
	}
	ids, err := s.dir.Blocks(ctx, uid)
	if err != nil {
		return nil, err
	}
	if ids == nil {
		ids = []string{}
	}
	return struct {
		Blocked []string `json:"blocked"`
	}{ids}, nil
}

// Groups.

// Group is a group in results.
type Group struct {
	ID          string `json:"group_id"`
	Name        string `json:"name"`
	Owner       string `json:"owner"`
	Ext         string `json:"ext,omitempty"`
	CreatedAtMs int64  `json:"created_at_ms"`
}

func groupOut(g directory.Group) Group {
	return Group{ID: g.ID, Name: g.Name, Owner: g.Owner, Ext: g.Ext, CreatedAtMs: g.CreatedAtMs}
}

type groupResult struct {
	Group Group `json:"group"`
}

type groupCreateParams struct {
	ID      string   `json:"group_id"`
	Name    string   `json:"name"`
	Owner   string   `json:"owner"`
	Ext     string   `json:"ext"`
	Members []string `json:"members"`
}

func groupCreate(ctx context.Context, s *Service, c caller, p *groupCreateParams) (any, error) {
	if !c.server() && p.Owner != "" && p.Owner != c.user {
		return nil, errorf(permissionDenied, "a group you create is owned by you; transfer it later with group.members.role")
	}
	g, err := s.dir.CreateGroup(ctx, c.user, social.NewGroup{ID: p.ID, Name: p.Name, Owner: p.Owner, Ext: p.Ext, Members: p.Members})
	if err != nil {
		return nil, err
	}
	return groupResult{groupOut(g)}, nil
}

type groupParams struct {
	GroupID string `json:"group_id"`
}

func groupGet(ctx context.Context, s *Service, c caller, p *groupParams) (any, error) {
	g, err := s.dir.GroupInfo(ctx, c.user, p.GroupID)
	if err != nil {
		return nil, err
	}
	return groupResult{groupOut(g)}, nil
}

type groupUpdateParams struct {
	GroupID string  `json:"group_id"`
	Name    *string `json:"name"`
	Ext     *string `json:"ext"`
}

func groupUpdate(ctx context.Context, s *Service, c caller, p *groupUpdateParams) (any, error) {
	if p.Name == nil && p.Ext == nil {
		return nil, invalid("nothing to update: set name and/or ext")
	}
	g, err := s.dir.UpdateGroup(ctx, c.user, p.GroupID, p.Name, p.Ext)
	if err != nil {
		return nil, err
	}
	return groupResult{groupOut(g)}, nil
}

func groupDissolve(ctx context.Context, s *Service, c caller, p *groupParams) (any, error) {
	if err := s.dir.DissolveGroup(ctx, c.user, p.GroupID); err != nil {
		return nil, err
	}
	return empty{}, nil
}

type groupUserParams struct {
	GroupID string `json:"group_id"`
	User    string `json:"user"`
}

func groupLeave(ctx context.Context, s *Service, c caller, p *groupUserParams) (any, error) {
	uid, err := acting(c, p.User)
	if err != nil {
		return nil, err
	}
	removed, err := s.dir.RemoveMembers(ctx, uid, p.GroupID, []string{uid})
	if err != nil {
		return nil, err
	}
	if len(removed) == 0 {
		return nil, errorf(notFound, "%s is not a member of group %s", uid, p.GroupID)
	}
	return empty{}, nil
}

type membersParams struct {
	GroupID string   `json:"group_id"`
	Users   []string `json:"users"`
}

func membersAdd(ctx context.Context, s *Service, c caller, p *membersParams) (any, error) {
	added, err := s.dir.AddMembers(ctx, c.user, p.GroupID, p.Users)
	if err != nil {
		return nil, err
	}
	return struct {
		Added []string `json:"added"`
	}{added}, nil
}

func membersRemove(ctx context.Context, s *Service, c caller, p *membersParams) (any, error) {
	removed, err := s.dir.RemoveMembers(ctx, c.user, p.GroupID, p.Users)
	if err != nil {
		return nil, err
	}
	return struct {
		Removed []string `json:"removed"`
	}{removed}, nil
}

// Member is a member in group.members.list.
type Member struct {
	UserID       string `json:"user_id"`
	Role         string `json:"role"`
	MutedUntilMs int64  `json:"muted_until_ms,omitempty"`
	JoinedAtMs   int64  `json:"joined_at_ms"`
}

func membersList(ctx context.Context, s *Service, c caller, p *groupParams) (any, error) {
	ms, err := s.dir.Members(ctx, c.user, p.GroupID)
	if err != nil {
		return nil, err
	}
	out := make([]Member, len(ms))
	for i, m := range ms {
		out[i] = Member{UserID: m.UserID, Role: string(m.Role), MutedUntilMs: m.MutedUntilMs, JoinedAtMs: m.JoinedAtMs}
	}
	return struct {
		Members []Member `json:"members"`
	}{out}, nil
}

type roleParams struct {
	GroupID string `json:"group_id"`
	User    string `json:"user"`
	Role    string `json:"role"`
}

func membersRole(ctx context.Context, s *Service, c caller, p *roleParams) (any, error) {
	if err := s.dir.SetRole(ctx, c.user, p.GroupID, p.User, directory.Role(p.Role)); err != nil {
		return nil, err
	}
	return empty{}, nil
}

type muteParams struct {
	GroupID string `json:"group_id"`
	User    string `json:"user"`
	// Seconds mutes for this long from now; 0 unmutes.
	Seconds int64 `json:"seconds"`
}

func membersMute(ctx context.Context, s *Service, c caller, p *muteParams) (any, error) {
	if p.Seconds < 0 || p.Seconds > 10*365*24*3600 {
		return nil, invalid("seconds must be 0 (unmute) to 10 years")
	}
	var until int64
	if p.Seconds > 0 {
		until = time.Now().Add(time.Duration(p.Seconds) * time.Second).UnixMilli()
	}
	if err := s.dir.Mute(ctx, c.user, p.GroupID, p.User, until); err != nil {
		return nil, err
	}
	return struct {
		MutedUntilMs int64 `json:"muted_until_ms"`
	}{until}, nil
}

func userGroups(ctx context.Context, s *Service, c caller, p *userParams) (any, error) {
	uid, err := acting(c, p.User)
	if err != nil {
		return nil, err
	}
	gs, err := s.dir.UserGroups(ctx, uid)
	if err != nil {
		return nil, err
	}
	out := make([]Group, len(gs))
	for i, g := range gs {
		out[i] = groupOut(g)
	}
	return struct {
		Groups []Group `json:"groups"`
	}{out}, nil
}
