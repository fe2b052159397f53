package directory

import (
	"fmt"
	"strings"

	"github.com/parleyim/parley/sync/mailbox"
)

// Limits every Store enforces, in bytes: the column sizes of the MySQL
// schema (schemas/migrations/mysql/0002_directory.sql), so the embedded
// store accepts exactly what MySQL accepts, whatever the server's sql_mode.
const (
	MaxIDLen      = mailbox.MaxIDLen // group and user ids: the mailbox's ids
	MaxNameLen    = 256              // Group.Name
	MaxExtLen     = 4 << 10          // Group.Ext
	MaxMessageLen = 256              // FriendEdge.Message
)

// CheckID rejects an empty id, one longer than MaxIDLen bytes, and one with
// a NUL (which the embedded store uses to separate key parts). what names
// the id in the error, e.g. "group id".
func CheckID(what, id string) error {
	if err := mailbox.CheckID(what, id); err != nil {
		return err
	}
	if strings.IndexByte(id, 0) >= 0 {
		return fmt.Errorf("NUL in %s", what)
	}
	return nil
}

// ValidateGroup rejects a group a store cannot take: bad group or owner id,
// or a name or ext over its limit. It is the check of UpdateGroup.
func ValidateGroup(g Group) error {
	if err := CheckID("group id", g.ID); err != nil {
		return err
	}
	if err := CheckID("owner id", g.Owner); err != nil {
		return err
	}
	if len(g.Name) > MaxNameLen {
		return fmt.Errorf("name longer than %d bytes", MaxNameLen)
	}
	if len(g.Ext) > MaxExtLen {
		return fmt.Errorf("ext longer than %d bytes", MaxExtLen)
	}
	return nil
}

// ValidateNewGroup is the check of CreateGroup: ValidateGroup and
// ValidateMembers, and the owner must be among the members.
func ValidateNewGroup(g Group, members []Member) error {
	if err := ValidateGroup(g); err != nil {
		return err
	}
	if err := ValidateMembers(members); err != nil {
		return err
	}
	for _, m := range members {
		if m.UserID == g.Owner {
			return nil
		}
	}
	return fmt.Errorf("owner %s is not among the members", g.Owner)
}

// ValidateMembers rejects memberships a store cannot take: a bad user id or
// an unknown role. The error names the member (by index when its id is the
// problem).
func ValidateMembers(members []Member) error {
	for i, m := range members {
		if err := CheckID("user id", m.UserID); err != nil {
			return fmt.Errorf("member %d: %w", i, err)
		}
		if !m.Role.Valid() {
			return fmt.Errorf("member %s: invalid role %q", m.UserID, m.Role)
		}
	}
	return nil
}

// ValidateEdges rejects friend edges a store cannot take: a bad user or peer
// id, an unknown state, or a message over MaxMessageLen. The error names the
// first bad edge.
func ValidateEdges(edges []FriendEdge) error {
	for _, e := range edges {
		if err := validateEdge(e); err != nil {
			return fmt.Errorf("friend edge %s->%s: %w", e.UserID, e.PeerID, err)
		}
	}
	return nil
}

func validateEdge(e FriendEdge) error {
	if err := ValidatePair(e.UserID, e.PeerID); err != nil {
		return err
	}
	switch e.State {
	case FriendRequested, FriendPending, Friend:
	default:
		return fmt.Errorf("invalid state %q", e.State)
	}
	if len(e.Message) > MaxMessageLen {
		return fmt.Errorf("message longer than %d bytes", MaxMessageLen)
	}
	return nil
}

// ValidatePair rejects a (user, peer) pair of ids a store cannot take, as in
// Block.
func ValidatePair(uid, peer string) error {
	if err := CheckID("user id", uid); err != nil {
		return err
	}
	return CheckID("peer id", peer)
}
