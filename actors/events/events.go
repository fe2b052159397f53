// Package events publishes what happens in Parley for the business server to
// subscribe to: one JSON object per event on core NATS, on
//
//	im.evt.message.<sender uid>   message.created (a user or group message was stored)
//	im.evt.group.<group id>       group.created, group.updated, group.dissolved,
//	                              group.members_added, group.members_removed,
//	                              group.member_role, group.member_muted
//	im.evt.friend.<uid>           friend.requested, friend.accepted, friend.declined,
//	                              friend.deleted, friend.blocked, friend.unblocked
//	im.evt.device.<uid>           device.online, device.offline
//
// `nats sub 'im.evt.>'` shows them all. Events are best effort (core NATS, at
// most once): the mailboxes are the record; an event stream for replay can be
// added by capturing im.evt.> in a JetStream stream (docs/OPERATIONS.md).
package events

import (
	"encoding/json"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/parleyim/parley/schemas/wirepb"
)

// Subject returns the subject of an event of kind about id.
func Subject(kind, id string) string { return "im.evt." + kind + "." + id }

// Publisher publishes events. The zero value and a nil *Publisher drop them.
type Publisher struct {
	NATS *nats.Conn
	Log  *slog.Logger
}

// Publish encodes ev as JSON and publishes it on Subject(kind, id).
func (p *Publisher) Publish(kind, id string, ev any) {
	if p == nil || p.NATS == nil {
		return
	}
	b, err := json.Marshal(ev)
	if err == nil {
		err = p.NATS.Publish(Subject(kind, id), b)
	}
	if err != nil && p.Log != nil {
		p.Log.Warn("publish event failed", "kind", kind, "id", id, "err", err)
	}
}

// Message is the payload of message.created.
type Message struct {
	Type        string       `json:"type"` // "message.created"
	MsgID       string       `json:"msg_id"`
	From        string       `json:"from_user"`
	FromDevice  string       `json:"from_device,omitempty"`
	To          Conversation `json:"to"`
	ContentType string       `json:"content_type"`
	Body        []byte       `json:"body"` // base64 in JSON
	CreatedAtMs int64        `json:"created_at_ms"`
	SenderSeq   uint64       `json:"sender_seq,omitempty"`
	ClientMsgID string       `json:"client_msg_id,omitempty"`
	Recipients  int          `json:"recipients"` // mailboxes it was handed to (group members but the sender)
}

// Conversation names a user, group or room in events and the API.
type Conversation struct {
	Type string `json:"type"` // "user", "group", "room"
	ID   string `json:"id"`
}

// Group is the payload of group.* events.
type Group struct {
	Type    string   `json:"type"`
	GroupID string   `json:"group_id"`
	By      string   `json:"by,omitempty"` // acting user; empty for the server API
	Users   []string `json:"users,omitempty"`
	// UsersCount, in a group notice in the members' mailboxes, is how
	// many users the change named when Users was cut short (a notice names
	// at most social.MaxNoticeUsers; the event names them all).
	UsersCount int    `json:"users_count,omitempty"`
	Role       string `json:"role,omitempty"`
	Until      int64  `json:"muted_until_ms,omitempty"`
	AtMs       int64  `json:"at_ms"`
}

// Friend is the payload of friend.* events.
type Friend struct {
	Type string `json:"type"`
	User string `json:"user_id"`
	Peer string `json:"peer"`
	AtMs int64  `json:"at_ms"`
}

// Device is the payload of device.online and device.offline.
type Device struct {
	Type     string `json:"type"`
	User     string `json:"user_id"`
	Device   string `json:"device_id"`
	Edge     string `json:"edge_id"`
	Platform string `json:"platform,omitempty"`
	AtMs     int64  `json:"at_ms"`
}

// Conv converts a wire conversation.
func Conv(c *wirepb.Conversation) Conversation {
	return Conversation{Type: ConvType(c.GetType()), ID: c.GetId()}
}

// ConvType names a conversation type: "user", "group", "room" ("" if unset).
func ConvType(t wirepb.ConversationType) string {
	switch t {
	case wirepb.ConversationType_CONVERSATION_TYPE_USER:
		return "user"
	case wirepb.ConversationType_CONVERSATION_TYPE_GROUP:
		return "group"
	case wirepb.ConversationType_CONVERSATION_TYPE_ROOM:
		return "room"
	}
	return ""
}

// ContentType names a content type in lower case: "text", "image", "file",
// "custom", "command", "system" ("" if unset).
func ContentType(t wirepb.ContentType) string {
	if t == wirepb.ContentType_CONTENT_TYPE_UNSPECIFIED {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(t.String(), "CONTENT_TYPE_"))
}
