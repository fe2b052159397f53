package host

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPooledDispatcher(t *testing.T) {
	before := runtime.NumGoroutine()
	d := newPooledDispatcher(7, 50*time.Millisecond)
	if d.Throughput() != 7 {
		t.Fatalf("Throughput() = %d, want 7", d.Throughput())
	}

	// A blocked run must not hold up the others: Schedule starts a worker
	// when none is idle.
	release := make(chan struct{})
	blocked := make(chan struct{})
	d.Schedule(func() { close(blocked); <-release })
	<-blocked

	const n = 1000
	var ran atomic.Int64
	var wg sync.WaitGroup
	wg.Add(n)
	for range 10 {
		go func() {
			for range n / 10 {
				d.Schedule(func() { ran.Add(1); wg.Done() })
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%d of %d scheduled functions ran while one run was blocked", ran.Load(), n)
	}
	close(release)

	// Idle workers exit.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after the workers' idle time, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
