package api

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/actors/events"
	"github.com/parleyim/parley/actors/room"
	"github.com/parleyim/parley/actors/shard"
	"github.com/parleyim/parley/schemas/buspb"
	"github.com/parleyim/parley/schemas/wirepb"
)

// MaxUsers caps the users of one push, presence or disconnect request.
const MaxUsers = 1000

// content is the message part of the push methods.
type content struct {
	// From is the sender shown to recipients; empty means "system".
	From string `json:"from"`
	// ContentType is text (default), image, file, custom, command or system.
	ContentType string `json:"content_type"`
	// Text is the body as text; or BodyBase64 for bytes (JSON base64).
	Text       string `json:"text"`
	BodyBase64 []byte `json:"body_base64"`
}

var contentTypes = map[string]wirepb.ContentType{
	"":        wirepb.ContentType_CONTENT_TYPE_TEXT,
	"text":    wirepb.ContentType_CONTENT_TYPE_TEXT,
	"image":   wirepb.ContentType_CONTENT_TYPE_IMAGE,
	"file":    wirepb.ContentType_CONTENT_TYPE_FILE,
	"custom":  wirepb.ContentType_CONTENT_TYPE_CUSTOM,
	"command": wirepb.ContentType_CONTENT_TYPE_COMMAND,
	"system":  wirepb.ContentType_CONTENT_TYPE_SYSTEM,
}

// message builds the message of a push to conversation to.
func (s *Service) message(c *content, to *wirepb.Conversation) (*wirepb.Message, error) {
	if c.From == "" {
		c.From = "system"
	}
	if !wirepb.ValidID(c.From) {
		return nil, invalid("from must be a valid user id (1-64 of [A-Za-z0-9_-])")
	}
	ct, ok := contentTypes[c.ContentType]
	if !ok {
		return nil, invalid("content_type must be text, image, file, custom, command or system")
	}
	body := c.BodyBase64
	switch {
	case c.Text != "" && len(body) > 0:
		return nil, invalid("set text or body_base64, not both")
	case c.Text != "":
		body = []byte(c.Text)
	case len(body) == 0:
		return nil, invalid("text or body_base64 is required")
	}
	if len(body) > s.cfg.MaxBodySize {
		return nil, errorf(wirepb.ErrorCode_ERROR_CODE_BODY_TOO_LARGE, "body is %d bytes; the limit is %d", len(body), s.cfg.MaxBodySize)
	}
	id, ms := s.ids.Next(time.Now())
	return &wirepb.Message{MsgId: id, To: to, FromUser: c.From, ContentType: ct, Body: body, CreatedAtMs: ms}, nil
}

func checkUserList(uids []string) error {
	if len(uids) == 0 || len(uids) > MaxUsers {
		return invalid("users must name 1-%d users", MaxUsers)
	}
	for _, u := range uids {
		if !wirepb.ValidID(u) {
			return invalid("users: %q is not a valid user id", u)
		}
	}
	return nil
}

type sent struct {
	MsgID       string `json:"msg_id"`
	CreatedAtMs int64  `json:"created_at_ms"`
	// Online counts the devices a transient push or broadcast reached.
	Online *int `json:"online_devices,omitempty"`
}

func (s *Service) created(msg *wirepb.Message, recipients int) {
	(&events.Publisher{NATS: s.cfg.NATS, Log: s.log}).Publish("message", msg.FromUser, events.Message{
		Type: "message.created", MsgID: msg.MsgId, From: msg.FromUser, To: events.Conv(msg.To),
		ContentType: events.ContentType(msg.ContentType), Body: msg.Body, CreatedAtMs: msg.CreatedAtMs, Recipients: recipients,
	})
}

type pushParams struct {
	Users []string `json:"users"`
	// Transient pushes to online devices only (seq 0, not stored).
	Transient bool `json:"transient"`
	content
}

