// Package scenario holds Parley's load generators: p2p (1:1 messaging at a
// target rate or flat out), conns (idle connections and their memory), sync
// (catching up a large mailbox), storm (every client dropped and
// reconnected at once), group (fan-out to the members of large groups) and
// room (chat rooms: live fan-out and late joiners' replay). Each one runs
// against an external server or one it starts in-process, verifies what the
// devices received, and returns a Result. cmd/parley-bench wires them to
// flags.
package scenario

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parleyim/parley/bench/hist"
	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/cmd/parleyd/node"
	"github.com/parleyim/parley/edge/auth"
)

// Common configures what every scenario shares. The zero value runs an
// in-process server on the embedded store over TCP.
type Common struct {
	// Addr is an external server's client address, "tcp://127.0.0.1:7420"
	// or "ws://127.0.0.1:7480/ws"; its host must be a loopback address (the
	// generators never send traffic elsewhere). Empty means start a server
	// in-process on random loopback ports with a temporary data dir, and
	// shut it down at the end.
	Addr string
	// WS makes an in-process run connect over WebSocket instead of TCP.
	// With Addr, the scheme decides.
	WS bool
	// Store is the in-process server's store: empty for the embedded store,
	// or "mysql://user:pass@127.0.0.1:3306/db" (loopback only).
	Store string
	// Secret is the HS256 secret tokens are signed with; it must match the
	// server's. Empty means auth.DevSecret for an external server (parleyd's
	// default) and a random secret for an in-process one.
	Secret string
	// Duration bounds the scenario's main phase; each scenario documents
	// how, and what zero means.
	Duration time.Duration
	// Progress receives a progress line every second; nil means none.
	Progress io.Writer
	// ServerLogger receives the in-process server's logs; nil means
	// discard.
	ServerLogger *slog.Logger
}

// target is the server under test and how to reach it.
type target struct {
	addr    string // client address, tcp:// or ws://
	ws      bool
	secret  []byte
	runID   string // prefix of every user id, so each run starts with empty mailboxes
	desc    string // for the report
	node    *node.Node
	dataDir string
	metrics string // in-process: URL of /metrics
}

// openTarget starts the in-process server or checks the external address.
func openTarget(ctx context.Context, c Common) (*target, error) {
	t := &target{runID: "b" + randHex(4)}
	if c.Addr != "" {
		if c.Store != "" {
			return nil, errors.New("--store applies to the in-process server only; drop it or drop --addr")
		}
		ws, err := checkAddr(c.Addr)
		if err != nil {
			return nil, err
		}
		if c.WS && !ws {
			return nil, fmt.Errorf("--ws applies to the in-process server; with --addr the scheme decides (ws://127.0.0.1:7480/ws)")
		}
		t.addr, t.ws = c.Addr, ws
		t.secret = []byte(c.Secret)
		if c.Secret == "" {
			t.secret = []byte(auth.DevSecret)
		}
		t.desc = "external " + c.Addr
		return t, nil
	}
	if c.Store != "" {
		if err := checkStore(c.Store); err != nil {
			return nil, err
		}
	}
	t.secret = []byte(c.Secret)
	if c.Secret == "" {
		t.secret = []byte(randHex(16))
	}
	dir, err := os.MkdirTemp("", "parley-bench-")
	if err != nil {
		return nil, fmt.Errorf("temp data dir: %w", err)
	}
	t.dataDir = dir
	log := c.ServerLogger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n, err := node.Start(ctx, node.Config{
		DataDir:    dir,
		NATSListen: "127.0.0.1:0",
		TCPListen:  "127.0.0.1:0",
		HTTPListen: "127.0.0.1:0",
		Store:      c.Store,
		Secret:     string(t.secret),
		Logger:     log,
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start in-process server: %w", err)
	}
	t.node = n
	t.ws = c.WS
	t.addr = "tcp://" + n.TCPAddr().String()
	if c.WS {
		t.addr = "ws://" + n.HTTPAddr().String() + "/ws"
	}
	t.metrics = "http://" + n.HTTPAddr().String() + "/metrics"
	store := "embedded store"
	if c.Store != "" {
		store = "mysql store"
	}
	t.desc = fmt.Sprintf("in-process (%s, %s, same %d CPUs as the load)", store, t.transport(), numCPU())
	return t, nil
}

func (t *target) transport() string {
	if t.ws {
		return "ws"
	}
	return "tcp"
}

func (t *target) inProcess() bool { return t.node != nil }

// close shuts the in-process server down and removes its data.
func (t *target) close() error {
	if t.node == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := t.node.Shutdown(ctx)
	if rerr := os.RemoveAll(t.dataDir); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("shut down in-process server: %w", err)
	}
	return nil
}

// user returns the id of the i-th user of a kind in this run.
func (t *target) user(kind string, i int) string { return fmt.Sprintf("%s-%s%d", t.runID, kind, i) }

