// Package hist records latencies in an HDR histogram and summarizes them as
// the percentiles the load generators print: p50, p90, p99, p99.9 and max.
package hist

import (
	"fmt"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Range of a Recorder: 1 µs to 10 minutes at 3 significant digits (a value
// is off by at most 0.1%). Longer durations are recorded as the maximum.
const (
	lowest  = 1                                          // µs
	highest = int64(10 * time.Minute / time.Microsecond) // µs
	sigFigs = 3
)

// Recorder is a latency histogram with microsecond resolution. The zero
// value is not usable; call New. Safe for concurrent use.
type Recorder struct {
	mu sync.Mutex // guards h
	h  *hdrhistogram.Histogram
}

// New returns an empty Recorder.
func New() *Recorder {
	return &Recorder{h: hdrhistogram.New(lowest, highest, sigFigs)}
}

// Record adds one latency. Negative durations count as zero and durations
// over 10 minutes as 10 minutes, so no sample is ever dropped.
func (r *Recorder) Record(d time.Duration) {
	v := clamp(d)
	r.mu.Lock()
	_ = r.h.RecordValue(v) // cannot fail: v is within range
	r.mu.Unlock()
}

func clamp(d time.Duration) int64 {
	v := int64(d / time.Microsecond)
	return min(max(v, lowest), highest)
}

// Merge adds every sample of o to r.
func (r *Recorder) Merge(o *Recorder) {
	o.mu.Lock()
	c := o.h.Clone()
	o.mu.Unlock()
	r.mu.Lock()
	r.h.Merge(c)
	r.mu.Unlock()
}

// Count returns the number of samples recorded.
func (r *Recorder) Count() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.h.TotalCount()
}

// Summary returns the distribution recorded so far.
func (r *Recorder) Summary() Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	return summarize(r.h)
}

// Export returns a copy of the histogram for another process (see Import).
func (r *Recorder) Export() *hdrhistogram.Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.h.Export()
}

// Import returns a Recorder holding the samples of a snapshot from Export.
func Import(s *hdrhistogram.Snapshot) (*Recorder, error) {
	if s == nil {
		return New(), nil
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("hist: import: %w", err)
	}
	return &Recorder{h: hdrhistogram.Import(s)}, nil
}

// Summary is a latency distribution in milliseconds (fractional, so
// microseconds survive). The zero Summary has no samples.
type Summary struct {
	Count  int64   `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p99_9_ms"`
	MaxMs  float64 `json:"max_ms"`
}

func summarize(h *hdrhistogram.Histogram) Summary {
	if h.TotalCount() == 0 {
		return Summary{}
	}
	q := h.ValueAtPercentiles([]float64{50, 90, 99, 99.9})
	return Summary{
		Count:  h.TotalCount(),
		MeanMs: h.Mean() / 1e3,
		P50Ms:  ms(q[50]),
		P90Ms:  ms(q[90]),
		P99Ms:  ms(q[99]),
		P999Ms: ms(q[99.9]),
		MaxMs:  ms(h.Max()),
	}
}

func ms(us int64) float64 { return float64(us) / 1e3 }

// String formats s on one line: "n=1000 p50=1.2ms p90=… p99=… p99.9=… max=…".
func (s Summary) String() string {
	if s.Count == 0 {
		return "n=0"
	}
	return fmt.Sprintf("n=%d p50=%s p90=%s p99=%s p99.9=%s max=%s mean=%s",
		s.Count, fmtMs(s.P50Ms), fmtMs(s.P90Ms), fmtMs(s.P99Ms), fmtMs(s.P999Ms), fmtMs(s.MaxMs), fmtMs(s.MeanMs))
}

// fmtMs prints a millisecond value with about three significant digits.
func fmtMs(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.2fs", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0fms", v)
	case v >= 10:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.2fms", v)
	}
}
