-- 0001_init: mailboxes and device ack cursors.
--
-- Ids (uid, msg_id, device_id, client_key) are ASCII [A-Za-z0-9_-] (a client
-- key is device "/" client msg id) and compare exactly, byte for byte:
-- VARBINARY, since ascii_bin still ignores trailing spaces (PAD SPACE).
-- Every statement is idempotent, so a migration cut off half way can run
-- again.

-- mailbox is every user's append-only message sequence: seq 1, 2, 3 … with
-- no gaps. message is the protobuf parley.wire.v1.Message with seq set;
-- created_at_ms is its send time, Unix milliseconds.
CREATE TABLE IF NOT EXISTS mailbox (
  uid           VARBINARY(64)   NOT NULL,
  seq           BIGINT UNSIGNED NOT NULL,
  msg_id        VARBINARY(64)   NOT NULL,
  client_key    VARBINARY(140)  NULL,
  created_at_ms BIGINT          NOT NULL,
  message       MEDIUMBLOB      NOT NULL,
  PRIMARY KEY (uid, seq),
  UNIQUE KEY mailbox_uid_msg_id (uid, msg_id),
  UNIQUE KEY mailbox_uid_client_key (uid, client_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- devices holds each device's ack cursor: the highest seq it has stored.
CREATE TABLE IF NOT EXISTS devices (
  uid        VARBINARY(64)   NOT NULL,
  device_id  VARBINARY(64)   NOT NULL,
  acked_seq  BIGINT UNSIGNED NOT NULL,
  updated_at DATETIME(3)     NOT NULL,
  PRIMARY KEY (uid, device_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
