package mailbox_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/boltstore"
	"github.com/parleyim/parley/sync/mailbox"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newCommitter(t testing.TB, cfg mailbox.CommitterConfig) *mailbox.Committer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	c, err := mailbox.NewCommitter(cfg)
	if err != nil {
		t.Fatalf("NewCommitter error = %v; want nil", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("Close = %v; want nil", err)
		}
	})
	return c
}

func openBolt(t testing.TB) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "mailbox.db"), boltstore.Options{})
	if err != nil {
		t.Fatalf("boltstore.Open error = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func one(uid string, after uint64, msgID string) mailbox.Append {
	return mailbox.Append{UserID: uid, After: after, Items: []mailbox.Item{{Message: &wirepb.Message{MsgId: msgID}}}}
}

// outcome is what one done callback received.
type outcome struct {
	res mailbox.AppendResult
	err error
}

// recorder hands out done callbacks and checks each is called exactly once.
type recorder struct {
	mu    sync.Mutex
	calls map[string]int
	got   map[string]outcome
	ch    chan string // receives the name of every done call
}

func newRecorder() *recorder {
	return &recorder{calls: map[string]int{}, got: map[string]outcome{}, ch: make(chan string, 10_000)}
}

func (r *recorder) done(name string) func(mailbox.AppendResult, error) {
	return func(res mailbox.AppendResult, err error) {
		r.mu.Lock()
		r.calls[name]++
		r.got[name] = outcome{res, err}
		r.mu.Unlock()
		r.ch <- name
	}
}

func (r *recorder) outcome(t *testing.T, name string) outcome {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := r.calls[name]; n != 1 {
		t.Fatalf("done of %s called %d times; want 1", name, n)
	}
	return r.got[name]
}

// TestCommitterBolt drives many users through a real store, each user with
// one append in flight like its actor.
func TestCommitterBolt(t *testing.T) {
	for _, workers := range []int{1, 4} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			st := openBolt(t)
			c := newCommitter(t, mailbox.CommitterConfig{Store: st, Workers: workers, MaxBatch: 64})
			const users, rounds = 50, 20
			var wg sync.WaitGroup
			for u := range users {
				wg.Go(func() {
					uid := fmt.Sprintf("u%02d", u)
					var after uint64
					for r := range rounds {
						ch := make(chan outcome, 1)
						c.Submit(one(uid, after, fmt.Sprintf("%s-%d", uid, r)), func(res mailbox.AppendResult, err error) {
							ch <- outcome{res, err}
						})
						var o outcome
						select {
						case o = <-ch:
						case <-time.After(30 * time.Second):
							t.Errorf("%s round %d: no result after 30s", uid, r)
							return
						}
						if o.err != nil || o.res.Err != nil || o.res.MaxSeq != after+1 || o.res.Items[0].Seq != after+1 {
							t.Errorf("%s round %d: got %+v, %v; want seq %d", uid, r, o.res, o.err, after+1)
							return
						}
						after++
					}
				})
			}
			wg.Wait()
			for u := range users {
				uid := fmt.Sprintf("u%02d", u)
				msgs, err := st.Fetch(t.Context(), uid, 0, rounds+10, 100)
				if err != nil || len(msgs) != rounds {
					t.Fatalf("Fetch(%s) = %d messages, %v; want %d, nil", uid, len(msgs), err, rounds)
				}
				for i, m := range msgs {
					if want := fmt.Sprintf("%s-%d", uid, i); m.Seq != uint64(i+1) || m.MsgId != want {
						t.Errorf("%s seq %d = {Seq:%d MsgId:%s}; want {Seq:%d MsgId:%s}", uid, i+1, m.Seq, m.MsgId, i+1, want)
					}
				}
			}
		})
	}
}

// call is one Append reaching a gateStore.
type call struct {
	batch []mailbox.Append
	reply chan error // nil: succeed
}

// gateStore blocks every Append until the test replies to its call.
type gateStore struct {
	mailbox.Store // only Append is used
	calls         chan call
}

func newGateStore() *gateStore { return &gateStore{calls: make(chan call, 100)} }

