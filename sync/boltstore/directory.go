package boltstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"

	bolt "go.etcd.io/bbolt"

	"github.com/parleyim/parley/sync/directory"
)

var _ directory.Store = (*Store)(nil)

// The directory lives in five flat buckets keyed like the mailbox ones (id,
// a 0x00 byte, id), so that one group's members, one user's groups, friends
// and blocks are each one contiguous, ordered key range:
//
//	groups      gid                -> group value
//	members     gid 0x00 uid       -> member value
//	usergroups  uid 0x00 gid       -> empty (the members index by user)
//	friends     uid 0x00 peer      -> friend value (uid's view of peer)
//	blocks      uid 0x00 peer      -> empty
//
// members and usergroups are always written in the same transaction.
//
// A value is a format byte (valueFormat) and then the fields in order:
// strings as a uvarint length and the bytes, integers as varints. Names and
// Ext are opaque bytes, so the encoding must not touch them (JSON would
// replace invalid UTF-8).

// valueFormat is the first byte of every directory value.
const valueFormat = 1

// CreateGroup implements directory.Store.
func (s *Store) CreateGroup(ctx context.Context, g directory.Group, members []directory.Member) error {
	if err := cmp.Or(s.check(ctx), directory.ValidateNewGroup(g, members)); err != nil {
		return fmt.Errorf("create group %s: %w", g.ID, err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		groups := tx.Bucket(bucketGroups)
		if groups.Get([]byte(g.ID)) != nil {
			return directory.ErrExists
		}
		if err := groups.Put([]byte(g.ID), encodeGroup(g)); err != nil {
			return err
		}
		return putMembers(tx, g.ID, members)
	})
	if err != nil {
		return fmt.Errorf("create group %s: %w", g.ID, closedErr(err))
	}
	return nil
}

// Group implements directory.Store.
func (s *Store) Group(ctx context.Context, gid string) (directory.Group, error) {
	if err := s.check(ctx); err != nil {
		return directory.Group{}, fmt.Errorf("get group %s: %w", gid, err)
	}
	var g directory.Group
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketGroups).Get([]byte(gid))
		if v == nil {
			return directory.ErrNotFound
		}
		var err error
		g, err = decodeGroup(gid, v)
		return err
	})
	if err != nil {
		return directory.Group{}, fmt.Errorf("get group %s: %w", gid, closedErr(err))
	}
	return g, nil
}

// UpdateGroup implements directory.Store. It keeps the stored CreatedAtMs.
func (s *Store) UpdateGroup(ctx context.Context, g directory.Group) error {
	if err := cmp.Or(s.check(ctx), directory.ValidateGroup(g)); err != nil {
		return fmt.Errorf("update group %s: %w", g.ID, err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		groups := tx.Bucket(bucketGroups)
		v := groups.Get([]byte(g.ID))
		if v == nil {
			return directory.ErrNotFound
		}
		old, err := decodeGroup(g.ID, v)
		if err != nil {
			return err
		}
		g.CreatedAtMs = old.CreatedAtMs
		return groups.Put([]byte(g.ID), encodeGroup(g))
	})
	if err != nil {
		return fmt.Errorf("update group %s: %w", g.ID, closedErr(err))
	}
	return nil
}

// DeleteGroup implements directory.Store.
func (s *Store) DeleteGroup(ctx context.Context, gid string) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("delete group %s: %w", gid, err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		groups := tx.Bucket(bucketGroups)
		if groups.Get([]byte(gid)) == nil {
			return directory.ErrNotFound
		}
		// Collect first: deleting under a cursor can skip the next key.
		var uids []string
		for k := range prefixKeys(tx.Bucket(bucketMembers), gid) {
			uids = append(uids, k)
		}
		if err := removeMembers(tx, gid, uids); err != nil {
			return err
		}
		return groups.Delete([]byte(gid))
	})
	if err != nil {
		return fmt.Errorf("delete group %s: %w", gid, closedErr(err))
	}
	return nil
}

// Members implements directory.Store.
func (s *Store) Members(ctx context.Context, gid string) ([]directory.Member, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("members of %s: %w", gid, err)
	}
	var out []directory.Member
	err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketGroups).Get([]byte(gid)) == nil {
			return directory.ErrNotFound
		}
		members := tx.Bucket(bucketMembers)
		for uid, v := range prefixKeys(members, gid) {
			m, err := decodeMember(uid, v)
			if err != nil {
				return fmt.Errorf("member %s: %w", uid, err)
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("members of %s: %w", gid, closedErr(err))
	}
	return out, nil
}

// PutMembers implements directory.Store.
func (s *Store) PutMembers(ctx context.Context, gid string, members []directory.Member) error {
	if err := cmp.Or(s.check(ctx), directory.ValidateMembers(members)); err != nil {
		return fmt.Errorf("put members of %s: %w", gid, err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketGroups).Get([]byte(gid)) == nil {
			return directory.ErrNotFound
		}
		return putMembers(tx, gid, members)
	})
	if err != nil {
		return fmt.Errorf("put members of %s: %w", gid, closedErr(err))
	}
	return nil
}

