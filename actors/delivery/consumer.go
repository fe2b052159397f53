package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/actors/shard"
	"github.com/parleyim/parley/schemas/buspb"
)

// Handler commits one batch of deliveries. A nil return acks the bus
// message; an error makes JetStream redeliver it after a short delay, which
// is safe because mailbox appends are idempotent per message id.
type Handler func(ctx context.Context, batch *buspb.DeliveryBatch) error

// AckWait is how long JetStream waits for a batch's ack before redelivering
// it (e.g. after the consuming node died).
const AckWait = 10 * time.Second

// Consumer consumes the deliveries of one shard.
type Consumer struct {
	cc jetstream.ConsumeContext
}

// Consume starts the durable consumer of shard n on st. Batches are handled
// one at a time, in order, on the consumer's goroutine.
func Consume(ctx context.Context, st jetstream.Stream, n int, h Handler, log *slog.Logger) (*Consumer, error) {
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       shard.DeliveryConsumer(n),
		FilterSubject: shard.DeliverySubject(n),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       AckWait,
		MaxAckPending: 64,
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, fmt.Errorf("create delivery consumer shard=%d: %w", n, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var batch buspb.DeliveryBatch
		if err := proto.Unmarshal(m.Data(), &batch); err != nil {
			log.Error("undecodable delivery batch dropped", "shard", n, "err", err)
			_ = m.Term()
			return
		}
		if err := h(context.Background(), &batch); err != nil {
			log.Warn("delivery batch failed, will be redelivered", "shard", n, "deliveries", len(batch.Deliveries), "err", err)
			_ = m.NakWithDelay(250 * time.Millisecond)
			return
		}
		if err := m.Ack(); err != nil {
			log.Warn("delivery ack failed (batch will be redelivered and deduplicated)", "shard", n, "err", err)
		}
	}, jetstream.PullMaxMessages(16))
	if err != nil {
		return nil, fmt.Errorf("consume deliveries shard=%d: %w", n, err)
	}
	return &Consumer{cc: cc}, nil
}

// Stop drains the consumer: buffered batches are handled, then it stops.
// It returns once done or when ctx ends.
func (c *Consumer) Stop(ctx context.Context) error {
	c.cc.Drain()
	select {
	case <-c.cc.Closed():
		return nil
	case <-ctx.Done():
		c.cc.Stop()
		return ctx.Err()
	}
}
