package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/actors/msgid"
	"github.com/parleyim/parley/actors/social"
	"github.com/parleyim/parley/schemas/wirepb"
)

const (
	codeOK          = wirepb.ErrorCode_ERROR_CODE_UNSPECIFIED // no error
	codeInvalid     = wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT
	codeTooLarge    = wirepb.ErrorCode_ERROR_CODE_BODY_TOO_LARGE
	codeDenied      = wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED
	codeNotFound    = wirepb.ErrorCode_ERROR_CODE_NOT_FOUND
	codeNotRefusal  = wirepb.ErrorCode_ERROR_CODE_INTERNAL // not a *social.Error
	testMaxBodySize = 16
)

// codeOf is err's code: codeOK for nil, codeNotRefusal for an error that is
// not a refusal.
func codeOf(err error) wirepb.ErrorCode {
	if err == nil {
		return codeOK
	}
	var e *social.Error
	if !errors.As(err, &e) {
		return codeNotRefusal
	}
	return e.Code
}

// testService has only what decode, message and the argument checks that
// run before any work need: no Host, store, NATS or directory.
func testService() *Service {
	return &Service{cfg: Config{MaxBodySize: testMaxBodySize}, ids: msgid.New()}
}

// paramsOf makes, for each method, a new value of the params type its run
// decodes into. TestParamsOfMatchesMethods keeps it in step with methods.
var paramsOf = map[string]func() any{
	"friend.request":       func() any { return new(pairParams) },
	"friend.accept":        func() any { return new(pairParams) },
	"friend.decline":       func() any { return new(pairParams) },
	"friend.delete":        func() any { return new(pairParams) },
	"friend.list":          func() any { return new(userParams) },
	"block.add":            func() any { return new(pairParams) },
	"block.remove":         func() any { return new(pairParams) },
	"block.list":           func() any { return new(userParams) },
	"group.create":         func() any { return new(groupCreateParams) },
	"group.get":            func() any { return new(groupParams) },
	"group.update":         func() any { return new(groupUpdateParams) },
	"group.dissolve":       func() any { return new(groupParams) },
	"group.leave":          func() any { return new(groupUserParams) },
	"group.members.add":    func() any { return new(membersParams) },
	"group.members.remove": func() any { return new(membersParams) },
	"group.members.list":   func() any { return new(groupParams) },
	"group.members.role":   func() any { return new(roleParams) },
	"group.members.mute":   func() any { return new(muteParams) },
	"user.groups":          func() any { return new(userParams) },
	"message.push":         func() any { return new(pushParams) },
	"message.push_group":   func() any { return new(pushGroupParams) },
	"message.push_room":    func() any { return new(pushRoomParams) },
	"message.broadcast":    func() any { return new(content) },
	"presence.get":         func() any { return new(usersParams) },
	"history.fetch":        func() any { return new(historyParams) },
	"device.disconnect":    func() any { return new(disconnectParams) },
}

// paramTypes is one maker per distinct params type, ordered by type name.
func paramTypes() []func() any {
	byType := map[string]func() any{}
	for _, mk := range paramsOf {
		byType[fmt.Sprintf("%T", mk())] = mk
	}
	var out []func() any
	for _, name := range slices.Sorted(maps.Keys(byType)) {
		out = append(out, byType[name])
	}
	return out
}

// TestParamsOfMatchesMethods: paramsOf names every method, and every
// method refuses a non-object in the caller's terms (no Go type names).
func TestParamsOfMatchesMethods(t *testing.T) {
	if got, want := slices.Sorted(maps.Keys(paramsOf)), Methods(); !slices.Equal(got, want) {
		t.Fatalf("paramsOf names %q; want the methods %q", got, want)
	}
	for _, name := range Methods() {
		for _, junk := range []string{"[]", `{"users":"x","group_id":1,"user":[]}`} {
			_, err := methods[name].run(t.Context(), nil, caller{}, []byte(junk))
			typ := strings.TrimPrefix(fmt.Sprintf("%T", paramsOf[name]()), "*")
			if codeOf(err) != codeInvalid || strings.Contains(err.Error(), typ) || strings.Contains(err.Error(), "Go ") {
				t.Errorf("%s(%s) = %v; want INVALID_ARGUMENT without Go type names", name, junk, err)
			}
		}
	}
}

