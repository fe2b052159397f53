package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/schemas/wirepb"
)

func runGroup(ctx context.Context, args []string, e env) error {
	o, err := parseGroup(args, e)
	if err != nil {
		return err
	}
	return runCall(ctx, o, e)
}

func runFriend(ctx context.Context, args []string, e env) error {
	o, err := parseFriend(args, e)
	if err != nil {
		return err
	}
	return runCall(ctx, o, e)
}

// runCall signs in, makes the call in o once and prints its result: the
// raw JSON with --json, else readable lines.
func runCall(ctx context.Context, o callOpts, e env) error {
	ctx, cancel := withTimeout(ctx, o.timeout)
	defer cancel()
	c, err := dial(ctx, o.conn, func(cfg *client.Config) { cfg.SendOnly = true })
	if err != nil {
		return err
	}
	defer c.Close()
	var result json.RawMessage
	if err := c.Call(ctx, o.method, o.params, &result); err != nil {
		return callError(ctx, o, err)
	}
	p := &printer{w: e.stdout, json: o.conn.json}
	if o.conn.json {
		return p.raw(result)
	}
	lines, err := formatResult(o, result)
	if err != nil {
		return err
	}
	for _, l := range lines {
		if err := p.line(l); err != nil {
			return err
		}
	}
	return nil
}

// callError turns a failed call into the message the user sees.
func callError(ctx context.Context, o callOpts, err error) error {
	var e *client.Error
	switch {
	case errors.As(err, &e):
		return &serverError{cmd: o.cmd, method: o.method, e: e}
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%s: timed out after %v (the server may or may not have done it)", o.cmd, o.timeout)
	case errors.Is(err, client.ErrTimeout), errors.Is(err, client.ErrDisconnected):
		return fmt.Errorf("%s: %w (the server may or may not have done it)", o.cmd, err)
	}
	return fmt.Errorf("%s: %w", o.cmd, err)
}

// serverError is a call the server refused, worded for the terminal:
// "group add: permission_denied: not the owner".
type serverError struct {
	cmd    string
	method string
	e      *client.Error
}

func (s *serverError) Error() string {
	msg := s.cmd + ": " + strings.TrimPrefix(s.e.Error(), "parley: ")
	if s.e.Code == wirepb.ErrorCode_ERROR_CODE_UNKNOWN_FRAME {
		msg += " (this server does not take API calls over the connection; it is older than this CLI)"
	}
	return msg
}

func (s *serverError) Unwrap() error { return s.e }