// RemoveMembers implements directory.Store.
func (s *Store) RemoveMembers(ctx context.Context, gid string, uids []string) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("remove members of %s: %w", gid, err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketGroups).Get([]byte(gid)) == nil {
			return directory.ErrNotFound
		}
		return removeMembers(tx, gid, uids)
	})
	if err != nil {
		return fmt.Errorf("remove members of %s: %w", gid, closedErr(err))
	}
	return nil
}

// UserGroups implements directory.Store.
func (s *Store) UserGroups(ctx context.Context, uid string) ([]string, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("groups of %s: %w", uid, err)
	}
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		for gid := range prefixKeys(tx.Bucket(bucketUserGroups), uid) {
			out = append(out, gid)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("groups of %s: %w", uid, closedErr(err))
	}
	return out, nil
}

// putMembers writes members of gid and their usergroups entries.
func putMembers(tx *bolt.Tx, gid string, members []directory.Member) error {
	mb, ug := tx.Bucket(bucketMembers), tx.Bucket(bucketUserGroups)
	for _, m := range members {
		if err := mb.Put(userKey(gid, m.UserID), encodeMember(m)); err != nil {
			return fmt.Errorf("put member %s: %w", m.UserID, err)
		}
		if err := ug.Put(userKey(m.UserID, gid), nil); err != nil {
			return fmt.Errorf("index member %s: %w", m.UserID, err)
		}
	}
	return nil
}

// removeMembers deletes memberships of gid and their usergroups entries;
// absent ones are ignored.
func removeMembers(tx *bolt.Tx, gid string, uids []string) error {
	mb, ug := tx.Bucket(bucketMembers), tx.Bucket(bucketUserGroups)
	for _, uid := range uids {
		if err := mb.Delete(userKey(gid, uid)); err != nil {
			return fmt.Errorf("delete member %s: %w", uid, err)
		}
		if err := ug.Delete(userKey(uid, gid)); err != nil {
			return fmt.Errorf("unindex member %s: %w", uid, err)
		}
	}
	return nil
}

// PutFriends implements directory.Store.
func (s *Store) PutFriends(ctx context.Context, edges []directory.FriendEdge) error {
	if err := cmp.Or(s.check(ctx), directory.ValidateEdges(edges)); err != nil {
		return fmt.Errorf("put %d friend edges: %w", len(edges), err)
	}
	if len(edges) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFriends)
		for _, e := range edges {
			if err := b.Put(userKey(e.UserID, e.PeerID), encodeEdge(e)); err != nil {
				return fmt.Errorf("put edge %s->%s: %w", e.UserID, e.PeerID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put %d friend edges: %w", len(edges), closedErr(err))
	}
	return nil
}

// DeleteFriends implements directory.Store.
func (s *Store) DeleteFriends(ctx context.Context, a, b string) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("delete friends %s and %s: %w", a, b, err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		friends := tx.Bucket(bucketFriends)
		if err := friends.Delete(userKey(a, b)); err != nil {
			return err
		}
		return friends.Delete(userKey(b, a))
	})
	if err != nil {
		return fmt.Errorf("delete friends %s and %s: %w", a, b, closedErr(err))
	}
	return nil
}

// FriendEdge implements directory.Store.
func (s *Store) FriendEdge(ctx context.Context, uid, peer string) (directory.FriendEdge, error) {
	if err := s.check(ctx); err != nil {
		return directory.FriendEdge{}, fmt.Errorf("friend edge %s->%s: %w", uid, peer, err)
	}
	var e directory.FriendEdge
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketFriends).Get(userKey(uid, peer))
		if v == nil {
			return directory.ErrNotFound
		}
		var err error
		e, err = decodeEdge(uid, peer, v)
		return err
	})
	if err != nil {
		return directory.FriendEdge{}, fmt.Errorf("friend edge %s->%s: %w", uid, peer, closedErr(err))
	}
	return e, nil
}

