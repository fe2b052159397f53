package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/cmd/parleyd/node"
)

// TestCLIAgainstServer runs send and sync against a real parleyd and checks
// the JSON-lines output.
func TestCLIAgainstServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
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
	out, code := cli("", "send", "--user", "alice", "--to", "bob", "--text", "hello bob", "--json")
	if code != 0 || !strings.Contains(out, `"type":"ack"`) {
		t.Fatalf("send: exit %d, output %q", code, out)
	}
	if _, code := cli("line one\nline two\n", "send", "--user", "alice", "--to", "bob"); code != 0 {
		t.Fatalf("send from stdin: exit %d", code)
	}
	out, code = cli("", "sync", "--user", "bob", "--json")
	if code != 0 {
		t.Fatalf("sync: exit %d", code)
	}
	var texts []string
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
	if got := strings.Join(texts, "|"); got != "hello bob|line one|line two" {
		t.Errorf("bob synced %q; want hello bob|line one|line two", got)
	}
	if _, code := cli("", "send", "--user", "not valid!", "--to", "bob", "--text", "x"); code == 0 {
		t.Error("send as an invalid user: exit 0; want failure")
	}
}
