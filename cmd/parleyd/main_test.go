package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/edge/auth"
	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/mysqlstore/mysqltest"
)

// The test binary doubles as parleyd: a child started with this variable
// set runs main with the arguments after "--".
const asServer = "PARLEYD_TEST_AS_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(asServer) == "1" {
		args := os.Args[1:]
		for i, a := range args {
			if a == "--" {
				args = args[i+1:]
				break
			}
		}
		if err := run(args); err != nil {
			fmt.Fprintln(os.Stderr, "parleyd:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const procSecret = "proc-test-secret"

// proc is a parleyd child process.
type proc struct {
	cmd  *exec.Cmd
	tcp  string
	done chan error
}

// startProc runs parleyd on dataDir (and store, if set) on random ports and
// waits for its "parleyd ready" log line.
func startProc(t *testing.T, dataDir, store string) *proc {
	t.Helper()
	args := []string{"-test.run=^$", "--", "--data-dir", dataDir, "--secret", procSecret,
		"--nats-listen", "127.0.0.1:0", "--tcp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
		"--log-format", "json"}
	if store != "" {
		args = append(args, "--store", store)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asServer+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1)}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "parleyd ready" && !sent {
				ready <- fmt.Sprint(rec["tcp"])
				sent = true
			}
			if lvl, _ := rec["level"].(string); lvl == "ERROR" {
				t.Logf("parleyd: %s", line)
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case p.tcp = <-ready:
		return p
	case err := <-p.done:
		t.Fatalf("parleyd exited before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("parleyd not ready in 30s")
	}
	return nil
}

// stop sends sig and waits for the process to exit.
func (p *proc) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if sig == syscall.SIGTERM && err != nil {
			t.Errorf("parleyd exit after SIGTERM: %v; want a clean exit", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("parleyd did not exit after %v", sig)
	}
}

func dial(t *testing.T, addr, uid, device string) *client.Client {
	t.Helper()
	tok, err := auth.Mint([]byte(procSecret), uid, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{Addr: addr, Token: tok, DeviceID: device, DisableReconnect: true})
	if err != nil {
		t.Fatalf("dial %s/%s: %v", uid, device, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// collect reads n messages from c, failing on a timeout.
func collect(t *testing.T, c *client.Client, n int) []*wirepb.Message {
	t.Helper()
	var got []*wirepb.Message
	timeout := time.After(20 * time.Second)
	for len(got) < n {
		select {
		case m, ok := <-c.Messages():
			if !ok {
				t.Fatalf("messages closed after %d of %d: %v", len(got), n, c.Err())
			}
			got = append(got, m)
		case <-timeout:
			t.Fatalf("got %d of %d messages", len(got), n)
		}
	}
	return got
}

// checkSeqs verifies msgs carry seqs 1..len(msgs) exactly, in order.
func checkSeqs(t *testing.T, who string, msgs []*wirepb.Message) {
	t.Helper()
	for i, m := range msgs {
		if m.Seq != uint64(i+1) {
			t.Fatalf("%s: message %d has seq %d; want %d", who, i, m.Seq, i+1)
		}
	}
}

// TestRestartKeepsAcknowledged sends messages, stops the server right after
// the last ack (SIGTERM, and separately kill -9), restarts it on the same
// data, and checks that everything acknowledged syncs with exact seqs and
// that new seqs continue without reuse. The same runs on MySQL.
func TestRestartKeepsAcknowledged(t *testing.T) {
	for _, store := range []string{"embedded", "mysql"} {
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
			t.Run(store+"/"+sig.String(), func(t *testing.T) {
				storeURL := ""
				if store == "mysql" {
					storeURL = mysqltest.NewURL(t)
				}
				testRestart(t, storeURL, sig)
			})
		}
	}
}

func testRestart(t *testing.T, storeURL string, sig syscall.Signal) {
	const n = 60
	dir := t.TempDir()
	p := startProc(t, dir, storeURL)
	alice := dial(t, p.tcp, "alice", "a1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	acks := make([]*wirepb.SendAck, n)
	for i := range n {
		ack, err := alice.SendText(ctx, "bob", fmt.Sprintf("m%d", i))
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		acks[i] = ack
	}
	p.stop(t, sig) // right after the last ack: bob's deliveries may still be in flight
	alice.Close()

	p = startProc(t, dir, storeURL)
	bob := dial(t, p.tcp, "bob", "b1")
	got := collect(t, bob, n)
	checkSeqs(t, "bob", got)
	for i, m := range got {
		if want := fmt.Sprintf("m%d", i); string(m.Body) != want || m.MsgId != acks[i].MsgId {
			t.Fatalf("bob's message %d = %q (%s); want %q (%s)", i, m.Body, m.MsgId, want, acks[i].MsgId)
		}
	}
	alice = dial(t, p.tcp, "alice", "a2")
	checkSeqs(t, "alice", collect(t, alice, n))
	ack, err := alice.SendText(ctx, "bob", "after restart")
	if err != nil {
		t.Fatal(err)
	}
	if ack.Seq != n+1 {
		t.Errorf("alice's seq after restart = %d; want %d (no reuse, no gap)", ack.Seq, n+1)
	}
	if m := collect(t, bob, 1)[0]; m.Seq != n+1 || string(m.Body) != "after restart" {
		t.Errorf("bob got %v; want seq %d \"after restart\"", m, n+1)
	}
	p.stop(t, syscall.SIGTERM)
}
