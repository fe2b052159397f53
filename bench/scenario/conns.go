package scenario

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"time"

	"github.com/parleyim/parley/bench/hist"
)

// ConnsConfig configures the conns scenario: Conns idle connections, each a
// different user signed in with one device.
type ConnsConfig struct {
	Common `json:"-"`
	// Conns is the number of connections; zero means 10000. It is lowered,
	// with a note, to what the open-file limit allows.
	Conns int `json:"conns"`
	// Parallel is the number of concurrent dials; zero means 64.
	Parallel int `json:"parallel"`
	// ServerHTTP is the HTTP address (host:port, loopback) of the external
	// server in Common.Addr, started with --pprof: conns then collects its
	// garbage through /debug/pprof/heap?gc=1 and reads its heap and stacks
	// from /metrics, so it can measure the memory per connection of any
	// parleyd, an edge-only one too. Empty: measured in-process only.
	ServerHTTP string `json:"server_http,omitempty"`
	// Common.Duration is how long the connections are held idle once all
	// are open; zero means 5s.
}

func (c *ConnsConfig) defaults() {
	if c.Conns <= 0 {
		c.Conns = 10000
	}
	if c.Parallel <= 0 {
		c.Parallel = 64
	}
	if c.Duration <= 0 {
		c.Duration = 5 * time.Second
	}
}

// memSample is the in-process server's memory at one point.
type memSample struct {
	heapInuse, stackInuse uint64
	goroutines            int
}