func TestDecode(t *testing.T) {
	str := func(s string) *string { return &s }
	tests := []struct {
		name   string
		params string
		into   func() any
		want   wirepb.ErrorCode
		got    any // the decoded value, when want is codeOK
	}{
		{name: "nothing", params: "", into: paramsOf["friend.request"], got: &pairParams{}},
		{name: "white space", params: " \t\r\n ", into: paramsOf["friend.request"], got: &pairParams{}},
		{name: "empty object", params: "{}", into: paramsOf["friend.request"], got: &pairParams{}},
		{name: "null", params: "null", into: paramsOf["friend.request"], got: &pairParams{}},
		{name: "fields", params: ` {"user":"ann", "peer":"ben","message":"hi"} `, into: paramsOf["friend.request"],
			got: &pairParams{User: "ann", Peer: "ben", Message: "hi"}},
		{name: "optional fields", params: `{"group_id":"g","ext":""}`, into: paramsOf["group.update"],
			got: &groupUpdateParams{GroupID: "g", Ext: str("")}},
		{name: "null optional field", params: `{"group_id":"g","name":null}`, into: paramsOf["group.update"],
			got: &groupUpdateParams{GroupID: "g"}},
		{name: "embedded content", params: `{"users":["a","b"],"transient":true,"from":"bot","content_type":"image","body_base64":"AAE="}`,
			into: paramsOf["message.push"],
			got:  &pushParams{Users: []string{"a", "b"}, Transient: true, content: content{From: "bot", ContentType: "image", BodyBase64: []byte{0, 1}}}},
		{name: "numbers", params: `{"user":"u","after_seq":18446744073709551615,"limit":5}`, into: paramsOf["history.fetch"],
			got: &historyParams{User: "u", AfterSeq: 1<<64 - 1, Limit: 5}},

		{name: "unknown field", params: `{"usr":"ann"}`, into: paramsOf["friend.request"], want: codeInvalid},
		{name: "unknown field among known ones", params: `{"user":"ann","peer":"ben","extra":1}`, into: paramsOf["friend.request"], want: codeInvalid},
		{name: "unknown nested field of a flat type", params: `{"content":{"text":"x"}}`, into: paramsOf["message.push"], want: codeInvalid},
		{name: "two objects", params: `{} {}`, into: paramsOf["friend.request"], want: codeInvalid},
		{name: "trailing garbage", params: `{"user":"ann"}x`, into: paramsOf["friend.request"], want: codeInvalid},
		{name: "trailing brace", params: `{"user":"ann"}}`, into: paramsOf["friend.request"], want: codeInvalid},
		{name: "trailing bracket", params: `{}]`, into: paramsOf["friend.request"], want: codeInvalid},
		{name: "trailing NUL", params: "{}\x00", into: paramsOf["friend.request"], want: codeInvalid},
		{name: "trailing number", params: `{} 1`, into: paramsOf["friend.request"], want: codeInvalid},
		{name: "truncated", params: `{"user":`, into: paramsOf["friend.request"], want: codeInvalid},
		{name: "not JSON", params: `user=ann`, into: paramsOf["friend.request"], want: codeInvalid},
		{name: "string for a string list", params: `{"users":"a"}`, into: paramsOf["message.push"], want: codeInvalid},
		{name: "number for a string", params: `{"user":1}`, into: paramsOf["friend.request"], want: codeInvalid},
		{name: "string for a number", params: `{"seconds":"60"}`, into: paramsOf["group.members.mute"], want: codeInvalid},
		{name: "fraction for an integer", params: `{"limit":1.5}`, into: paramsOf["history.fetch"], want: codeInvalid},
		{name: "negative for an unsigned", params: `{"after_seq":-1}`, into: paramsOf["history.fetch"], want: codeInvalid},
		{name: "overflow", params: `{"after_seq":18446744073709551616}`, into: paramsOf["history.fetch"], want: codeInvalid},
		{name: "string for a bool", params: `{"revoke":"yes"}`, into: paramsOf["device.disconnect"], want: codeInvalid},
		{name: "bad base64", params: `{"body_base64":"!!"}`, into: paramsOf["message.broadcast"], want: codeInvalid},
		{name: "object for a string", params: `{"name":{}}`, into: paramsOf["group.update"], want: codeInvalid},
		{name: "array", params: `[]`, into: paramsOf["friend.request"], want: codeInvalid},
		{name: "array of an object", params: `[{"user":"ann"}]`, into: paramsOf["friend.request"], want: codeInvalid},
		{name: "string", params: `"ann"`, into: paramsOf["friend.request"], want: codeInvalid},
		{name: "number", params: `1`, into: paramsOf["friend.request"], want: codeInvalid},
		{name: "true", params: `true`, into: paramsOf["friend.request"], want: codeInvalid},
		{name: "array of numbers for users", params: `{"users":[1]}`, into: paramsOf["presence.get"], want: codeInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.into()
			err := decode([]byte(tc.params), p)
			if got := codeOf(err); got != tc.want {
				t.Fatalf("decode(%q) = %v (%v); want %v", tc.params, got, err, tc.want)
			}
			if err != nil {
				if !strings.HasPrefix(err.Error(), "params") || strings.Contains(err.Error(), "Go ") {
					t.Errorf("decode(%q) error %q; want one about the params, without Go type names", tc.params, err)
				}
				return
			}
			if !reflect.DeepEqual(p, tc.got) {
				t.Errorf("decode(%q) = %+v; want %+v", tc.params, p, tc.got)
			}
		})
	}
}

