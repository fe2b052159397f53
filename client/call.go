package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/parleyim/parley/schemas/wirepb"
)

// Call runs one operation of the Parley API as the signed-in user over the
// connection (friends, blocks, groups; docs/API.md lists the methods). params
// is marshaled with encoding/json into the request (nil sends no
// parameters); the JSON result is unmarshaled into result unless result is
// nil. A refusal by the server is a *Error (NOT_FOUND, PERMISSION_DENIED,
// ALREADY_EXISTS, BLOCKED, INVALID_ARGUMENT, …).
//
// Call waits for a connection if the client is reconnecting, then sends the
// request once. It never retries: operations change state and carry no
// idempotency key. If the connection drops or no reply comes within
// Config.RequestTimeout, the error wraps ErrDisconnected or ErrTimeout and
// the operation may or may not have run; the caller decides whether to
// check and call again.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	if method == "" {
		return errors.New("client: call: no method")
	}
	var pj string
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			return fmt.Errorf("client: call %s: encode params: %w", method, err)
		}
		pj = string(b)
	}
	f := &wirepb.Frame{Body: &wirepb.Frame_Call{Call: &wirepb.Call{Method: method, ParamsJson: pj}}}
	r, err := c.roundTrip(ctx, f, nil)
	if err != nil {
		return fmt.Errorf("client: call %s: %w", method, err)
	}
	cr := r.GetCallResult()
	if cr == nil {
		return fmt.Errorf("client: call %s: %w: answered with %T", method, ErrProtocol, r.GetBody())
	}
	if result == nil || cr.GetResultJson() == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(cr.GetResultJson()), result); err != nil {
		return fmt.Errorf("client: call %s: decode result: %w", method, err)
	}
	return nil
}
