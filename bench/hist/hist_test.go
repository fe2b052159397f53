package hist

import (
	"math"
	"testing"
	"time"
)

func TestSummary(t *testing.T) {
	r := New()
	for i := 1; i <= 1000; i++ {
		r.Record(time.Duration(i) * time.Millisecond)
	}
	s := r.Summary()
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"p50", s.P50Ms, 500},
		{"p90", s.P90Ms, 900},
		{"p99", s.P99Ms, 990},
		{"p99.9", s.P999Ms, 999},
		{"max", s.MaxMs, 1000},
	} {
		if math.Abs(c.got-c.want)/c.want > 0.002 {
			t.Errorf("%s = %vms; want %vms (±0.2%%)", c.name, c.got, c.want)
		}
	}
	if s.Count != 1000 {
		t.Errorf("Count = %d; want 1000", s.Count)
	}
}

func TestClampAndMerge(t *testing.T) {
	a, b := New(), New()
	a.Record(-time.Second)   // counts as the minimum
	b.Record(24 * time.Hour) // counts as the maximum
	a.Merge(b)
	s := a.Summary()
	if s.Count != 2 {
		t.Fatalf("Count = %d; want 2", s.Count)
	}
	if s.MaxMs < 599_000 {
		t.Errorf("MaxMs = %v; want about 600000 (10 minutes)", s.MaxMs)
	}
}

func TestExportImport(t *testing.T) {
	a := New()
	a.Record(3 * time.Millisecond)
	b, err := Import(a.Export())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := b.Summary(), a.Summary(); got != want {
		t.Errorf("Import(Export()) = %v; want %v", got, want)
	}
	if New().Summary().String() != "n=0" {
		t.Errorf("empty summary = %q; want n=0", New().Summary().String())
	}
}
