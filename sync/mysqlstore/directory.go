package mysqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/parleyim/parley/sync/directory"
)

var _ directory.Store = (*Store)(nil)

// The directory's tables are schemas/migrations/mysql/0002_directory.sql.
// Writes to a group's members first lock its im_groups row (FOR UPDATE), so
// they are serialized per group and cannot race a DeleteGroup. Input is
// checked first (directory.ValidateGroup and the like, against the column
// sizes), so that errors do not depend on the server's sql_mode.

// CreateGroup implements directory.Store.
func (s *Store) CreateGroup(ctx context.Context, g directory.Group, members []directory.Member) error {
	if err := cmp.Or(s.check(ctx), directory.ValidateNewGroup(g, members)); err != nil {
		return fmt.Errorf("create group %s: %w", g.ID, err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			"INSERT INTO im_groups (gid, name, owner, ext, created_at_ms) VALUES (?, ?, ?, ?, ?)",
			g.ID, g.Name, g.Owner, g.Ext, g.CreatedAtMs)
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == errDupEntry {
			return directory.ErrExists
		}
		if err != nil {
			return fmt.Errorf("insert group: %w", err)
		}
		return upsertMembers(ctx, tx, g.ID, members)
	})
	if err != nil {
		return fmt.Errorf("create group %s: %w", g.ID, err)
	}
	return nil
}

// Group implements directory.Store.
func (s *Store) Group(ctx context.Context, gid string) (directory.Group, error) {
	if err := s.check(ctx); err != nil {
		return directory.Group{}, fmt.Errorf("get group %s: %w", gid, err)
	}
	g := directory.Group{ID: gid}
	err := s.db.QueryRowContext(ctx, "SELECT name, owner, ext, created_at_ms FROM im_groups WHERE gid = ?", gid).
		Scan(&g.Name, &g.Owner, &g.Ext, &g.CreatedAtMs)
	if errors.Is(err, sql.ErrNoRows) {
		err = directory.ErrNotFound
	}
	if err != nil {
		return directory.Group{}, fmt.Errorf("get group %s: %w", gid, err)
	}
	return g, nil
}

// UpdateGroup implements directory.Store. It keeps the stored CreatedAtMs.
func (s *Store) UpdateGroup(ctx context.Context, g directory.Group) error {
	if err := cmp.Or(s.check(ctx), directory.ValidateGroup(g)); err != nil {
		return fmt.Errorf("update group %s: %w", g.ID, err)
	}
	// The group is locked first: UPDATE's affected rows count only rows
	// that changed, so it cannot tell an unchanged group from none.
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := lockGroup(ctx, tx, g.ID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE im_groups SET name = ?, owner = ?, ext = ? WHERE gid = ?",
			g.Name, g.Owner, g.Ext, g.ID); err != nil {
			return fmt.Errorf("update: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update group %s: %w", g.ID, err)
	}
	return nil
}

// DeleteGroup implements directory.Store.
func (s *Store) DeleteGroup(ctx context.Context, gid string) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("delete group %s: %w", gid, err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// The group row first, as every member write locks it first.
		res, err := tx.ExecContext(ctx, "DELETE FROM im_groups WHERE gid = ?", gid)
		if err != nil {
			return fmt.Errorf("delete group row: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("delete group row: %w", err)
		} else if n == 0 {
			return directory.ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM group_members WHERE gid = ?", gid); err != nil {
			return fmt.Errorf("delete members: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete group %s: %w", gid, err)
	}
	return nil
}

// Members implements directory.Store.
func (s *Store) Members(ctx context.Context, gid string) ([]directory.Member, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("members of %s: %w", gid, err)
	}
	// One statement, so the group and its members are one snapshot: no row
	// means no group, one row with a NULL uid a group without members.
	rows, err := s.db.QueryContext(ctx, `SELECT m.uid, COALESCE(m.role, ''), COALESCE(m.muted_until_ms, 0), COALESCE(m.joined_at_ms, 0)
FROM im_groups g LEFT JOIN group_members m ON m.gid = g.gid
WHERE g.gid = ? ORDER BY m.uid`, gid)
	if err != nil {
		return nil, fmt.Errorf("members of %s: %w", gid, err)
	}
	defer rows.Close()
	found := false
	var out []directory.Member
	for rows.Next() {
		found = true
		var uid sql.NullString
		var m directory.Member
		if err := rows.Scan(&uid, &m.Role, &m.MutedUntilMs, &m.JoinedAtMs); err != nil {
			return nil, fmt.Errorf("members of %s: %w", gid, err)
		}
		if !uid.Valid {
			continue
		}
		m.UserID = uid.String
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("members of %s: %w", gid, err)
	}
	if !found {
		return nil, fmt.Errorf("members of %s: %w", gid, directory.ErrNotFound)
	}
	return out, nil
}

