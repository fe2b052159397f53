package scenario

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
)

// useServerHTTP points the target's metrics at an external server's HTTP
// address (host:port, loopback only).
func (t *target) useServerHTTP(addr string) error {
	if host, _, err := net.SplitHostPort(addr); err != nil || !isLoopback(host) {
		return fmt.Errorf("--server-http %s: loopback only", addr)
	}
	t.metrics = "http://" + addr + "/metrics"
	return nil
}

// stagePrefixes are the logic node's per-stage metrics (actors/host) that
// a run reports the change of.
var stagePrefixes = []string{"parley_commit_", "parley_delivery_publish_"}

// serverCPU is the process collector's CPU counter, scraped with the stages.
const serverCPU = "process_cpu_seconds_total"

// stages is a snapshot of the server's stage counters (every _sum, _count
// and _total sample of stagePrefixes, and serverCPU) and of this process's
// CPU time (loadCPU, when the system reports it).
type stages map[string]float64

const loadCPU = "load generator cpu seconds" // not a metric name: never scraped

// scrapeStages reads the server's stage counters. It returns nil when the
// target has no metrics (an external server without --server-http) or they
// cannot be read: the breakdown is extra, the run does not depend on it.
func (t *target) scrapeStages(ctx context.Context) stages {
	if t.metrics == "" {
		return nil
	}
	m, err := t.scrapeMetrics(ctx, func(name string) bool {
		return name == serverCPU || slices.ContainsFunc(stagePrefixes, func(p string) bool { return strings.HasPrefix(name, p) }) &&
			(strings.HasSuffix(name, "_sum") || strings.HasSuffix(name, "_count") || strings.HasSuffix(name, "_total"))
	})
	if err != nil || len(m) == 0 {
		return nil
	}
	s := stages(m)
	if cpu, ok := processCPU(); ok {
		s[loadCPU] = cpu.Seconds()
	}
	return s
}

// stageMetrics adds to r where the server spent a run of msgs messages,
// from two snapshots: how many group commits and JetStream publishes, how
// much each carried, the mean time of each stage, and the CPU per message.
// Means, not percentiles: a histogram's sum and count change exactly, its
// buckets only roughly. CPU per message is the steadiest number on a shared
// machine: at a fixed rate it varies far less between runs than latency.
func (r *Result) stageMetrics(before, after stages, msgs int64, inProcess bool) {
	if before == nil || after == nil {
		return
	}
	d := func(name string) float64 { return after[name] - before[name] }
	mean := func(name string, scale float64) float64 {
		if n := d(name + "_count"); n > 0 {
			return d(name+"_sum") / n * scale
		}
		return 0
	}
	commits := d("parley_commit_seconds_count")
	r.metric("server: group commits", commits, "")
	r.metric("server: appends per commit (mean)", mean("parley_commit_appends", 1), "")
	r.metric("server: commit wait for a worker (mean)", mean("parley_commit_wait_seconds", 1000), "ms")
	r.metric("server: commit transaction (mean)", mean("parley_commit_seconds", 1000), "ms")
	r.metric("server: commit failures", d("parley_commit_failures_total"), "")
	r.metric("server: JetStream delivery publishes", d("parley_delivery_publish_seconds_count"), "")
	r.metric("server: deliveries per publish (mean)", mean("parley_delivery_publish_deliveries", 1), "")
	r.metric("server: publish → PubAck (mean)", mean("parley_delivery_publish_seconds", 1000), "ms")
	r.metric("server: publish failures", d("parley_delivery_publish_failures_total"), "")
	if msgs <= 0 {
		return
	}
	perMsg := func(name string) float64 { return d(name) / float64(msgs) * 1e6 }
	_, haveLoad := after[loadCPU]
	switch {
	case inProcess && haveLoad:
		r.metric("cpu per message (server and load, one process)", perMsg(loadCPU), "µs")
	case !inProcess:
		r.metric("server: cpu per message", perMsg(serverCPU), "µs")
		if haveLoad {
			r.metric("load generator: cpu per message", perMsg(loadCPU), "µs")
		}
	}
}
