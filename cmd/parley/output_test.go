package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/parleyim/parley/schemas/wirepb"
)

func msg(seq uint64, from string, toType wirepb.ConversationType, to string, ct wirepb.ContentType, body string) *wirepb.Message {
	return &wirepb.Message{
		Seq: seq, MsgId: "m1", FromUser: from, FromDevice: "d1", ClientMsgId: "c1",
		To: &wirepb.Conversation{Type: toType, Id: to}, ContentType: ct, Body: []byte(body), CreatedAtMs: 1700000000000,
	}
}

const (
	user  = wirepb.ConversationType_CONVERSATION_TYPE_USER
	group = wirepb.ConversationType_CONVERSATION_TYPE_GROUP
	text  = wirepb.ContentType_CONTENT_TYPE_TEXT
	image = wirepb.ContentType_CONTENT_TYPE_IMAGE
)

func TestFormatMessage(t *testing.T) {
	tests := []struct {
		name string
		m    *wirepb.Message
		self string
		want string
	}{
		{"received", msg(12, "bob", user, "alice", text, "hi"), "alice", "[seq 12] bob: hi"},
		{"sent", msg(13, "alice", user, "bob", text, "hello"), "alice", "[seq 13] alice -> bob: hello"},
		{"note to self", msg(14, "alice", user, "alice", text, "memo"), "alice", "[seq 14] alice: memo"},
		{"group", msg(15, "bob", group, "g1", text, "all"), "alice", "[seq 15] bob in group g1: all"},
		{"image", msg(16, "bob", user, "alice", image, "\x89PNG"), "alice", "[seq 16] bob: <image, 4 bytes>"},
		{"escape codes", msg(17, "bob", user, "alice", text, "a\x1b[2Jb\r\n"), "alice", `[seq 17] bob: a\x1b[2Jb\r\n`},
		{"invalid utf8 text", msg(18, "bob", user, "alice", text, "a\xffb"), "alice", "[seq 18] bob: <text, 3 bytes>"},
		{"unicode", msg(19, "bob", user, "alice", text, "héllo 👋"), "alice", "[seq 19] bob: héllo 👋"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := formatMessage(tc.m, tc.self); got != tc.want {
				t.Errorf("formatMessage() = %q; want %q", got, tc.want)
			}
		})
	}
}

func TestClean(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"tab\there", `tab\there`},
		{"bell\a", `bell\a`},
		{"bad\xffbyte", `bad\xffbyte`},
		{"real \uFFFD kept", "real \uFFFD kept"},
		{"c1\u0085", `c1\u0085`},
	}
	for _, tc := range tests {
		if got := clean(tc.in); got != tc.want {
			t.Errorf("clean(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestFormatAck(t *testing.T) {
	a := &wirepb.SendAck{Seq: 5, MsgId: "m5", ClientMsgId: "c5", CreatedAtMs: 1}
	if got, want := formatAck(a), "sent: seq 5, msg_id m5, client_msg_id c5"; got != want {
		t.Errorf("formatAck() = %q; want %q", got, want)
	}
	a.Duplicate = true
	if got, want := formatAck(a), "sent: seq 5, msg_id m5, client_msg_id c5 (duplicate: already stored)"; got != want {
		t.Errorf("formatAck(duplicate) = %q; want %q", got, want)
	}
}

func TestJSONLines(t *testing.T) {
	tests := []struct {
		name  string
		print func(p *printer) error
		want  string
	}{
		{
			"text message",
			func(p *printer) error { return p.message(msg(12, "bob", user, "alice", text, "hi")) },
			`{"type":"message","seq":12,"msg_id":"m1","from":"bob","from_device":"d1","to_type":"user","to":"alice","client_msg_id":"c1","content_type":"text","text":"hi","created_at_ms":1700000000000}` + "\n",
		},
		{
			"binary message",
			func(p *printer) error { return p.message(msg(3, "bob", group, "g1", image, "\x00\x01")) },
			`{"type":"message","seq":3,"msg_id":"m1","from":"bob","from_device":"d1","to_type":"group","to":"g1","client_msg_id":"c1","content_type":"image","body":"AAE=","created_at_ms":1700000000000}` + "\n",
		},
		{
			"ack",
			func(p *printer) error {
				return p.ack(&wirepb.SendAck{Seq: 13, MsgId: "m13", ClientMsgId: "c13", CreatedAtMs: 5, Duplicate: true})
			},
			`{"type":"ack","seq":13,"msg_id":"m13","client_msg_id":"c13","created_at_ms":5,"duplicate":true}` + "\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.print(&printer{w: &b, json: true}); err != nil {
				t.Fatalf("print error: %v", err)
			}
			if got := b.String(); got != tc.want {
				t.Errorf("JSON line = %s; want %s", got, tc.want)
			}
			if !json.Valid(b.Bytes()) {
				t.Errorf("JSON line %s is not valid JSON", b.String())
			}
		})
	}
}