func (g *gateStore) Append(ctx context.Context, batch []mailbox.Append) ([]mailbox.AppendResult, error) {
	c := call{batch: batch, reply: make(chan error, 1)}
	g.calls <- c
	select {
	case err := <-c.reply:
		if err != nil {
			return nil, err
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	res := make([]mailbox.AppendResult, len(batch))
	for i, a := range batch {
		res[i].MaxSeq = a.After
		for range a.Items {
			res[i].MaxSeq++
			res[i].Items = append(res[i].Items, mailbox.ItemResult{Seq: res[i].MaxSeq})
		}
	}
	return res, nil
}

// next returns the call the store is blocked in.
func (g *gateStore) next(t *testing.T) call {
	t.Helper()
	synctest.Wait()
	select {
	case c := <-g.calls:
		return c
	default:
		t.Fatalf("no Append in flight; want one")
		return call{}
	}
}

func (g *gateStore) idle(t *testing.T) {
	t.Helper()
	synctest.Wait()
	select {
	case c := <-g.calls:
		t.Fatalf("Append of %d parts in flight; want none", len(c.batch))
	default:
	}
}

func users(batch []mailbox.Append) []string {
	var out []string
	for _, a := range batch {
		out = append(out, a.UserID)
	}
	return out
}

func TestCommitterBatchesWhileBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGateStore()
		c := newCommitter(t, mailbox.CommitterConfig{Store: g})
		r := newRecorder()

		c.Submit(one("first", 0, "m"), r.done("first"))
		first := g.next(t) // committed at once: no linger
		if got := users(first.batch); len(got) != 1 || got[0] != "first" {
			t.Fatalf("first batch = %v; want [first]", got)
		}
		for i := range 10 {
			name := fmt.Sprintf("u%d", i)
			c.Submit(one(name, 0, "m"), r.done(name))
		}
		g.idle(t) // accumulating while the first is in flight
		first.reply <- nil
		second := g.next(t)
		if got := users(second.batch); len(got) != 10 || got[0] != "u0" || got[9] != "u9" {
			t.Fatalf("second batch = %v; want u0…u9 in order", got)
		}
		if o := r.outcome(t, "first"); o.err != nil || o.res.Items[0].Seq != 1 {
			t.Errorf("first: %+v, %v; want seq 1", o.res, o.err)
		}
		second.reply <- nil
		synctest.Wait()
		for i := range 10 {
			if o := r.outcome(t, fmt.Sprintf("u%d", i)); o.err != nil || o.res.MaxSeq != 1 {
				t.Errorf("u%d: %+v, %v; want MaxSeq 1", i, o.res, o.err)
			}
		}
	})
}

func TestCommitterMaxBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGateStore()
		c := newCommitter(t, mailbox.CommitterConfig{Store: g, MaxBatch: 10})
		r := newRecorder()
		c.Submit(one("first", 0, "m"), r.done("first"))
		first := g.next(t)
		big := mailbox.Append{UserID: "big"}
		for i := range 15 {
			big.Items = append(big.Items, mailbox.Item{Message: &wirepb.Message{MsgId: fmt.Sprint(i)}})
		}
		for i := range 7 {
			c.Submit(one(fmt.Sprintf("a%d", i), 0, "m"), r.done(fmt.Sprintf("a%d", i)))
		}
		c.Submit(big, r.done("big"))
		for i := range 12 {
			c.Submit(one(fmt.Sprintf("b%d", i), 0, "m"), r.done(fmt.Sprintf("b%d", i)))
		}
		first.reply <- nil
		// 7 singles, then big alone (7+15 > 10), then 10 and 2 singles.
		for _, want := range []int{7, 15, 10, 2} {
			cl := g.next(t)
			items := 0
			for _, a := range cl.batch {
				items += len(a.Items)
			}
			if items != want {
				t.Errorf("batch %v has %d items; want %d", users(cl.batch), items, want)
			}
			cl.reply <- nil
		}
		g.idle(t)
	})
}

func TestCommitterWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGateStore()
		c := newCommitter(t, mailbox.CommitterConfig{Store: g, Workers: 3})
		r := newRecorder()
		var inflight []call
		for i := range 3 {
			c.Submit(one(fmt.Sprintf("u%d", i), 0, "m"), r.done(fmt.Sprintf("u%d", i)))
			inflight = append(inflight, g.next(t))
		}
		c.Submit(one("u3", 0, "m"), r.done("u3"))
		g.idle(t) // three transactions in flight: u3 waits
		inflight[1].reply <- nil
		fourth := g.next(t)
		if got := users(fourth.batch); len(got) != 1 || got[0] != "u3" {
			t.Errorf("fourth batch = %v; want [u3]", got)
		}
		for _, cl := range append(inflight, fourth) {
			cl.reply <- nil
		}
		synctest.Wait()
		for i := range 4 {
			if o := r.outcome(t, fmt.Sprintf("u%d", i)); o.err != nil {
				t.Errorf("u%d: %v; want nil", i, o.err)
			}
		}
	})
}

