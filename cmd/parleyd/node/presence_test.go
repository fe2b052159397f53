package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/actors/natstest"
	"github.com/parleyim/parley/actors/shard"
)

// TestEdgeDeathTakesDevicesOffline: an edge that dies without closing its
// connections (no Offline ever arrives) stops its heartbeat; within the
// edge timeout its devices are offline.
func TestEdgeDeathTakesDevicesOffline(t *testing.T) {
	logic := startNode(t, "", "", withAPIKey, func(c *Config) { c.EdgeTimeout = time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	doomed, err := Start(ctx, Config{DataDir: t.TempDir(), Roles: []string{RoleEdge}, NATSURL: logic.NATSURL(),
		TCPListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = doomed.Shutdown(context.Background()) }) // errors: its NATS is gone
	c := dialRaw(t, doomed.TCPAddr())
	c.signIn("gina", "tablet")
	online := func() bool {
		var res struct {
			Users []struct{ Online bool } `json:"users"`
		}
		apiOK(t, logic, "presence.get", map[string]any{"users": []string{"gina"}}, &res)
		return res.Users[0].Online
	}
	if !online() {
		t.Fatal("gina is not online after signing in")
	}
	doomed.nc.Close() // the edge "dies": no Offline, no heartbeat
	deadline := time.Now().Add(5 * time.Second)
	for online() {
		if time.Now().After(deadline) {
			t.Fatal("gina still online 5s after her edge died (edge timeout 1s)")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLogicRestartResumesSessions: with edges and the logic node in
// separate processes, a restarted logic node learns every signed-in
// connection again from the edges, so pushes reach devices that never
// reconnected.
func TestLogicRestartResumesSessions(t *testing.T) {
	ns := natstest.Start(t)
	src, dest := shard.Mapping(shard.DefaultCount)
	if err := ns.GlobalAccount().AddMapping(src, dest); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	logicCfg := func(c *Config) {
		c.Roles = []string{RoleLogic}
		c.NATSURL = ns.ClientURL()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, err := Start(ctx, func() Config {
		c := Config{DataDir: dir, HTTPListen: "127.0.0.1:0", Secret: testSecret}
		logicCfg(&c)
		return c
	}())
	if err != nil {
		t.Fatal(err)
	}
	edgeNode := startNode(t, "", "", func(c *Config) { c.Roles = []string{RoleEdge}; c.NATSURL = ns.ClientURL() })
	hana := dialRaw(t, edgeNode.TCPAddr())
	hana.signIn("hana", "phone")
	if err := first.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	startNode(t, dir, "", logicCfg) // same store: hana's mailbox continues
	ivan := dialRaw(t, edgeNode.TCPAddr())
	ivan.signIn("ivan", "phone")
	if f := ivan.sendText("hana", "r1", "are you still there?"); f.GetSendAck() == nil {
		t.Fatalf("send: %v", f)
	}
	if m := nextPush(t, hana); string(m.Body) != "are you still there?" || !strings.HasPrefix(m.FromUser, "ivan") {
		t.Fatalf("hana got %v; want ivan's message pushed without reconnecting", m)
	}
}
