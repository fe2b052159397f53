package node

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/schemas/wirepb"
)

// callFrame runs a Call over c and returns the reply (CallResult or Error),
// skipping pushes.
func (r *rawConn) call(method string, params any) *wirepb.Frame {
	r.t.Helper()
	b, _ := json.Marshal(params)
	r.send(&wirepb.Frame{Id: 42, Body: &wirepb.Frame_Call{Call: &wirepb.Call{Method: method, ParamsJson: string(b)}}})
	for {
		f := r.mustRead()
		if f.GetPush() == nil {
			return f
		}
	}
}

func (r *rawConn) callOK(method string, params any) string {
	r.t.Helper()
	f := r.call(method, params)
	res := f.GetCallResult()
	if res == nil {
		r.t.Fatalf("%s: got %v; want CallResult", method, f)
	}
	return res.ResultJson
}

func (r *rawConn) callErr(method string, params any, want wirepb.ErrorCode) {
	r.t.Helper()
	if f := r.call(method, params); f.GetError().GetCode() != want {
		r.t.Fatalf("%s: got %v; want error %v", method, f, want)
	}
}

// sendText sends a 1:1 text and returns the reply, skipping pushes.
func (r *rawConn) sendText(to, cmid, text string) *wirepb.Frame {
	r.t.Helper()
	r.send(&wirepb.Frame{Id: 5, Body: &wirepb.Frame_Send{Send: &wirepb.Send{
		To:          &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_USER, Id: to},
		ClientMsgId: cmid, ContentType: wirepb.ContentType_CONTENT_TYPE_TEXT, Body: []byte(text),
	}}})
	for {
		f := r.mustRead()
		if f.GetPush() == nil {
			return f
		}
	}
}

// TestBlocksOverTheConnection: a user blocks another with a Call; the
// blocked user's 1:1 messages are refused with BLOCKED until unblocked.
func TestBlocksOverTheConnection(t *testing.T) {
	n := startNode(t, "", "")
	ann, ben := dialRaw(t, n.TCPAddr()), dialRaw(t, n.TCPAddr())
	ann.signIn("ann", "d")
	ben.signIn("ben", "d")
	if f := ben.sendText("ann", "1", "hi"); f.GetSendAck() == nil {
		t.Fatalf("before the block: %v", f)
	}
	ann.callOK("block.add", map[string]any{"peer": "ben"})
	if f := ben.sendText("ann", "2", "hello?"); f.GetError().GetCode() != wirepb.ErrorCode_ERROR_CODE_BLOCKED {
		t.Fatalf("blocked send: %v; want BLOCKED", f)
	}
	if got := ann.callOK("block.list", nil); got != `{"blocked":["ben"]}` {
		t.Fatalf("block.list = %s", got)
	}
	ben.callErr("friend.request", map[string]any{"peer": "ann"}, wirepb.ErrorCode_ERROR_CODE_BLOCKED)
	ann.callOK("block.remove", map[string]any{"peer": "ben"})
	if f := ben.sendText("ann", "3", "again"); f.GetSendAck() == nil {
		t.Fatalf("after unblock: %v", f)
	}
	// ann may still write to ben: a block is one-way.
	ann.callOK("block.add", map[string]any{"peer": "ben"})
	if f := ann.sendText("ben", "4", "I blocked you"); f.GetSendAck() == nil {
		t.Fatalf("blocker's own send: %v", f)
	}
}

// TestFriendshipRequired: with --require-friendship, 1:1 messages flow only
// between friends; a request lands in the peer's mailbox as a system
// message, and accepting it opens the conversation both ways.
func TestFriendshipRequired(t *testing.T) {
	n := startNode(t, "", "", func(c *Config) { c.RequireFriendship = true })
	kim, lee := dialRaw(t, n.TCPAddr()), dialRaw(t, n.TCPAddr())
	kim.signIn("kim", "d")
	lee.signIn("lee", "d")
	if f := kim.sendText("lee", "1", "hi"); f.GetError().GetCode() != wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED {
		t.Fatalf("send to a stranger: %v; want PERMISSION_DENIED", f)
	}
	if got := kim.callOK("friend.request", map[string]any{"peer": "lee", "message": "it's kim"}); got != `{"state":"requested"}` {
		t.Fatalf("friend.request = %s", got)
	}
	note := nextPush(t, lee)
	if note.ContentType != wirepb.ContentType_CONTENT_TYPE_SYSTEM || note.FromUser != "kim" || !strings.Contains(string(note.Body), "friend_request") {
		t.Fatalf("lee got %v; want the friend_request system message", note)
	}
	lee.callErr("friend.accept", map[string]any{"peer": "nobody"}, wirepb.ErrorCode_ERROR_CODE_NOT_FOUND)
	lee.callOK("friend.accept", map[string]any{"peer": "kim"})
	if f := kim.sendText("lee", "2", "hi friend"); f.GetSendAck() == nil {
		t.Fatalf("send to a friend: %v", f)
	}
	if f := lee.sendText("kim", "3", "hi back"); f.GetSendAck() == nil {
		t.Fatalf("send back: %v", f)
	}
	kim.callOK("friend.delete", map[string]any{"peer": "lee"})
	if f := lee.sendText("kim", "4", "still there?"); f.GetError().GetCode() != wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED {
		t.Fatalf("send after unfriending: %v; want PERMISSION_DENIED", f)
	}
}

