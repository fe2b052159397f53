package main

import (
	"bytes"
	"encoding/json"
	"slices"
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
	room  = wirepb.ConversationType_CONVERSATION_TYPE_ROOM
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
		{"own group message", msg(20, "alice", group, "g1", text, "to all"), "alice", "[seq 20] alice in group g1: to all"},
		{"room message", msg(0, "bob", room, "lobby", text, "hey"), "alice", "bob in room lobby: hey"},
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

func TestFormatResult(t *testing.T) {
	tests := []struct {
		name   string
		method string
		params map[string]any
		result string
		want   []string
	}{
		{"group create", "group.create", nil,
			`{"group":{"group_id":"g7","name":"team","owner":"alice","ext":"","created_at_ms":1700000000000}}`, []string{"g7"}},
		{"group add", "group.members.add", map[string]any{"group_id": "g1"}, `{"added":["bob","carol"]}`, []string{"added to g1: bob, carol"}},
		{"group add nobody", "group.members.add", map[string]any{"group_id": "g1"}, `{"added":[]}`, []string{"added to g1: none"}},
		{"group remove", "group.members.remove", map[string]any{"group_id": "g1"}, `{"removed":["bob"]}`, []string{"removed from g1: bob"}},
		{"group members", "group.members.list", nil,
			`{"members":[{"user_id":"alice","role":"owner","muted_until_ms":0,"joined_at_ms":1700000000000},` +
				`{"user_id":"bob","role":"member","muted_until_ms":1700000060000,"joined_at_ms":1700000001000}]}`,
			[]string{
				"alice  owner   joined 2023-11-14T22:13:20Z",
				"bob    member  joined 2023-11-14T22:13:21Z  muted until 2023-11-14T22:14:20Z",
			}},
		{"group list", "user.groups", nil,
			`{"groups":[{"group_id":"g1","name":"team a","owner":"alice","ext":"{}","created_at_ms":1700000000000}]}`,
			[]string{`g1  "team a"  owner alice  created 2023-11-14T22:13:20Z`}},
		{"no groups", "user.groups", nil, `{"groups":[]}`, nil},
		{"group leave", "group.leave", map[string]any{"group_id": "g1"}, `{}`, []string{"left group g1"}},
		{"friend list", "friend.list", nil,
			`{"friends":[{"peer":"bob","state":"accepted","message":"","updated_at_ms":1700000000000},` +
				`{"peer":"carol","state":"pending_in","message":"hi\tthere","updated_at_ms":0}]}`,
			[]string{
				"bob    accepted    updated 2023-11-14T22:13:20Z",
				`carol  pending_in  updated -  "hi\tthere"`,
			}},
		{"friend request", "friend.request", map[string]any{"peer": "bob", "message": "x"}, ``, []string{"friend request sent to bob"}},
		{"friend accept", "friend.accept", map[string]any{"peer": "bob"}, `{}`, []string{"accepted bob as a friend"}},
		{"block", "block.add", map[string]any{"peer": "bob"}, `{}`, []string{"blocked bob"}},
		{"unblock", "block.remove", map[string]any{"peer": "bob"}, `{}`, []string{"unblocked bob"}},
		{"blocked ids", "block.list", nil, `{"blocked":["bob","eve"]}`, []string{"bob", "eve"}},
		{"blocked objects", "block.list", nil, `{"blocked":[{"peer":"bob","created_at_ms":1}]}`, []string{"bob"}},
		{"escape codes", "group.members.add", map[string]any{"group_id": "g1"}, `{"added":["\u001b[2J"]}`, []string{`added to g1: \x1b[2J`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := formatResult(callOpts{cmd: "x", method: tc.method, params: tc.params}, json.RawMessage(tc.result))
			if err != nil {
				t.Fatalf("formatResult(%s, %s) error: %v", tc.method, tc.result, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("formatResult(%s, %s) =\n%q\nwant\n%q", tc.method, tc.result, got, tc.want)
			}
		})
	}
}

func TestFormatResultErrors(t *testing.T) {
	for _, tc := range []struct{ method, result string }{
		{"group.create", `{"group":{}}`},          // no id
		{"group.create", `[1]`},                   // not an object
		{"group.members.list", `{"members":"x"}`}, // wrong type
	} {
		if got, err := formatResult(callOpts{cmd: "x", method: tc.method}, json.RawMessage(tc.result)); err == nil {
			t.Errorf("formatResult(%s, %s) = %q; want an error", tc.method, tc.result, got)
		}
	}
}

func TestPrinterRaw(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"{\n  \"group\": {\"group_id\": \"g1\"}\n}", `{"group":{"group_id":"g1"}}` + "\n"},
		{"", "{}\n"},
	} {
		var b bytes.Buffer
		if err := (&printer{w: &b, json: true}).raw(json.RawMessage(tc.in)); err != nil {
			t.Fatalf("raw(%q) error: %v", tc.in, err)
		}
		if b.String() != tc.want {
			t.Errorf("raw(%q) wrote %q; want %q", tc.in, b.String(), tc.want)
		}
	}
	if err := (&printer{w: &bytes.Buffer{}, json: true}).raw(json.RawMessage("{bad")); err == nil {
		t.Error("raw of malformed JSON: no error")
	}
}
