package scenario

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/bench/hist"
	"github.com/parleyim/parley/bench/verify"
	"github.com/parleyim/parley/client"
)

// receiver reads one device's Messages, measures delivery latency from the
// time in each body, and keeps what arrived, in order, for verify.Check.
type receiver struct {
	// Immutable after newReceiver.
	uid       string
	c         *client.Client
	lat       *hist.Recorder     // nil: no latency
	senderUID func(int32) string // a body's sender index to the user id it must come from
	done      chan struct{}      // closed when Messages is closed

	count atomic.Int64 // entries received
	first atomic.Int64 // unix nanos of the first entry; 0 before
	last  atomic.Int64 // unix nanos of the latest entry; 0 before

	mu        sync.Mutex // guards the following
	got       []verify.Received
	want      int
	reached   chan struct{} // closed when len(got) reaches want
	reachedAt time.Time
}

func newReceiver(uid string, c *client.Client, lat *hist.Recorder, senderUID func(int32) string) *receiver {
	r := &receiver{uid: uid, c: c, lat: lat, senderUID: senderUID, done: make(chan struct{})}
	go r.loop()
	return r
}

func (r *receiver) loop() {
	defer close(r.done)
	for m := range r.c.Messages() {
		now := time.Now()
		k, at, ok := decodeBody(m.GetBody())
		if ok && r.senderUID != nil && m.GetFromUser() != r.senderUID(k.Sender) {
			ok = false
		}
		if ok && r.lat != nil {
			r.lat.Record(now.Sub(at))
		}
		r.mu.Lock()
		r.got = append(r.got, verify.Received{Seq: m.GetSeq(), Key: k, Foreign: !ok})
		if r.reached != nil && len(r.got) == r.want {
			r.reachedAt = now
			close(r.reached)
		}
		r.mu.Unlock()
		r.first.CompareAndSwap(0, now.UnixNano())
		r.last.Store(now.UnixNano())
		r.count.Add(1)
	}
}

// firstAt returns when the first entry arrived (zero if none yet).
func (r *receiver) firstAt() time.Time {
	if ns := r.first.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// expect arms the receiver to note when n entries have arrived and returns
// a channel closed then (at once if they already have).
func (r *receiver) expect(n int) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.want = n
	r.reached = make(chan struct{})
	r.reachedAt = time.Time{}
	if len(r.got) >= n {
		r.reachedAt = time.Now()
		close(r.reached)
	}
	return r.reached
}

// doneAt returns when the expected count arrived (zero if not yet).
func (r *receiver) doneAt() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reachedAt
}

// settle syncs the device with the server and waits until everything up to
// the mailbox's max seq has been read, so verify sees the whole mailbox. It
// returns that max seq.
func (r *receiver) settle(ctx context.Context) (uint64, error) {
	if err := r.c.Sync(ctx); err != nil {
		return 0, err
	}
	max := r.c.MaxSeq()
	for {
		r.mu.Lock()
		var last uint64
		if len(r.got) > 0 {
			last = r.got[len(r.got)-1].Seq
		}
		r.mu.Unlock()
		if last >= max {
			return max, nil
		}
		select {
		case <-ctx.Done():
			return max, fmt.Errorf("read up to seq %d of %d: %w", last, max, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// received returns a copy of what arrived so far.
func (r *receiver) received() []verify.Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// verifyAll settles every receiver (bounded by timeout in total) and checks
// what each got against expected[i]. A receiver that cannot settle fails
// the check with the reason. settleLat, if not nil, records how long each
// final Sync took.
func verifyAll(ctx context.Context, rs []*receiver, expected [][]verify.Key, timeout time.Duration, settleLat *hist.Recorder) verify.Report {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	reports := make([]verify.Report, len(rs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i, r := range rs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			t0 := time.Now()
			max, err := r.settle(ctx)
			if settleLat != nil && err == nil {
				settleLat.Record(time.Since(t0))
			}
			reports[i] = verify.Check(r.received(), expected[i], 1, max)
			if err != nil {
				reports[i].SeqErrors++
				reports[i].Problems = append(reports[i].Problems, "final sync: "+err.Error())
			}
		})
	}
	wg.Wait()
	var total verify.Report
	for i, rep := range reports {
		total.Add(rs[i].uid, rep)
	}
	return total
}

// waitAll waits until every channel is closed or ctx ends, and reports how
// many were.
func waitAll(ctx context.Context, chs []<-chan struct{}) int {
	n := 0
	for _, ch := range chs {
		select {
		case <-ch:
			n++
		case <-ctx.Done():
			for _, ch := range chs[n:] {
				select {
				case <-ch:
					n++
				default:
				}
			}
			return n
		}
	}
	return n
}