// PutMembers implements directory.Store.
func (s *Store) PutMembers(ctx context.Context, gid string, members []directory.Member) error {
	if err := cmp.Or(s.check(ctx), directory.ValidateMembers(members)); err != nil {
		return fmt.Errorf("put members of %s: %w", gid, err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := lockGroup(ctx, tx, gid); err != nil {
			return err
		}
		return upsertMembers(ctx, tx, gid, members)
	})
	if err != nil {
		return fmt.Errorf("put members of %s: %w", gid, err)
	}
	return nil
}

// RemoveMembers implements directory.Store.
func (s *Store) RemoveMembers(ctx context.Context, gid string, uids []string) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("remove members of %s: %w", gid, err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := lockGroup(ctx, tx, gid); err != nil {
			return err
		}
		for chunk := range slices.Chunk(uids, maxKeysPerQuery) {
			args := make([]any, 0, 1+len(chunk))
			args = append(args, gid)
			for _, uid := range chunk {
				args = append(args, uid)
			}
			q := "DELETE FROM group_members WHERE gid = ? AND uid IN (" + placeholders(len(chunk), "?", ",") + ")"
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("delete %d members: %w", len(chunk), err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove members of %s: %w", gid, err)
	}
	return nil
}

// UserGroups implements directory.Store.
func (s *Store) UserGroups(ctx context.Context, uid string) ([]string, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("groups of %s: %w", uid, err)
	}
	gids, err := s.queryStrings(ctx, "SELECT gid FROM group_members WHERE uid = ? ORDER BY gid", uid)
	if err != nil {
		return nil, fmt.Errorf("groups of %s: %w", uid, err)
	}
	return gids, nil
}

// lockGroup locks gid's row until tx ends; ErrNotFound when there is none.
func lockGroup(ctx context.Context, tx *sql.Tx, gid string) error {
	var one int
	err := tx.QueryRowContext(ctx, "SELECT 1 FROM im_groups WHERE gid = ? FOR UPDATE", gid).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return directory.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("lock group: %w", err)
	}
	return nil
}