// Friends implements directory.Store.
func (s *Store) Friends(ctx context.Context, uid string) ([]directory.FriendEdge, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("friends of %s: %w", uid, err)
	}
	var out []directory.FriendEdge
	err := s.db.View(func(tx *bolt.Tx) error {
		for peer, v := range prefixKeys(tx.Bucket(bucketFriends), uid) {
			e, err := decodeEdge(uid, peer, v)
			if err != nil {
				return fmt.Errorf("edge to %s: %w", peer, err)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("friends of %s: %w", uid, closedErr(err))
	}
	return out, nil
}

// Block implements directory.Store.
func (s *Store) Block(ctx context.Context, uid, peer string) error {
	if err := cmp.Or(s.check(ctx), directory.ValidatePair(uid, peer)); err != nil {
		return fmt.Errorf("block %s->%s: %w", uid, peer, err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlocks).Put(userKey(uid, peer), nil)
	})
	if err != nil {
		return fmt.Errorf("block %s->%s: %w", uid, peer, closedErr(err))
	}
	return nil
}

// Unblock implements directory.Store.
func (s *Store) Unblock(ctx context.Context, uid, peer string) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("unblock %s->%s: %w", uid, peer, err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlocks).Delete(userKey(uid, peer))
	})
	if err != nil {
		return fmt.Errorf("unblock %s->%s: %w", uid, peer, closedErr(err))
	}
	return nil
}

// Blocks implements directory.Store.
func (s *Store) Blocks(ctx context.Context, uid string) ([]string, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("blocks of %s: %w", uid, err)
	}
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		for peer := range prefixKeys(tx.Bucket(bucketBlocks), uid) {
			out = append(out, peer)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("blocks of %s: %w", uid, closedErr(err))
	}
	return out, nil
}

// prefixKeys yields, in key order, the keys of b under id 0x00 without that
// prefix, and their values (valid only inside the transaction).
func prefixKeys(b *bolt.Bucket, id string) iter.Seq2[string, []byte] {
	prefix := userKey(id, "")
	return func(yield func(string, []byte) bool) {
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if !yield(string(k[len(prefix):]), v) {
				return
			}
		}
	}
}

// appendString appends s as a uvarint length and its bytes.
func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func encodeGroup(g directory.Group) []byte {
	b := []byte{valueFormat}
	b = appendString(b, g.Name)
	b = appendString(b, g.Owner)
	b = appendString(b, g.Ext)
	return binary.AppendVarint(b, g.CreatedAtMs)
}

func decodeGroup(gid string, v []byte) (directory.Group, error) {
	d := newDecoder(v)
	g := directory.Group{ID: gid}
	g.Name = d.string()
	g.Owner = d.string()
	g.Ext = d.string()
	g.CreatedAtMs = d.int()
	if err := d.done(); err != nil {
		return directory.Group{}, fmt.Errorf("decode group: %w", err)
	}
	return g, nil
}

func encodeMember(m directory.Member) []byte {
	b := []byte{valueFormat}
	b = appendString(b, string(m.Role))
	b = binary.AppendVarint(b, m.MutedUntilMs)
	return binary.AppendVarint(b, m.JoinedAtMs)
}

func decodeMember(uid string, v []byte) (directory.Member, error) {
	d := newDecoder(v)
	m := directory.Member{UserID: uid}
	m.Role = directory.Role(d.string())
	m.MutedUntilMs = d.int()
	m.JoinedAtMs = d.int()
	if err := d.done(); err != nil {
		return directory.Member{}, fmt.Errorf("decode member: %w", err)
	}
	return m, nil
}

func encodeEdge(e directory.FriendEdge) []byte {
	b := []byte{valueFormat}
	b = appendString(b, string(e.State))
	b = appendString(b, e.Message)
	return binary.AppendVarint(b, e.UpdatedAtMs)
}

func decodeEdge(uid, peer string, v []byte) (directory.FriendEdge, error) {
	d := newDecoder(v)
	e := directory.FriendEdge{UserID: uid, PeerID: peer}
	e.State = directory.FriendState(d.string())
	e.Message = d.string()
	e.UpdatedAtMs = d.int()
	if err := d.done(); err != nil {
		return directory.FriendEdge{}, fmt.Errorf("decode friend edge: %w", err)
	}
	return e, nil
}

// errCorrupt is the error of a value that does not decode.
var errCorrupt = errors.New("corrupt value")

// decoder reads the fields of one value in order. After the first error
// every read returns a zero value and done reports the error. Strings are
// copied, so the value may be bbolt memory.
type decoder struct {
	b   []byte
	err error
}

// newDecoder checks v's format byte and returns a decoder of its fields.
func newDecoder(v []byte) *decoder {
	if len(v) == 0 || v[0] != valueFormat {
		return &decoder{err: fmt.Errorf("%w: unknown format", errCorrupt)}
	}
	return &decoder{b: v[1:]}
}

func (d *decoder) string() string {
	if d.err != nil {
		return ""
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > uint64(len(d.b)-k) {
		d.err = fmt.Errorf("%w: bad string", errCorrupt)
		return ""
	}
	s := string(d.b[k : k+int(n)])
	d.b = d.b[k+int(n):]
	return s
}

func (d *decoder) int() int64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Varint(d.b)
	if k <= 0 {
		d.err = fmt.Errorf("%w: bad integer", errCorrupt)
		return 0
	}
	d.b = d.b[k:]
	return v
}

// done returns the first error, or an error when bytes are left over.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) > 0 {
		return fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(d.b))
	}
	return d.err
}
