package client

import (
	"sync"
	"sync/atomic"

	"github.com/parleyim/parley/schemas/wirepb"
)

// liveQueue is a bounded channel of messages that nothing can fetch again
// (room messages, transient pushes). A push never blocks: when the buffer
// is full the oldest waiting message is dropped and counted. close ends
// the channel after what is buffered; pushes after close are ignored.
type liveQueue struct {
	// Immutable after newLiveQueue.
	ch chan *wirepb.Message

	dropped atomic.Uint64 // messages dropped to make room

	mu     sync.Mutex // serializes push and close, so close never races a send
	closed bool       // guarded by mu
}

// newLiveQueue returns a queue holding up to size messages (at least 1).
func newLiveQueue(size int) *liveQueue {
	return &liveQueue{ch: make(chan *wirepb.Message, max(size, 1))}
}

// push queues m, dropping the oldest queued message if the buffer is full.
func (q *liveQueue) push(m *wirepb.Message) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	for {
		select {
		case q.ch <- m:
			return
		default:
		}
		// Full. Pushes are serialized, so after one receive (ours or the
		// reader's) the next send finds room.
		select {
		case <-q.ch:
			q.dropped.Add(1)
		default:
		}
	}
}

// close closes the channel. Idempotent.
func (q *liveQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
}

// idSet remembers the last limit ids added, forgetting the oldest first.
// Not safe for concurrent use.
type idSet struct {
	limit int
	ids   map[string]struct{}
	order []string // ids in the order they were added
}

func newIDSet(limit int) *idSet {
	return &idSet{limit: max(limit, 1), ids: make(map[string]struct{})}
}

// add records id and reports whether it is new.
func (s *idSet) add(id string) bool {
	if _, ok := s.ids[id]; ok {
		return false
	}
	s.ids[id] = struct{}{}
	s.order = append(s.order, id)
	s.trim()
	return true
}

func (s *idSet) has(id string) bool {
	_, ok := s.ids[id]
	return ok
}

// setLimit changes how many ids the set keeps.
func (s *idSet) setLimit(limit int) {
	s.limit = max(limit, 1)
	s.trim()
}

func (s *idSet) trim() {
	for len(s.order) > s.limit {
		delete(s.ids, s.order[0])
		s.order[0] = ""
		s.order = s.order[1:]
	}
}
