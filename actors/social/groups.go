package social

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/parleyim/parley/actors/events"
	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/directory"
)

// Who may do what in a group. `by` names the acting user; an empty `by` is
// the business server (the server API), which may do everything.
//
//	action                 owner  admin            member
//	update name/ext        yes    yes              no
//	dissolve               yes    no               no
//	add members            yes    yes              no
//	remove members         yes    members only     themselves (leave)
//	set roles / transfer   yes    no               no
//	mute                   yes    members only     no
//	list members, info     yes    yes              yes

// Limits on group fields.
const (
	MaxGroupName = 256
	MaxGroupExt  = 4096
)

// MaxNoticeUsers caps the users a group notice in the members' mailboxes
// names; users_count says how many there were (the event names them all).
const MaxNoticeUsers = 20

// maxUsersPerCall caps the users one change names (a group may be larger:
// add them in several calls).
const maxUsersPerCall = 10_000

// NewGroup describes a group to create.
type NewGroup struct {
	ID      string // empty: the server picks one
	Name    string
	Owner   string // ignored when a user creates the group: they own it
	Ext     string
	Members []string // besides the owner
}

var (
	errDenied = func(what string) error {
		return errorf(wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "you may not %s", what)
	}
)

func invalid(format string, args ...any) error {
	return errorf(wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, format, args...)
}

func checkUsers(field string, uids []string) error {
	if len(uids) == 0 || len(uids) > maxUsersPerCall {
		return invalid("%s must name 1-%d users", field, maxUsersPerCall)
	}
	for _, u := range uids {
		if !wirepb.ValidID(u) {
			return invalid("%s: %q is not a valid user id (1-64 of [A-Za-z0-9_-])", field, u)
		}
	}
	return nil
}

func groupConv(gid string) *wirepb.Conversation {
	return &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_GROUP, Id: gid}
}

// groupChanged drops the cached group, publishes the event and puts the
// same description as a system message into the recipients' mailboxes.
func (d *Directory) groupChanged(ctx context.Context, ev events.Group, recipients []string) error {
	d.changed(groupKey(ev.GroupID))
	ev.AtMs = time.Now().UnixMilli()
	d.events.Publish("group", ev.GroupID, ev)
	// The notice goes into every member's mailbox: naming every user of a
	// large change there would store N² names for a group of N.
	if len(ev.Users) > MaxNoticeUsers {
		ev.UsersCount, ev.Users = len(ev.Users), ev.Users[:MaxNoticeUsers]
	}
	body, _ := json.Marshal(ev)
	return d.notify(ctx, groupConv(ev.GroupID), ev.By, recipients, body)
}

// member returns by's membership, or PERMISSION_DENIED. The server API (by
// == "") acts as the owner.
func member(gv *groupView, by string) (directory.Member, error) {
	if by == "" {
		return directory.Member{Role: directory.RoleOwner}, nil
	}
	m, ok := gv.members[by]
	if !ok {
		return m, errorf(wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "you are not a member of group %s", gv.group.ID)
	}
	return m, nil
}

// fresh returns the group read from the store (not the cache): decisions
// that change the group are taken on its current state.
func (d *Directory) fresh(ctx context.Context, gid string) (*groupView, error) {
	if !wirepb.ValidID(gid) {
		return nil, invalid("group_id must be 1-64 of [A-Za-z0-9_-]")
	}
	gv, err := d.loadGroup(ctx, gid)
	if err != nil {
		return nil, err
	}
	if gv == nil {
		return nil, errorf(wirepb.ErrorCode_ERROR_CODE_NOT_FOUND, "group %s does not exist", gid)
	}
	return gv, nil
}