func TestMessage(t *testing.T) {
	to := &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_GROUP, Id: "g"}
	tests := []struct {
		name string
		c    content
		want wirepb.ErrorCode
		// The message, when want is codeOK.
		from string
		ct   wirepb.ContentType
		body string
	}{
		{name: "text", c: content{Text: "hi"}, from: "system", ct: wirepb.ContentType_CONTENT_TYPE_TEXT, body: "hi"},
		{name: "body_base64", c: content{BodyBase64: []byte{0, 0xff}}, from: "system", ct: wirepb.ContentType_CONTENT_TYPE_TEXT, body: "\x00\xff"},
		{name: "from", c: content{From: "bot-1", Text: "x"}, from: "bot-1", ct: wirepb.ContentType_CONTENT_TYPE_TEXT, body: "x"},
		{name: "text and body_base64", c: content{Text: "x", BodyBase64: []byte("y")}, want: codeInvalid},
		{name: "neither", c: content{}, want: codeInvalid},
		{name: "empty text and body_base64", c: content{Text: "", BodyBase64: []byte{}}, want: codeInvalid},
		{name: "bad from", c: content{From: "bot 1", Text: "x"}, want: codeInvalid},
		{name: "from of 65", c: content{From: strings.Repeat("f", 65), Text: "x"}, want: codeInvalid},
		{name: "from of 64", c: content{From: strings.Repeat("f", 64), Text: "x"},
			from: strings.Repeat("f", 64), ct: wirepb.ContentType_CONTENT_TYPE_TEXT, body: "x"},
		{name: "unknown content_type", c: content{ContentType: "video", Text: "x"}, want: codeInvalid},
		{name: "content_type is case-sensitive", c: content{ContentType: "TEXT", Text: "x"}, want: codeInvalid},
		{name: "content_type in the wire's spelling", c: content{ContentType: "CONTENT_TYPE_TEXT", Text: "x"}, want: codeInvalid},
		{name: "text at the limit", c: content{Text: strings.Repeat("t", testMaxBodySize)},
			from: "system", ct: wirepb.ContentType_CONTENT_TYPE_TEXT, body: strings.Repeat("t", testMaxBodySize)},
		{name: "text over the limit", c: content{Text: strings.Repeat("t", testMaxBodySize+1)}, want: codeTooLarge},
		{name: "text over the limit in bytes, not runes", c: content{Text: strings.Repeat("é", testMaxBodySize/2+1)}, want: codeTooLarge},
		{name: "body_base64 over the limit", c: content{BodyBase64: make([]byte, testMaxBodySize+1)}, want: codeTooLarge},
		{name: "bad content_type before size", c: content{ContentType: "x", Text: strings.Repeat("t", testMaxBodySize+1)}, want: codeInvalid},
	}
	for ct, wire := range contentTypes {
		tests = append(tests, struct {
			name string
			c    content
			want wirepb.ErrorCode
			from string
			ct   wirepb.ContentType
			body string
		}{name: "content_type " + ct, c: content{ContentType: ct, Text: "x"}, from: "system", ct: wire, body: "x"})
	}
	s := testService()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			msg, err := s.message(&c, to)
			if got := codeOf(err); got != tc.want {
				t.Fatalf("message(%+v) = %v (%v); want %v", tc.c, got, err, tc.want)
			}
			if err != nil {
				if msg != nil {
					t.Errorf("message(%+v) = %v with an error; want nil", tc.c, msg)
				}
				return
			}
			if msg.FromUser != tc.from || msg.ContentType != tc.ct || string(msg.Body) != tc.body ||
				!proto.Equal(msg.To, to) || len(msg.MsgId) != 26 || msg.CreatedAtMs == 0 || msg.Seq != 0 {
				t.Errorf("message(%+v) = %v; want from %q, %v, body %q, to %v, a msg id and a time", tc.c, msg, tc.from, tc.ct, tc.body, to)
			}
		})
	}
}

