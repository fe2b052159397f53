package host

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleyim/parley/actors/delivery"
	"github.com/parleyim/parley/sync/mailbox"
)

// metrics are the stages a message passes through on a logic node, exported
// at /metrics: the group commit (how long appends wait for a transaction,
// how long it takes, how many share it) and the JetStream hand-off of
// deliveries. docs/OPERATIONS.md says how to read them.
type metrics struct {
	commitWait      prometheus.Histogram
	commitSeconds   prometheus.Histogram
	commitAppends   prometheus.Histogram
	commitFailures  prometheus.Counter
	publishSeconds  prometheus.Histogram
	publishBatch    prometheus.Histogram
	publishFailures prometheus.Counter
}

func newMetrics() *metrics {
	seconds := prometheus.ExponentialBuckets(0.0005, 2, 14) // 0.5 ms … 4 s
	sizes := prometheus.ExponentialBuckets(1, 2, 11)        // 1 … 1024
	histogram := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	return &metrics{
		commitWait: histogram("parley_commit_wait_seconds",
			"How long the oldest append of each mailbox transaction waited for a commit worker.", seconds),
		commitSeconds: histogram("parley_commit_seconds",
			"Mailbox store transactions (group commits), failed ones included.", seconds),
		commitAppends: histogram("parley_commit_appends",
			"Appends (one per user actor) sharing a mailbox transaction.", sizes),
		commitFailures: counter("parley_commit_failures_total",
			"Mailbox transactions that failed; their appends are retried by the actors."),
		publishSeconds: histogram("parley_delivery_publish_seconds",
			"JetStream publish of a delivery batch until its PubAck, retries included.", seconds),
		publishBatch: histogram("parley_delivery_publish_deliveries",
			"Deliveries coalesced into one JetStream message.", sizes),
		publishFailures: counter("parley_delivery_publish_failures_total",
			"Delivery batches JetStream did not take; the senders' outbox entries relay them later."),
	}
}

func (m *metrics) observeCommit(st mailbox.CommitStats) {
	m.commitWait.Observe(st.Wait.Seconds())
	m.commitSeconds.Observe(st.Took.Seconds())
	m.commitAppends.Observe(float64(st.Appends))
	if st.Err != nil {
		m.commitFailures.Inc()
	}
}

func (m *metrics) observePublish(st delivery.PublishStats) {
	m.publishSeconds.Observe(st.Took.Seconds())
	m.publishBatch.Observe(float64(st.Deliveries))
	if st.Err != nil {
		m.publishFailures.Inc()
	}
}

// Collectors returns this node's logic-tier metrics, to register with a
// Prometheus registry. Call it after Start.
func (h *Host) Collectors() []prometheus.Collector {
	m := h.metrics
	return []prometheus.Collector{
		m.commitWait, m.commitSeconds, m.commitAppends, m.commitFailures,
		m.publishSeconds, m.publishBatch, m.publishFailures,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parley_delivery_backlog_bytes",
			Help: "Encoded deliveries handed to JetStream and not yet acknowledged by it; past 8 MiB sends are acked only once their delivery is in JetStream.",
		}, func() float64 {
			if h.outbox == nil {
				return 0
			}
			return float64(h.outbox.Backlog())
		}),
	}
}