// CreateGroup creates a group owned by `by` (or ng.Owner for the server API)
// with the owner and ng.Members as members.
func (d *Directory) CreateGroup(ctx context.Context, by string, ng NewGroup) (directory.Group, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	owner := ng.Owner
	if by != "" {
		owner = by
	}
	switch {
	case ng.ID == "":
		id, _ := d.cfg.IDs.Next(time.Now())
		ng.ID = "g" + id
	case !wirepb.ValidID(ng.ID):
		return directory.Group{}, invalid("group_id must be 1-64 of [A-Za-z0-9_-]")
	}
	if !wirepb.ValidID(owner) {
		return directory.Group{}, invalid("owner must be a valid user id")
	}
	if ng.Name == "" || len(ng.Name) > MaxGroupName {
		return directory.Group{}, invalid("name must be 1-%d bytes", MaxGroupName)
	}
	if len(ng.Ext) > MaxGroupExt {
		return directory.Group{}, invalid("ext must be at most %d bytes", MaxGroupExt)
	}
	uids := append([]string{owner}, ng.Members...)
	if err := checkUsers("members", uids); err != nil {
		return directory.Group{}, err
	}
	slices.Sort(uids)
	uids = slices.Compact(uids)
	if len(uids) > d.cfg.MaxGroupMembers {
		return directory.Group{}, invalid("a group has at most %d members", d.cfg.MaxGroupMembers)
	}
	now := time.Now().UnixMilli()
	g := directory.Group{ID: ng.ID, Name: ng.Name, Owner: owner, Ext: ng.Ext, CreatedAtMs: now}
	members := make([]directory.Member, len(uids))
	for i, u := range uids {
		members[i] = directory.Member{UserID: u, Role: directory.RoleMember, JoinedAtMs: now}
		if u == owner {
			members[i].Role = directory.RoleOwner
		}
	}
	if err := d.cfg.Store.CreateGroup(ctx, g, members); err != nil {
		if errors.Is(err, directory.ErrExists) {
			return directory.Group{}, errorf(wirepb.ErrorCode_ERROR_CODE_ALREADY_EXISTS, "group %s already exists", g.ID)
		}
		return directory.Group{}, fmt.Errorf("create group %s: %w", g.ID, err)
	}
	return g, d.groupChanged(ctx, events.Group{Type: "group.created", GroupID: g.ID, By: by, Users: uids}, uids)
}

// GroupInfo returns a group; members and the server API only.
func (d *Directory) GroupInfo(ctx context.Context, by, gid string) (directory.Group, error) {
	gv, err := d.fresh(ctx, gid)
	if err != nil {
		return directory.Group{}, err
	}
	if _, err := member(gv, by); err != nil {
		return directory.Group{}, err
	}
	return gv.group, nil
}

// UpdateGroup changes the name and/or ext (nil leaves a field alone).
func (d *Directory) UpdateGroup(ctx context.Context, by, gid string, name, ext *string) (directory.Group, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if name != nil && (*name == "" || len(*name) > MaxGroupName) {
		return directory.Group{}, invalid("name must be 1-%d bytes", MaxGroupName)
	}
	if ext != nil && len(*ext) > MaxGroupExt {
		return directory.Group{}, invalid("ext must be at most %d bytes", MaxGroupExt)
	}
	gv, err := d.fresh(ctx, gid)
	if err != nil {
		return directory.Group{}, err
	}
	m, err := member(gv, by)
	if err != nil {
		return directory.Group{}, err
	}
	if m.Role == directory.RoleMember {
		return directory.Group{}, errDenied("update this group (owner or admin only)")
	}
	g := gv.group
	if name != nil {
		g.Name = *name
	}
	if ext != nil {
		g.Ext = *ext
	}
	if err := d.cfg.Store.UpdateGroup(ctx, g); err != nil {
		return directory.Group{}, fmt.Errorf("update group %s: %w", gid, err)
	}
	return g, d.groupChanged(ctx, events.Group{Type: "group.updated", GroupID: gid, By: by}, gv.ids)
}

