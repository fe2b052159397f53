-- 0003_outbox: the transactional outbox (see mailbox.Item.Outbox).
--
-- An entry is written in the transaction that stores its message in the
-- sender's mailbox (uid, msg_id as in 0001_init) and deleted once the
-- delivery has been handed on (Store.ClearOutbox). data is the caller's
-- bytes, at most mailbox.MaxOutboxLen (1 MiB); created_at_ms is the store's
-- clock at commit, Unix milliseconds. Every statement is idempotent.

-- outbox is read oldest first: the created_at_ms index (which ends with the
-- primary key, uid and msg_id) gives that order without a sort.
CREATE TABLE IF NOT EXISTS outbox (
  uid           VARBINARY(64) NOT NULL,
  msg_id        VARBINARY(64) NOT NULL,
  created_at_ms BIGINT        NOT NULL,
  data          MEDIUMBLOB    NOT NULL,
  PRIMARY KEY (uid, msg_id),
  KEY outbox_created_at_ms (created_at_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
