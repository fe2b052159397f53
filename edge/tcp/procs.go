package tcp

import (
	"runtime"
	"sync"
)

// gnet's pollers wait in a blocking epoll_wait(2) system call (not Go's
// netpoller), and a goroutine blocked in a system call keeps its P until the
// runtime's sysmon thread takes it back: within 20 µs when sysmon is busy,
// but sysmon backs off to 10 ms sleeps when it has found nothing to do, and it
// polls the network itself only every 10 ms. A server has one poller per event
// loop plus the acceptor. With GOMAXPROCS=2 and two loops, every P could be
// parked in epoll_wait while a MySQL reply or a NATS message waited for the
// next sysmon pass: measured against an external parleyd with MySQL at 1,000
// msgs/s, half of all BEGINs took 9–10 ms instead of well under one, and
// send→delivered p50 was 86 ms; with the Ps below it is 11 ms (see
// docs/PERFORMANCE.md). The same cost is described in golang/go#76290.
//
// So a running server adds one P per poller to GOMAXPROCS and takes them back
// when it stops. A parked poller uses no CPU, so the runtime still runs at
// most the configured number of goroutines' worth of ordinary Go code while
// the loops are idle, and at most that plus the busy loops while they work.
// Setting GOMAXPROCS stops the runtime from following later changes of a
// container's CPU limit (Go 1.25+); parleyd reads the limit at start, like
// the runtime, and a changed limit takes a restart.
var procs struct {
	mu       sync.Mutex
	reserved int // Ps added by the running servers of this process
}

// reserveProcs adds n Ps to GOMAXPROCS.
func reserveProcs(n int) {
	procs.mu.Lock()
	defer procs.mu.Unlock()
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + n)
	procs.reserved += n
}

// releaseProcs takes back n Ps added by reserveProcs, never going below
// one P or below what was there before any server reserved.
func releaseProcs(n int) {
	procs.mu.Lock()
	defer procs.mu.Unlock()
	n = min(n, procs.reserved)
	procs.reserved -= n
	runtime.GOMAXPROCS(max(1, runtime.GOMAXPROCS(0)-n))
}