// TestGroupRolesOverTheConnection: a user creates a group with a Call and
// owns it; members may not manage it; the owner can make an admin, who can.
func TestGroupRolesOverTheConnection(t *testing.T) {
	n := startNode(t, "", "")
	own, mem := dialRaw(t, n.TCPAddr()), dialRaw(t, n.TCPAddr())
	own.signIn("own", "d")
	mem.signIn("mem", "d")
	res := own.callOK("group.create", map[string]any{"name": "Club", "members": []string{"mem"}})
	var created struct {
		Group struct{ GroupID, Owner string } `json:"group"`
	}
	if err := json.Unmarshal([]byte(strings.ReplaceAll(strings.ReplaceAll(res, "group_id", "GroupID"), "owner", "Owner")), &created); err != nil || created.Group.Owner != "own" || created.Group.GroupID == "" {
		t.Fatalf("group.create = %s; want a generated id owned by the caller", res)
	}
	gid := created.Group.GroupID
	own.callErr("group.create", map[string]any{"name": "X", "owner": "mem"}, wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED)
	mem.callErr("group.members.add", map[string]any{"group_id": gid, "users": []string{"x"}}, wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED)
	mem.callErr("group.dissolve", map[string]any{"group_id": gid}, wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED)
	own.callOK("group.members.role", map[string]any{"group_id": gid, "user": "mem", "role": "admin"})
	mem.callOK("group.members.add", map[string]any{"group_id": gid, "users": []string{"new1"}})
	mem.callErr("group.members.mute", map[string]any{"group_id": gid, "user": "own", "seconds": 60}, wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED)
	mem.callOK("group.members.mute", map[string]any{"group_id": gid, "user": "new1", "seconds": 60})
	muted := dialRaw(t, n.TCPAddr())
	muted.signIn("new1", "d")
	muted.send(groupSend(gid, "m", "can I talk?"))
	for {
		f := muted.mustRead()
		if f.GetPush() != nil {
			continue
		}
		if e := f.GetError(); e.GetCode() != wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED || !strings.Contains(e.Message, "muted") {
			t.Fatalf("muted member's send: %v; want PERMISSION_DENIED (muted)", f)
		}
		break
	}
	outsider := dialRaw(t, n.TCPAddr())
	outsider.signIn("outsider", "d")
	outsider.callErr("group.members.list", map[string]any{"group_id": gid}, wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED)
	if got := mem.callOK("user.groups", nil); !strings.Contains(got, gid) {
		t.Fatalf("user.groups = %s", got)
	}
	mem.callOK("group.leave", map[string]any{"group_id": gid})
	own.callOK("group.dissolve", map[string]any{"group_id": gid})
}

// TestRateLimits: a user over --send-rate gets RATE_LIMITED (and may retry
// the same message later); an edge over --signin-rate turns sign-ins away
// with RATE_LIMITED. Loops run until the limit shows, so a slow machine
// (tokens refilling meanwhile) cannot make the test pass or fail by luck.
func TestRateLimits(t *testing.T) {
	n := startNode(t, "", "", func(c *Config) {
		c.SendRate, c.SendBurst = 1, 5
		c.SignInRate, c.SignInBurst = 0.2, 4
	})
	c := dialRaw(t, n.TCPAddr())
	c.signIn("rita", "d")
	limited := -1
	for i := 0; i < 50 && limited < 0; i++ {
		f := c.sendText("sam", fmt.Sprint("m", i), "hi")
		switch {
		case f.GetSendAck() != nil:
		case f.GetError().GetCode() == wirepb.ErrorCode_ERROR_CODE_RATE_LIMITED && f.GetError().Temporary:
			limited = i
		default:
			t.Fatalf("send %d: %v", i, f)
		}
	}
	if limited < 5 {
		t.Fatalf("first refused send = %d; want the burst of 5 through, then RATE_LIMITED", limited)
	}
	time.Sleep(1100 * time.Millisecond) // a token back
	if f := c.sendText("sam", fmt.Sprint("m", limited), "hi"); f.GetSendAck() == nil {
		t.Fatalf("retry after a pause: %v", f)
	}

	// Room sends (served by the edge, not the actor) have the same limit.
	rc := dialRaw(t, n.TCPAddr())
	rc.signIn("rory", "d")
	rc.joinRoom("limits", 0)
	roomLimited := -1
	for i := 0; i < 50 && roomLimited < 0; i++ {
		rc.send(roomSend("limits", fmt.Sprint("r", i), "hi"))
		f := rc.mustRead()
		for f.GetRoomMessage() != nil {
			f = rc.mustRead()
		}
		switch {
		case f.GetSendAck() != nil:
		case f.GetError().GetCode() == wirepb.ErrorCode_ERROR_CODE_RATE_LIMITED:
			roomLimited = i
		default:
			t.Fatalf("room send %d: %v", i, f)
		}
	}
	if roomLimited < 5 {
		t.Fatalf("first refused room send = %d; want the burst of 5 through, then RATE_LIMITED", roomLimited)
	}

	for i := range 20 {
		d := dialRaw(t, n.TCPAddr())
		d.send(&wirepb.Frame{Id: 1, Body: &wirepb.Frame_SignIn{SignIn: &wirepb.SignIn{Token: token(t, fmt.Sprint("u", i)), DeviceId: "d"}}})
		f := d.mustRead()
		if f.GetSignInOk() != nil {
			continue
		}
		if e := f.GetError(); e.GetCode() != wirepb.ErrorCode_ERROR_CODE_RATE_LIMITED || i < 2 {
			t.Fatalf("sign-in %d: %v; want RATE_LIMITED once the burst of 4 is used", i, f)
		}
		return
	}
	t.Fatal("20 sign-ins at once on an edge limited to 0.2/s (burst 4): none refused")
}
