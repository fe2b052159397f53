package scenario

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/bench/verify"
)

// stream keeps what one connection received, in arrival order, for
// verify, and tells when an expected number of the generator's messages
// (entries that are not System) has arrived. Safe for concurrent use.
type stream struct {
	count atomic.Int64 // entries received that are not System
	last  atomic.Int64 // unix nanos of the latest entry; 0 before

	mu        sync.Mutex // guards the following
	got       []verify.Received
	msgs      int // len(got) without the System entries
	want      int
	reached   chan struct{} // closed when msgs reaches want
	reachedAt time.Time
}

// add appends one entry received at now.
func (s *stream) add(r verify.Received, now time.Time) {
	s.mu.Lock()
	s.got = append(s.got, r)
	if !r.System {
		s.msgs++
		if s.reached != nil && s.msgs == s.want {
			s.reachedAt = now
			close(s.reached)
		}
	}
	s.mu.Unlock()
	if !r.System {
		s.count.Add(1)
	}
	s.last.Store(now.UnixNano())
}

// expect arms the stream to note when n non-System entries have arrived
// and returns a channel closed then (at once if they already have).
func (s *stream) expect(n int) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.want = n
	s.reached = make(chan struct{})
	s.reachedAt = time.Time{}
	if s.msgs >= n {
		s.reachedAt = time.Now()
		close(s.reached)
	}
	return s.reached
}

// doneAt returns when the expected count arrived (zero if not yet).
func (s *stream) doneAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reachedAt
}

// received returns a copy of what arrived so far.
func (s *stream) received() []verify.Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// lastSeq returns the seq of the latest entry (0 if none).
func (s *stream) lastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) == 0 {
		return 0
	}
	return s.got[len(s.got)-1].Seq
}

// waitQuiet waits until count has not changed for 200ms, at most 2s: once
// every stream has its expected count, a duplicate may have made one reach
// it early, and the message it still waits for should be in before the
// verification, or it would be reported lost as well.
func waitQuiet(ctx context.Context, count func() int64) {
	deadline := time.Now().Add(2 * time.Second)
	last, since := count(), time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		if n := count(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= 200*time.Millisecond {
			return
		}
	}
}

// latencyFrom says where latencies count from.
func latencyFrom(rate float64) string {
	if rate > 0 {
		return "latency counts from each send's scheduled time (open loop)"
	}
	return "latency counts from the start of each send (flat out)"
}
