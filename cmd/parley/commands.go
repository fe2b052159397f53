package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/edge/auth"
	"github.com/parleyim/parley/schemas/wirepb"
)

// maxLine is the longest stdin line chat and send accept, in bytes.
const maxLine = 64 << 10

func runToken(args []string, e env) error {
	o, err := parseToken(args, e)
	if err != nil {
		return err
	}
	tok, err := auth.Mint([]byte(o.secret), o.user, o.ttl)
	if err != nil {
		return fmt.Errorf("mint token for %q: %w", o.user, err)
	}
	_, err = fmt.Fprintln(e.stdout, tok)
	return err
}

// dial connects with the connection flags and the per-command settings.
func dial(ctx context.Context, o connOpts, mod func(*client.Config)) (*client.Client, error) {
	cfg, err := o.config()
	if err != nil {
		return nil, err
	}
	mod(&cfg)
	return client.Dial(ctx, cfg)
}

// withTimeout bounds ctx when d is positive.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// sendText sends text to the user or the group in to/group.
func sendText(ctx context.Context, c *client.Client, to, group, text string) (*wirepb.SendAck, error) {
	if group != "" {
		return c.SendGroupText(ctx, group, text)
	}
	return c.SendText(ctx, to, text)
}

// runChat prints the mailbox entries this device has not acknowledged yet,
// then every new one (each naming its conversation: a user, or "in group
// g1"), and sends each stdin line to --to or --group. It ends at the end of
// stdin or on an interrupt.
func runChat(ctx context.Context, args []string, e env) error {
	o, err := parseChat(args, e)
	if err != nil {
		return err
	}
	c, err := dial(ctx, o.conn, func(cfg *client.Config) { cfg.ResumeFromAck = true })
	if err != nil {
		return err
	}
	defer c.Close()
	p := &printer{w: e.stdout, json: o.conn.json, self: c.UserID()}
	if !o.conn.json {
		with := o.to
		if o.group != "" {
			with = "group " + o.group
		}
		fmt.Fprintf(e.stderr, "signed in as %s (device %s) on %s; chatting with %s. Type a line and press Enter; Ctrl-D quits.\n",
			c.UserID(), o.conn.device, o.conn.addr, with)
	}

	sent := sendLines(ctx, e, p, o.conn.json, func(text string) (*wirepb.SendAck, error) {
		return sendText(ctx, c, o.to, o.group, text)
	})

	msgs := c.Messages()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-sent:
			return err
		case m, ok := <-msgs:
			if !ok {
				return fmt.Errorf("connection ended: %w", c.Err())
			}
			if err := p.message(m); err != nil {
				return err
			}
		}
	}
}

// runSend sends --text, or every stdin line, to --to or --group and prints
// each ack.
func runSend(ctx context.Context, args []string, e env) error {
	o, err := parseSend(args, e)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx, o.timeout)
	defer cancel()
	c, err := dial(ctx, o.conn, func(cfg *client.Config) { cfg.SendOnly = true })
	if err != nil {
		return err
	}
	defer c.Close()
	p := &printer{w: e.stdout, json: o.conn.json}
	send := func(text string) error {
		ack, err := sendText(ctx, c, o.to, o.group, text)
		if err != nil {
			return err
		}
		return p.ack(ack)
	}
	if o.hasText {
		return send(o.text)
	}
	for line := range readLines(ctx, e) {
		if line.err != nil {
			return fmt.Errorf("read stdin: %w", line.err)
		}
		if line.text == "" {
			continue
		}
		if err := send(line.text); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// runSync prints every mailbox entry after --after up to the server's max
// at the time of the sync, then exits.
func runSync(ctx context.Context, args []string, e env) error {
	o, err := parseSync(args, e)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx, o.timeout)
	defer cancel()
	c, err := dial(ctx, o.conn, func(cfg *client.Config) { cfg.LastSeq = o.after })
	if err != nil {
		return err
	}
	defer c.Close()
	p := &printer{w: e.stdout, json: o.conn.json, self: c.UserID()}

	synced := make(chan error, 1)
	go func() { synced <- c.Sync(ctx) }()
	last := o.after
	target, done := uint64(0), false
	msgs := c.Messages()
	for !done || last < target {
		select {
		case err := <-synced:
			if err != nil {
				return err
			}
			target, done = c.MaxSeq(), true
			synced = nil
		case m, ok := <-msgs:
			if !ok {
				return fmt.Errorf("connection ended: %w", c.Err())
			}
			if err := p.message(m); err != nil {
				return err
			}
			last = m.GetSeq()
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("sync: timed out after %v at seq %d", o.timeout, last)
			}
			return ctx.Err()
		}
	}
	return nil
}

// line is one stdin line or the error that ended stdin.
type line struct {
	text string
	err  error
}

// readLines reads stdin on its own goroutine (a blocked read cannot be
// interrupted) and closes the channel at the end of stdin.
func readLines(ctx context.Context, e env) <-chan line {
	out := make(chan line)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(e.stdin)
		sc.Buffer(make([]byte, 4096), maxLine)
		for sc.Scan() {
			select {
			case out <- line{text: sc.Text()}:
			case <-ctx.Done():
				return
			}
		}
		if err := sc.Err(); err != nil {
			select {
			case out <- line{err: err}:
			case <-ctx.Done():
			}
		}
	}()
	return out
}

// sendLines sends each non-empty stdin line with send until stdin ends or
// ctx is done, printing acks in JSON mode and refusals on stderr. The
// channel gets nil at the end of input, or the error that stopped it.
func sendLines(ctx context.Context, e env, p *printer, json bool, send func(text string) (*wirepb.SendAck, error)) <-chan error {
	lines := readLines(ctx, e)
	sent := make(chan error, 1)
	go func() {
		for line := range lines {
			if line.err != nil {
				sent <- fmt.Errorf("read stdin: %w", line.err)
				return
			}
			if line.text == "" {
				continue
			}
			ack, err := send(line.text)
			switch {
			case ctx.Err() != nil:
				sent <- nil
				return
			case err != nil:
				fmt.Fprintf(e.stderr, "parley: not sent: %v\n", err)
			case json:
				if err := p.ack(ack); err != nil {
					sent <- err
					return
				}
			}
		}
		sent <- nil
	}()
	return sent
}