func (t *target) token(uid string) (string, error) {
	tok, err := auth.Mint(t.secret, uid, 24*time.Hour)
	if err != nil {
		return "", fmt.Errorf("mint token for %s: %w", uid, err)
	}
	return tok, nil
}

// dial connects a client as (uid, device) to addr (the target's address when
// empty); mod adjusts the Config.
func (t *target) dial(ctx context.Context, addr, uid, device string, mod func(*client.Config)) (*client.Client, error) {
	tok, err := t.token(uid)
	if err != nil {
		return nil, err
	}
	if addr == "" {
		addr = t.addr
	}
	cfg := client.Config{Addr: addr, Token: tok, DeviceID: device}
	if mod != nil {
		mod(&cfg)
	}
	return client.Dial(ctx, cfg)
}

// dialAll runs n client dials with at most parallel at a time and records
// each one's latency. On the first error it closes what it opened.
func dialAll(ctx context.Context, n, parallel int, lat *hist.Recorder, dial func(ctx context.Context, i int) (*client.Client, error)) ([]*client.Client, error) {
	return dialEach(ctx, n, parallel, "client", lat, dial, closeAll)
}

// dialEach runs n dials with at most parallel at a time, dial(i) making the
// i-th, and records each successful one's latency in lat (if not nil). On
// the first error it stops and closes, with closeAll, what it opened (dial
// may return a connection with its error, to be closed too).
func dialEach[C any](ctx context.Context, n, parallel int, what string, lat *hist.Recorder,
	dial func(ctx context.Context, i int) (C, error), closeAll func([]C)) ([]C, error) {
	out := make([]C, n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	next := make(chan int)
	for range min(parallel, n) {
		wg.Go(func() {
			for i := range next {
				start := time.Now()
				c, err := dial(ctx, i)
				out[i] = c
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("dial %s %d: %w", what, i, err)
					}
					mu.Unlock()
					cancel()
					continue
				}
				if lat != nil {
					lat.Record(time.Since(start))
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		closeAll(out)
		return nil, firstErr
	}
	return out, nil
}

// closeAll closes every non-nil client, in parallel.
func closeAll(cs []*client.Client) {
	var wg sync.WaitGroup
	for _, c := range cs {
		if c != nil {
			wg.Go(func() { c.Close() })
		}
	}
	wg.Wait()
}

// serverGauge reads one gauge from the in-process server's /metrics.
func (t *target) serverGauge(ctx context.Context, name string) (float64, error) {
	if t.metrics == "" {
		return 0, errors.New("no metrics for an external server")
	}
	m, err := t.scrapeMetrics(ctx, func(n string) bool { return n == name })
	if err != nil {
		return 0, err
	}
	v, ok := m[name]
	if !ok {
		return 0, fmt.Errorf("scrape %s: no %s", t.metrics, name)
	}
	return v, nil
}

// scrapeMetrics reads the server's /metrics and returns the value of every
// unlabelled sample whose name keep accepts.
func (t *target) scrapeMetrics(ctx context.Context, keep func(name string) bool) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.metrics, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", t.metrics, err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || !keep(name) {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return nil, fmt.Errorf("scrape %s: %s: %w", t.metrics, name, err)
		}
		m[name] = f
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scrape %s: %w", t.metrics, err)
	}
	return m, nil
}

// checkAddr validates an external client address and reports whether it
// is WebSocket.
func checkAddr(addr string) (ws bool, err error) {
	host := addr
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err != nil {
			return false, fmt.Errorf("--addr %q: %w", addr, err)
		}
		switch u.Scheme {
		case "tcp":
		case "ws":
			ws = true
		default:
			return false, fmt.Errorf("--addr %q: scheme %q, want tcp:// or ws:// (loopback only, so no wss)", addr, u.Scheme)
		}
		host = u.Host
	}
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		return false, fmt.Errorf("--addr %q: %w", addr, err)
	}
	if !isLoopback(h) {
		return false, fmt.Errorf("--addr %q: the load generator only sends traffic to loopback (127.0.0.1)", addr)
	}
	return ws, nil
}

// checkStore validates a mysql:// store URL: the host must be loopback.
func checkStore(store string) error {
	u, err := url.Parse(store)
	if err != nil || u.Scheme != "mysql" {
		return fmt.Errorf("--store %q: want mysql://user:pass@127.0.0.1:3306/db", store)
	}
	if !isLoopback(u.Hostname()) {
		return fmt.Errorf("--store %q: the load generator only sends traffic to loopback (127.0.0.1)", store)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// hostPort returns the host:port a client address connects to.
func hostPort(addr string) (string, error) {
	if !strings.Contains(addr, "://") {
		return addr, nil
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", err
	}
	return u.Host, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
