package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/schemas/wirepb"
)

// SendOption varies one Send.
type SendOption func(*sendOptions)

type sendOptions struct {
	clientMsgID string
}

// WithClientMsgID sets the Send's idempotency key (1–64 bytes) instead of a
// random one. An app that persists outgoing messages passes the same id
// after a restart, and the server answers a resend with the original
// SendAck (Duplicate set) and stores nothing new.
func WithClientMsgID(id string) SendOption {
	return func(o *sendOptions) { o.clientMsgID = id }
}

// NewClientMsgID returns a random idempotency key: 26 characters, 130 bits.
func NewClientMsgID() string { return rand.Text() }

// Send sends a message and returns the server's SendAck once the message is
// durable in this user's mailbox and on its way to its recipients.
//
// Send retries after a timeout, a disconnect (once the client has
// reconnected) and a temporary server error, always with the same client
// msg id, until ctx ends; the server dedupes the resends. A non-temporary
// server error is returned at once as a *Error. When ctx ends first the
// message may or may not have been stored: send it again with
// WithClientMsgID and the same id to find out without a duplicate.
//
// The target is a user, a group (the message is an entry of every
// member's mailbox) or a room this client joined. A user or group message
// is also an entry of this user's mailbox: it comes out of Messages at its
// seq (ack.Seq) like any other. A room message is in no mailbox: its
// SendAck has seq 0, it never comes out of Messages and leaves MaxSeq
// alone; it comes out of RoomMessages instead.
func (c *Client) Send(ctx context.Context, to *wirepb.Conversation, contentType wirepb.ContentType, body []byte, opts ...SendOption) (*wirepb.SendAck, error) {
	var o sendOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.clientMsgID == "" {
		o.clientMsgID = NewClientMsgID()
	} else if len(o.clientMsgID) > 64 {
		return nil, fmt.Errorf("client: send: client msg id is %d bytes, want at most 64", len(o.clientMsgID))
	}
	if to == nil || to.GetId() == "" {
		return nil, errors.New("client: send: no recipient")
	}
	s := &wirepb.Send{
		To:          proto.CloneOf(to),
		ClientMsgId: o.clientMsgID,
		ContentType: contentType,
		Body:        bytes.Clone(body),
	}
	var ack *wirepb.SendAck
	err := c.retry(ctx, func() error {
		r, err := c.roundTrip(ctx, &wirepb.Frame{Body: &wirepb.Frame_Send{Send: s}}, s)
		if err != nil {
			return err
		}
		if ack = r.GetSendAck(); ack == nil {
			return fmt.Errorf("%w: send answered with %T", ErrProtocol, r.GetBody())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("client: send client_msg_id=%s: %w", o.clientMsgID, err)
	}
	return ack, nil
}

// SendGroupText sends a text message to a group: an entry of this user's
// mailbox at ack.Seq (its To is the group) and of every member's. See Send.
func (c *Client) SendGroupText(ctx context.Context, groupID, text string, opts ...SendOption) (*wirepb.SendAck, error) {
	to := &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_GROUP, Id: groupID}
	return c.Send(ctx, to, wirepb.ContentType_CONTENT_TYPE_TEXT, []byte(text), opts...)
}

// SendText sends a text message to a user. See Send.
func (c *Client) SendText(ctx context.Context, toUser, text string, opts ...SendOption) (*wirepb.SendAck, error) {
	to := &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_USER, Id: toUser}
	return c.Send(ctx, to, wirepb.ContentType_CONTENT_TYPE_TEXT, []byte(text), opts...)
}