func TestCommitterStoreError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGateStore()
		c := newCommitter(t, mailbox.CommitterConfig{Store: g})
		r := newRecorder()
		c.Submit(one("first", 0, "m"), r.done("first"))
		first := g.next(t)
		c.Submit(one("a", 0, "m"), r.done("a"))
		c.Submit(one("b", 0, "m"), r.done("b"))
		first.reply <- nil
		boom := errors.New("disk on fire")
		g.next(t).reply <- boom
		synctest.Wait()
		for _, name := range []string{"a", "b"} {
			if o := r.outcome(t, name); !errors.Is(o.err, boom) {
				t.Errorf("%s: err = %v; want %v", name, o.err, boom)
			}
		}
		// No retry: the store sees nothing more.
		g.idle(t)
	})
}

func TestCommitterCloseDrains(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGateStore()
		c, err := mailbox.NewCommitter(mailbox.CommitterConfig{Store: g, Logger: testLogger(t)})
		if err != nil {
			t.Fatalf("NewCommitter error = %v", err)
		}
		r := newRecorder()
		c.Submit(one("first", 0, "m"), r.done("first"))
		first := g.next(t)
		for i := range 5 {
			c.Submit(one(fmt.Sprintf("u%d", i), 0, "m"), r.done(fmt.Sprintf("u%d", i)))
		}
		closed := make(chan error, 1)
		go func() { closed <- c.Close(context.Background()) }()
		synctest.Wait()
		c.Submit(one("late", 0, "m"), r.done("late"))
		if o := r.outcome(t, "late"); !errors.Is(o.err, mailbox.ErrClosed) {
			t.Errorf("Submit after Close: err = %v; want ErrClosed", o.err)
		}
		first.reply <- nil
		g.next(t).reply <- nil
		if err := <-closed; err != nil {
			t.Errorf("Close = %v; want nil", err)
		}
		for i := range 5 {
			if o := r.outcome(t, fmt.Sprintf("u%d", i)); o.err != nil || o.res.MaxSeq != 1 {
				t.Errorf("u%d: %+v, %v; want committed", i, o.res, o.err)
			}
		}
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("second Close = %v; want nil", err)
		}
	})
}

func TestCommitterCloseDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGateStore()
		c, err := mailbox.NewCommitter(mailbox.CommitterConfig{Store: g, Logger: testLogger(t)})
		if err != nil {
			t.Fatalf("NewCommitter error = %v", err)
		}
		r := newRecorder()
		c.Submit(one("stuck", 0, "m"), r.done("stuck"))
		g.next(t) // never replied to: only ctx frees it
		for i := range 3 {
			c.Submit(one(fmt.Sprintf("u%d", i), 0, "m"), r.done(fmt.Sprintf("u%d", i)))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		if err := c.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close = %v; want DeadlineExceeded", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("Close took %v; want 1s", d)
		}
		synctest.Wait()
		if o := r.outcome(t, "stuck"); !errors.Is(o.err, mailbox.ErrClosed) || !errors.Is(o.err, context.Canceled) {
			t.Errorf("in-flight append: err = %v; want ErrClosed wrapping context.Canceled", o.err)
		}
		for i := range 3 {
			if o := r.outcome(t, fmt.Sprintf("u%d", i)); !errors.Is(o.err, mailbox.ErrClosed) {
				t.Errorf("queued u%d: err = %v; want ErrClosed", i, o.err)
			}
		}
		g.idle(t)
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("Close after workers stopped = %v; want nil", err)
		}
	})
}

func TestNewCommitterValidates(t *testing.T) {
	g := newGateStore()
	tests := []struct {
		name string
		cfg  mailbox.CommitterConfig
	}{
		{"nilStore", mailbox.CommitterConfig{}},
		{"negativeMaxBatch", mailbox.CommitterConfig{Store: g, MaxBatch: -1}},
		{"negativeWorkers", mailbox.CommitterConfig{Store: g, Workers: -1}},
	}
	for _, tt := range tests {
		if c, err := mailbox.NewCommitter(tt.cfg); err == nil {
			c.Close(context.Background())
			t.Errorf("NewCommitter(%s) error = nil; want an error", tt.name)
		}
	}
}

