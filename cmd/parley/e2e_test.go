package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/cmd/parleyd/node"
)

// startServer runs parleyd for t and returns a context for the test, the
// node, and a function that runs the CLI against it with stdin and returns
// its stdout and exit code.
func startServer(t *testing.T) (context.Context, *node.Node, func(stdin string, args ...string) (string, int)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	n, err := node.Start(ctx, node.Config{
		DataDir: t.TempDir(), NATSListen: "127.0.0.1:0", TCPListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0",
		Secret: "cli-test-secret", Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	cli := func(stdin string, args ...string) (string, int) {
		var out, errb bytes.Buffer
		e := env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
			getenv: func(string) string { return "" }, hostname: os.Hostname}
		code := run(ctx, append(args, "--addr", "tcp://"+n.TCPAddr().String(), "--secret", "cli-test-secret"), e)
		if code != 0 {
			t.Logf("parley %v: exit %d, stderr: %s", args, code, errb.String())
		}
		return out.String(), code
	}
	return ctx, n, cli
}

// TestCLIAgainstServer runs send and sync against a real parleyd and checks
// the JSON-lines output.
func TestCLIAgainstServer(t *testing.T) {
	_, _, cli := startServer(t)
	out, code := cli("", "send", "--user", "alice", "--to", "bob", "--text", "hello bob", "--json")
	if code != 0 || !strings.Contains(out, `"type":"ack"`) {
		t.Fatalf("send: exit %d, output %q", code, out)
	}
	if _, code := cli("line one\nline two\n", "send", "--user", "alice", "--to", "bob"); code != 0 {
		t.Fatalf("send from stdin: exit %d", code)
	}
	// A SendAck means durable on its way to bob, not yet in his mailbox:
	// sync until the last message is there.
	var texts []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, code = cli("", "sync", "--user", "bob", "--json")
		if code != 0 {
			t.Fatalf("sync: exit %d", code)
		}
		texts = texts[:0]
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var m struct {
				Type, From, Text string
				Seq              uint64
			}
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("sync output line %q: %v", l, err)
			}
			if m.Type != "message" || m.From != "alice" || m.Seq != uint64(len(texts)+1) {
				t.Fatalf("sync line %q: want message %d from alice", l, len(texts)+1)
			}
			texts = append(texts, m.Text)
		}
		if len(texts) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := strings.Join(texts, "|"); got != "hello bob|line one|line two" {
		t.Errorf("bob synced %q; want hello bob|line one|line two", got)
	}
	if _, code := cli("", "send", "--user", "not valid!", "--to", "bob", "--text", "x"); code == 0 {
		t.Error("send as an invalid user: exit 0; want failure")
	}
}

// TestCLIGroupsAndRooms: the CLI creates a group, sends to it, manages
// friends, and chats in a room, against a real parleyd.
func TestCLIGroupsAndRooms(t *testing.T) {
	ctx, n, cli := startServer(t)
	must := func(stdin string, args ...string) string {
		t.Helper()
		out, code := cli(stdin, args...)
		if code != 0 {
			t.Fatalf("parley %v: exit %d", args, code)
		}
		return out
	}

	gid := strings.TrimSpace(must("", "group", "create", "Crew", "--id", "crew", "--members", "bob,carol", "--user", "alice"))
	if gid != "crew" {
		t.Fatalf("group create printed %q; want crew", gid)
	}
	if out := must("", "group", "members", "crew", "--user", "bob", "--json"); !strings.Contains(out, `"role":"owner"`) || !strings.Contains(out, "carol") {
		t.Fatalf("group members: %q", out)
	}
	must("", "send", "--user", "alice", "--group", "crew", "--text", "hello crew")
	if _, code := cli("", "send", "--user", "mallory", "--group", "crew", "--text", "hi"); code == 0 {
		t.Fatal("a non-member's group send: exit 0; want failure")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out := must("", "sync", "--user", "carol", "--json")
		if strings.Contains(out, "hello crew") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("carol's sync = %q; want the group message", out)
		}
	}
	if out := must("", "group", "list", "--user", "carol"); !strings.Contains(out, "crew") {
		t.Fatalf("group list: %q", out)
	}

	must("", "friend", "request", "bob", "--user", "alice", "--message", "hi")
	must("", "friend", "accept", "alice", "--user", "bob")
	if out := must("", "friend", "list", "--user", "alice", "--json"); !strings.Contains(out, `"friend"`) {
		t.Fatalf("friend list: %q", out)
	}

	// Room chat: bob waits in the room; alice says two lines; bob sees them.
	bobOut := make(chan string, 1)
	bobIn, bobInW := io.Pipe()
	go func() {
		var out, errb bytes.Buffer
		e := env{stdin: bobIn, stdout: &out, stderr: &errb, getenv: func(string) string { return "" }, hostname: os.Hostname}
		// --replay: whether bob joins before or after alice speaks, he sees it all.
		run(ctx, []string{"room", "lobby", "--user", "bob", "--json", "--replay", "20", "--addr", "tcp://" + n.TCPAddr().String(), "--secret", "cli-test-secret"}, e)
		bobOut <- out.String()
	}()
	time.Sleep(200 * time.Millisecond) // bob joins (usually) before alice speaks
	must("first\nsecond\n", "room", "lobby", "--user", "alice")
	time.Sleep(500 * time.Millisecond)
	bobInW.Close()
	got := <-bobOut
	if !strings.Contains(got, "first") || !strings.Contains(got, "second") {
		t.Fatalf("bob's room output = %q; want alice's two lines", got)
	}
	// A late joiner replays them.
	if out := must("", "room", "lobby", "--user", "carol", "--replay", "5", "--json"); !strings.Contains(out, "second") {
		t.Fatalf("late joiner's replay = %q", out)
	}
}
