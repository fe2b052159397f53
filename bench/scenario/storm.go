package scenario

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/bench/hist"
	"github.com/parleyim/parley/bench/verify"
	"github.com/parleyim/parley/client"
)

// StormConfig configures the storm scenario: Clients devices (one user
// each) connected through a wire (see wire); Backlog messages to each are
// pushed into the void (the wire discards what the server sends), then
// every connection is cut at once, and the SDK clients reconnect, sign in
// and sync what they missed, all at the same time.
type StormConfig struct {
	Common `json:"-"`
	// Clients is the number of connected devices; zero means 2000. It is
	// lowered, with a note, to what the open-file limit allows.
	Clients int `json:"clients"`
	// Backlog is the number of messages each device misses and must sync
	// after reconnecting; zero means 5.
	Backlog int `json:"backlog"`
	// Senders is the number of users sending the backlog; zero means 16.
	Senders int `json:"senders"`
	// Inflight is the number of concurrent sends per sender; zero means 4.
	Inflight int `json:"inflight"`
	// Common.Duration bounds the recovery after the cut; zero means 60s.
}

func (c *StormConfig) defaults() {
	if c.Clients <= 0 {
		c.Clients = 2000
	}
	if c.Backlog <= 0 {
		c.Backlog = 5
	}
	if c.Senders <= 0 {
		c.Senders = 16
	}
	if c.Inflight <= 0 {
		c.Inflight = 4
	}
	if c.Duration <= 0 {
		c.Duration = 60 * time.Second
	}
}

// lateK is the number of fresh devices that sign in right after the storm.
const lateK = 100