// sampleMem collects garbage until the heap stops shrinking and reads the
// memory in use.
func sampleMem() memSample {
	var ms runtime.MemStats
	var last uint64
	for range 5 {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if last != 0 && ms.HeapInuse >= last {
			break
		}
		last = ms.HeapInuse
		time.Sleep(50 * time.Millisecond)
	}
	return memSample{heapInuse: ms.HeapInuse, stackInuse: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

// sampleRemote is sampleMem for an external server: it collects the
// server's garbage (three times, as pprof's heap endpoint runs one GC per
// request) and reads its memory gauges.
func sampleRemote(ctx context.Context, t *target, httpAddr string) (memSample, error) {
	for range 3 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/debug/pprof/heap?gc=1", nil)
		if err != nil {
			return memSample{}, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return memSample{}, fmt.Errorf("collect the server's garbage: %w", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return memSample{}, fmt.Errorf("collect the server's garbage: %s answered %s (was it started with --pprof?)", httpAddr, resp.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var m memSample
	heap, err := t.serverGauge(ctx, "go_memstats_heap_inuse_bytes")
	if err != nil {
		return m, err
	}
	stack, err := t.serverGauge(ctx, "go_memstats_stack_inuse_bytes")
	if err != nil {
		return m, err
	}
	gs, err := t.serverGauge(ctx, "go_goroutines")
	if err != nil {
		return m, err
	}
	return memSample{heapInuse: uint64(heap), stackInuse: uint64(stack), goroutines: int(gs)}, nil
}

// Conns runs the conns scenario. With an in-process server the client side
// runs in a child process (see RunAgent) so that the heap and stack delta is
// the server's alone.
func Conns(ctx context.Context, cfg ConnsConfig) (*Result, error) {
	cfg.defaults()
	start := time.Now()
	var clampMsg string
	if cfg.Addr == "" {
		cfg.Conns, clampMsg = clampByFiles("connections", cfg.Conns, 1, reserveFilesInProcess)
	} else {
		cfg.Conns, clampMsg = clampByFiles("connections", cfg.Conns, 1, reserveFiles)
	}
	if clampMsg != "" && cfg.Progress != nil {
		fmt.Fprintln(cfg.Progress, "conns:", clampMsg)
	}
	t, err := openTarget(ctx, cfg.Common)
	if err != nil {
		return nil, err
	}
	defer t.close()
	res := newResult("conns", t, configOf(cfg.Common, cfg))
	remote := !t.inProcess() && cfg.ServerHTTP != ""
	if remote {
		if err := t.useServerHTTP(cfg.ServerHTTP); err != nil {
			return nil, err
		}
	}
	if clampMsg != "" {
		res.note("%s", clampMsg)
	}
	n := cfg.Conns
	openTimeout := 2*time.Minute + time.Duration(n)*5*time.Millisecond

	var (
		opened    rawOpen
		before    memSample
		after     memSample
		alive     int
		aliveErrs []string
		ag        *agent
	)
	if t.inProcess() {
		before = sampleMem()
		ag, err = startAgent(agentConfig{
			Addr: t.addr, WS: t.ws, Secret: string(t.secret), Users: t.runID + "-c", // the agent names user i Users+i, as t.user("c", i) does
			N: n, Parallel: cfg.Parallel, Timeout: openTimeout,
		}, cfg.Progress)
		if err != nil {
			return nil, err
		}
		var rep agentOpened
		if err := ag.read(&rep, openTimeout+30*time.Second); err != nil {
			_ = ag.stop(5 * time.Second)
			return nil, err
		}
		lat, err := hist.Import(rep.Latency)
		if err != nil {
			_ = ag.stop(5 * time.Second)
			return nil, err
		}
		opened = rawOpen{failed: rep.Failed, retried: rep.Retried, errs: rep.Errors, lat: lat, elapsed: rep.Elapsed}
		opened.conns = make([]*rawConn, rep.Connected) // placeholders: the agent holds them
	} else {
		if remote {
			if before, err = sampleRemote(ctx, t, cfg.ServerHTTP); err != nil {
				return nil, err
			}
		}
		octx, cancel := context.WithTimeout(ctx, openTimeout)
		opened = openRaw(octx, n, cfg.Parallel, func(ctx context.Context, i int) (*rawConn, error) {
			tok, err := t.token(t.user("c", i))
			if err != nil {
				return nil, err
			}
			c, _, err := dialRaw(ctx, t.addr, t.ws, tok, "d")
			return c, err
		}, func(done int64) {
			if cfg.Progress != nil {
				fmt.Fprintf(cfg.Progress, "[conns %4.0fs] %d of %d dialed\n", time.Since(start).Seconds(), done, n)
			}
		})
		cancel()
		defer func() {
			for _, c := range opened.conns {
				c.close()
			}
		}()
	}
	connected := len(opened.conns)

	serverSees := func() string {
		if t.metrics == "" {
			return "n/a"
		}
		v, err := t.serverGauge(ctx, "parley_edge_connections")
		if err != nil {
			return err.Error()
		}
		return fmt.Sprint(v)
	}
	var memNote string
	if t.inProcess() {
		// Every connection the agent holds is signed in; wait until the
		// server counts them all, then measure.
		waitGauge(ctx, t, "parley_edge_connections", float64(connected), 10*time.Second)
		after = sampleMem()
		memNote = fmt.Sprintf("the clients ran in a child process; server sees %s connections", serverSees())
	} else if remote {
		waitGauge(ctx, t, "parley_edge_connections", float64(connected), 10*time.Second)
		if after, err = sampleRemote(ctx, t, cfg.ServerHTTP); err != nil {
			return nil, err
		}
		memNote = fmt.Sprintf("the server at %s is its own process; it sees %s connections", cfg.ServerHTTP, serverSees())
	}

	// Hold them idle.
	holdStart := time.Now()
	stop := progress(cfg.Progress, "conns", func() string {
		return fmt.Sprintf("holding %d connections idle (%.0fs of %.0fs); server sees %s",
			connected, time.Since(holdStart).Seconds(), cfg.Duration.Seconds(), serverSees())
	})
	select {
	case <-time.After(cfg.Duration):
	case <-ctx.Done():
	}
	stop()
	if ag != nil {
		var chk agentChecked
		if _, err := fmt.Fprintln(ag.stdin, "check"); err != nil {
			aliveErrs = append(aliveErrs, err.Error())
		} else if err := ag.read(&chk, 2*time.Minute); err != nil {
			aliveErrs = append(aliveErrs, err.Error())
		} else {
			alive, aliveErrs = chk.Alive, chk.Errors
		}
		if err := ag.stop(30 * time.Second); err != nil {
			res.note("agent exit: %v", err)
		}
	} else {
		alive, aliveErrs = pingAll(opened.conns, 64, 2)
	}

	res.metric("connections requested", float64(n), "")
	res.metric("connected (signed in)", float64(connected), "")
	res.metric("failed", float64(opened.failed), "")
	res.metric("sign-ins refused as temporary, dialed again", float64(opened.retried), "")
	res.metric("time to connect all", opened.elapsed.Seconds(), "s")
	res.metric("connect rate", perSec(int64(connected), opened.elapsed.Seconds()), "conns/s")
	res.metric("concurrent dials", float64(cfg.Parallel), "")
	if (t.inProcess() || remote) && connected > 0 {
		heap := float64(after.heapInuse) - float64(before.heapInuse)
		stack := float64(after.stackInuse) - float64(before.stackInuse)
		res.metric("server heap in use, delta", heap/(1<<20), "MiB")
		res.metric("server stacks in use, delta", stack/(1<<20), "MiB")
		res.metric("server memory per connection", (heap+stack)/float64(connected), "B")
		res.metric("server goroutines per connection", float64(after.goroutines-before.goroutines)/float64(connected), "")
		res.note("memory per connection = (HeapInuse+StackInuse after − before, each after GC) / connections; it covers what that server process holds for a connection: the edge session and the socket, and the user's actor when it runs the logic role too (every connection is a distinct user); %s", memNote)
	} else {
		res.metric("server memory per connection", "n/a", "")
		res.note("memory per connection is measured with the in-process server, or with --server-http naming the external server's HTTP address (started with --pprof)")
	}
	res.metric("held idle", cfg.Duration.Seconds(), "s")
	res.metric("alive after hold (ping answered)", float64(alive), "")
	res.latency("connect (dial + sign-in)", opened.lat)
	if opened.retried > 0 {
		res.note("sign-ins were refused as temporary %d times (RATE_LIMITED: the edge's --signin-rate); each was dialed again after a backoff, as a client should, and connect latency includes the wait", opened.retried)
	}
	res.check("all connected", connected == n, "%d of %d signed in%s", connected, n, firstOf(opened.errs))
	res.check("all alive after hold", alive == connected, "%d of %d answered a ping after %v idle%s", alive, connected, cfg.Duration, firstOf(aliveErrs))
	return res.finish(start), nil
}

// waitGauge polls an in-process server gauge until it reaches want or
// timeout passes.
func waitGauge(ctx context.Context, t *target, name string, want float64, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if v, err := t.serverGauge(ctx, name); err == nil && v >= want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