// TestRunRefusesBeforeWork: arguments a method refuses before it reaches
// the directory, the Host or the store, over the API (Do) and as a client
// (CallAs). The Service has none of those: reaching one panics, which the
// test reports.
func TestRunRefusesBeforeWork(t *testing.T) {
	users := func(n int) string {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("u%d", i)
		}
		b, _ := json.Marshal(ids)
		return string(b)
	}
	tests := []struct {
		method, params string
		as             string // "": the business server; else CallAs this user
		want           wirepb.ErrorCode
	}{
		{method: "no.such.method", want: codeNotFound},
		{method: "message.push", as: "ann", params: `{"users":["ben"],"text":"x"}`, want: codeNotFound}, // API only
		{method: "device.disconnect", as: "ann", params: `{"user":"ann"}`, want: codeNotFound},
		{method: "friend.request", params: `{"peer":"ben"}`, want: codeInvalid}, // the server must name the user
		{method: "friend.request", params: `{"user":"a a","peer":"ben"}`, want: codeInvalid},
		{method: "friend.request", as: "ann", params: `{"user":"bob","peer":"ben"}`, want: codeDenied},
		{method: "friend.list", as: "ann", params: `{"user":"bob"}`, want: codeDenied},
		{method: "group.leave", as: "ann", params: `{"group_id":"g","user":"bob"}`, want: codeDenied},
		{method: "friend.accept", params: `{"user":"ann","peer":"ben","message":"hi"}`, want: codeInvalid},
		{method: "block.add", as: "ann", params: `{"peer":"ben","message":"hi"}`, want: codeInvalid},
		{method: "group.create", as: "ann", params: `{"name":"G","owner":"bob"}`, want: codeDenied},
		{method: "group.update", params: `{"group_id":"g"}`, want: codeInvalid},
		{method: "group.members.mute", params: `{"group_id":"g","user":"u","seconds":-1}`, want: codeInvalid},
		{method: "group.members.mute", params: `{"group_id":"g","user":"u","seconds":315360001}`, want: codeInvalid},
		{method: "message.push", params: `{"text":"x"}`, want: codeInvalid},
		{method: "message.push", params: `{"users":[],"text":"x"}`, want: codeInvalid},
		{method: "message.push", params: `{"users":` + users(MaxUsers+1) + `,"text":"x"}`, want: codeInvalid},
		{method: "message.push", params: `{"users":["ok","not ok"],"text":"x"}`, want: codeInvalid},
		{method: "message.push", params: `{"users":["ann"]}`, want: codeInvalid},
		{method: "message.push", params: `{"users":["ann"],"text":"` + strings.Repeat("t", testMaxBodySize+1) + `"}`, want: codeTooLarge},
		{method: "message.push", params: `{"users":["ann"],"text":"x","content_type":"video"}`, want: codeInvalid},
		{method: "message.push_room", params: `{"room_id":"","text":"x"}`, want: codeInvalid},
		{method: "message.push_room", params: `{"room_id":"lobby"}`, want: codeInvalid},
		{method: "message.broadcast", params: `{"from":"not ok","text":"x"}`, want: codeInvalid},
		{method: "presence.get", params: `{}`, want: codeInvalid},
		{method: "presence.get", params: `{"users":` + users(MaxUsers+1) + `}`, want: codeInvalid},
		{method: "history.fetch", params: `{"limit":10}`, want: codeInvalid},
		{method: "history.fetch", params: `{"user":"ann","limit":-1}`, want: codeInvalid},
		{method: "history.fetch", params: `{"user":"ann","limit":1001}`, want: codeInvalid},
		{method: "device.disconnect", params: `{"device":"phone"}`, want: codeInvalid},
		{method: "device.disconnect", params: `{"user":"ann","device":"a phone"}`, want: codeInvalid},
	}
	for _, name := range Methods() {
		tests = append(tests, struct {
			method, params string
			as             string
			want           wirepb.ErrorCode
		}{method: name, params: `{"no_such_field":1}`, want: codeInvalid})
	}
	s := testService()
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.as+" "+tc.params[:min(len(tc.params), 40)], func(t *testing.T) {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("%s(%s) got past its checks (panic: %v); want %v", tc.method, tc.params, r, tc.want)
				}
			}()
			var err error
			if tc.as == "" {
				_, err = s.Do(context.Background(), tc.method, []byte(tc.params))
			} else {
				_, err = s.CallAs(context.Background(), tc.as, tc.method, tc.params)
			}
			if got := codeOf(err); got != tc.want {
				t.Errorf("%s(%s) as %q = %v (%v); want %v", tc.method, tc.params, tc.as, got, err, tc.want)
			}
		})
	}
}

