// Package directory defines Parley's durable social state: groups and their
// members, friendships and blocks, behind one Store interface with two
// implementations (sync/boltstore, embedded; sync/mysqlstore, production) and
// one conformance suite (sync/storetest.RunDirectory).
//
// The store only keeps state. Who may do what (roles, muting, blocks) is
// decided by actors/directory, which is the only writer.
package directory

import (
	"context"
	"errors"
)

// ErrNotFound means the group (or friendship) does not exist.
var ErrNotFound = errors.New("directory: not found")

// ErrExists means a group with that id already exists.
var ErrExists = errors.New("directory: already exists")

// Role is a member's role in a group.
type Role string

// The roles. A group has exactly one owner.
const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// Valid reports whether r is one of the roles.
func (r Role) Valid() bool { return r == RoleOwner || r == RoleAdmin || r == RoleMember }

// Group is a group's own data.
type Group struct {
	ID    string // 1-64 of [A-Za-z0-9_-]
	Name  string // up to 256 bytes
	Owner string // user id of the owner
	// Ext is opaque data of the business (e.g. JSON), up to 4 KiB.
	Ext         string
	CreatedAtMs int64
}

// Member is one user's membership of a group.
type Member struct {
	UserID string
	Role   Role
	// MutedUntilMs is when the member may send again (Unix ms); 0 = not muted.
	MutedUntilMs int64
	JoinedAtMs   int64
}

// FriendState is one side's view of a relation between two users.
type FriendState string

// The friend states. A request from A to B is stored as A→B "requested" and
// B→A "pending"; accepting turns both into "friend".
const (
	FriendRequested FriendState = "requested" // I asked them
	FriendPending   FriendState = "pending"   // they asked me; I may accept or decline
	Friend          FriendState = "friend"
)

// FriendEdge is one side of a relation: UserID's view of PeerID.
type FriendEdge struct {
	UserID, PeerID string
	State          FriendState
	// Message is the text of the request (both sides keep it), up to 256 bytes.
	Message     string
	UpdatedAtMs int64
}

// Store is durable social state. All methods are safe for concurrent use.
// Writes that touch several rows (a group and its members, both sides of a
// friendship) are atomic.
type Store interface {
	// CreateGroup stores g and its first members (which must include the
	// owner). ErrExists when g.ID is taken.
	CreateGroup(ctx context.Context, g Group, members []Member) error
	// Group returns a group; ErrNotFound when there is none.
	Group(ctx context.Context, gid string) (Group, error)
	// UpdateGroup replaces the group's Name, Owner and Ext; ErrNotFound when
	// there is none.
	UpdateGroup(ctx context.Context, g Group) error
	// DeleteGroup removes a group and all its memberships; ErrNotFound when
	// there is none.
	DeleteGroup(ctx context.Context, gid string) error
	// Members returns a group's members ordered by user id; ErrNotFound when
	// there is no such group.
	Members(ctx context.Context, gid string) ([]Member, error)
	// PutMembers inserts or replaces memberships (role, muted, joined) of
	// an existing group; ErrNotFound when there is none.
	PutMembers(ctx context.Context, gid string, members []Member) error
	// RemoveMembers deletes memberships; absent users are ignored.
	// ErrNotFound when there is no such group.
	RemoveMembers(ctx context.Context, gid string, uids []string) error
	// UserGroups returns the ids of the groups uid is a member of, ordered.
	UserGroups(ctx context.Context, uid string) ([]string, error)

	// PutFriends inserts or replaces relation edges, all in one transaction.
	PutFriends(ctx context.Context, edges []FriendEdge) error
	// DeleteFriends removes both edges between a and b (absent ones ignored).
	DeleteFriends(ctx context.Context, a, b string) error
	// FriendEdge returns uid's view of peer; ErrNotFound when there is none.
	FriendEdge(ctx context.Context, uid, peer string) (FriendEdge, error)
	// Friends returns all of uid's edges (any state), ordered by peer.
	Friends(ctx context.Context, uid string) ([]FriendEdge, error)

	// Block records that uid blocks peer (idempotent).
	Block(ctx context.Context, uid, peer string) error
	// Unblock removes the block (idempotent).
	Unblock(ctx context.Context, uid, peer string) error
	// Blocks returns the users uid blocks, ordered.
	Blocks(ctx context.Context, uid string) ([]string, error)
}
