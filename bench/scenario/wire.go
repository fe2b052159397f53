package scenario

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// wire stands for the network between the storm scenario's clients and the
// server: every client dials through it (client.Config.NetDial), so it can
// make what the server sends vanish on the way (blackhole) and then cut
// every connection at once (dropAll), as a failing load balancer or network
// would. It wraps each client's own socket, so it costs no extra sockets (a
// proxy cost two per device, which under this machine's open-file limit
// held the storm to 3,242 devices).
type wire struct {
	dialed      atomic.Int64 // connections opened
	discarded   atomic.Int64 // bytes from the server thrown away
	lastDiscard atomic.Int64 // unix nanos of the last discard

	mu        sync.Mutex // guards the following
	conns     map[*wireConn]struct{}
	blackhole bool // state of new connections
}

func newWire() *wire { return &wire{conns: make(map[*wireConn]struct{})} }

// wireConn is one client connection on the wire.
type wireConn struct {
	net.Conn
	w         *wire
	blackhole atomic.Bool                   // discard what the server sends
	held      atomic.Pointer[chan struct{}] // set by dropAll: Read's error waits for it to close
	once      sync.Once
}

// dial is a client.Config.NetDial.
func (w *wire) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	w.dialed.Add(1)
	c := &wireConn{Conn: nc, w: w}
	w.mu.Lock()
	c.blackhole.Store(w.blackhole)
	w.conns[c] = struct{}{}
	w.mu.Unlock()
	return c, nil
}

// Read returns what the server sent or, while the blackhole is on, throws
// it away and waits for more. The error of a connection dropAll cut waits
// until dropAll has cut them all.
func (c *wireConn) Read(b []byte) (int, error) {
	for {
		n, err := c.Conn.Read(b)
		if n > 0 && c.blackhole.Load() {
			c.w.discarded.Add(int64(n))
			c.w.lastDiscard.Store(time.Now().UnixNano())
			n = 0
		}
		if err != nil {
			if held := c.held.Load(); held != nil {
				<-*held
			}
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// Close closes the socket and takes it off the wire.
func (c *wireConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		err = c.Conn.Close()
		c.w.mu.Lock()
		delete(c.w.conns, c)
		c.w.mu.Unlock()
	})
	return err
}

// setBlackhole makes every current and future connection discard what the
// server sends (on) or pass it again (off).
func (w *wire) setBlackhole(on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.blackhole = on
	for c := range w.conns {
		c.blackhole.Store(on)
	}
}

// dropAll closes every connection, turns the blackhole off for the
// connections that come next, and returns how many it closed. The clients
// see their connections fail all at once, when dropAll returns: each
// client's reader, woken by the close, waits for the others. Otherwise
// thousands of clients reconnecting would compete with the closing loop for
// the CPU and stretch a cut of 10,000 connections over 5 s.
func (w *wire) dropAll() int {
	w.mu.Lock()
	w.blackhole = false
	all := make([]*wireConn, 0, len(w.conns))
	for c := range w.conns {
		all = append(all, c)
	}
	w.mu.Unlock()
	release := make(chan struct{})
	for _, c := range all {
		c.held.Store(&release)
		c.Close()
	}
	close(release)
	return len(all)
}

// open returns the number of connections open on the wire.
func (w *wire) open() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.conns)
}
