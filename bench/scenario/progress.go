package scenario

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress prints line() to w once a second, prefixed with the scenario and
// the elapsed time, until the returned stop is called. A nil w prints
// nothing. Plain lines, no terminal control: they read the same in a log.
func progress(w io.Writer, name string, line func() string) (stop func()) {
	if w == nil {
		return func() {}
	}
	start := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(w, "[%s %4.0fs] %s\n", name, time.Since(start).Seconds(), line())
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
}

// rate tracks a counter's increase between progress lines. The zero rate
// counts from its first use; startRate from now.
type rate struct {
	last  int64
	lastT time.Time
}

func startRate() rate { return rate{lastT: time.Now()} }

// per returns the increase of v per second since the last call.
func (r *rate) per(v int64) float64 {
	now := time.Now()
	var out float64
	if !r.lastT.IsZero() {
		out = float64(v-r.last) / now.Sub(r.lastT).Seconds()
	}
	r.last, r.lastT = v, now
	return out
}
