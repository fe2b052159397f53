package main

import (
	"context"
	"fmt"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/schemas/wirepb"
)

// leaveTimeout bounds the LeaveRoom sent on the way out.
const leaveTimeout = 2 * time.Second

// runRoom joins a room, prints its latest messages and then every live one
// (this user's included), and sends each stdin line to the room. At the end
// of stdin or on an interrupt it leaves the room and exits.
func runRoom(ctx context.Context, args []string, e env) error {
	o, err := parseRoom(args, e)
	if err != nil {
		return err
	}
	lost := make(chan error, 1)
	c, err := dial(ctx, o.conn, func(cfg *client.Config) {
		cfg.SendOnly = true // no mailbox: rooms are not in it
		cfg.OnRoomLost = func(_ string, err error) {
			select {
			case lost <- err:
			default:
			}
		}
	})
	if err != nil {
		return err
	}
	defer c.Close()
	replay, err := c.JoinRoom(ctx, o.room, o.replay)
	if err != nil {
		return fmt.Errorf("join room %s: %w", o.room, err)
	}
	defer func() {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaveTimeout)
		defer cancel()
		if err := c.LeaveRoom(lctx, o.room); err != nil {
			fmt.Fprintf(e.stderr, "parley: leave room %s: %v\n", o.room, err)
		}
	}()
	p := &printer{w: e.stdout, json: o.conn.json, self: c.UserID()}
	if !o.conn.json {
		fmt.Fprintf(e.stderr, "signed in as %s (device %s) on %s; in room %s (%d earlier messages). Type a line and press Enter; Ctrl-D leaves.\n",
			c.UserID(), o.conn.device, o.conn.addr, o.room, len(replay))
	}
	for _, m := range replay {
		if err := p.message(m); err != nil {
			return err
		}
	}

	sent := sendLines(ctx, e, p, o.conn.json, func(text string) (*wirepb.SendAck, error) {
		return c.SendRoomText(ctx, o.room, text)
	})

	msgs := c.RoomMessages()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-sent:
			if err != nil {
				return err
			}
			// Print what already arrived, such as the last lines sent.
			for {
				select {
				case m, ok := <-msgs:
					if !ok {
						return nil
					}
					if err := p.message(m); err != nil {
						return err
					}
				default:
					return nil
				}
			}
		case err := <-lost:
			return fmt.Errorf("room %s lost after a reconnect: %w", o.room, err)
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
