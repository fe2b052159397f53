package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/parleyim/parley/client"
)

// SyncConfig configures the sync scenario: Senders users send Messages
// messages to one user, whose mailbox then has 1..Messages; then a fresh
// device of that user signs in and catches up on all of them.
type SyncConfig struct {
	Common `json:"-"`
	// Messages is the number of messages to pre-load; zero means 200000.
	Messages int `json:"messages"`
	// Senders is the number of users sending them in parallel; zero means 16.
	Senders int `json:"senders"`
	// Inflight is the number of concurrent sends per sender; zero means 4.
	Inflight int `json:"inflight"`
	// Size is the body size in bytes; zero means 64, the minimum.
	Size int `json:"size"`
	// Common.Duration bounds the pre-load and, separately, the catch-up;
	// zero means 2 minutes. A pre-load cut short by it fails the run; the
	// catch-up still runs on what was sent.
}

func (c *SyncConfig) defaults() {
	if c.Messages <= 0 {
		c.Messages = 200000
	}
	if c.Senders <= 0 {
		c.Senders = 16
	}
	if c.Inflight <= 0 {
		c.Inflight = 4
	}
	c.Size = max(c.Size, minBodySize)
	if c.Duration <= 0 {
		c.Duration = 2 * time.Minute
	}
}

// Sync runs the sync scenario.
func Sync(ctx context.Context, cfg SyncConfig) (*Result, error) {
	cfg.defaults()
	start := time.Now()
	var clampMsg string
	cfg.Senders, clampMsg = clampByFiles("senders", cfg.Senders, 2, reserveFilesInProcess)
	if clampMsg != "" && cfg.Progress != nil {
		fmt.Fprintln(cfg.Progress, "sync:", clampMsg)
	}
	t, err := openTarget(ctx, cfg.Common)
	if err != nil {
		return nil, err
	}
	defer t.close()
	res := newResult("sync", t, configOf(cfg.Common, cfg))
	if clampMsg != "" {
		res.note("%s", clampMsg)
	}
	target := t.user("t", 0)
	senderUID := func(i int32) string { return t.user("s", int(i)) }

	senders, err := dialAll(ctx, cfg.Senders, 32, nil, func(ctx context.Context, i int) (*client.Client, error) {
		return t.dial(ctx, "", senderUID(int32(i)), "d", func(c *client.Config) { c.SendOnly = true })
	})
	if err != nil {
		return nil, fmt.Errorf("connect senders: %w", err)
	}
	defer closeAll(senders)

	// 1. Pre-load the mailbox.
	run := newSendRun(sendPlan{
		senders: senders, recipients: []string{target}, to: func(int, int64) int { return 0 },
		inflight: cfg.Inflight, window: cfg.Duration, count: int64(cfg.Messages), size: cfg.Size,
	})
	sendRate := startRate()
	stop := progress(cfg.Progress, "sync", func() string { return "pre-load: " + run.line(&sendRate) })
	err = run.run(ctx)
	stop()
	if err != nil {
		return nil, err
	}
	preloadSecs := run.sendSeconds()
	acked := int(run.acked.Load())

	// 2. Wait until the recipient's mailbox has committed every delivery:
	// until then a syncing device would get part of it by push.
	settleStart := time.Now()
	var mailboxMax uint64
	stop = progress(cfg.Progress, "sync", func() string {
		return fmt.Sprintf("waiting for deliveries to commit: mailbox max %d of %d", mailboxMax, acked)
	})
	settleErr := func() error {
		deadline := time.Now().Add(cfg.Duration)
		tok, err := t.token(target)
		if err != nil {
			return err
		}
		for {
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			c, ok, err := dialRaw(dctx, t.addr, t.ws, tok, "probe")
			cancel()
			if err != nil {
				return fmt.Errorf("probe mailbox: %w", err)
			}
			c.close()
			mailboxMax = ok.GetMaxSeq()
			if mailboxMax >= uint64(acked) {
				return nil
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("mailbox max %d of %d after %v", mailboxMax, acked, cfg.Duration)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	stop()
	settle := time.Since(settleStart)

	// 3. A fresh device catches up.
	var recv *receiver
	var syncSecs, firstMs, dialMs float64
	if settleErr == nil {
		t0 := time.Now()
		c, err := t.dial(ctx, "", target, "fresh", nil)
		if err != nil {
			return nil, fmt.Errorf("connect the syncing device: %w", err)
		}
		dialMs = time.Since(t0).Seconds() * 1000
		defer c.Close()
		recv = newReceiver(target, c, nil, senderUID)
		all := recv.expect(acked)
		stop = progress(cfg.Progress, "sync", func() string {
			return fmt.Sprintf("catching up: %d of %d", recv.count.Load(), acked)
		})
		wctx, cancel := context.WithTimeout(ctx, cfg.Duration)
		select {
		case <-all:
		case <-wctx.Done():
		}
		cancel()
		stop()
		if at := recv.doneAt(); !at.IsZero() {
			syncSecs = at.Sub(t0).Seconds()
		}
		if ft := recv.firstAt(); !ft.IsZero() {
			firstMs = ft.Sub(t0).Seconds() * 1000
		}
	}

	res.metric("senders", float64(cfg.Senders), "")
	res.metric("pre-loaded (acked)", float64(acked), "msgs")
	res.metric("pre-load rate", perSec(int64(acked), preloadSecs), "msgs/s")
	res.metric("deliveries committed after last ack", settle.Seconds()*1000, "ms")
	res.latency("pre-load send→ack", run.ackLat)
	res.check("pre-load sends", run.failed.Load() == 0 && acked == cfg.Messages, "%d of %d acked, %d failed%s",
		acked, cfg.Messages, run.failed.Load(), firstOf(run.sendErrors()))
	bad, detail := run.checkSenderSeqs()
	res.check("sender mailboxes", bad == 0, "%d of %d senders' acked seqs are exactly 1..k%s", cfg.Senders-bad, cfg.Senders, prefixed(detail))
	res.check("mailbox settled", settleErr == nil, "recipient mailbox max %d of %d acked%s", mailboxMax, acked, errSuffix(settleErr))
	if recv == nil {
		return res.finish(start), nil
	}
	got := int(recv.count.Load())
	res.metric("caught up", float64(got), "msgs")
	res.metric("sign-in of the fresh device", dialMs, "ms")
	res.metric("time to first message", firstMs, "ms")
	res.metric("time to all messages", syncSecs, "s")
	res.metric("catch-up rate", perSec(int64(got), syncSecs), "msgs/s")
	report := verifyAll(ctx, []*receiver{recv}, run.expected(), 30*time.Second, nil)
	res.check("caught up in time", syncSecs > 0, "%d of %d within %v", got, acked, cfg.Duration)
	res.check("exactly 1..K, once, in order", report.OK(), "%s", report)
	return res.finish(start), nil
}

func prefixed(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}
