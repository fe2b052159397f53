package node

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/sync/mysqlstore/mysqltest"
)

// BenchmarkSendP2P measures 1:1 sends end to end over real TCP sockets: each
// op is one Send acknowledged by the server (stored in the sender's mailbox
// and durable in JetStream on its way to the recipient). 64 sender clients
// (b.SetParallelism; PARLEY_BENCH_PARALLELISM×GOMAXPROCS) write to their own recipients; recipients are offline, so
// their appends run through the durable delivery path.
func BenchmarkSendP2P(b *testing.B) {
	parallelism := 32
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_PARALLELISM")); err == nil && v > 0 {
		parallelism = v
	}
	for _, store := range []string{"embedded", "mysql"} {
		b.Run("store="+store, func(b *testing.B) {
			url := ""
			if store == "mysql" {
				url = mysqltest.NewURL(b)
			}
			n := startNode(b, "", url)
			addr := "tcp://" + n.TCPAddr().String()
			var next atomic.Int64
			b.SetParallelism(parallelism) // × GOMAXPROCS senders
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := next.Add(1)
				c := dialClient(b, addr, fmt.Sprintf("s%d", i), "d", func(c *client.Config) { c.SendOnly = true })
				to := fmt.Sprintf("r%d", i)
				ctx := context.Background()
				for pb.Next() {
					if _, err := c.SendText(ctx, to, "benchmark message body"); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