// messagePush stores a message from p.From in each user's mailbox (or, when
// transient, pushes it to their online devices only).
func messagePush(ctx context.Context, s *Service, _ caller, p *pushParams) (any, error) {
	if err := checkUserList(p.Users); err != nil {
		return nil, err
	}
	tmpl, err := s.message(&p.content, nil)
	if err != nil {
		return nil, err
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		first  error
		online int
	)
	for _, uid := range p.Users {
		msg := proto.CloneOf(tmpl)
		msg.To = &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_USER, Id: uid}
		wg.Go(func() {
			var n int
			var err error
			if p.Transient {
				n, err = s.cfg.Host.PushTransient(ctx, uid, msg)
			} else {
				err = s.cfg.Host.Fanout(ctx, []string{uid}, msg)
			}
			mu.Lock()
			defer mu.Unlock()
			online += n
			if err != nil && first == nil {
				first = err
			}
		})
	}
	wg.Wait()
	if first != nil {
		return nil, fmt.Errorf("push to users: %w", first)
	}
	out := sent{MsgID: tmpl.MsgId, CreatedAtMs: tmpl.CreatedAtMs}
	if p.Transient {
		out.Online = &online
	} else {
		s.created(tmpl, len(p.Users))
	}
	return out, nil
}

type pushGroupParams struct {
	GroupID string `json:"group_id"`
	content
}

// messagePushGroup stores a message in every member's mailbox; the sender
// need not be a member.
func messagePushGroup(ctx context.Context, s *Service, _ caller, p *pushGroupParams) (any, error) {
	members, err := s.dir.Members(ctx, "", p.GroupID)
	if err != nil {
		return nil, err
	}
	msg, err := s.message(&p.content, &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_GROUP, Id: p.GroupID})
	if err != nil {
		return nil, err
	}
	uids := make([]string, len(members))
	for i, m := range members {
		uids[i] = m.UserID
	}
	if err := s.cfg.Host.Fanout(ctx, uids, msg); err != nil {
		return nil, fmt.Errorf("push to group %s: %w", p.GroupID, err)
	}
	s.created(msg, len(uids))
	return sent{MsgID: msg.MsgId, CreatedAtMs: msg.CreatedAtMs}, nil
}

type pushRoomParams struct {
	RoomID string `json:"room_id"`
	content
}

// messagePushRoom publishes a message to a room's members and history.
func messagePushRoom(ctx context.Context, s *Service, _ caller, p *pushRoomParams) (any, error) {
	if !wirepb.ValidID(p.RoomID) {
		return nil, invalid("room_id must be 1-64 of [A-Za-z0-9_-]")
	}
	msg, err := s.message(&p.content, &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_ROOM, Id: p.RoomID})
	if err != nil {
		return nil, err
	}
	if _, _, err := room.Publish(ctx, s.js, msg, ""); err != nil {
		return nil, fmt.Errorf("push to room %s: %w", p.RoomID, err)
	}
	return sent{MsgID: msg.MsgId, CreatedAtMs: msg.CreatedAtMs}, nil
}

// messageBroadcast pushes a transient message to every online device of
// every edge.
func messageBroadcast(ctx context.Context, s *Service, _ caller, p *content) (any, error) {
	msg, err := s.message(p, &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_USER})
	if err != nil {
		return nil, err
	}
	frame, err := proto.Marshal(&wirepb.Frame{Body: &wirepb.Frame_Push{Push: &wirepb.Push{Message: msg}}})
	if err != nil {
		return nil, fmt.Errorf("encode broadcast: %w", err)
	}
	down, err := proto.Marshal(&buspb.Down{Frame: frame})
	if err != nil {
		return nil, fmt.Errorf("encode broadcast: %w", err)
	}
	if err := s.cfg.NATS.Publish(shard.BroadcastSubject, down); err != nil {
		return nil, fmt.Errorf("publish broadcast: %w", err)
	}
	return sent{MsgID: msg.MsgId, CreatedAtMs: msg.CreatedAtMs}, nil
}

type usersParams struct {
	Users []string `json:"users"`
}

