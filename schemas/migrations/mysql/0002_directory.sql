-- 0002_directory: groups and their members, friendships and blocks (see
-- sync/directory).
--
-- Ids (gid, uid, peer) are VARBINARY(64) as in 0001_init. Names, ext and
-- friend messages are the caller's bytes, kept exactly: VARBINARY, with the
-- byte limits of sync/directory (the store checks them first). Times are
-- Unix milliseconds. Every statement is idempotent.

-- im_groups is each group's own data ("groups" is a reserved word).
CREATE TABLE IF NOT EXISTS im_groups (
  gid           VARBINARY(64)   NOT NULL,
  name          VARBINARY(256)  NOT NULL,
  owner         VARBINARY(64)   NOT NULL,
  ext           VARBINARY(4096) NOT NULL,
  created_at_ms BIGINT          NOT NULL,
  PRIMARY KEY (gid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- group_members is one row per membership; (uid, gid) lists a user's groups.
-- role is owner, admin or member.
CREATE TABLE IF NOT EXISTS group_members (
  gid            VARBINARY(64) NOT NULL,
  uid            VARBINARY(64) NOT NULL,
  role           VARBINARY(16) NOT NULL,
  muted_until_ms BIGINT        NOT NULL,
  joined_at_ms   BIGINT        NOT NULL,
  PRIMARY KEY (gid, uid),
  KEY group_members_uid_gid (uid, gid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- friends holds one row per side of a relation: uid's view of peer. state is
-- requested, pending or friend.
CREATE TABLE IF NOT EXISTS friends (
  uid           VARBINARY(64)  NOT NULL,
  peer          VARBINARY(64)  NOT NULL,
  state         VARBINARY(16)  NOT NULL,
  message       VARBINARY(256) NOT NULL,
  updated_at_ms BIGINT         NOT NULL,
  PRIMARY KEY (uid, peer)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- blocks holds a row when uid blocks peer.
CREATE TABLE IF NOT EXISTS blocks (
  uid  VARBINARY(64) NOT NULL,
  peer VARBINARY(64) NOT NULL,
  PRIMARY KEY (uid, peer)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
