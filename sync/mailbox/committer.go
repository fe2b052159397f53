package mailbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// CommitterConfig configures NewCommitter.
type CommitterConfig struct {
	// Store receives the group commits. Required.
	Store Store
	// MaxBatch caps the items per transaction, counting an Append without
	// items as one; zero means 1000. An Append is never split: one bigger
	// than MaxBatch is committed alone.
	MaxBatch int
	// Workers is the number of transactions in flight at once; zero means
	// 1. Appends of one user are never reordered because the actor keeps at
	// most one in flight.
	Workers int
	// Logger receives failed commits (warn) and per-commit sizes (debug);
	// nil discards.
	Logger *slog.Logger
	// Observe, when set, is called after every transaction on the worker
	// that ran it (metrics); it must not block.
	Observe func(CommitStats)
}

// CommitStats describes one group commit, for CommitterConfig.Observe.
type CommitStats struct {
	Appends int           // Appends in the transaction
	Items   int           // their items
	Wait    time.Duration // how long the oldest Append waited for a worker
	Took    time.Duration // the store transaction
	Err     error         // nil when it committed
}

// Committer turns the Appends of many actors into group commits: while a
// transaction is in flight, submissions accumulate; when it finishes, a
// worker takes everything accumulated (up to MaxBatch items) into the next
// one. There is no linger timer, so an idle store commits at once, and no
// retry: a failed transaction fails every Append in it. Safe for concurrent
// use.
type Committer struct {
	// Immutable after NewCommitter.
	store    Store
	maxBatch int
	log      *slog.Logger
	observe  func(CommitStats) // nil: none
	ctx      context.Context   // for store calls; canceled when Close gives up
	cancel   context.CancelFunc
	done     chan struct{} // closed when every worker has returned

	mu      sync.Mutex
	cond    sync.Cond // L is &mu; signaled when queue or closing changes
	queue   []pending // guarded by mu; in submission order
	closing bool      // guarded by mu; Close was called, Submit refuses
	aborted bool      // guarded by mu; Close's ctx expired, queue fails with ErrClosed
}

// pending is one submitted Append awaiting its commit.
type pending struct {
	a    Append
	done func(AppendResult, error)
	at   time.Time // submitted
}

// NewCommitter validates cfg and starts the committer's workers.
func NewCommitter(cfg CommitterConfig) (*Committer, error) {
	if cfg.Store == nil {
		return nil, errors.New("new committer: nil Store")
	}
	if cfg.MaxBatch < 0 || cfg.Workers < 0 {
		return nil, fmt.Errorf("new committer: MaxBatch %d and Workers %d must not be negative", cfg.MaxBatch, cfg.Workers)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	maxBatch := cfg.MaxBatch
	if maxBatch == 0 {
		maxBatch = 1000
	}
	workers := cfg.Workers
	if workers == 0 {
		workers = 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Committer{
		store:    cfg.Store,
		maxBatch: maxBatch,
		log:      log.With("component", "committer"),
		observe:  cfg.Observe,
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	c.cond.L = &c.mu
	var wg sync.WaitGroup
	for range workers {
		wg.Go(c.work)
	}
	go func() {
		wg.Wait()
		cancel()
		close(c.done)
	}()
	return c, nil
}

// Submit queues a for the next group commit and calls done exactly once with
// its result, on a committer goroutine; done must not block. After Close,
// done gets ErrClosed (called by Submit itself when Close had already begun).
// An error other than ErrClosed failed the whole transaction: nothing of a
// may have been committed — or, when the commit's outcome was lost (a broken
// connection during COMMIT), all of it; the caller reloads and retries, and
// msg ids make the retry idempotent.
func (c *Committer) Submit(a Append, done func(AppendResult, error)) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		done(AppendResult{}, ErrClosed)
		return
	}
	c.queue = append(c.queue, pending{a: a, done: done, at: time.Now()})
	c.mu.Unlock()
	c.cond.Signal()
}

// Close stops accepting submissions, commits what was queued, then stops the
// workers. If ctx ends first, Close cancels the store call in flight, fails
// the Appends still queued with ErrClosed and returns ctx.Err(); the workers
// return once the store call does. Idempotent.
func (c *Committer) Close(ctx context.Context) error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.cond.Broadcast()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		c.aborted = true
		c.mu.Unlock()
		c.cancel()
		c.cond.Broadcast()
		return ctx.Err()
	}
}

// work is one worker: it takes the next batch whenever it is free.
func (c *Committer) work() {
	for {
		c.mu.Lock()
		for len(c.queue) == 0 && !c.closing {
			c.cond.Wait()
		}
		if c.aborted {
			q := c.queue
			c.queue = nil
			c.mu.Unlock()
			for _, p := range q {
				p.done(AppendResult{}, ErrClosed)
			}
			return
		}
		if len(c.queue) == 0 { // closing, and drained
			c.mu.Unlock()
			return
		}
		batch := c.takeLocked()
		more := len(c.queue) > 0
		c.mu.Unlock()
		if more {
			c.cond.Signal() // an idle worker can take the rest
		}
		c.commit(batch)
	}
}

// takeLocked removes the next batch from the queue: at least one Append,
// and as many more as fit in maxBatch items.
func (c *Committer) takeLocked() []pending {
	n, items := 0, 0
	for n < len(c.queue) {
		w := max(1, len(c.queue[n].a.Items))
		if n > 0 && items+w > c.maxBatch {
			break
		}
		items += w
		n++
	}
	batch := c.queue[:n:n]
	if n == len(c.queue) {
		c.queue = nil
	} else {
		c.queue = slices.Clone(c.queue[n:])
	}
	return batch
}

// commit runs one transaction and reports to every Append in it.
func (c *Committer) commit(batch []pending) {
	parts := make([]Append, len(batch))
	items := 0
	for i := range batch {
		parts[i] = batch[i].a
		items += len(batch[i].a.Items)
	}
	start := time.Now()
	res, err := c.store.Append(c.ctx, parts)
	took := time.Since(start)
	if err == nil && len(res) != len(parts) {
		err = fmt.Errorf("store returned %d results for %d parts", len(res), len(parts))
	}
	if c.observe != nil {
		// batch is in submission order, so its first Append waited longest.
		c.observe(CommitStats{Appends: len(parts), Items: items, Wait: start.Sub(batch[0].at), Took: took, Err: err})
	}
	if err != nil {
		if c.ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", ErrClosed, err)
		}
		err = fmt.Errorf("group commit parts=%d: %w", len(parts), err)
		c.log.Warn("group commit failed", "parts", len(parts), "err", err)
		for _, p := range batch {
			p.done(AppendResult{}, err)
		}
		return
	}
	if c.log.Enabled(c.ctx, slog.LevelDebug) {
		c.log.Debug("group commit", "parts", len(parts), "took", took)
	}
	for i, p := range batch {
		p.done(res[i], nil)
	}
}