// FuzzParams feeds arbitrary bytes to decode, into every params type of the
// methods table, and the push contents on to Service.message. Nothing may
// panic; every failure is INVALID_ARGUMENT (BODY_TOO_LARGE for a message);
// decode accepts exactly one JSON value; what it accepts re-encodes and
// decodes back to the same value; a message it builds is valid and
// marshals.
func FuzzParams(f *testing.F) {
	for _, seed := range []string{
		"", " ", "{}", "null", "[]", "[{}]", `"x"`, "1", "true",
		`{"user":"ann","peer":"ben","message":"hi"}`,
		`{"group_id":"g","name":"Club","owner":"own","ext":"{\"k\":1}","members":["a","b"]}`,
		`{"group_id":"g","name":null,"ext":""}`,
		`{"group_id":"g","users":["a","b","a"]}`,
		`{"group_id":"g","user":"u","role":"admin"}`,
		`{"group_id":"g","user":"u","seconds":60}`,
		`{"users":["a"],"transient":true,"from":"bot","content_type":"image","body_base64":"AAE="}`,
		`{"users":["a"],"text":"hello"}`,
		`{"users":["a"],"text":"x","body_base64":"eA=="}`,
		`{"group_id":"g","text":"hi","content_type":"system"}`,
		`{"room_id":"lobby","text":"hi"}`,
		`{"from":"system","text":"` + strings.Repeat("long ", 10) + `"}`,
		`{"user":"ann","after_seq":18446744073709551615,"limit":1000}`,
		`{"user":"ann","device":"phone","revoke":true}`,
		`{"user":"ann"}}`, `{}]`, `{} {}`, "{}\x00", `{"user":"\ud800"}`, "{\"user\":\"\xff\"}",
		`{"USER":"a","user":"b"}`, `{"text":"é"}`, `{"limit":1e3}`, `{"body_base64":"=="}`,
	} {
		f.Add([]byte(seed))
	}
	s := testService()
	types := paramTypes()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, mk := range types {
			p := mk()
			err := decode(data, p)
			if err != nil {
				if codeOf(err) != codeInvalid {
					t.Fatalf("decode(%q) into %T = %v; want INVALID_ARGUMENT", data, p, err)
				}
				continue
			}
			if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && !json.Valid(trimmed) {
				t.Fatalf("decode(%q) into %T accepted input that is not one JSON value", data, p)
			}
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatalf("decode(%q) into %T = %+v, which does not encode: %v", data, p, p, err)
			}
			q := mk()
			if err := decode(b, q); err != nil {
				t.Fatalf("decode(%s), the re-encoding of %T %+v: %v", b, p, p, err)
			}
			if !reflect.DeepEqual(p, q) {
				t.Fatalf("%T %+v re-encodes to %s, which decodes to %+v", p, p, b, q)
			}
			var c *content
			switch v := p.(type) {
			case *pushParams:
				c = &v.content
			case *pushGroupParams:
				c = &v.content
			case *pushRoomParams:
				c = &v.content
			case *content:
				c = v
			default:
				continue
			}
			checkMessage(t, s, *c)
		}
	})
}

// checkMessage builds the message of c and checks it, or its refusal.
func checkMessage(t *testing.T, s *Service, c content) {
	t.Helper()
	in := c
	msg, err := s.message(&c, nil)
	if err != nil {
		if code := codeOf(err); code != codeInvalid && code != codeTooLarge {
			t.Fatalf("message(%+v) = %v; want INVALID_ARGUMENT or BODY_TOO_LARGE", in, err)
		}
		return
	}
	body := in.BodyBase64
	if in.Text != "" {
		body = []byte(in.Text)
	}
	if !wirepb.ValidID(msg.FromUser) || msg.ContentType == wirepb.ContentType_CONTENT_TYPE_UNSPECIFIED ||
		len(msg.Body) == 0 || len(msg.Body) > testMaxBodySize || !bytes.Equal(msg.Body, body) || msg.MsgId == "" {
		t.Fatalf("message(%+v) = %v; want a valid sender, a content type, and the 1-%d byte body", in, msg, testMaxBodySize)
	}
	if _, err := proto.Marshal(msg); err != nil {
		t.Fatalf("message(%+v) = %v, which does not marshal: %v", in, msg, err)
	}
}
