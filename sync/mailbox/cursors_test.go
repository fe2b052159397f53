package mailbox_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/sync/mailbox"
)

// countingCursors counts SetAcked calls on a real store.
type countingCursors struct {
	mailbox.Store
	calls, cursors atomic.Int64
}

func (c *countingCursors) SetAcked(ctx context.Context, cs []mailbox.Cursor) error {
	c.calls.Add(1)
	c.cursors.Add(int64(len(cs)))
	return c.Store.SetAcked(ctx, cs)
}

func acked(t *testing.T, get func(context.Context, string, string) (uint64, error), uid, dev string, want uint64) {
	t.Helper()
	got, err := get(context.Background(), uid, dev)
	if err != nil || got != want {
		t.Errorf("Acked(%s, %s) = %d, %v; want %d, nil", uid, dev, got, err, want)
	}
}

// TestCursorWriter: many Sets from many goroutines become a few writes; a
// cursor never reads lower than the highest Set; Close writes the rest.
func TestCursorWriter(t *testing.T) {
	store := &countingCursors{Store: openBolt(t)}
	w := mailbox.NewCursorWriter(store, testLogger(t))

	const users, acks = 50, 200
	var wg sync.WaitGroup
	for u := range users {
		wg.Go(func() {
			uid := fmt.Sprint("u", u)
			for seq := uint64(1); seq <= acks; seq++ {
				w.Set(uid, "phone", seq)
				w.Set(uid, "phone", seq/2) // lower: ignored
				if got, err := w.Acked(context.Background(), uid, "phone"); err != nil || got < seq {
					t.Errorf("Acked(%s) = %d, %v right after Set(%d); want >= %d", uid, got, err, seq, seq)
					return
				}
			}
		})
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close = %v; want nil", err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatalf("second Close = %v; want nil", err)
	}
	for u := range users {
		acked(t, store.Acked, fmt.Sprint("u", u), "phone", acks) // in the store itself
	}
	if n := store.calls.Load(); n > 100 {
		t.Errorf("%d Sets took %d store writes; want them coalesced (at most 100)", users*acks, n)
	}
	t.Logf("%d Sets: %d store writes of %d cursors", users*acks, store.calls.Load(), store.cursors.Load())

	w.Set("late", "phone", 3) // after Close: ignored, no panic
	acked(t, store.Acked, "late", "phone", 0)
}

// TestCursorWriterReadsStore: a cursor written by an earlier writer (an
// earlier run) is read from the store.
func TestCursorWriterReadsStore(t *testing.T) {
	store := openBolt(t)
	if err := store.SetAcked(context.Background(), []mailbox.Cursor{{UserID: "alice", DeviceID: "phone", Seq: 7}}); err != nil {
		t.Fatal(err)
	}
	w := mailbox.NewCursorWriter(store, nil)
	defer w.Close(context.Background())
	acked(t, w.Acked, "alice", "phone", 7)
	w.Set("alice", "phone", 5) // lower than stored: the store keeps 7
	acked(t, w.Acked, "alice", "phone", 7)
	w.Set("alice", "phone", 9)
	acked(t, w.Acked, "alice", "phone", 9)
	acked(t, w.Acked, "alice", "laptop", 0)
}
