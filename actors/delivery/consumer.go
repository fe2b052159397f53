package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/actors/shard"
	"github.com/parleyim/parley/schemas/buspb"
)

// Handler starts committing one batch of deliveries and calls done exactly
// once, on any goroutine, when it is committed (nil: the bus message is
// acked) or failed (JetStream redelivers it after a short delay, which is
// safe because mailbox appends are idempotent per message id). It must not
// block: the shard's next batches are handed to it while earlier ones
// commit, so that a shard is not limited to one commit at a time. It must
// take each batch's work in order, so that one recipient's deliveries enter
// its mailbox in bus order (the user actor's mailbox keeps that order).
type Handler func(ctx context.Context, batch *buspb.DeliveryBatch, done func(error))

// AckWait is how long JetStream waits for a batch's ack before redelivering
// it (e.g. after the consuming node died).
const AckWait = 10 * time.Second

// maxInflight bounds the batches of one shard handed to the Handler and not
// yet done: JetStream stops delivering the shard's batches beyond it, which
// is the back-pressure from recipients' mailboxes to the bus.
const maxInflight = 64

// Consumer consumes the deliveries of one shard.
type Consumer struct {
	cc       jetstream.ConsumeContext
	inflight sync.WaitGroup // batches handed to the Handler, not yet done
}

// Consume starts the durable consumer of shard n on st. Batches are handed
// to h in order, on the consumer's goroutine, up to maxInflight at once.
func Consume(ctx context.Context, st jetstream.Stream, n int, h Handler, log *slog.Logger) (*Consumer, error) {
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       shard.DeliveryConsumer(n),
		FilterSubject: shard.DeliverySubject(n),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       AckWait,
		MaxAckPending: maxInflight,
		MaxDeliver:    -1,
		// The consumer's state lives in memory: on a work-queue stream an
		// acked message is removed from the stream itself, so a restarted
		// server that lost the state redelivers exactly the messages not
		// acked (TestUnackedSurviveRestart). A file-backed state cost a
		// file write and rename per ack batch per shard (10% of the CPU of
		// a p2p run).
		MemoryStorage: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create delivery consumer shard=%d: %w", n, err)
	}
	c := &Consumer{}
	c.cc, err = cons.Consume(func(m jetstream.Msg) {
		var batch buspb.DeliveryBatch
		if err := proto.Unmarshal(m.Data(), &batch); err != nil {
			log.Error("undecodable delivery batch dropped", "shard", n, "err", err)
			_ = m.Term()
			return
		}
		c.inflight.Add(1)
		h(context.Background(), &batch, func(err error) {
			defer c.inflight.Done()
			if err != nil {
				log.Warn("delivery batch failed, will be redelivered", "shard", n, "deliveries", len(batch.Deliveries), "err", err)
				_ = m.NakWithDelay(250 * time.Millisecond)
				return
			}
			if err := m.Ack(); err != nil {
				log.Warn("delivery ack failed (batch will be redelivered and deduplicated)", "shard", n, "err", err)
			}
		})
	}, jetstream.PullMaxMessages(16))
	if err != nil {
		return nil, fmt.Errorf("consume deliveries shard=%d: %w", n, err)
	}
	return c, nil
}

// Stop drains the consumer: buffered batches are handed on, then it stops
// pulling; it returns once every batch handed on is done, or when ctx ends.
func (c *Consumer) Stop(ctx context.Context) error {
	c.cc.Drain()
	done := make(chan struct{})
	go func() {
		<-c.cc.Closed()
		c.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		c.cc.Stop()
		return ctx.Err()
	}
}
