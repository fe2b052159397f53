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
	"github.com/parleyim/parley/schemas/wirepb"
)

// sendPlan describes a burst of 1:1 sends. Each sender runs Inflight lanes:
// goroutines that each send one message at a time (the SDK's Send blocks
// until the SendAck), so a lane's messages reach every recipient in lane
// order.
//
// With Rate > 0 the load is open-loop: a scheduler spaces sends evenly at
// Rate per second over Window (a token bucket of depth one) and hands each to
// its sender's queue; lanes take them from the queue, and latency counts
// from the scheduled time, so time spent queued behind a slow server is
// measured (no coordinated omission). Sends still queued when the drain
// time runs out are not sent; each is recorded at the lower bound of its
// latency (now − scheduled time) and counted as unsent. With Rate 0 every
// lane sends flat out and latency counts from the start of its Send.
type sendPlan struct {
	// senders are SDK clients, one per sender. Leave it nil and set send
	// and nsenders to send some other way (raw connections).
	senders []*client.Client
	// send, if set, makes one send for sender s (an index below nsenders)
	// and returns its SendAck; key and at are what body encodes.
	send     sendFunc
	nsenders int
	// recipients are the user ids sends go to, or, with convType set,
	// the ids of the groups or rooms.
	recipients []string
	convType   wirepb.ConversationType // zero: users
	// to picks the recipient (an index into recipients) of the ticket-th
	// send of the run, made by sender.
	to       func(sender int, ticket int64) int
	rate     float64       // total sends per second; 0 = flat out
	inflight int           // lanes per sender, ≥ 1
	window   time.Duration // how long to schedule (rate) or send (flat out); 0 = until count
	count    int64         // total sends at most; 0 = bounded by window only
	size     int           // body bytes
	// drain lets lanes work off a backlog for this long after the window
	// (rate mode); what is still queued then is counted as unsent.
	drain       time.Duration
	sendTimeout time.Duration // one Send, retries included
}

// sendRun is one execution of a plan.
type sendRun struct {
	plan   sendPlan
	conv   []*wirepb.Conversation // per recipient
	ackLat *hist.Recorder

	scheduled, started, acked, failed, unsent atomic.Int64
	lastAck                                   atomic.Int64 // unix nanos

	start time.Time // immutable after run starts
	lanes [][]laneLog

	mu   sync.Mutex // guards errs
	errs []string   // first send errors
}

// laneLog is what one lane sent; owned by the lane goroutine until run returns.
type laneLog struct {
	next uint64 // n of the next send (from 1)
	acks []ackRec
}

type ackRec struct {
	to  int32
	n   uint64
	seq uint64 // seq in the sender's mailbox, from the SendAck
}

type scheduledSend struct {
	ticket int64
	at     time.Time
}

// sendFunc makes one send of sender s to conversation to and returns its
// SendAck; body encodes key and at.
type sendFunc func(ctx context.Context, s int, to *wirepb.Conversation, key verify.Key, at time.Time, body []byte) (*wirepb.SendAck, error)

func newSendRun(p sendPlan) *sendRun {
	if p.send == nil {
		senders := p.senders
		p.nsenders = len(senders)
		p.send = func(ctx context.Context, s int, to *wirepb.Conversation, _ verify.Key, _ time.Time, body []byte) (*wirepb.SendAck, error) {
			return senders[s].Send(ctx, to, wirepb.ContentType_CONTENT_TYPE_TEXT, body)
		}
	}
	r := &sendRun{plan: p, ackLat: hist.New(), lanes: make([][]laneLog, p.nsenders)}
	for i := range r.lanes {
		r.lanes[i] = make([]laneLog, p.inflight)
	}
	convType := p.convType
	if convType == wirepb.ConversationType_CONVERSATION_TYPE_UNSPECIFIED {
		convType = wirepb.ConversationType_CONVERSATION_TYPE_USER
	}
	r.conv = make([]*wirepb.Conversation, len(p.recipients))
	for i, id := range p.recipients {
		r.conv[i] = &wirepb.Conversation{Type: convType, Id: id}
	}
	if r.plan.sendTimeout <= 0 {
		r.plan.sendTimeout = 30 * time.Second
	}
	return r
}

