package client

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/parleyim/parley/schemas/wirepb"
)

func TestCall(t *testing.T) {
	s := newFakeServer(t, func(s *fakeServer) {
		s.onCall = func(c *wirepb.Call) (string, *wirepb.Error, bool) {
			switch c.GetMethod() {
			case "group.create":
				return `{"group":{"group_id":"g1","name":"team","owner":"alice","created_at_ms":5}}`, nil, false
			case "friend.request":
				return "", &wirepb.Error{Code: wirepb.ErrorCode_ERROR_CODE_BLOCKED, Message: "blocked by peer"}, false
			case "group.leave":
				return "", nil, false // an empty result
			case "bad.result":
				return `{"group":`, nil, false
			case "kill":
				return "", nil, true
			}
			return "{}", nil, false
		}
	})
	alice := dialT(t, s.tcpURL, "alice", "a1")

	type group struct {
		GroupID     string `json:"group_id"`
		Name        string `json:"name"`
		Owner       string `json:"owner"`
		CreatedAtMs int64  `json:"created_at_ms"`
	}
	var res struct {
		Group group `json:"group"`
	}
	params := map[string]any{"name": "team", "members": []string{"bob"}}
	if err := alice.Call(testCtx(t), "group.create", params, &res); err != nil {
		t.Fatalf("Call(group.create) error: %v", err)
	}
	if want := (group{GroupID: "g1", Name: "team", Owner: "alice", CreatedAtMs: 5}); res.Group != want {
		t.Errorf("Call(group.create) result = %+v; want %+v", res.Group, want)
	}

	if err := alice.Call(testCtx(t), "group.leave", nil, &res); err != nil {
		t.Errorf("Call with an empty result error: %v", err)
	}
	if err := alice.Call(testCtx(t), "user.groups", nil, nil); err != nil {
		t.Errorf("Call with a nil result error: %v", err)
	}

	err := alice.Call(testCtx(t), "friend.request", map[string]string{"peer": "bob"}, nil)
	var e *Error
	if !errors.As(err, &e) || e.Code != wirepb.ErrorCode_ERROR_CODE_BLOCKED || e.Message != "blocked by peer" {
		t.Errorf("Call(friend.request) error = %v; want *Error BLOCKED", err)
	}

	if err := alice.Call(testCtx(t), "bad.result", nil, &res); err == nil || errors.As(err, &e) {
		t.Errorf("Call with a malformed result error = %v; want a decode error", err)
	}
	if err := alice.Call(testCtx(t), "group.create", func() {}, nil); err == nil {
		t.Error("Call with unmarshalable params: no error")
	}
	if err := alice.Call(testCtx(t), "", nil, nil); err == nil {
		t.Error("Call without a method: no error")
	}

	calls := s.callsSeen()
	if len(calls) != 5 {
		t.Fatalf("server saw %d calls; want 5", len(calls))
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(calls[0].GetParamsJson()), &got); err != nil || got["name"] != "team" {
		t.Errorf("group.create params_json = %q; want the params as JSON", calls[0].GetParamsJson())
	}
	if pj := calls[1].GetParamsJson(); pj != "" {
		t.Errorf("params_json for nil params = %q; want empty", pj)
	}
}

func TestCallNotRetried(t *testing.T) {
	s := newFakeServer(t, func(s *fakeServer) {
		s.onCall = func(c *wirepb.Call) (string, *wirepb.Error, bool) {
			return "{}", nil, c.GetMethod() == "kill"
		}
	})
	alice := dialT(t, s.tcpURL, "alice", "a1")
	err := alice.Call(testCtx(t), "kill", map[string]string{"group_id": "g1"}, nil)
	if !errors.Is(err, ErrDisconnected) {
		t.Fatalf("Call cut by a disconnect error = %v; want ErrDisconnected", err)
	}
	waitSignIns(t, s, "alice", "a1", 2)
	if err := alice.Call(testCtx(t), "ok", nil, nil); err != nil {
		t.Fatalf("Call after the reconnect error: %v", err)
	}
	var kills int
	for _, c := range s.callsSeen() {
		if c.GetMethod() == "kill" {
			kills++
		}
	}
	if kills != 1 {
		t.Errorf("server saw the call %d times; want 1 (no retry)", kills)
	}
}
