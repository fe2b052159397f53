package mailbox

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Cursor is a device's ack cursor: the highest seq the device has stored.
type Cursor struct {
	UserID, DeviceID string
	Seq              uint64
}

type cursorKey struct{ uid, device string }

// CursorWriter coalesces ack cursor writes: Set records the cursor in
// memory and returns; one goroutine writes everything recorded since its
// last write in one Store.SetAcked (one transaction), so a flood of Acks
// costs a few transactions a second instead of one each. Acked reads the
// recorded cursor before the store's, so a cursor is never seen going back.
// A cursor set less than a write's time before a crash may be lost: a device
// then syncs a little more than it needed. Safe for concurrent use.
type CursorWriter struct {
	store Store
	log   *slog.Logger
	wake  chan struct{} // 1-slot: something was set
	done  chan struct{} // closed when the writer returned

	mu      sync.Mutex
	pending map[cursorKey]uint64 // guarded by mu: set, not yet being written
	writing map[cursorKey]uint64 // guarded by mu: in the write in flight
	closed  bool                 // guarded by mu
}

// cursorLinger gathers more cursors into a write once one is set.
const cursorLinger = 20 * time.Millisecond

// NewCursorWriter starts a writer on store.
func NewCursorWriter(store Store, log *slog.Logger) *CursorWriter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &CursorWriter{store: store, log: log, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go w.run()
	return w
}

// Set raises (uid, device)'s cursor to seq; a lower seq is ignored. It never
// blocks on the store.
func (w *CursorWriter) Set(uid, device string, seq uint64) {
	k := cursorKey{uid, device}
	w.mu.Lock()
	if w.closed || seq <= w.pending[k] || seq <= w.writing[k] {
		w.mu.Unlock()
		return
	}
	if w.pending == nil {
		w.pending = make(map[cursorKey]uint64)
	}
	w.pending[k] = seq
	select { // under mu: Close closes wake
	case w.wake <- struct{}{}:
	default:
	}
	w.mu.Unlock()
}

// Acked returns (uid, device)'s cursor: the one set and not yet written, or
// the stored one.
func (w *CursorWriter) Acked(ctx context.Context, uid, device string) (uint64, error) {
	k := cursorKey{uid, device}
	w.mu.Lock()
	mem := max(w.pending[k], w.writing[k])
	w.mu.Unlock()
	stored, err := w.store.Acked(ctx, uid, device)
	return max(mem, stored), err
}

func (w *CursorWriter) run() {
	defer close(w.done)
	for {
		_, open := <-w.wake
		if open {
			time.Sleep(cursorLinger)
		}
		w.mu.Lock()
		w.writing, w.pending = w.pending, nil
		w.mu.Unlock()
		w.write()
		if !open {
			return
		}
	}
}

// write stores w.writing, which only run changes.
func (w *CursorWriter) write() {
	if len(w.writing) == 0 {
		return
	}
	batch := make([]Cursor, 0, len(w.writing))
	for k, seq := range w.writing {
		batch = append(batch, Cursor{UserID: k.uid, DeviceID: k.device, Seq: seq})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := w.store.SetAcked(ctx, batch); err != nil {
		w.log.Warn("store ack cursors failed; devices will sync from their older cursors", "cursors", len(batch), "err", err)
	}
	cancel()
	w.mu.Lock()
	w.writing = nil
	w.mu.Unlock()
}

// Close writes what is set and stops the writer; later Sets are ignored.
// Idempotent. Returns ctx.Err() if the deadline wins.
func (w *CursorWriter) Close(ctx context.Context) error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.wake)
	}
	w.mu.Unlock()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
