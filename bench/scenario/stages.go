package scenario

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
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

// stages is a snapshot of the server's stage counters: every _sum, _count
// and _total sample of stagePrefixes.
type stages map[string]float64

// scrapeStages reads the server's stage counters. It returns nil when the
// target has no metrics (an external server without --server-http) or they
// cannot be read: the breakdown is extra, the run does not depend on it.
func (t *target) scrapeStages(ctx context.Context) stages {
	if t.metrics == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.metrics, nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	s := stages{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || !hasAnyPrefix(name, stagePrefixes) ||
			!(strings.HasSuffix(name, "_sum") || strings.HasSuffix(name, "_count") || strings.HasSuffix(name, "_total")) {
			continue
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			s[name] = f
		}
	}
	if sc.Err() != nil || len(s) == 0 {
		return nil
	}
	return s
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// stageMetrics adds to r where the server spent a run, from two snapshots:
// how many group commits and JetStream publishes, how much each carried,
// and the mean time of each stage. Means, not percentiles: a histogram's
// sum and count change exactly, its buckets only roughly.
func (r *Result) stageMetrics(before, after stages) {
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
}
