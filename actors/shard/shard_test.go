package shard

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/parleyim/parley/actors/natstest"
)

// TestMappingAgreesWithOf checks that the NATS server's partition mapping
// sends every user to the shard Of computes.
func TestMappingAgreesWithOf(t *testing.T) {
	s := natstest.Start(t)
	src, dest := Mapping(DefaultCount)
	if err := s.GlobalAccount().AddMapping(src, dest); err != nil {
		t.Fatal(err)
	}
	nc := natstest.Connect(t, s)
	sub, err := nc.SubscribeSync("im.shard.>")
	if err != nil {
		t.Fatal(err)
	}
	users := []string{"alice", "bob", "u1", "u2", "A-b_c", "x"}
	for _, u := range users {
		if err := nc.Publish(UpSubject(u, "send"), nil); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, u := range users {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := "im.shard." + strconv.Itoa(Of(u, DefaultCount)) + "." + u + ".send"
		if m.Subject != want {
			t.Errorf("mapped subject = %q; want %q", m.Subject, want)
		}
	}
}
