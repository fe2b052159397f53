package storetest

import (
	"fmt"
	"testing"

	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/mailbox"
)

// BenchmarkAppend measures group commits of batch one-message parts for
// batch users, for batch sizes 1, 10, 100 and 1000, each without and with
// a 200-byte Item.Outbox per message (outbox=0, outbox=200; the entries
// accumulate, nothing clears them). SetBytes counts message bodies only,
// so MB/s compares the two. open returns an empty store; the benchmark
// closes it.
func BenchmarkAppend(b *testing.B, open func(b *testing.B) mailbox.Store) {
	for _, batch := range []int{1, 10, 100, 1000} {
		for _, outboxLen := range []int{0, 200} {
			b.Run(fmt.Sprintf("batch=%d/outbox=%d", batch, outboxLen), func(b *testing.B) {
				benchmarkAppend(b, open(b), batch, outboxLen)
			})
		}
	}
}

func benchmarkAppend(b *testing.B, s mailbox.Store, batch, outboxLen int) {
	defer s.Close()
	parts := make([]mailbox.Append, batch)
	for i := range parts {
		parts[i].UserID = fmt.Sprintf("user%05d", i)
	}
	body := make([]byte, 200)
	var outbox []byte
	if outboxLen > 0 {
		outbox = make([]byte, outboxLen)
	}
	b.ReportAllocs()
	b.SetBytes(int64(batch * len(body)))
	n := 0
	for b.Loop() {
		for i := range parts {
			n++
			parts[i].Items = []mailbox.Item{{Message: &wirepb.Message{
				MsgId: fmt.Sprintf("m%09d", n), FromUser: "bob", Body: body, CreatedAtMs: 1_760_000_000_000,
			}, Outbox: outbox}}
		}
		res, err := s.Append(b.Context(), parts)
		if err != nil {
			b.Fatalf("Append error = %v", err)
		}
		for i := range parts {
			if res[i].Err != nil {
				b.Fatalf("part %d: %v", i, res[i].Err)
			}
			parts[i].After = res[i].MaxSeq
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/msg")
}