// countingStore counts transactions and parts.
type countingStore struct {
	mailbox.Store
	txns, parts atomic.Int64
}

func (s *countingStore) Append(ctx context.Context, batch []mailbox.Append) ([]mailbox.AppendResult, error) {
	s.txns.Add(1)
	s.parts.Add(int64(len(batch)))
	return s.Store.Append(ctx, batch)
}

// BenchmarkCommitter measures group commit on the embedded store: submitters
// goroutines, each a user with one append in flight (like its actor), share
// b.N appends; parts/txn is the resulting batch size.
//
//	go test ./sync/mailbox -run '^$' -bench Committer -benchtime 2000x
func BenchmarkCommitter(b *testing.B) {
	for _, submitters := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("submitters=%d", submitters), func(b *testing.B) {
			st := &countingStore{Store: openBolt(b)}
			c, err := mailbox.NewCommitter(mailbox.CommitterConfig{Store: st})
			if err != nil {
				b.Fatalf("NewCommitter error = %v", err)
			}
			defer c.Close(context.Background())
			body := make([]byte, 200)
			tokens := make(chan int)
			var wg sync.WaitGroup
			for u := range submitters {
				wg.Go(func() {
					uid := fmt.Sprintf("user%05d", u)
					var after uint64
					var failed bool
					res := make(chan outcome, 1)
					for n := range tokens {
						if failed {
							continue // keep draining so b.Loop never blocks
						}
						c.Submit(mailbox.Append{UserID: uid, After: after, Items: []mailbox.Item{{Message: &wirepb.Message{
							MsgId: fmt.Sprintf("m%09d", n), Body: body, CreatedAtMs: 1_760_000_000_000,
						}}}}, func(r mailbox.AppendResult, err error) { res <- outcome{r, err} })
						o := <-res
						if o.err != nil || o.res.Err != nil {
							b.Errorf("append: %v, %v", o.err, o.res.Err)
							failed = true
							continue
						}
						after = o.res.MaxSeq
					}
				})
			}
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				n++
				tokens <- n
			}
			close(tokens)
			wg.Wait()
			if txns := st.txns.Load(); txns > 0 {
				b.ReportMetric(float64(st.parts.Load())/float64(txns), "parts/txn")
			}
		})
	}
}

func TestCommitterObserve(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGateStore()
		var (
			mu   sync.Mutex
			seen []mailbox.CommitStats
		)
		c := newCommitter(t, mailbox.CommitterConfig{Store: g, Observe: func(s mailbox.CommitStats) {
			mu.Lock()
			seen = append(seen, s)
			mu.Unlock()
		}})
		r := newRecorder()
		c.Submit(one("first", 0, "m"), r.done("first"))
		first := g.next(t)
		c.Submit(one("a", 0, "m"), r.done("a"))
		two := one("b", 0, "m1")
		two.Items = append(two.Items, mailbox.Item{Message: &wirepb.Message{MsgId: "m2"}})
		c.Submit(two, r.done("b"))
		time.Sleep(2 * time.Second) // a and b wait behind first
		first.reply <- nil
		second := g.next(t)
		time.Sleep(time.Second)
		boom := errors.New("disk on fire")
		second.reply <- boom
		synctest.Wait()

		mu.Lock()
		defer mu.Unlock()
		want := []mailbox.CommitStats{
			{Appends: 1, Items: 1, Wait: 0, Took: 2 * time.Second},
			{Appends: 2, Items: 3, Wait: 2 * time.Second, Took: time.Second, Err: boom},
		}
		if len(seen) != len(want) {
			t.Fatalf("observed %d commits: %+v; want %d", len(seen), seen, len(want))
		}
		for i := range want {
			if got := seen[i]; got.Appends != want[i].Appends || got.Items != want[i].Items ||
				got.Wait != want[i].Wait || got.Took != want[i].Took || !errors.Is(got.Err, want[i].Err) {
				t.Errorf("commit %d observed %+v; want %+v", i, got, want[i])
			}
		}
	})
}
