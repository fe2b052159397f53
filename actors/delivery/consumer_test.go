package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parleyim/parley/actors/natstest"
	"github.com/parleyim/parley/actors/shard"
	"github.com/parleyim/parley/schemas/buspb"
	"github.com/parleyim/parley/schemas/wirepb"
)

// TestUnackedSurviveRestart: deliveries acked before the NATS server
// stopped are gone after its restart, and every one not acked is
// redelivered, although the consumer keeps its state in memory.
func TestUnackedSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	log := slog.New(slog.DiscardHandler)

	const total, acked = 10, 3
	s := natstest.StartDir(t, dir)
	nc := natstest.Connect(t, s)
	js, st := stream(ctx, t, nc)
	out, err := NewOutbox(OutboxConfig{JetStream: js, Shards: 1, MaxBatch: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range total {
		errc := make(chan error, 1)
		out.Publish(&buspb.Delivery{Recipients: []string{"bob"}, Message: &wirepb.Message{MsgId: fmt.Sprint("m", i)}},
			func(err error) { errc <- err })
		if err := <-errc; err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	// Ack the first three, refuse the rest.
	var mu sync.Mutex
	var got []string
	c, err := Consume(ctx, st, 0, func(_ context.Context, b *buspb.DeliveryBatch, done func(error)) {
		mu.Lock()
		defer mu.Unlock()
		id := b.Deliveries[0].Message.MsgId
		if !slices.Contains(got, id) {
			got = append(got, id)
		}
		if slices.Index(got, id) < acked {
			done(nil)
			return
		}
		done(errors.New("not now"))
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == total })
	c.cc.Stop()
	nc.Close()
	s.Shutdown()
	s.WaitForShutdown()

	s = natstest.StartDir(t, dir)
	nc = natstest.Connect(t, s)
	_, st = stream(ctx, t, nc)
	var again []string
	c, err = Consume(ctx, st, 0, func(_ context.Context, b *buspb.DeliveryBatch, done func(error)) {
		mu.Lock()
		defer mu.Unlock()
		again = append(again, b.Deliveries[0].Message.MsgId)
		done(nil)
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(ctx)
	want := got[acked:]
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(again) >= len(want) })
	time.Sleep(200 * time.Millisecond) // nothing more may come
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(again, want) {
		t.Fatalf("after restart got %v; want the unacked %v", again, want)
	}
}

func stream(ctx context.Context, t *testing.T, nc *nats.Conn) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := EnsureStream(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Info(ctx); err != nil {
		t.Fatalf("stream %s: %v", shard.DeliveryStream, err)
	}
	return js, st
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
