package host

import "time"

// pooledDispatcher runs actor mailboxes on goroutines that outlive one run.
//
// protoactor's default dispatcher starts a goroutine each time an idle
// mailbox gets a message. A user actor is idle between almost all of its
// messages, so under load that is one new goroutine per message, each
// starting on a minimal stack and growing it (copying) through the actor's
// call chain: 6.7% of all CPU in a p2p profile (docs/PERFORMANCE.md). Here a
// finished run waits up to idle for the next mailbox instead of exiting, so
// its grown stack is reused. Schedule never blocks and never waits for a
// busy worker: with no idle worker it starts one, so an actor that blocks
// cannot starve the others.
type pooledDispatcher struct {
	work       chan func() // unbuffered: a send succeeds only into an idle worker
	idle       time.Duration
	throughput int
}

func newPooledDispatcher(throughput int, idle time.Duration) *pooledDispatcher {
	return &pooledDispatcher{work: make(chan func()), idle: idle, throughput: throughput}
}

// Schedule implements actor.Dispatcher.
func (d *pooledDispatcher) Schedule(fn func()) {
	select {
	case d.work <- fn:
	default:
		go d.worker(fn)
	}
}

// Throughput implements actor.Dispatcher: messages one mailbox run handles
// before it yields.
func (d *pooledDispatcher) Throughput() int { return d.throughput }

// worker runs fn, then whatever is scheduled while it waits, until it has
// waited idle for nothing.
func (d *pooledDispatcher) worker(fn func()) {
	fn()
	t := time.NewTimer(d.idle)
	defer t.Stop()
	for {
		select {
		case fn := <-d.work:
			fn()
			t.Reset(d.idle)
		case <-t.C:
			return
		}
	}
}
