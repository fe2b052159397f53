package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/actors/natstest"
	"github.com/parleyim/parley/actors/shard"
	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/mysqlstore/mysqltest"
)

func dialClient(t testing.TB, addr, uid, device string, mod ...func(*client.Config)) *client.Client {
	t.Helper()
	cfg := client.Config{Addr: addr, Token: token(t, uid), DeviceID: device}
	for _, m := range mod {
		m(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("dial %s/%s: %v", uid, device, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// next reads n messages from c within a deadline.
func next(t testing.TB, c *client.Client, n int) []*wirepb.Message {
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

// quiet checks nothing more arrives on c for a moment.
func quiet(t testing.TB, c *client.Client) {
	t.Helper()
	select {
	case m := <-c.Messages():
		t.Fatalf("unexpected extra message %v", m)
	case <-time.After(300 * time.Millisecond):
	}
}

func bodies(msgs []*wirepb.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = fmt.Sprintf("%d:%s:%s", m.Seq, m.FromUser, m.Body)
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestTwoUsersThreeDevices: alice on two devices, bob on one online and
// one offline, over every transport. Messages reach every online device
// (and the sender's other device); the offline device catches up by sync
// with exact seqs.
func TestTwoUsersThreeDevices(t *testing.T) {
	n := startNode(t, "", "")
	tcp := "tcp://" + n.TCPAddr().String()
	ws := "ws://" + n.HTTPAddr().String() + "/ws"
	jsonWS := func(c *client.Config) { c.JSON = true }

	a1 := dialClient(t, tcp, "alice", "a1")
	a2 := dialClient(t, ws, "alice", "a2", jsonWS)
	b1 := dialClient(t, ws, "bob", "b1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var acks []*wirepb.SendAck
	for i := range 5 {
		ack, err := a1.SendText(ctx, "bob", fmt.Sprintf("hi %d", i))
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, ack)
	}
	// Bob answers once he has read them: a SendAck says a message is
	// durably on its way, not that it is in the recipient's mailbox yet.
	b1got := next(t, b1, 5)
	reply, err := b1.SendText(ctx, "alice", "hello alice")
	if err != nil {
		t.Fatal(err)
	}
	if reply.Seq != 6 {
		t.Errorf("bob's reply seq = %d; want 6", reply.Seq)
	}
	for i, ack := range acks {
		if ack.Seq != uint64(i+1) || ack.Duplicate {
			t.Errorf("ack %d = %v; want seq %d, not duplicate", i, ack, i+1)
		}
	}
	want := []string{"1:alice:hi 0", "2:alice:hi 1", "3:alice:hi 2", "4:alice:hi 3", "5:alice:hi 4", "6:bob:hello alice"}
	b1got = append(b1got, next(t, b1, 1)...)
	for name, got := range map[string][]*wirepb.Message{"a1": next(t, a1, 6), "a2": next(t, a2, 6), "b1": b1got} {
		if got := bodies(got); !equal(got, want) {
			t.Errorf("%s got %v; want %v", name, got, want)
		}
	}
	// Bob's second device was offline: it syncs the exact same entries.
	b2 := dialClient(t, tcp, "bob", "b2")
	if got := bodies(next(t, b2, 6)); !equal(got, want) {
		t.Errorf("b2 synced %v; want %v", got, want)
	}
	for _, c := range []*client.Client{a1, a2, b1, b2} {
		quiet(t, c)
	}
	// Messages keep their send time.
	m := next(t, dialClient(t, tcp, "bob", "b3"), 1)[0]
	if m.CreatedAtMs != acks[0].CreatedAtMs || m.MsgId != acks[0].MsgId {
		t.Errorf("synced entry %v; want msg id %s created at %d", m, acks[0].MsgId, acks[0].CreatedAtMs)
	}
}

// TestResendIsIdempotent: a resend with the same client msg id gets the
// original ack and stores nothing.
func TestResendIsIdempotent(t *testing.T) {
	n := startNode(t, "", "")
	c := dialRaw(t, n.TCPAddr())
	c.signIn("alice", "a1")
	first := sendAndAck(t, c, sendTo("bob", "same-id", []byte("once")))
	second := sendAndAck(t, c, sendTo("bob", "same-id", []byte("once")))
	if second.MsgId != first.MsgId || second.Seq != first.Seq || !second.Duplicate {
		t.Errorf("resend ack = %v; want the original %v marked duplicate", second, first)
	}
	third := sendAndAck(t, c, sendTo("bob", "other-id", []byte("twice")))
	if third.Seq != 2 {
		t.Errorf("next seq = %d; want 2", third.Seq)
	}
	bob := dialClient(t, "tcp://"+n.TCPAddr().String(), "bob", "b1")
	if got, want := bodies(next(t, bob, 2)), []string{"1:alice:once", "2:alice:twice"}; !equal(got, want) {
		t.Errorf("bob got %v; want %v", got, want)
	}
	quiet(t, bob)
}

func sendAndAck(t *testing.T, c *rawConn, f *wirepb.Frame) *wirepb.SendAck {
	t.Helper()
	c.send(f)
	for {
		r := c.mustRead()
		if e := r.GetError(); e != nil {
			t.Fatalf("send: %v", e)
		}
		if a := r.GetSendAck(); a != nil {
			return a
		}
	}
}

// TestReconnectAndReplace: a device signing in on a new socket replaces the
// old one (closed with REPLACED), and the old socket closing later does not
// silence the new one.
func TestReconnectAndReplace(t *testing.T) {
	n := startNode(t, "", "")
	old := dialRaw(t, n.TCPAddr())
	old.signIn("bob", "phone")
	fresh := dialRaw(t, n.TCPAddr())
	fresh.signIn("bob", "phone")
	if e := old.expectClose(); e.GetCode() != wirepb.ErrorCode_ERROR_CODE_REPLACED {
		t.Fatalf("old socket closed with %v; want REPLACED", e)
	}
	old.c.Close() // the stale socket's Offline arrives after the new Online
	time.Sleep(100 * time.Millisecond)

	alice := dialRaw(t, n.TCPAddr())
	alice.signIn("alice", "a1")
	sendAndAck(t, alice, sendTo("bob", "m1", []byte("still reaches you")))
	f := fresh.mustRead()
	if p := f.GetPush(); p == nil || string(p.Message.Body) != "still reaches you" || p.Message.Seq != 1 {
		t.Fatalf("new socket got %v; want the push of seq 1", f)
	}
}

// TestConcurrentSendersWhileSyncing: 32 senders write to one user while
// another of that user's devices syncs in a loop. The syncing device must
// end with exactly seqs 1..N: a page never skips a seq that commits later.
func TestConcurrentSendersWhileSyncing(t *testing.T) {
	for _, store := range []string{"embedded", "mysql"} {
		t.Run(store, func(t *testing.T) {
			url := ""
			if store == "mysql" {
				url = mysqltest.NewURL(t)
			}
			testConcurrentSenders(t, url)
		})
	}
}

func testConcurrentSenders(t *testing.T, store string) {
	const senders, each = 32, 25
	const total = senders * each
	n := startNode(t, "", store)
	addr := "tcp://" + n.TCPAddr().String()

	syncer := dialRaw(t, n.TCPAddr())
	syncer.signIn("target", "syncer")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := range senders {
		c := dialClient(t, addr, fmt.Sprintf("sender%d", s), "d", func(c *client.Config) { c.SendOnly = true })
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := c.SendText(ctx, "target", fmt.Sprintf("%d/%d", s, i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	sendersDone := make(chan struct{})
	go func() { wg.Wait(); close(sendersDone) }()

	// Sync continuously with the raw protocol, ignoring pushes.
	var max uint64
	seen := 0
	for max < total {
		select {
		case err := <-errs:
			t.Fatalf("sender: %v", err)
		case <-ctx.Done():
			t.Fatalf("synced up to %d of %d", max, total)
		default:
		}
		syncer.send(&wirepb.Frame{Id: 5, Body: &wirepb.Frame_Sync{Sync: &wirepb.Sync{AfterSeq: max, Limit: 50}}})
		for {
			f := syncer.mustRead()
			b := f.GetSyncBatch()
			if b == nil {
				continue // a push
			}
			for _, m := range b.Messages {
				if m.Seq != max+1 {
					t.Fatalf("sync after %d returned seq %d: a seq was skipped", max, m.Seq)
				}
				max = m.Seq
				seen++
			}
			break
		}
	}
	<-sendersDone
	if seen != total {
		t.Errorf("synced %d entries; want %d", seen, total)
	}
}

// TestPassivation: idle actors of offline users stop, and a passivated
// user's next message continues its seqs.
func TestPassivation(t *testing.T) {
	n := startNode(t, "", "", func(c *Config) { c.ActorIdleTimeout = 200 * time.Millisecond })
	alice := dialRaw(t, n.TCPAddr())
	alice.signIn("alice", "a1")
	for i := range 3 {
		sendAndAck(t, alice, sendTo("bob", fmt.Sprintf("m%d", i), []byte("x")))
	}
	// bob is offline: his actor passivates; alice's stays (a device is online).
	deadline := time.Now().Add(10 * time.Second)
	for n.host.ActiveActors() != 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := n.host.ActiveActors(); got != 1 {
		t.Fatalf("active actors = %d; want 1 (bob passivated, alice online)", got)
	}
	sendAndAck(t, alice, sendTo("bob", "m3", []byte("x")))
	bob := dialClient(t, "tcp://"+n.TCPAddr().String(), "bob", "b1")
	msgs := next(t, bob, 4)
	for i, m := range msgs {
		if m.Seq != uint64(i+1) {
			t.Fatalf("bob's entry %d has seq %d; want %d", i, m.Seq, i+1)
		}
	}
}

// TestHTTPEndpoints: health, readiness, metrics and the chat page are
// served; /dev/token only exists with the development secret.
func TestHTTPEndpoints(t *testing.T) {
	n := startNode(t, "", "")
	base := "http://" + n.HTTPAddr().String()
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/": 200, "/dev/token?user=alice": 404} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d; want %d", path, resp.StatusCode, want)
		}
	}
	dev := startNode(t, "", "", func(c *Config) { c.Secret = "" })
	resp, err := http.Get("http://" + dev.HTTPAddr().String() + "/dev/token?user=alice")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("dev /dev/token = %d; want 200", resp.StatusCode)
	}
}

// TestMetricsStages: the commit and delivery-publish stages of a send show
// up at /metrics.
func TestMetricsStages(t *testing.T) {
	n := startNode(t, "", "")
	alice := dialRaw(t, n.TCPAddr())
	alice.signIn("alice", "a1")
	for i := range 3 {
		sendAndAck(t, alice, sendTo("bob", fmt.Sprintf("m%d", i), []byte("x")))
	}
	metric := func(name string) float64 {
		t.Helper()
		resp, err := http.Get("http://" + n.HTTPAddr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("metric %s: %v", name, err)
				}
				return f
			}
		}
		t.Fatalf("metric %s not at /metrics", name)
		return 0
	}
	// Sends are acked at commit; their deliveries reach JetStream just after.
	deadline := time.Now().Add(10 * time.Second)
	for metric("parley_delivery_publish_deliveries_sum") < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := metric("parley_delivery_publish_deliveries_sum"); got < 3 {
		t.Errorf("parley_delivery_publish_deliveries_sum = %v; want at least 3 (one per send)", got)
	}
	if got := metric("parley_commit_appends_sum"); got < 3 {
		t.Errorf("parley_commit_appends_sum = %v; want at least 3 (alice's three sends)", got)
	}
	if got := metric("parley_commit_seconds_count"); got < 1 {
		t.Errorf("parley_commit_seconds_count = %v; want at least 1", got)
	}
	if got := metric("parley_commit_failures_total"); got != 0 {
		t.Errorf("parley_commit_failures_total = %v; want 0", got)
	}
	metric("parley_delivery_backlog_bytes")
}

// TestExternalNATS: with --nats-url the node uses that server, and refuses
// to start against one without the shard subject mapping.
func TestExternalNATS(t *testing.T) {
	run := func(mapping bool) string {
		s := natstest.Start(t)
		if mapping {
			src, dest := shard.Mapping(shard.DefaultCount)
			if err := s.GlobalAccount().AddMapping(src, dest); err != nil {
				t.Fatal(err)
			}
		}
		return s.ClientURL()
	}
	_, err := Start(context.Background(), Config{DataDir: t.TempDir(), NATSURL: run(false), TCPListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Secret: testSecret})
	if err == nil || !strings.Contains(err.Error(), "mapping") {
		t.Fatalf("start without mapping: err = %v; want an error about the subject mapping", err)
	}
	n := startNode(t, "", "", func(c *Config) { c.NATSURL = run(true) })
	a := dialRaw(t, n.TCPAddr())
	a.signIn("alice", "a1")
	if ack := sendAndAck(t, a, sendTo("bob", "x", []byte("hi"))); ack.Seq != 1 {
		t.Errorf("ack = %v; want seq 1", ack)
	}
}

// TestPortRules: a taken address that was set explicitly is an error naming
// its flag; a taken default falls back to a free port.
func TestPortRules(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	for flag, mod := range map[string]func(*Config){
		"--tcp-listen":  func(c *Config) { c.TCPListen = addr },
		"--http-listen": func(c *Config) { c.HTTPListen = addr },
		"--nats-listen": func(c *Config) { c.NATSListen = addr },
	} {
		cfg := Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:0", TCPListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Secret: testSecret}
		mod(&cfg)
		n, err := Start(context.Background(), cfg)
		if err == nil {
			_ = n.Shutdown(context.Background())
			t.Fatalf("%s on a taken port: started; want an error", flag)
		}
		if !strings.Contains(err.Error(), flag) || !errors.Is(err, ErrPortInUse) {
			t.Errorf("%s on a taken port: err = %v; want ErrPortInUse naming %s", flag, err, flag)
		}
	}
	_, port, _ := net.SplitHostPort(addr)
	if got, err := freeIfTaken(addr, false, "--tcp-listen"); err != nil || strings.HasSuffix(got, ":"+port) {
		t.Errorf("taken default %s: got %q, %v; want another port", addr, got, err)
	}
}

// TestAckCursor: a device's Ack is stored (coalesced per user) and returned
// as acked_seq at its next sign-in; it never moves backwards.
func TestAckCursor(t *testing.T) {
	n := startNode(t, "", "")
	a := dialRaw(t, n.TCPAddr())
	a.signIn("alice", "a1")
	for i := range 3 {
		sendAndAck(t, a, sendTo("bob", fmt.Sprintf("m%d", i), []byte("x")))
	}
	for _, seq := range []uint64{1, 3, 2} {
		a.send(&wirepb.Frame{Body: &wirepb.Frame_Ack{Ack: &wirepb.Ack{Seq: seq}}})
	}
	// The edge handles one connection's frames in order: once the Pong is
	// back, the Acks are on the bus ahead of the next sign-in, which would
	// otherwise replace this connection before its Acks were read.
	a.send(&wirepb.Frame{Id: 4, Body: &wirepb.Frame_Ping{Ping: &wirepb.Ping{}}})
	if f := a.mustRead(); f.GetPong() == nil {
		t.Fatalf("ping answered with %v", f)
	}
	var got uint64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		c := dialRaw(t, n.TCPAddr())
		got = c.signIn("alice", "a1").AckedSeq
		c.c.Close()
		if got == 3 {
			return
		}
	}
	t.Fatalf("acked_seq = %d; want 3", got)
}
