package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
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
// conversation ("[seq 14] bob in group g1: hi"). A message without a seq
// (a room message, a transient push) has no "[seq N]" prefix. Control
// characters are escaped so a message cannot drive the terminal.
func formatMessage(m *wirepb.Message, self string) string {
	var b strings.Builder
	if m.GetSeq() != 0 {
		fmt.Fprintf(&b, "[seq %d] ", m.GetSeq())
	}
	b.WriteString(clean(m.GetFromUser()))
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

// raw writes a JSON value as one compact line; an empty one as {}.
func (p *printer) raw(j json.RawMessage) error {
	if len(bytes.TrimSpace(j)) == 0 {
		return p.line("{}")
	}
	var b bytes.Buffer
	if err := json.Compact(&b, j); err != nil {
		return fmt.Errorf("server sent a malformed result: %w", err)
	}
	return p.line(b.String())
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

// Call results, as the server's JSON has them (docs/API.md).
type (
	jsonGroup struct {
		GroupID     string `json:"group_id"`
		Name        string `json:"name"`
		Owner       string `json:"owner"`
		Ext         string `json:"ext"`
		CreatedAtMs int64  `json:"created_at_ms"`
	}
	jsonMember struct {
		UserID       string `json:"user_id"`
		Role         string `json:"role"`
		MutedUntilMs int64  `json:"muted_until_ms"`
		JoinedAtMs   int64  `json:"joined_at_ms"`
	}
	jsonFriend struct {
		Peer        string `json:"peer"`
		State       string `json:"state"`
		Message     string `json:"message"`
		UpdatedAtMs int64  `json:"updated_at_ms"`
	}
)

// formatResult returns the human output of a call command: the lines for
// stdout. An empty list is no lines.
func formatResult(o callOpts, result json.RawMessage) ([]string, error) {
	if len(bytes.TrimSpace(result)) == 0 {
		result = json.RawMessage("{}")
	}
	decode := func(v any) error {
		if err := json.Unmarshal(result, v); err != nil {
			return fmt.Errorf("%s: server sent an unexpected result %.200q: %w", o.cmd, result, err)
		}
		return nil
	}
	str := func(k string) string { s, _ := o.params[k].(string); return clean(s) }
	switch o.method {
	case "group.create":
		var r struct{ Group jsonGroup }
		if err := decode(&r); err != nil {
			return nil, err
		}
		if r.Group.GroupID == "" {
			return nil, fmt.Errorf("%s: the server's result names no group id: %.200q", o.cmd, result)
		}
		return []string{clean(r.Group.GroupID)}, nil
	case "group.members.add", "group.members.remove":
		var r struct{ Added, Removed []string }
		if err := decode(&r); err != nil {
			return nil, err
		}
		if o.method == "group.members.add" {
			return []string{fmt.Sprintf("added to %s: %s", str("group_id"), idsOrNone(r.Added))}, nil
		}
		return []string{fmt.Sprintf("removed from %s: %s", str("group_id"), idsOrNone(r.Removed))}, nil
	case "group.members.list":
		var r struct{ Members []jsonMember }
		if err := decode(&r); err != nil {
			return nil, err
		}
		var rows [][]string
		for _, m := range r.Members {
			row := []string{clean(m.UserID), clean(m.Role), "joined " + msTime(m.JoinedAtMs)}
			if m.MutedUntilMs > 0 {
				row = append(row, "muted until "+msTime(m.MutedUntilMs))
			}
			rows = append(rows, row)
		}
		return table(rows), nil
	case "user.groups":
		var r struct{ Groups []jsonGroup }
		if err := decode(&r); err != nil {
			return nil, err
		}
		var rows [][]string
		for _, g := range r.Groups {
			rows = append(rows, []string{clean(g.GroupID), quoted(g.Name), "owner " + clean(g.Owner), "created " + msTime(g.CreatedAtMs)})
		}
		return table(rows), nil
	case "friend.list":
		var r struct{ Friends []jsonFriend }
		if err := decode(&r); err != nil {
			return nil, err
		}
		var rows [][]string
		for _, f := range r.Friends {
			row := []string{clean(f.Peer), clean(f.State), "updated " + msTime(f.UpdatedAtMs)}
			if f.Message != "" {
				row = append(row, quoted(f.Message))
			}
			rows = append(rows, row)
		}
		return table(rows), nil
	case "block.list":
		var r struct{ Blocked []json.RawMessage }
		if err := decode(&r); err != nil {
			return nil, err
		}
		var out []string
		for _, b := range r.Blocked {
			out = append(out, clean(blockedName(b)))
		}
		return out, nil
	case "group.leave":
		return []string{"left group " + str("group_id")}, nil
	case "friend.request":
		return []string{"friend request sent to " + str("peer")}, nil
	case "friend.accept":
		return []string{"accepted " + str("peer") + " as a friend"}, nil
	case "friend.decline":
		return []string{"declined the friend request of " + str("peer")}, nil
	case "friend.delete":
		return []string{"removed " + str("peer") + " from your friends"}, nil
	case "block.add":
		return []string{"blocked " + str("peer")}, nil
	case "block.remove":
		return []string{"unblocked " + str("peer")}, nil
	}
	return []string{"ok"}, nil
}

// blockedName is a block.list item: a user id, or an object naming one.
func blockedName(b json.RawMessage) string {
	var s string
	if json.Unmarshal(b, &s) == nil {
		return s
	}
	var o struct {
		Peer   string `json:"peer"`
		UserID string `json:"user_id"`
	}
	if json.Unmarshal(b, &o) == nil && (o.Peer != "" || o.UserID != "") {
		return o.Peer + o.UserID
	}
	return string(b)
}

// quoted is free text from the server in double quotes, escaped by clean.
func quoted(s string) string { return `"` + clean(s) + `"` }

func idsOrNone(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	for i, id := range ids {
		ids[i] = clean(id)
	}
	return strings.Join(ids, ", ")
}

// msTime formats Unix milliseconds as UTC RFC 3339, or "-" for zero.
func msTime(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

// table aligns rows of cells into lines, two spaces between columns.
func table(rows [][]string) []string {
	if len(rows) == 0 {
		return nil
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	w.Flush()
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		out = append(out, strings.TrimRight(l, " "))
	}
	return out
}
