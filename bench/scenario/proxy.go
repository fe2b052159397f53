package scenario

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// proxy is a loopback TCP proxy between clients and the server. The storm
// scenario uses it to make pushes vanish on the wire (blackhole) and then to
// cut every client connection at once (drop), as a failing load balancer or
// network would; new connections after a drop are forwarded normally.
type proxy struct {
	ln       net.Listener // immutable
	upstream string       // immutable

	accepted    atomic.Int64 // connections accepted
	discarded   atomic.Int64 // bytes from the server thrown away
	lastDiscard atomic.Int64 // unix nanos of the last discard

	mu        sync.Mutex // guards the following
	pairs     map[*pair]struct{}
	blackhole bool // state of new pairs
	closed    bool

	wg sync.WaitGroup // accept loop and pair goroutines
}

// pair is one proxied connection.
type pair struct {
	client, server net.Conn
	blackhole      atomic.Bool // discard bytes from the server
	once           sync.Once
}

func (p *pair) close() {
	p.once.Do(func() {
		p.client.Close()
		p.server.Close()
	})
}

// startProxy listens on a random loopback port and forwards to upstream.
func startProxy(upstream string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, upstream: upstream, pairs: make(map[*pair]struct{})}
	p.wg.Go(p.acceptLoop)
	return p, nil
}

// addr is the proxy's host:port.
func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) acceptLoop() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond) // e.g. out of files: try again
			continue
		}
		p.accepted.Add(1)
		p.wg.Go(func() { p.serve(c) })
	}
}

func (p *proxy) serve(c net.Conn) {
	s, err := net.DialTimeout("tcp", p.upstream, 10*time.Second)
	if err != nil {
		c.Close()
		return
	}
	pr := &pair{client: c, server: s}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		pr.close()
		return
	}
	pr.blackhole.Store(p.blackhole)
	p.pairs[pr] = struct{}{}
	p.mu.Unlock()
	defer func() {
		pr.close()
		p.mu.Lock()
		delete(p.pairs, pr)
		p.mu.Unlock()
	}()
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.Copy(s, c)
		pr.close()
	})
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if pr.blackhole.Load() {
				p.discarded.Add(int64(n))
				p.lastDiscard.Store(time.Now().UnixNano())
			} else if _, werr := c.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	pr.close()
	wg.Wait()
}

// setBlackhole makes every current and future connection discard what the
// server sends (on) or forward it again (off).
func (p *proxy) setBlackhole(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blackhole = on
	for pr := range p.pairs {
		pr.blackhole.Store(on)
	}
}

// dropAll closes every proxied connection at once, turns the blackhole off
// for the connections that come next, and returns how many it closed.
func (p *proxy) dropAll() int {
	p.mu.Lock()
	p.blackhole = false
	all := make([]*pair, 0, len(p.pairs))
	for pr := range p.pairs {
		all = append(all, pr)
	}
	p.mu.Unlock()
	for _, pr := range all {
		pr.close()
	}
	return len(all)
}

// conns returns the number of proxied connections.
func (p *proxy) conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pairs)
}

// close stops accepting, closes every connection and waits for the
// goroutines.
func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.dropAll()
	p.wg.Wait()
}
