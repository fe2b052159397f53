package scenario

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/parleyim/parley/bench/hist"
	"github.com/parleyim/parley/client"
)

// P2PConfig configures the p2p scenario: Users senders, each sending to its
// own receiver user, whose device is online through the SDK.
type P2PConfig struct {
	Common `json:"-"`
	// Users is the number of sender→receiver pairs; zero means 64.
	Users int `json:"users"`
	// Rate is the target total send rate in messages per second (open
	// loop); zero means flat out, each sender running Inflight concurrent
	// sends.
	Rate float64 `json:"rate"`
	// Inflight is the number of concurrent sends per sender (goroutines, as
	// the SDK's Send blocks until the SendAck); zero means 4.
	Inflight int `json:"inflight"`
	// Size is the message body size in bytes; zero means 64, the minimum.
	Size int `json:"size"`
	// ServerHTTP is the HTTP address (host:port, loopback) of the external
	// server in Common.Addr: the result then breaks the server's time down by
	// stage from its /metrics, as it always does for an in-process server.
	ServerHTTP string `json:"server_http,omitempty"`
	// Common.Duration is how long to send; zero means 30s.
	//
	// Drain bounds the wait for deliveries after the last send, and how long
	// lanes may work off a backlog of scheduled sends (rate mode); zero
	// means 15s.
	Drain time.Duration `json:"-"`
}

func (c *P2PConfig) defaults() {
	if c.Users <= 0 {
		c.Users = 64
	}
	if c.Inflight <= 0 {
		c.Inflight = 4
	}
	c.Size = max(c.Size, minBodySize)
	if c.Duration <= 0 {
		c.Duration = 30 * time.Second
	}
	if c.Drain <= 0 {
		c.Drain = 15 * time.Second
	}
}