// upsertMembers inserts or replaces memberships of gid in multi-row INSERTs.
// When a uid appears twice, the later membership wins.
func upsertMembers(ctx context.Context, tx *sql.Tx, gid string, members []directory.Member) error {
	const (
		head = "INSERT INTO group_members (gid, uid, role, muted_until_ms, joined_at_ms) VALUES "
		tail = " ON DUPLICATE KEY UPDATE role = VALUES(role), muted_until_ms = VALUES(muted_until_ms), joined_at_ms = VALUES(joined_at_ms)"
	)
	for chunk := range slices.Chunk(members, maxRowsPerInsert) {
		args := make([]any, 0, 5*len(chunk))
		for _, m := range chunk {
			args = append(args, gid, m.UserID, string(m.Role), m.MutedUntilMs, m.JoinedAtMs)
		}
		if _, err := tx.ExecContext(ctx, head+placeholders(len(chunk), "(?,?,?,?,?)", ",")+tail, args...); err != nil {
			return fmt.Errorf("upsert %d members: %w", len(chunk), err)
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
	// Write in key order, so concurrent calls lock rows in one order; the
	// sort is stable, so a repeated edge's last copy still wins.
	sorted := slices.Clone(edges)
	slices.SortStableFunc(sorted, func(a, b directory.FriendEdge) int {
		return cmp.Or(strings.Compare(a.UserID, b.UserID), strings.Compare(a.PeerID, b.PeerID))
	})
	const (
		head = "INSERT INTO friends (uid, peer, state, message, updated_at_ms) VALUES "
		tail = " ON DUPLICATE KEY UPDATE state = VALUES(state), message = VALUES(message), updated_at_ms = VALUES(updated_at_ms)"
	)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for chunk := range slices.Chunk(sorted, maxRowsPerInsert) {
			args := make([]any, 0, 5*len(chunk))
			for _, e := range chunk {
				args = append(args, e.UserID, e.PeerID, string(e.State), e.Message, e.UpdatedAtMs)
			}
			if _, err := tx.ExecContext(ctx, head+placeholders(len(chunk), "(?,?,?,?,?)", ",")+tail, args...); err != nil {
				return fmt.Errorf("upsert %d edges: %w", len(chunk), err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put %d friend edges: %w", len(edges), err)
	}
	return nil
}

// DeleteFriends implements directory.Store.
func (s *Store) DeleteFriends(ctx context.Context, a, b string) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("delete friends %s and %s: %w", a, b, err)
	}
	// One statement: both edges go, or neither.
	if _, err := s.db.ExecContext(ctx, "DELETE FROM friends WHERE (uid = ? AND peer = ?) OR (uid = ? AND peer = ?)",
		a, b, b, a); err != nil {
		return fmt.Errorf("delete friends %s and %s: %w", a, b, err)
	}
	return nil
}

// FriendEdge implements directory.Store.
func (s *Store) FriendEdge(ctx context.Context, uid, peer string) (directory.FriendEdge, error) {
	if err := s.check(ctx); err != nil {
		return directory.FriendEdge{}, fmt.Errorf("friend edge %s->%s: %w", uid, peer, err)
	}
	e := directory.FriendEdge{UserID: uid, PeerID: peer}
	err := s.db.QueryRowContext(ctx, "SELECT state, message, updated_at_ms FROM friends WHERE uid = ? AND peer = ?", uid, peer).
		Scan(&e.State, &e.Message, &e.UpdatedAtMs)
	if errors.Is(err, sql.ErrNoRows) {
		err = directory.ErrNotFound
	}
	if err != nil {
		return directory.FriendEdge{}, fmt.Errorf("friend edge %s->%s: %w", uid, peer, err)
	}
	return e, nil
}

// Friends implements directory.Store.
func (s *Store) Friends(ctx context.Context, uid string) ([]directory.FriendEdge, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("friends of %s: %w", uid, err)
	}
	rows, err := s.db.QueryContext(ctx,
		"SELECT peer, state, message, updated_at_ms FROM friends WHERE uid = ? ORDER BY peer", uid)
	if err != nil {
		return nil, fmt.Errorf("friends of %s: %w", uid, err)
	}
	defer rows.Close()
	var out []directory.FriendEdge
	for rows.Next() {
		e := directory.FriendEdge{UserID: uid}
		if err := rows.Scan(&e.PeerID, &e.State, &e.Message, &e.UpdatedAtMs); err != nil {
			return nil, fmt.Errorf("friends of %s: %w", uid, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("friends of %s: %w", uid, err)
	}
	return out, nil
}

// Block implements directory.Store.
func (s *Store) Block(ctx context.Context, uid, peer string) error {
	if err := cmp.Or(s.check(ctx), directory.ValidatePair(uid, peer)); err != nil {
		return fmt.Errorf("block %s->%s: %w", uid, peer, err)
	}
	// Not INSERT IGNORE: that would turn every error into a warning.
	if _, err := s.db.ExecContext(ctx,
		"INSERT INTO blocks (uid, peer) VALUES (?, ?) ON DUPLICATE KEY UPDATE peer = peer", uid, peer); err != nil {
		return fmt.Errorf("block %s->%s: %w", uid, peer, err)
	}
	return nil
}

// Unblock implements directory.Store.
func (s *Store) Unblock(ctx context.Context, uid, peer string) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("unblock %s->%s: %w", uid, peer, err)
	}
	if _, err := s.db.ExecContext(ctx, "DELETE FROM blocks WHERE uid = ? AND peer = ?", uid, peer); err != nil {
		return fmt.Errorf("unblock %s->%s: %w", uid, peer, err)
	}
	return nil
}

// Blocks implements directory.Store.
func (s *Store) Blocks(ctx context.Context, uid string) ([]string, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("blocks of %s: %w", uid, err)
	}
	peers, err := s.queryStrings(ctx, "SELECT peer FROM blocks WHERE uid = ? ORDER BY peer", uid)
	if err != nil {
		return nil, fmt.Errorf("blocks of %s: %w", uid, err)
	}
	return peers, nil
}

// queryStrings runs a query of one string column.
func (s *Store) queryStrings(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// inTx runs fn in a transaction and commits it. A deadlock rolls the whole
// transaction back, so it is retried (up to maxAttempts); other errors,
// fn's included, are returned as they are.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.tryTx(ctx, fn)
		var me *mysql.MySQLError
		if err != nil && attempt < maxAttempts && errors.As(err, &me) && me.Number == errDeadlock && ctx.Err() == nil {
			s.log.Debug("directory transaction retry after deadlock", "attempt", attempt, "err", err)
			continue
		}
		return err
	}
}

// tryTx is one attempt of inTx.
func (s *Store) tryTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
