package node

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parleyim/parley/actors/api"
	"github.com/parleyim/parley/schemas/wirepb"
)

// apiTransport calls one API method with a key and raw params and returns
// an HTTP-like status and the JSON body.
type apiTransport struct {
	name string
	call func(t testing.TB, key, method string, params []byte) (int, []byte)
}

func transports(t testing.TB, n *Node) []apiTransport {
	nc, err := nats.Connect(n.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return []apiTransport{
		{"http", func(t testing.TB, key, method string, params []byte) (int, []byte) {
			return apiPost(t, n, key, method, params)
		}},
		{"nats", func(t testing.TB, key, method string, params []byte) (int, []byte) {
			t.Helper()
			msg := nats.NewMsg(api.SubjectPrefix + "." + method)
			msg.Data = params
			if key != "" {
				msg.Header.Set(api.KeyHeader, key)
			}
			resp, err := nc.RequestMsg(msg, 10*time.Second)
			if err != nil {
				t.Fatalf("NATS request %s: %v", method, err)
			}
			if c := resp.Header.Get("Nats-Service-Error-Code"); c != "" {
				code, err := strconv.Atoi(c)
				if err != nil {
					t.Fatalf("%s: error code %q", method, c)
				}
				return code, resp.Data
			}
			return http.StatusOK, resp.Data
		}},
	}
}

// TestAPI runs every API method over NATS and over HTTP, and checks that
// each refuses a missing or wrong key and malformed params.
func TestAPI(t *testing.T) {
	n := startNode(t, "", "", withAPIKey)
	for _, tr := range transports(t, n) {
		t.Run(tr.name, func(t *testing.T) {
			p := tr.name + "-" // user and group ids per transport
			call := func(method string, params any, want int) map[string]any {
				t.Helper()
				b, _ := json.Marshal(params)
				code, body := tr.call(t, testAPIKey, method, b)
				if code != want {
					t.Fatalf("%s(%s) = %d %s; want %d", method, b, code, body, want)
				}
				var out map[string]any
				if err := json.Unmarshal(body, &out); err != nil {
					t.Fatalf("%s: body %q is not a JSON object: %v", method, body, err)
				}
				return out
			}
			ok := func(method string, params any) map[string]any {
				t.Helper()
				return call(method, params, http.StatusOK)
			}
			jsonOf := func(v any) string { b, _ := json.Marshal(v); return string(b) }

			// Every method refuses a missing and a wrong key, and junk params.
			for _, m := range api.Methods() {
				for _, key := range []string{"", "wrong-key"} {
					code, body := tr.call(t, key, m, []byte(`{}`))
					if code != http.StatusUnauthorized || !strings.Contains(string(body), "UNAUTHENTICATED") {
						t.Errorf("%s with key %q = %d %s; want 401 UNAUTHENTICATED", m, key, code, body)
					}
				}
				for _, junk := range []string{`{"user":`, `[1,2]`, `{"no_such_field":1}`} {
					code, body := tr.call(t, testAPIKey, m, []byte(junk))
					if code != http.StatusBadRequest || !strings.Contains(string(body), "INVALID_ARGUMENT") {
						t.Errorf("%s(%s) = %d %s; want 400 INVALID_ARGUMENT", m, junk, code, body)
					}
				}
			}
			if tr.name == "http" { // on NATS an unknown subject has no responders
				if code, _ := tr.call(t, testAPIKey, "no.such.method", []byte(`{}`)); code != http.StatusNotFound {
					t.Errorf("unknown method = %d; want 404", code)
				}
			}

			// Friends and blocks.
			a, b, c := p+"alice", p+"bob", p+"carol"
			if got := ok("friend.request", map[string]any{"user": a, "peer": b, "message": "hi"}); got["state"] != "requested" {
				t.Fatalf("friend.request = %v", got)
			}
			if got := jsonOf(ok("friend.list", map[string]any{"user": b})); !strings.Contains(got, `"state":"pending"`) {
				t.Fatalf("bob's friend.list = %s; want a pending request", got)
			}
			ok("friend.accept", map[string]any{"user": b, "peer": a})
			if got := jsonOf(ok("friend.list", map[string]any{"user": a})); !strings.Contains(got, `"state":"friend"`) {
				t.Fatalf("alice's friend.list = %s; want bob as friend", got)
			}
			call("friend.accept", map[string]any{"user": b, "peer": c}, http.StatusNotFound)
			ok("friend.request", map[string]any{"user": c, "peer": a})
			ok("friend.decline", map[string]any{"user": a, "peer": c})
			ok("friend.delete", map[string]any{"user": a, "peer": b})
			if got := jsonOf(ok("friend.list", map[string]any{"user": b})); strings.Contains(got, a) {
				t.Fatalf("after friend.delete bob's list = %s", got)
			}
			ok("block.add", map[string]any{"user": a, "peer": c})
			if got := jsonOf(ok("block.list", map[string]any{"user": a})); !strings.Contains(got, c) {
				t.Fatalf("block.list = %s", got)
			}
			call("friend.request", map[string]any{"user": c, "peer": a}, http.StatusForbidden)
			ok("block.remove", map[string]any{"user": a, "peer": c})
			call("friend.request", map[string]any{"user": a, "peer": a}, http.StatusBadRequest)

			// Groups.
			g := p + "team"
			ok("group.create", map[string]any{"group_id": g, "name": "Team", "owner": a, "members": []string{b}})
			call("group.create", map[string]any{"group_id": g, "name": "Team", "owner": a}, http.StatusConflict)
			call("group.create", map[string]any{"name": "", "owner": a}, http.StatusBadRequest)
			if got := ok("group.get", map[string]any{"group_id": g}); jsonOf(got["group"]) == "" || !strings.Contains(jsonOf(got), `"owner":"`+a+`"`) {
				t.Fatalf("group.get = %v", got)
			}
			if got := jsonOf(ok("group.update", map[string]any{"group_id": g, "name": "Team 2"})); !strings.Contains(got, "Team 2") {
				t.Fatalf("group.update = %s", got)
			}
			if got := jsonOf(ok("group.members.add", map[string]any{"group_id": g, "users": []string{c, b}})); got != `{"added":["`+c+`"]}` {
				t.Fatalf("group.members.add = %s; want only carol added", got)
			}
			ok("group.members.role", map[string]any{"group_id": g, "user": b, "role": "admin"})
			call("group.members.role", map[string]any{"group_id": g, "user": b, "role": "king"}, http.StatusBadRequest)
			if got := ok("group.members.mute", map[string]any{"group_id": g, "user": c, "seconds": 60}); got["muted_until_ms"].(float64) <= float64(time.Now().UnixMilli()) {
				t.Fatalf("group.members.mute = %v", got)
			}
			list := jsonOf(ok("group.members.list", map[string]any{"group_id": g}))
			for _, want := range []string{`"role":"owner"`, `"role":"admin"`, `"muted_until_ms"`} {
				if !strings.Contains(list, want) {
					t.Fatalf("group.members.list = %s; want %s", list, want)
				}
			}
			ok("group.leave", map[string]any{"group_id": g, "user": c})
			call("group.leave", map[string]any{"group_id": g, "user": a}, http.StatusForbidden) // the owner
			if got := jsonOf(ok("group.members.remove", map[string]any{"group_id": g, "users": []string{b}})); got != `{"removed":["`+b+`"]}` {
				t.Fatalf("group.members.remove = %s", got)
			}
			if got := jsonOf(ok("user.groups", map[string]any{"user": a})); !strings.Contains(got, g) {
				t.Fatalf("user.groups = %s", got)
			}
			ok("message.push_group", map[string]any{"group_id": g, "from": "bot", "text": "to the group"})
			ok("group.dissolve", map[string]any{"group_id": g})
			call("group.get", map[string]any{"group_id": g}, http.StatusNotFound)

			// Messages, presence, history, devices.
			dev := dialRaw(t, n.TCPAddr())
			dev.signIn(a, "phone")
			if got := jsonOf(ok("presence.get", map[string]any{"users": []string{a, b}})); !strings.Contains(got, `"device_id":"phone"`) || !strings.Contains(got, `"online":false`) {
				t.Fatalf("presence.get = %s; want alice's phone online and bob offline", got)
			}
			pushed := ok("message.push", map[string]any{"users": []string{a}, "from": "bot", "text": "stored"})
			// Earlier group traffic (notices, the group push) may still be
			// arriving: wait for each push by what it carries.
			body := func(text string) func(*wirepb.Message) bool {
				return func(m *wirepb.Message) bool { return string(m.Body) == text }
			}
			if m := waitPush(t, dev, body("stored")); m.MsgId != pushed["msg_id"] || m.Seq == 0 || m.FromUser != "bot" {
				t.Fatalf("stored push arrived as %v; want %v with a seq", m, pushed)
			}
			if got := ok("message.push", map[string]any{"users": []string{a}, "text": "now", "transient": true}); got["online_devices"] != float64(1) {
				t.Fatalf("transient push = %v; want online_devices 1", got)
			}
			if m := waitPush(t, dev, body("now")); m.Seq != 0 {
				t.Fatalf("transient push arrived as %v; want seq 0", m)
			}
			ok("message.broadcast", map[string]any{"text": "everyone"})
			if m := waitPush(t, dev, body("everyone")); m.Seq != 0 {
				t.Fatalf("broadcast arrived as %v; want seq 0", m)
			}
			hist := ok("history.fetch", map[string]any{"user": a, "limit": 1000})
			if !strings.Contains(jsonOf(hist), pushed["msg_id"].(string)) || strings.Contains(jsonOf(hist), "everyone") {
				t.Fatalf("history.fetch = %s; want the stored push and not the transient ones", jsonOf(hist))
			}
			ok("message.push_room", map[string]any{"room_id": p + "lobby", "text": "welcome"})
			call("message.push", map[string]any{"users": []string{a}, "text": "x", "body_base64": "eA=="}, http.StatusBadRequest)
			call("message.push", map[string]any{"users": []string{}, "text": "x"}, http.StatusBadRequest)
			call("message.push", map[string]any{"users": []string{"bad id"}, "text": "x"}, http.StatusBadRequest)
			if got := ok("device.disconnect", map[string]any{"user": a, "device": "phone"}); got["disconnected"] != float64(1) {
				t.Fatalf("device.disconnect = %v", got)
			}
			if e := dev.expectClose(); e.GetCode() != wirepb.ErrorCode_ERROR_CODE_DISCONNECTED {
				t.Fatalf("disconnected device got %v; want DISCONNECTED", e)
			}
		})
	}
}

// TestAPIOff: with a production secret and no API key, the HTTP and NATS
// API are not served.
func TestAPIOff(t *testing.T) {
	n := startNode(t, "", "")
	code, _ := apiPost(t, n, "anything", "presence.get", []byte(`{"users":["a"]}`))
	if code != http.StatusNotFound {
		t.Fatalf("HTTP API without --api-key = %d; want 404", code)
	}
}

// waitPush returns the next Push on c that match accepts, skipping others.
func waitPush(t testing.TB, c *rawConn, match func(*wirepb.Message) bool) *wirepb.Message {
	t.Helper()
	for range 100 {
		if m := nextPush(t, c); t.Failed() || match(m) {
			return m
		}
	}
	t.Fatal("no matching push in 100")
	return nil
}

// TestEvents: sends, group changes, friend changes and devices coming and
// going are published on im.evt.> as JSON.
func TestEvents(t *testing.T) {
	n := startNode(t, "", "", withAPIKey)
	nc, err := nats.Connect(n.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	evs := make(chan *nats.Msg, 64)
	if _, err := nc.ChanSubscribe("im.evt.>", evs); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	next := func(subject, typ string) map[string]any {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case m := <-evs:
				var ev map[string]any
				if err := json.Unmarshal(m.Data, &ev); err != nil {
					t.Fatalf("event on %s is not JSON: %q", m.Subject, m.Data)
				}
				if m.Subject == subject && ev["type"] == typ {
					return ev
				}
			case <-timeout:
				t.Fatalf("no %s event on %s", typ, subject)
			}
		}
	}
	c := dialRaw(t, n.TCPAddr())
	c.signIn("eve", "laptop")
	if ev := next("im.evt.device.eve", "device.online"); ev["device_id"] != "laptop" || ev["edge_id"] == "" {
		t.Fatalf("device.online = %v", ev)
	}
	ack := c.sendText("frank", "e1", "hi frank").GetSendAck()
	if ev := next("im.evt.message.eve", "message.created"); ev["msg_id"] != ack.GetMsgId() || ev["to"].(map[string]any)["id"] != "frank" || ev["recipients"] != float64(1) {
		t.Fatalf("message.created = %v; want %s to frank", ev, ack.GetMsgId())
	}
	apiOK(t, n, "group.create", map[string]any{"group_id": "evg", "name": "E", "owner": "eve", "members": []string{"frank"}}, nil)
	if ev := next("im.evt.group.evg", "group.created"); len(ev["users"].([]any)) != 2 {
		t.Fatalf("group.created = %v", ev)
	}
	c.callOK("friend.request", map[string]any{"peer": "frank"})
	next("im.evt.friend.eve", "friend.requested")
	c.c.Close()
	next("im.evt.device.eve", "device.offline")
}
