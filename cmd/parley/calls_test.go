package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/schemas/wirepb"
)

// paramsJSON is how the call's params go on the wire.
func paramsJSON(t *testing.T, p map[string]any) string {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseCalls(t *testing.T) {
	conn := []string{"--user", "alice"}
	tests := []struct {
		name       string
		cmd        string // group or friend
		args       []string
		wantCmd    string
		wantMethod string
		wantParams string
		wantErr    error
	}{
		{"group create", "group", []string{"create", "team"}, "group create", "group.create", `{"members":[],"name":"team"}`, nil},
		{"group create with id and members", "group", []string{"create", "Team A", "--id", "g1", "--members", "bob, carol,,dave"},
			"group create", "group.create", `{"group_id":"g1","members":["bob","carol","dave"],"name":"Team A"}`, nil},
		{"group add", "group", []string{"add", "g1", "bob", "carol"}, "group add", "group.members.add", `{"group_id":"g1","users":["bob","carol"]}`, nil},
		{"group remove", "group", []string{"remove", "g1", "bob"}, "group remove", "group.members.remove", `{"group_id":"g1","users":["bob"]}`, nil},
		{"group members", "group", []string{"members", "g1"}, "group members", "group.members.list", `{"group_id":"g1"}`, nil},
		{"group list", "group", []string{"list"}, "group list", "user.groups", `{}`, nil},
		{"group leave", "group", []string{"leave", "g1"}, "group leave", "group.leave", `{"group_id":"g1"}`, nil},
		{"friend request", "friend", []string{"request", "bob", "--message", "hi, it's alice"}, "friend request", "friend.request", `{"message":"hi, it's alice","peer":"bob"}`, nil},
		{"friend request without message", "friend", []string{"request", "bob"}, "friend request", "friend.request", `{"message":"","peer":"bob"}`, nil},
		{"friend accept", "friend", []string{"accept", "bob"}, "friend accept", "friend.accept", `{"peer":"bob"}`, nil},
		{"friend decline", "friend", []string{"decline", "bob"}, "friend decline", "friend.decline", `{"peer":"bob"}`, nil},
		{"friend delete", "friend", []string{"delete", "bob"}, "friend delete", "friend.delete", `{"peer":"bob"}`, nil},
		{"friend list", "friend", []string{"list"}, "friend list", "friend.list", `{}`, nil},
		{"friend block", "friend", []string{"block", "bob"}, "friend block", "block.add", `{"peer":"bob"}`, nil},
		{"friend unblock", "friend", []string{"unblock", "bob"}, "friend unblock", "block.remove", `{"peer":"bob"}`, nil},
		{"friend blocked", "friend", []string{"blocked"}, "friend blocked", "block.list", `{}`, nil},

		{"group no subcommand", "group", nil, "", "", "", &usageError{}},
		{"group unknown subcommand", "group", []string{"rename", "g1"}, "", "", "", &usageError{}},
		{"group help", "group", []string{"help"}, "", "", "", errHelpShown},
		{"group create help", "group", []string{"create", "-h"}, "", "", "", errHelpShown},
		{"group create no name", "group", []string{"create"}, "", "", "", &usageError{}},
		{"group create two names", "group", []string{"create", "a", "b"}, "", "", "", &usageError{}},
		{"group create blank name", "group", []string{"create", "  "}, "", "", "", &usageError{}},
		{"group create bad id", "group", []string{"create", "t", "--id", "g 1"}, "", "", "", &usageError{}},
		{"group create bad member", "group", []string{"create", "t", "--members", "bob,c/d"}, "", "", "", &usageError{}},
		{"group add no users", "group", []string{"add", "g1"}, "", "", "", &usageError{}},
		{"group add bad user", "group", []string{"add", "g1", "b b"}, "", "", "", &usageError{}},
		{"group members no id", "group", []string{"members"}, "", "", "", &usageError{}},
		{"group leave two ids", "group", []string{"leave", "g1", "g2"}, "", "", "", &usageError{}},
		{"group list extra", "group", []string{"list", "x"}, "", "", "", &usageError{}},
		{"group add --id not a flag there", "group", []string{"add", "g1", "bob", "--id", "x"}, "", "", "", errFlagsReported},
		{"friend no peer", "friend", []string{"accept"}, "", "", "", &usageError{}},
		{"friend bad peer", "friend", []string{"block", "x y"}, "", "", "", &usageError{}},
		{"friend message only on request", "friend", []string{"accept", "bob", "--message", "x"}, "", "", "", errFlagsReported},
		{"friend unknown", "friend", []string{"poke", "bob"}, "", "", "", &usageError{}},
		{"friend list extra", "friend", []string{"list", "bob"}, "", "", "", &usageError{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _, _ := testEnv(nil, "h")
			args := append(append([]string(nil), tc.args...), conn...)
			if tc.args == nil {
				args = nil
			}
			var o callOpts
			var err error
			if tc.cmd == "group" {
				o, err = parseGroup(args, e)
			} else {
				o, err = parseFriend(args, e)
			}
			if !sameErr(err, tc.wantErr) {
				t.Fatalf("parse %s %q error = %v; want %v", tc.cmd, args, err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if got := paramsJSON(t, o.params); o.cmd != tc.wantCmd || o.method != tc.wantMethod || got != tc.wantParams {
				t.Errorf("parse %s %q = %q %s %s; want %q %s %s", tc.cmd, args, o.cmd, o.method, got, tc.wantCmd, tc.wantMethod, tc.wantParams)
			}
			if o.conn.user != "alice" || o.timeout != 30*time.Second {
				t.Errorf("parse %s %q: user %q, timeout %v; want alice, 30s", tc.cmd, args, o.conn.user, o.timeout)
			}
		})
	}
}

func TestParseCallConnFlags(t *testing.T) {
	e, _, _ := testEnv(nil, "h")
	o, err := parseGroup([]string{"members", "--json", "--addr", "ws://x:1/ws", "g1", "--user", "bob", "--timeout", "5s"}, e)
	if err != nil {
		t.Fatalf("parseGroup error: %v", err)
	}
	if !o.conn.json || o.conn.addr != "ws://x:1/ws" || o.conn.user != "bob" || o.timeout != 5*time.Second || o.params["group_id"] != "g1" {
		t.Errorf("parseGroup = %+v; want json, ws://x:1/ws, bob, 5s, g1", o)
	}
	for _, args := range [][]string{
		{"list"}, // no user
		{"list", "--user", "a", "--timeout", "-1s"}, // negative timeout
		{"--user", "a", "list"},                     // flags before the subcommand
	} {
		if _, err := parseGroup(args, e); !sameErr(err, &usageError{}) {
			t.Errorf("parseGroup(%q) error = %v; want a usage error", args, err)
		}
	}
}

func TestParseRoom(t *testing.T) {
	tests := []struct {
		args       []string
		wantRoom   string
		wantReplay int
		wantErr    error
	}{
		{[]string{"lobby", "--user", "a"}, "lobby", 20, nil},
		{[]string{"--user", "a", "--replay", "0", "lobby"}, "lobby", 0, nil},
		{[]string{"lobby", "--user", "a", "--replay", "100", "--json"}, "lobby", 100, nil},
		{[]string{"--user", "a"}, "", 0, &usageError{}},
		{[]string{"a", "b", "--user", "a"}, "", 0, &usageError{}},
		{[]string{"bad room", "--user", "a"}, "", 0, &usageError{}},
		{[]string{"lobby", "--user", "a", "--replay", "-1"}, "", 0, &usageError{}},
		{[]string{"lobby"}, "", 0, &usageError{}},
		{[]string{"lobby", "--user", "a", "--replay", "x"}, "", 0, errFlagsReported},
		{[]string{"-h"}, "", 0, errHelpShown},
	}
	for _, tc := range tests {
		e, _, _ := testEnv(nil, "h")
		got, err := parseRoom(tc.args, e)
		if !sameErr(err, tc.wantErr) {
			t.Errorf("parseRoom(%q) error = %v; want %v", tc.args, err, tc.wantErr)
			continue
		}
		if err == nil && (got.room != tc.wantRoom || got.replay != tc.wantReplay) {
			t.Errorf("parseRoom(%q) = room %q replay %d; want %q %d", tc.args, got.room, got.replay, tc.wantRoom, tc.wantReplay)
		}
	}
}

func TestParseTargets(t *testing.T) {
	tests := []struct {
		cmd       string
		args      []string
		wantTo    string
		wantGroup string
		wantErr   error
	}{
		{"send", []string{"--user", "a", "--group", "g1", "--text", "hi"}, "", "g1", nil},
		{"send", []string{"--user", "a", "--to", "b"}, "b", "", nil},
		{"send", []string{"--user", "a", "--to", "b", "--group", "g1"}, "", "", &usageError{}},
		{"send", []string{"--user", "a", "--group", "g 1"}, "", "", &usageError{}},
		{"send", []string{"--user", "a"}, "", "", &usageError{}},
		{"chat", []string{"--user", "a", "--group", "g1"}, "", "g1", nil},
		{"chat", []string{"--user", "a", "--to", "b", "--group", "g1"}, "", "", &usageError{}},
		{"chat", []string{"--user", "a", "--to", "b/c"}, "", "", &usageError{}},
	}
	for _, tc := range tests {
		e, _, _ := testEnv(nil, "h")
		var to, group string
		var err error
		if tc.cmd == "send" {
			var o sendOpts
			o, err = parseSend(tc.args, e)
			to, group = o.to, o.group
		} else {
			var o chatOpts
			o, err = parseChat(tc.args, e)
			to, group = o.to, o.group
		}
		if !sameErr(err, tc.wantErr) {
			t.Errorf("parse %s %q error = %v; want %v", tc.cmd, tc.args, err, tc.wantErr)
			continue
		}
		if err == nil && (to != tc.wantTo || group != tc.wantGroup) {
			t.Errorf("parse %s %q = to %q group %q; want %q %q", tc.cmd, tc.args, to, group, tc.wantTo, tc.wantGroup)
		}
	}
}

func TestRunCallUsage(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"group help", []string{"group", "help"}, exitOK, "group create <name>", ""},
		{"friend -h", []string{"friend", "-h"}, exitOK, "friend block <peer>", ""},
		{"group create -h", []string{"group", "create", "-h"}, exitOK, "", "-members users"},
		{"friend request -h", []string{"friend", "request", "-h"}, exitOK, "", "-message text"},
		{"room -h", []string{"room", "-h"}, exitOK, "", "-replay int"},
		{"group missing", []string{"group"}, exitUsage, "", "missing subcommand"},
		{"group unknown", []string{"group", "nope"}, exitUsage, "", `unknown subcommand "nope"`},
		{"friend no peer", []string{"friend", "accept", "--user", "a"}, exitUsage, "", "friend accept: want 1 arguments"},
		{"room no id", []string{"room", "--user", "a"}, exitUsage, "", "want exactly one room id"},
		{"group unreachable", []string{"group", "list", "--user", "a", "--addr", "127.0.0.1:1"}, exitError, "", "connection refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, out, errb := testEnv(nil, "h")
			got := run(context.Background(), tc.args, e)
			if got != tc.wantCode || !strings.Contains(out.String(), tc.wantStdout) || !strings.Contains(errb.String(), tc.wantStderr) {
				t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d, stdout containing %q, stderr containing %q",
					tc.args, got, out.String(), errb.String(), tc.wantCode, tc.wantStdout, tc.wantStderr)
			}
		})
	}
}

func TestCallError(t *testing.T) {
	o := callOpts{cmd: "group add", method: "group.members.add", timeout: time.Second}
	ctx := context.Background()
	refused := &client.Error{Code: wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, Message: "only the owner adds members"}
	err := callError(ctx, o, refused)
	if got, want := err.Error(), "group add: permission_denied: only the owner adds members"; got != want {
		t.Errorf("callError(refused) = %q; want %q", got, want)
	}
	if !errors.Is(err, &client.Error{Code: wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED}) {
		t.Errorf("callError(refused) does not wrap the *client.Error")
	}
	old := callError(ctx, o, &client.Error{Code: wirepb.ErrorCode_ERROR_CODE_UNKNOWN_FRAME})
	if !strings.Contains(old.Error(), "older than this CLI") {
		t.Errorf("callError(UNKNOWN_FRAME) = %q; want a hint about an old server", old)
	}
	if got := callError(ctx, o, client.ErrDisconnected).Error(); !strings.Contains(got, "may or may not have done it") {
		t.Errorf("callError(disconnected) = %q; want it to say the outcome is unknown", got)
	}
}