// DissolveGroup deletes the group; its messages stay in the mailboxes.
func (d *Directory) DissolveGroup(ctx context.Context, by, gid string) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	gv, err := d.fresh(ctx, gid)
	if err != nil {
		return err
	}
	if m, err := member(gv, by); err != nil {
		return err
	} else if m.Role != directory.RoleOwner {
		return errDenied("dissolve this group (owner only)")
	}
	if err := d.cfg.Store.DeleteGroup(ctx, gid); err != nil {
		return fmt.Errorf("dissolve group %s: %w", gid, err)
	}
	return d.groupChanged(ctx, events.Group{Type: "group.dissolved", GroupID: gid, By: by}, gv.ids)
}

// AddMembers adds users as members and returns those who were not members.
func (d *Directory) AddMembers(ctx context.Context, by, gid string, uids []string) ([]string, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if err := checkUsers("users", uids); err != nil {
		return nil, err
	}
	gv, err := d.fresh(ctx, gid)
	if err != nil {
		return nil, err
	}
	if m, err := member(gv, by); err != nil {
		return nil, err
	} else if m.Role == directory.RoleMember {
		return nil, errDenied("add members (owner or admin only)")
	}
	now := time.Now().UnixMilli()
	var added []string
	var rows []directory.Member
	seen := make(map[string]bool, len(uids))
	for _, u := range uids {
		if _, ok := gv.members[u]; ok || seen[u] {
			continue
		}
		seen[u] = true
		added = append(added, u)
		rows = append(rows, directory.Member{UserID: u, Role: directory.RoleMember, JoinedAtMs: now})
	}
	if len(added) == 0 {
		return []string{}, nil
	}
	if len(gv.ids)+len(added) > d.cfg.MaxGroupMembers {
		return nil, invalid("a group has at most %d members", d.cfg.MaxGroupMembers)
	}
	if err := d.cfg.Store.PutMembers(ctx, gid, rows); err != nil {
		return nil, fmt.Errorf("add members to group %s: %w", gid, err)
	}
	all := append(slices.Clone(gv.ids), added...)
	return added, d.groupChanged(ctx, events.Group{Type: "group.members_added", GroupID: gid, By: by, Users: added}, all)
}

// RemoveMembers removes users and returns those who were members. Members
// may remove themselves (leave); the owner cannot leave (dissolve or
// transfer ownership first).
func (d *Directory) RemoveMembers(ctx context.Context, by, gid string, uids []string) ([]string, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if err := checkUsers("users", uids); err != nil {
		return nil, err
	}
	gv, err := d.fresh(ctx, gid)
	if err != nil {
		return nil, err
	}
	me, err := member(gv, by)
	if err != nil {
		return nil, err
	}
	var removed []string
	seen := make(map[string]bool, len(uids))
	for _, u := range uids {
		m, ok := gv.members[u]
		if !ok || seen[u] {
			continue
		}
		seen[u] = true
		switch {
		case m.Role == directory.RoleOwner:
			return nil, errorf(wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "the owner cannot leave or be removed; transfer ownership or dissolve the group")
		case u == by, me.Role == directory.RoleOwner:
		case me.Role == directory.RoleAdmin && m.Role == directory.RoleMember:
		default:
			return nil, errDenied("remove " + u)
		}
		removed = append(removed, u)
	}
	if len(removed) == 0 {
		return []string{}, nil
	}
	if err := d.cfg.Store.RemoveMembers(ctx, gid, removed); err != nil {
		return nil, fmt.Errorf("remove members from group %s: %w", gid, err)
	}
	// The removed members are told too: it is the last entry of the group
	// in their mailboxes.
	return removed, d.groupChanged(ctx, events.Group{Type: "group.members_removed", GroupID: gid, By: by, Users: removed}, gv.ids)
}

