package boltstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/directory"
	"github.com/parleyim/parley/sync/mailbox"
	"github.com/parleyim/parley/sync/storetest"
)

// testLogger logs to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// openTest opens the store at path; the caller closes it.
func openTest(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open(%s) error = %v; want nil", path, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	path := storetest.PerTest(func(t *testing.T) string {
		return filepath.Join(t.TempDir(), "data", "mailbox.db")
	})
	storetest.Run(t, func(t *testing.T) mailbox.Store { return openTest(t, path(t)) })
}

func TestDirectoryConformance(t *testing.T) {
	storetest.RunDirectory(t, func(t *testing.T) directory.Store {
		s := openTest(t, filepath.Join(t.TempDir(), "data", "mailbox.db"))
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestMigrationsRecorded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mailbox.db")
	s := openTest(t, path)
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v; want nil", err)
	}
	s = openTest(t, path) // migrations already applied: no-op
	defer s.Close()
	var got uint64
	if err := s.db.View(func(tx *bolt.Tx) error {
		got = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keyVersion))
		return nil
	}); err != nil {
		t.Fatalf("View error = %v", err)
	}
	if want := migrations[len(migrations)-1].version; got != want {
		t.Errorf("schema version = %d; want %d", got, want)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mailbox.db")
	s := openTest(t, path)
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyVersion, seqKey(1_000))
	}); err != nil {
		t.Fatalf("Update error = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v; want nil", err)
	}
	if s, err := Open(path, Options{}); err == nil {
		s.Close()
		t.Fatalf("Open(schema version 1000) error = nil; want an error")
	}
}

// TestOutboxIndex checks that outbox and outboxkey stay in step: every
// index entry names an outbox key with its time, and clearing leaves no
// index entry behind.
func TestOutboxIndex(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "mailbox.db"))
	defer s.Close()
	ctx := t.Context()
	var its []mailbox.Item
	for i := range 20 {
		its = append(its, mailbox.Item{Message: &wirepb.Message{MsgId: fmt.Sprintf("m%02d", i)}, Outbox: []byte{byte(i)}})
	}
	if _, err := s.Append(ctx, []mailbox.Append{{UserID: "alice", Items: its}, {UserID: "bob", Items: its[:5]}}); err != nil {
		t.Fatalf("Append error = %v", err)
	}
	check := func(want int) {
		t.Helper()
		if err := s.db.View(func(tx *bolt.Tx) error {
			outbox, index := tx.Bucket(bucketOutbox), tx.Bucket(bucketOutboxKey)
			if n, m := outbox.Stats().KeyN, index.Stats().KeyN; n != want || m != want {
				t.Errorf("outbox holds %d keys, outboxkey %d; want %d each", n, m, want)
			}
			return index.ForEach(func(k, ts []byte) error {
				i := bytes.LastIndexByte(k, 0)
				if i < 0 || outbox.Get(outboxKey(ts, userKey(string(k[i+1:]), string(k[:i])))) == nil {
					t.Errorf("outboxkey %q -> %x names no outbox entry", k, ts)
				}
				return nil
			})
		}); err != nil {
			t.Fatalf("View error = %v", err)
		}
	}
	check(25)
	var keys []mailbox.OutboxKey
	for i := range 10 {
		keys = append(keys, mailbox.OutboxKey{UserID: "alice", MsgID: fmt.Sprintf("m%02d", 2*i)})
	}
	keys = append(keys, mailbox.OutboxKey{UserID: "bob", MsgID: "m04"}, mailbox.OutboxKey{UserID: "bob", MsgID: "m05"})
	if err := s.ClearOutbox(ctx, keys); err != nil {
		t.Fatalf("ClearOutbox error = %v", err)
	}
	check(14)
	all, err := s.Outbox(ctx, 0, 100)
	if err != nil {
		t.Fatalf("Outbox error = %v", err)
	}
	keys = keys[:0]
	for _, e := range all {
		keys = append(keys, mailbox.OutboxKey{UserID: e.UserID, MsgID: e.MsgID})
	}
	if err := s.ClearOutbox(ctx, keys); err != nil {
		t.Fatalf("ClearOutbox error = %v", err)
	}
	check(0)
}

// BenchmarkAppend measures one fsynced transaction appending one message to
// each of batch users (a group commit of batch parts).
//
//	go test ./sync/boltstore -run '^$' -bench Append -benchtime 2000x
func BenchmarkAppend(b *testing.B) {
	storetest.BenchmarkAppend(b, func(b *testing.B) mailbox.Store {
		s, err := Open(filepath.Join(b.TempDir(), "mailbox.db"), Options{})
		if err != nil {
			b.Fatalf("Open error = %v", err)
		}
		return s
	})
}
