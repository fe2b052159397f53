package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/parleyim/parley/schemas/wirepb"
)

// jsonMessage is the --json line for a mailbox entry. Field names are
// stable; they are listed in the usage text.
type jsonMessage struct {
	Type        string `json:"type"` // always "message"
	Seq         uint64 `json:"seq"`
	MsgID       string `json:"msg_id"`
	From        string `json:"from"`
	FromDevice  string `json:"from_device"`
	ToType      string `json:"to_type"` // user, group, room
	To          string `json:"to"`
	ClientMsgID string `json:"client_msg_id"`
	ContentType string `json:"content_type"`   // text, image, file, custom, command, system
	Text        string `json:"text,omitempty"` // the body of a UTF-8 text message
	Body        []byte `json:"body,omitempty"` // any other body, base64
	CreatedAtMs int64  `json:"created_at_ms"`
}

// jsonAck is the --json line for a SendAck.
type jsonAck struct {
	Type        string `json:"type"` // always "ack"
	Seq         uint64 `json:"seq"`
	MsgID       string `json:"msg_id"`
	ClientMsgID string `json:"client_msg_id"`
	CreatedAtMs int64  `json:"created_at_ms"`
	Duplicate   bool   `json:"duplicate"`
}

func toJSONMessage(m *wirepb.Message) jsonMessage {
	j := jsonMessage{
		Type:        "message",
		Seq:         m.GetSeq(),
		MsgID:       m.GetMsgId(),
		From:        m.GetFromUser(),
		FromDevice:  m.GetFromDevice(),
		ToType:      enumName(m.GetTo().GetType().String(), "CONVERSATION_TYPE_"),
		To:          m.GetTo().GetId(),
		ClientMsgID: m.GetClientMsgId(),
		ContentType: enumName(m.GetContentType().String(), "CONTENT_TYPE_"),
		CreatedAtMs: m.GetCreatedAtMs(),
	}
	if isText(m) {
		j.Text = string(m.GetBody())
	} else {
		j.Body = m.GetBody()
	}
	return j
}

func toJSONAck(a *wirepb.SendAck) jsonAck {
	return jsonAck{
		Type:        "ack",
		Seq:         a.GetSeq(),
		MsgID:       a.GetMsgId(),
		ClientMsgID: a.GetClientMsgId(),
		CreatedAtMs: a.GetCreatedAtMs(),
		Duplicate:   a.GetDuplicate(),
	}
}

// enumName turns CONTENT_TYPE_TEXT into "text".
func enumName(s, prefix string) string { return strings.ToLower(strings.TrimPrefix(s, prefix)) }

func isText(m *wirepb.Message) bool {
	return m.GetContentType() == wirepb.ContentType_CONTENT_TYPE_TEXT && utf8.Valid(m.GetBody())
}

// formatMessage is the human line for a mailbox entry: "[seq 12] bob: hi".
// self is the signed-in user: entries it sent show their recipient
// ("[seq 13] alice -> bob: hello"). Group and room entries name the
// conversation. Control characters are escaped so a message cannot drive
// the terminal.
func formatMessage(m *wirepb.Message, self string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[seq %d] %s", m.GetSeq(), clean(m.GetFromUser()))
	to := m.GetTo()
	switch to.GetType() {
	case wirepb.ConversationType_CONVERSATION_TYPE_USER:
		if m.GetFromUser() == self && to.GetId() != self {
			b.WriteString(" -> " + clean(to.GetId()))
		}
	default:
		fmt.Fprintf(&b, " in %s %s", enumName(to.GetType().String(), "CONVERSATION_TYPE_"), clean(to.GetId()))
	}
	b.WriteString(": ")
	if isText(m) {
		b.WriteString(clean(string(m.GetBody())))
	} else {
		fmt.Fprintf(&b, "<%s, %d bytes>", enumName(m.GetContentType().String(), "CONTENT_TYPE_"), len(m.GetBody()))
	}
	return b.String()
}

// formatAck is the human line for a SendAck.
func formatAck(a *wirepb.SendAck) string {
	s := fmt.Sprintf("sent: seq %d, msg_id %s, client_msg_id %s", a.GetSeq(), clean(a.GetMsgId()), clean(a.GetClientMsgId()))
	if a.GetDuplicate() {
		s += " (duplicate: already stored)"
	}
	return s
}

// clean escapes control characters and invalid UTF-8.
func clean(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// printer writes messages and acks as lines, human or JSON, from any
// goroutine.
type printer struct {
	mu   sync.Mutex // guards w
	w    io.Writer
	json bool
	self string
}

func (p *printer) message(m *wirepb.Message) error {
	if p.json {
		return p.line(toJSONMessage(m))
	}
	return p.line(formatMessage(m, p.self))
}

func (p *printer) ack(a *wirepb.SendAck) error {
	if p.json {
		return p.line(toJSONAck(a))
	}
	return p.line(formatAck(a))
}

func (p *printer) line(v any) error {
	var b []byte
	if s, ok := v.(string); ok {
		b = []byte(s)
	} else {
		var err error
		if b, err = json.Marshal(v); err != nil {
			return fmt.Errorf("encode output: %w", err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