// Storm runs the storm scenario.
func Storm(ctx context.Context, cfg StormConfig) (*Result, error) {
	cfg.defaults()
	start := time.Now()
	var clampMsg string
	if cfg.Addr == "" {
		// The client's socket and the server's, and the server's of a
		// device's previous connection may still be closing while the next
		// one opens.
		cfg.Clients, clampMsg = clampByFiles("storm clients", cfg.Clients, 3, reserveFilesInProcess+2*cfg.Senders+lateK)
	} else {
		cfg.Clients, clampMsg = clampByFiles("storm clients", cfg.Clients, 1, reserveFiles+cfg.Senders+lateK)
	}
	if clampMsg != "" && cfg.Progress != nil {
		fmt.Fprintln(cfg.Progress, "storm:", clampMsg)
	}
	t, err := openTarget(ctx, cfg.Common)
	if err != nil {
		return nil, err
	}
	defer t.close()
	res := newResult("storm", t, configOf(cfg.Common, cfg))
	if clampMsg != "" {
		res.note("%s", clampMsg)
	}
	n := cfg.Clients
	w := newWire()
	failures := newFailureCounter()
	senderUID := func(i int32) string { return t.user("s", int(i)) }

	// Connect the devices through the wire. TokenFunc runs on every
	// connect, so it counts reconnect attempts.
	var dropped atomic.Bool
	var attempts atomic.Int64
	firstAttempt := make([]atomic.Int64, n) // unix nanos of each device's first reconnect attempt
	connLat := hist.New()
	devs, err := dialAll(ctx, n, 64, connLat, func(ctx context.Context, i int) (*client.Client, error) {
		tok, err := t.token(t.user("u", i))
		if err != nil {
			return nil, err
		}
		return t.dial(ctx, "", t.user("u", i), "d", func(c *client.Config) {
			c.NetDial = w.dial
			c.Logger = slog.New(failures)
			c.Token = ""
			c.TokenFunc = func(context.Context) (string, error) {
				if dropped.Load() {
					attempts.Add(1)
					firstAttempt[i].CompareAndSwap(0, time.Now().UnixNano())
				}
				return tok, nil
			}
		})
	})
	if err != nil {
		return nil, fmt.Errorf("connect devices: %w", err)
	}
	defer closeAll(devs)
	senders, err := dialAll(ctx, cfg.Senders, 32, nil, func(ctx context.Context, i int) (*client.Client, error) {
		return t.dial(ctx, "", senderUID(int32(i)), "d", func(c *client.Config) { c.SendOnly = true })
	})
	if err != nil {
		return nil, fmt.Errorf("connect senders: %w", err)
	}
	defer closeAll(senders)
	recvs := make([]*receiver, n)
	recipients := make([]string, n)
	for i, c := range devs {
		recipients[i] = t.user("u", i)
		recvs[i] = newReceiver(recipients[i], c, nil, senderUID)
	}

	// 1. The backlog: every push is swallowed by the wire.
	w.setBlackhole(true)
	run := newSendRun(sendPlan{
		senders: senders, recipients: recipients, to: func(_ int, ticket int64) int { return int(ticket % int64(n)) },
		inflight: cfg.Inflight, window: cfg.Duration, count: int64(n * cfg.Backlog), size: minBodySize,
	})
	sendRate := startRate()
	stop := progress(cfg.Progress, "storm", func() string { return "backlog: " + run.line(&sendRate) })
	err = run.run(ctx)
	stop()
	if err != nil {
		return nil, err
	}
	// Wait until the pushes stop coming (every delivery committed and
	// pushed into the void), at most 10s.
	quietBy := time.Now().Add(10 * time.Second)
	for time.Now().Before(quietBy) {
		last := w.lastDiscard.Load()
		if last != 0 && time.Since(time.Unix(0, last)) > 300*time.Millisecond {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	expected := run.expected()
	waits := make([]<-chan struct{}, n)
	early := 0
	for i, r := range recvs {
		early += int(r.count.Load())
		waits[i] = r.expect(len(expected[i]))
	}

	// 2. The storm.
	t0 := time.Now()
	dialedBefore := w.dialed.Load()
	dropped.Store(true)
	cut := w.dropAll()
	cutTook := time.Since(t0)
	stop = progress(cfg.Progress, "storm", func() string {
		synced := 0
		for _, r := range recvs {
			if !r.doneAt().IsZero() {
				synced++
			}
		}
		return fmt.Sprintf("after the cut: %d reconnect attempts, %d connections open, %d of %d synced",
			attempts.Load(), w.open(), synced, n)
	})
	wctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	recovered := waitAll(wctx, waits)
	cancel()
	stop()
	recovery, reconnect, resync := hist.New(), hist.New(), hist.New()
	var last time.Time
	for i, r := range recvs {
		var attempt time.Time
		if ns := firstAttempt[i].Load(); ns != 0 {
			attempt = time.Unix(0, ns)
			reconnect.Record(attempt.Sub(t0))
		}
		if at := r.doneAt(); !at.IsZero() {
			recovery.Record(at.Sub(t0))
			if !attempt.IsZero() {
				resync.Record(at.Sub(attempt))
			}
			if at.After(last) {
				last = at
			}
		}
	}
	stopped := 0
	var stoppedErr error
	for _, c := range devs {
		if err := c.Err(); err != nil {
			stopped++
			stoppedErr = err
		}
	}
	// Right after the recovery, a second, fresh device of some of the users
	// signs in and syncs their whole mailbox: how long does a sync that has
	// to read the store take while the server digests the storm (the acks
	// of every device, for one)?
	late := hist.New()
	lateReport, lateErr := lateDevices(ctx, t, recipients, expected, senderUID, min(n, lateK), late)

	// Verify: every device syncs once more (all at once, right after the
	// storm) and its whole stream is checked.
	verifyTimeout := 5 * time.Second
	if recovered == n {
		verifyTimeout = 60 * time.Second
	}
	afterSync := hist.New()
	report := verifyAll(ctx, recvs, expected, verifyTimeout, afterSync)

	errorsCount := int(run.failed.Load()) + stopped + (n - recovered)
	if !report.OK() {
		errorsCount++
	}
	res.metric("devices", float64(n), "")
	res.metric("backlog per device (lost on the wire)", float64(cfg.Backlog), "msgs")
	res.metric("backlog sent (acked)", float64(run.acked.Load()), "msgs")
	res.metric("pushes discarded on the wire", float64(w.discarded.Load())/1024, "KiB")
	res.metric("connections cut at once", float64(cut), "")
	res.metric("closing them took (their clients see it when all are closed)", cutTook.Seconds()*1000, "ms")
	res.metric("reconnect attempts", float64(attempts.Load()), "")
	res.metric("connections opened after the cut", float64(w.dialed.Load()-dialedBefore), "")
	res.metric("devices signed in and synced", float64(recovered), "")
	if recovered == n {
		res.metric("time until all signed in and synced", last.Sub(t0).Seconds(), "s")
	} else {
		res.metric("time until all signed in and synced", "n/a", "")
	}
	res.metric("errors", float64(errorsCount), "")
	res.latency("connect (before the storm)", connLat)
	res.latency("backlog send→ack", run.ackLat)
	res.latency("cut → first reconnect attempt", reconnect)
	res.latency("reconnect attempt → synced", resync)
	res.latency("cut → device synced", recovery)
	res.latency("final Sync of every device, all at once", afterSync)
	res.latency("fresh device right after: sign-in → mailbox synced", late)

	res.check("backlog sends", run.failed.Load() == 0, "%d acked, %d failed%s", run.acked.Load(), run.failed.Load(), firstOf(run.sendErrors()))
	res.check("backlog missed before the cut", early == 0, "%d backlog messages reached devices before the cut (want 0: the wire discards pushes)", early)
	res.check("all recovered", recovered == n, "%d of %d devices signed in and synced within %v", recovered, n, cfg.Duration)
	res.check("no client stopped", stopped == 0, "%d clients stopped for good%s", stopped, errSuffix(stoppedErr))
	res.check("exactly once, in order", report.OK(), "%s", report)
	res.check("fresh devices after the storm", lateErr == nil && lateReport.OK(), "%d devices: %s%s", late.Count(), lateReport, errSuffix(lateErr))
	if sum := failures.summary(); sum != "" {
		res.note("reconnect attempts that failed and were retried by the SDK: %s", sum)
	}
	res.note("the SDK reconnects with full jitter: the first attempt waits a random 0–100ms (MinBackoff)")
	return res.finish(start), nil
}

// lateDevices signs in a fresh device ("late") for k of the users, spread
// evenly, all at once, and waits until each has synced its user's mailbox.
// lat records each one's time from Dial to the last message; the report
// checks their streams.
func lateDevices(ctx context.Context, t *target, users []string, expected [][]verify.Key, senderUID func(int32) string, k int, lat *hist.Recorder) (verify.Report, error) {
	idx := make([]int, k)
	for j := range idx {
		idx[j] = j * len(users) / k
	}
	recvs := make([]*receiver, k)
	exp := make([][]verify.Key, k)
	starts := make([]time.Time, k)
	waits := make([]<-chan struct{}, k)
	clients, err := dialAll(ctx, k, k, nil, func(ctx context.Context, j int) (*client.Client, error) {
		starts[j] = time.Now()
		c, err := t.dial(ctx, "", users[idx[j]], "late", nil)
		if err != nil {
			return nil, err
		}
		recvs[j] = newReceiver(users[idx[j]], c, nil, senderUID)
		exp[j] = expected[idx[j]]
		waits[j] = recvs[j].expect(len(exp[j]))
		return c, nil
	})
	if err != nil {
		return verify.Report{}, err
	}
	defer closeAll(clients)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	done := waitAll(wctx, waits)
	cancel()
	for j, r := range recvs {
		if at := r.doneAt(); !at.IsZero() {
			lat.Record(at.Sub(starts[j]))
		}
	}
	report := verifyAll(ctx, recvs, exp, 10*time.Second, nil)
	if done < k {
		return report, fmt.Errorf("%d of %d fresh devices synced within 30s", done, k)
	}
	return report, nil
}

// failureCounter is a slog.Handler for the devices' clients: it counts
// their "reconnect failed" records by error, and drops everything else.
type failureCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func newFailureCounter() *failureCounter { return &failureCounter{counts: map[string]int{}} }

func (f *failureCounter) Enabled(context.Context, slog.Level) bool { return true }
func (f *failureCounter) WithAttrs([]slog.Attr) slog.Handler       { return f }
func (f *failureCounter) WithGroup(string) slog.Handler            { return f }

func (f *failureCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "reconnect failed" {
		return nil
	}
	reason := "unknown"
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			reason = a.Value.String()
			return false
		}
		return true
	})
	f.mu.Lock()
	f.counts[reason]++
	f.mu.Unlock()
	return nil
}

// summary lists the reasons, most frequent first: "12× dial: …; 3× …".
func (f *failureCounter) summary() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	reasons := make([]string, 0, len(f.counts))
	for r := range f.counts {
		reasons = append(reasons, r)
	}
	slices.SortFunc(reasons, func(a, b string) int { return cmp.Or(cmp.Compare(f.counts[b], f.counts[a]), strings.Compare(a, b)) })
	var b strings.Builder
	for i, r := range reasons {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%d× %s", f.counts[r], r)
	}
	return b.String()
}