// run sends until the window closes or count is reached, and returns once
// every started send has finished.
func (r *sendRun) run(ctx context.Context) error {
	p := r.plan
	if p.window <= 0 && p.count <= 0 {
		return fmt.Errorf("send plan needs a window or a count")
	}
	if p.nsenders <= 0 {
		return fmt.Errorf("send plan has no senders")
	}
	r.start = time.Now()
	var wg sync.WaitGroup
	if p.rate <= 0 {
		deadline := time.Time{}
		if p.window > 0 {
			deadline = r.start.Add(p.window)
		}
		var tickets atomic.Int64
		for s := range p.nsenders {
			for l := range p.inflight {
				wg.Go(func() {
					for ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline)) {
						t := tickets.Add(1) - 1
						if p.count > 0 && t >= p.count {
							return
						}
						r.scheduled.Add(1)
						r.send(ctx, s, l, t, time.Now())
					}
				})
			}
		}
		wg.Wait()
		return nil
	}

	total := p.count
	if p.window > 0 {
		byTime := int64(p.rate * p.window.Seconds())
		if total <= 0 || byTime < total {
			total = byTime
		}
	}
	if total > 5_000_000 {
		return fmt.Errorf("rate × duration = %d sends; at most 5,000,000 per run", total)
	}
	perSender := total/int64(p.nsenders) + 1
	queues := make([]chan scheduledSend, p.nsenders)
	for s := range queues {
		queues[s] = make(chan scheduledSend, perSender) // never blocks the scheduler
	}
	drainBy := r.start.Add(p.window + p.drain)
	for s := range p.nsenders {
		for l := range p.inflight {
			wg.Go(func() {
				for item := range queues[s] {
					if now := time.Now(); ctx.Err() != nil || now.After(drainBy) {
						// Never sent: its latency is at least this long.
						// Recording the lower bound keeps the tail honest.
						r.unsent.Add(1)
						r.ackLat.Record(now.Sub(item.at))
						continue
					}
					r.send(ctx, s, l, item.ticket, item.at)
				}
			})
		}
	}
	interval := time.Duration(float64(time.Second) / p.rate)
schedule:
	for k := int64(0); k < total; {
		now := time.Now()
		// Hand out every send that is due; then sleep until the next one.
		for ; k < total; k++ {
			at := r.start.Add(time.Duration(k) * interval)
			if at.After(now) {
				break
			}
			queues[k%int64(len(queues))] <- scheduledSend{ticket: k, at: at}
			r.scheduled.Add(1)
		}
		if k >= total {
			break
		}
		select {
		case <-time.After(time.Until(r.start.Add(time.Duration(k) * interval))):
		case <-ctx.Done():
			break schedule
		}
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	return nil
}

// send makes one send of lane l of sender s, scheduled at at.
func (r *sendRun) send(ctx context.Context, s, l int, ticket int64, at time.Time) {
	ll := &r.lanes[s][l]
	ll.next++
	n := ll.next
	to := r.plan.to(s, ticket)
	key := verify.Key{Lane: verify.Lane{Sender: int32(s), Lane: int32(l)}, N: n}
	body := encodeBody(key, at, r.plan.size)
	r.started.Add(1)
	sctx, cancel := context.WithTimeout(ctx, r.plan.sendTimeout)
	ack, err := r.plan.send(sctx, s, r.conv[to], key, at, body)
	cancel()
	now := time.Now()
	if err != nil {
		r.failed.Add(1)
		r.mu.Lock()
		if len(r.errs) < 5 {
			r.errs = append(r.errs, fmt.Sprintf("sender %d lane %d n=%d: %v", s, l, n, err))
		}
		r.mu.Unlock()
		return
	}
	r.ackLat.Record(now.Sub(at))
	r.acked.Add(1)
	ll.acks = append(ll.acks, ackRec{to: int32(to), n: n, seq: ack.GetSeq()})
	for {
		last := r.lastAck.Load()
		if now.UnixNano() <= last || r.lastAck.CompareAndSwap(last, now.UnixNano()) {
			break
		}
	}
}

// line is the progress line of the sending side.
func (r *sendRun) line(rt *rate) string {
	acked := r.acked.Load()
	s := fmt.Sprintf("acked %d (%.0f/s) errors %d in flight %d", acked, rt.per(acked), r.failed.Load(),
		r.started.Load()-r.acked.Load()-r.failed.Load())
	if r.plan.rate > 0 {
		s += fmt.Sprintf(" queued %d", r.scheduled.Load()-r.started.Load()-r.unsent.Load())
	}
	return s
}

// sendSeconds is the time from the start to the last SendAck.
func (r *sendRun) sendSeconds() float64 {
	last := r.lastAck.Load()
	if last == 0 {
		return 0
	}
	return time.Unix(0, last).Sub(r.start).Seconds()
}

// expected returns, per recipient, the keys of the acknowledged sends to it.
// Call after run.
func (r *sendRun) expected() [][]verify.Key {
	out := make([][]verify.Key, len(r.plan.recipients))
	for s, lanes := range r.lanes {
		for l, ll := range lanes {
			for _, a := range ll.acks {
				out[a.to] = append(out[a.to], verify.Key{Lane: verify.Lane{Sender: int32(s), Lane: int32(l)}, N: a.n})
			}
		}
	}
	return out
}

// checkSenderSeqs verifies each sender's own mailbox as its SendAcks saw it:
// the seqs of its acknowledged sends are exactly 1..k. It assumes fresh
// senders whose only mailbox entries are these sends.
func (r *sendRun) checkSenderSeqs() (bad int, detail string) {
	for s, lanes := range r.lanes {
		var seqs []uint64
		for _, ll := range lanes {
			for _, a := range ll.acks {
				seqs = append(seqs, a.seq)
			}
		}
		slices.Sort(seqs)
		for i, q := range seqs {
			if q != uint64(i+1) {
				bad++
				if detail == "" {
					detail = fmt.Sprintf("sender %d: %d acks, seq %d at position %d", s, len(seqs), q, i+1)
				}
				break
			}
		}
	}
	return bad, detail
}

// sendErrors returns the first send errors.
func (r *sendRun) sendErrors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}