// P2P runs the p2p scenario. It returns an error only when the run could not
// be set up; a failed verification is a Result with Pass false.
func P2P(ctx context.Context, cfg P2PConfig) (*Result, error) {
	cfg.defaults()
	start := time.Now()
	var clampMsg string
	if cfg.Addr == "" {
		// two clients per pair, and the server's side of both
		cfg.Users, clampMsg = clampByFiles("sender→receiver pairs", cfg.Users, 4, reserveFilesInProcess)
	} else {
		cfg.Users, clampMsg = clampByFiles("sender→receiver pairs", cfg.Users, 2, reserveFiles)
	}
	if clampMsg != "" && cfg.Progress != nil {
		fmt.Fprintln(cfg.Progress, "p2p:", clampMsg)
	}
	t, err := openTarget(ctx, cfg.Common)
	if err != nil {
		return nil, err
	}
	defer t.close()
	external := !t.inProcess()
	if external && cfg.ServerHTTP != "" {
		if err := t.useServerHTTP(cfg.ServerHTTP); err != nil {
			return nil, err
		}
	}
	res := newResult("p2p", t, configOf(cfg.Common, cfg))
	if clampMsg != "" {
		res.note("%s", clampMsg)
	}
	if external && cfg.ServerHTTP == "" {
		res.note("add --server-http host:port (the server's HTTP address) for its stage breakdown and CPU per message")
	}
	n := cfg.Users
	senderUID := func(i int32) string { return t.user("s", int(i)) }

	connLat := hist.New()
	recvClients, err := dialAll(ctx, n, 32, connLat, func(ctx context.Context, i int) (*client.Client, error) {
		return t.dial(ctx, "", t.user("r", i), "d", nil)
	})
	if err != nil {
		return nil, fmt.Errorf("connect receivers: %w", err)
	}
	defer closeAll(recvClients)
	senders, err := dialAll(ctx, n, 32, connLat, func(ctx context.Context, i int) (*client.Client, error) {
		return t.dial(ctx, "", senderUID(int32(i)), "d", func(c *client.Config) { c.SendOnly = true })
	})
	if err != nil {
		return nil, fmt.Errorf("connect senders: %w", err)
	}
	defer closeAll(senders)

	deliverLat := hist.New()
	recvs := make([]*receiver, n)
	recipients := make([]string, n)
	for i, c := range recvClients {
		recipients[i] = t.user("r", i)
		recvs[i] = newReceiver(recipients[i], c, deliverLat, func(s int32) string {
			if int(s) != i { // receiver i hears only from sender i
				return ""
			}
			return senderUID(s)
		})
	}
	run := newSendRun(sendPlan{
		senders: senders, recipients: recipients,
		to:   func(s int, _ int64) int { return s },
		rate: cfg.Rate, inflight: cfg.Inflight, window: cfg.Duration, size: cfg.Size, drain: cfg.Drain,
	})
	delivered := func() int64 {
		var d int64
		for _, r := range recvs {
			d += r.count.Load()
		}
		return d
	}
	sendRate, recvRate := startRate(), startRate()
	stop := progress(cfg.Progress, "p2p", func() string {
		d := delivered()
		return fmt.Sprintf("%s delivered %d (%.0f/s)", run.line(&sendRate), d, recvRate.per(d))
	})
	stagesBefore := t.scrapeStages(ctx)
	err = run.run(ctx)
	sentAt := time.Now()

	// Wait for the deliveries of every acknowledged send.
	expected := run.expected()
	waits := make([]<-chan struct{}, n)
	for i, r := range recvs {
		waits[i] = r.expect(len(expected[i]))
	}
	wctx, cancel := context.WithTimeout(ctx, cfg.Drain)
	caughtUp := waitAll(wctx, waits)
	cancel()
	lag := time.Since(sentAt)
	stop()
	if err != nil {
		return nil, err
	}
	stagesAfter := t.scrapeStages(ctx) // before the verification's reads
	report := verifyAll(ctx, recvs, expected, cfg.Drain, nil)

	acked := run.acked.Load()
	sendSecs := run.sendSeconds()
	res.metric("senders → receivers", float64(n), "pairs")
	if cfg.Rate > 0 {
		res.metric("target rate", cfg.Rate, "msgs/s")
	} else {
		res.metric("target rate", "flat out", "")
	}
	res.metric("in flight per sender", float64(cfg.Inflight), "")
	res.metric("body size", float64(cfg.Size), "B")
	res.metric("scheduled", float64(run.scheduled.Load()), "msgs")
	res.metric("acked", float64(acked), "msgs")
	res.metric("send errors", float64(run.failed.Load()), "")
	if cfg.Rate > 0 {
		res.metric("unsent (behind schedule at the end)", float64(run.unsent.Load()), "msgs")
	}
	res.metric("throughput (acked)", perSec(acked, sendSecs), "msgs/s")
	res.metric("delivered", float64(report.Received), "msgs")
	var lastDelivery int64
	for _, r := range recvs {
		lastDelivery = max(lastDelivery, r.last.Load())
	}
	res.metric("throughput (delivered)", perSec(int64(report.Received), time.Unix(0, lastDelivery).Sub(run.start).Seconds()), "msgs/s")
	res.metric("delivery tail after last send", lag.Seconds()*1000, "ms")
	res.latency("connect", connLat)
	res.latency("send→ack", run.ackLat)
	res.latency("send→delivered", deliverLat)
	res.stageMetrics(stagesBefore, stagesAfter, int64(report.Received), t.inProcess())

	errs := run.sendErrors()
	res.check("sends", run.failed.Load() == 0, "%d acked, %d failed%s", acked, run.failed.Load(), firstOf(errs))
	res.check("receivers caught up", caughtUp == n, "%d of %d receivers got all their acknowledged messages within %v", caughtUp, n, cfg.Drain)
	res.check("exactly once, in order", report.OK(), "%s", report)
	bad, detail := run.checkSenderSeqs()
	res.check("sender mailboxes", bad == 0, "%d of %d senders' acked seqs are exactly 1..k%s", n-bad, n, prefixed(detail))
	if cfg.Rate > 0 && run.unsent.Load() > 0 {
		res.note("the server did not keep up with %.0f msgs/s: %d scheduled sends were still queued %v after the window; they were not sent, and send→ack counts each at the lower bound of its latency", cfg.Rate, run.unsent.Load(), cfg.Drain)
	}
	if cfg.Rate > 0 && float64(acked) < 0.95*cfg.Rate*cfg.Duration.Seconds() {
		res.note("acked %d of the %.0f a %.0f msgs/s rate asks for in %v", acked, cfg.Rate*cfg.Duration.Seconds(), cfg.Rate, cfg.Duration)
	}
	return res.finish(start), nil
}

func perSec(n int64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(n) / secs
}

func firstOf(errs []string) string {
	if len(errs) == 0 {
		return ""
	}
	return "; first: " + strings.Join(errs, "; ")
}