// Presence is one user's entry in presence.get.
type Presence struct {
	UserID  string   `json:"user_id"`
	Online  bool     `json:"online"`
	Devices []Device `json:"devices"`
}

// Device is an online device.
type Device struct {
	DeviceID string `json:"device_id"`
	EdgeID   string `json:"edge_id"`
	Platform string `json:"platform,omitempty"`
}

func presenceGet(ctx context.Context, s *Service, _ caller, p *usersParams) (any, error) {
	if err := checkUserList(p.Users); err != nil {
		return nil, err
	}
	out := make([]Presence, len(p.Users))
	for i, uid := range p.Users {
		devs, err := s.cfg.Host.Presence(ctx, uid)
		if err != nil {
			return nil, fmt.Errorf("presence of %s: %w", uid, err)
		}
		out[i] = Presence{UserID: uid, Online: len(devs) > 0, Devices: make([]Device, len(devs))}
		for j, d := range devs {
			out[i].Devices[j] = Device{DeviceID: d.DeviceID, EdgeID: d.EdgeID, Platform: d.Platform}
		}
	}
	return struct {
		Users []Presence `json:"users"`
	}{out}, nil
}

type historyParams struct {
	User     string `json:"user"`
	AfterSeq uint64 `json:"after_seq"`
	Limit    int    `json:"limit"`
}

// historyFetch returns a page of a user's mailbox, messages in the protocol's
// JSON form (as the parley.json WebSocket mode shows them).
func historyFetch(ctx context.Context, s *Service, _ caller, p *historyParams) (any, error) {
	if !wirepb.ValidID(p.User) {
		return nil, invalid("user must be a valid user id (1-64 of [A-Za-z0-9_-])")
	}
	if p.Limit < 0 || p.Limit > 1000 {
		return nil, invalid("limit must be 0 (default 200) to 1000")
	}
	if p.Limit == 0 {
		p.Limit = 200
	}
	upTo, err := s.cfg.Store.MaxSeq(ctx, p.User)
	if err != nil {
		return nil, fmt.Errorf("read mailbox of %s: %w", p.User, err)
	}
	msgs, err := s.cfg.Store.Fetch(ctx, p.User, p.AfterSeq, upTo, p.Limit)
	if err != nil {
		return nil, fmt.Errorf("read mailbox of %s: %w", p.User, err)
	}
	out := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		if out[i], err = protojson.Marshal(m); err != nil {
			return nil, fmt.Errorf("encode message: %w", err)
		}
	}
	more := len(msgs) > 0 && msgs[len(msgs)-1].Seq < upTo
	return struct {
		Messages []json.RawMessage `json:"messages"`
		MaxSeq   uint64            `json:"max_seq"`
		HasMore  bool              `json:"has_more"`
	}{out, upTo, more}, nil
}

type disconnectParams struct {
	User   string `json:"user"`
	Device string `json:"device"`
	// Revoke closes with UNAUTHENTICATED, which makes the SDK stop
	// reconnecting until the app gets a new token.
	Revoke bool `json:"revoke"`
}

func deviceDisconnect(ctx context.Context, s *Service, _ caller, p *disconnectParams) (any, error) {
	if !wirepb.ValidID(p.User) {
		return nil, invalid("user must be a valid user id (1-64 of [A-Za-z0-9_-])")
	}
	if p.Device != "" && !wirepb.ValidID(p.Device) {
		return nil, invalid("device must be a valid device id, or empty for all of the user's devices")
	}
	code, why := wirepb.ErrorCode_ERROR_CODE_DISCONNECTED, "disconnected by the server"
	if p.Revoke {
		code, why = wirepb.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "this device's session was revoked; sign in again"
	}
	n, err := s.cfg.Host.Disconnect(ctx, p.User, p.Device, code, why)
	if err != nil {
		return nil, err
	}
	return struct {
		Disconnected int `json:"disconnected"`
	}{n}, nil
}