// SetRole changes a member's role (owner only). Making someone the owner
// transfers ownership: the old owner becomes an admin.
func (d *Directory) SetRole(ctx context.Context, by, gid, uid string, role directory.Role) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if !role.Valid() {
		return invalid("role must be owner, admin or member")
	}
	gv, err := d.fresh(ctx, gid)
	if err != nil {
		return err
	}
	if m, err := member(gv, by); err != nil {
		return err
	} else if m.Role != directory.RoleOwner {
		return errDenied("change roles (owner only)")
	}
	target, ok := gv.members[uid]
	if !ok {
		return errorf(wirepb.ErrorCode_ERROR_CODE_NOT_FOUND, "%s is not a member of group %s", uid, gid)
	}
	if target.Role == role {
		return nil
	}
	rows := []directory.Member{target}
	rows[0].Role = role
	switch {
	case target.Role == directory.RoleOwner:
		return errorf(wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "the owner's role changes only by transferring ownership to another member")
	case role == directory.RoleOwner:
		rows[0].MutedUntilMs = 0 // the owner cannot be muted, nor then unmuted
		old := gv.members[gv.group.Owner]
		old.Role = directory.RoleAdmin
		rows = append(rows, old)
		g := gv.group
		g.Owner = uid
		if err := d.cfg.Store.UpdateGroup(ctx, g); err != nil {
			return fmt.Errorf("transfer group %s: %w", gid, err)
		}
	}
	if err := d.cfg.Store.PutMembers(ctx, gid, rows); err != nil {
		return fmt.Errorf("set role in group %s: %w", gid, err)
	}
	return d.groupChanged(ctx, events.Group{Type: "group.member_role", GroupID: gid, By: by, Users: []string{uid}, Role: string(role)}, gv.ids)
}

// Mute stops a member from sending until untilMs (Unix ms; 0 unmutes).
func (d *Directory) Mute(ctx context.Context, by, gid, uid string, untilMs int64) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	gv, err := d.fresh(ctx, gid)
	if err != nil {
		return err
	}
	me, err := member(gv, by)
	if err != nil {
		return err
	}
	target, ok := gv.members[uid]
	switch {
	case !ok:
		return errorf(wirepb.ErrorCode_ERROR_CODE_NOT_FOUND, "%s is not a member of group %s", uid, gid)
	case target.Role == directory.RoleOwner:
		return errorf(wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "the owner cannot be muted")
	case me.Role == directory.RoleOwner, me.Role == directory.RoleAdmin && target.Role == directory.RoleMember:
	default:
		return errDenied("mute " + uid)
	}
	target.MutedUntilMs = max(untilMs, 0)
	if err := d.cfg.Store.PutMembers(ctx, gid, []directory.Member{target}); err != nil {
		return fmt.Errorf("mute in group %s: %w", gid, err)
	}
	return d.groupChanged(ctx, events.Group{Type: "group.member_muted", GroupID: gid, By: by, Users: []string{uid}, Until: target.MutedUntilMs}, gv.ids)
}

// Members lists a group's members; members and the server API only.
func (d *Directory) Members(ctx context.Context, by, gid string) ([]directory.Member, error) {
	gv, err := d.fresh(ctx, gid)
	if err != nil {
		return nil, err
	}
	if _, err := member(gv, by); err != nil {
		return nil, err
	}
	out := make([]directory.Member, 0, len(gv.ids))
	for _, id := range gv.ids {
		out = append(out, gv.members[id])
	}
	return out, nil
}

// UserGroups lists the groups uid is a member of.
func (d *Directory) UserGroups(ctx context.Context, uid string) ([]directory.Group, error) {
	if !wirepb.ValidID(uid) {
		return nil, invalid("user must be a valid user id")
	}
	ids, err := d.cfg.Store.UserGroups(ctx, uid)
	if err != nil {
		return nil, fmt.Errorf("list groups of %s: %w", uid, err)
	}
	out := make([]directory.Group, 0, len(ids))
	for _, id := range ids {
		g, err := d.cfg.Store.Group(ctx, id)
		if errors.Is(err, directory.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list groups of %s: %w", uid, err)
		}
		out = append(out, g)
	}
	return out, nil
}
