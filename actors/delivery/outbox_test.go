package delivery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/actors/natstest"
	"github.com/parleyim/parley/schemas/buspb"
	"github.com/parleyim/parley/schemas/wirepb"
)

// TestOutboxBacklog: Backlog counts the deliveries published and not yet
// done, whether they end in JetStream or fail, and is back to zero after.
func TestOutboxBacklog(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s := natstest.Start(t)
	nc := natstest.Connect(t, s)
	js, _ := stream(ctx, t, nc)
	var (
		mu                sync.Mutex
		okDeliveries      int
		okBytes, failures int
	)
	observe := func(st PublishStats) {
		mu.Lock()
		defer mu.Unlock()
		if st.Err != nil {
			failures += st.Deliveries
			return
		}
		okDeliveries += st.Deliveries
		okBytes += st.Bytes
	}
	out, err := NewOutbox(OutboxConfig{JetStream: js, Shards: 4, Linger: 50 * time.Millisecond, PublishTimeout: time.Second, Observe: observe})
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Backlog(); got != 0 {
		t.Fatalf("Backlog of a new outbox = %d; want 0", got)
	}
	const n = 20
	errc := make(chan error, n)
	for i := range n {
		out.Publish(&buspb.Delivery{Recipients: []string{fmt.Sprint("u", i)}, Message: &wirepb.Message{MsgId: fmt.Sprint("m", i), Body: make([]byte, 100)}},
			func(err error) { errc <- err })
	}
	if got := out.Backlog(); got < n*100 {
		t.Errorf("Backlog with %d deliveries of 100 B lingering = %d; want at least %d", n, got, n*100)
	}
	for range n {
		if err := <-errc; err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	if got := out.Backlog(); got != 0 {
		t.Errorf("Backlog after every delivery is in JetStream = %d; want 0", got)
	}
	mu.Lock()
	if okDeliveries != n || okBytes < n*100 || failures != 0 {
		t.Errorf("observed %d deliveries (%d B) published and %d failed; want %d (at least %d B) and 0", okDeliveries, okBytes, failures, n, n*100)
	}
	mu.Unlock()

	// With the stream gone, publishing fails; the failed ones leave the
	// backlog too.
	if err := js.DeleteStream(ctx, "PARLEY_DELIVERY"); err != nil {
		t.Fatal(err)
	}
	out.Publish(&buspb.Delivery{Recipients: []string{"u1"}, Message: &wirepb.Message{MsgId: "lost"}}, func(err error) { errc <- err })
	if err := <-errc; err == nil {
		t.Fatal("publish without a stream succeeded; want an error")
	}
	if got := out.Backlog(); got != 0 {
		t.Errorf("Backlog after a failed publish = %d; want 0", got)
	}
	mu.Lock()
	if failures != 1 {
		t.Errorf("observed %d failed deliveries; want 1", failures)
	}
	mu.Unlock()
	if err := out.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(ctx); err != nil {
		t.Fatalf("second Close = %v; want nil", err)
	}
	out.Publish(&buspb.Delivery{Recipients: []string{"u1"}, Message: &wirepb.Message{MsgId: "late"}}, func(err error) { errc <- err })
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close: %v; want ErrClosed", err)
	}
}
