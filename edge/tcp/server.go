package tcp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/parleyim/parley/edge"
	"github.com/parleyim/parley/edge/frame"
	"github.com/parleyim/parley/schemas/wirepb"
)

const (
	// DefaultAddr is the listen address when Config.Addr is empty.
	DefaultAddr = "127.0.0.1:7420"
	// DefaultMaxQueueBytes is the per-connection outbound limit when
	// Config.MaxQueueBytes is zero: 4 MiB.
	DefaultMaxQueueBytes = 4 << 20
	// DefaultDrainTimeout is how long a closing connection may keep flushing
	// when Config.DrainTimeout is zero.
	DefaultDrainTimeout = 5 * time.Second

	// tickInterval is the period of the shared ticker that finishes the close
	// of draining connections.
	tickInterval = 100 * time.Millisecond
)

// ErrServerClosed is returned by Start after Shutdown, or when Start is called
// a second time.
var ErrServerClosed = errors.New("tcp: server closed")

// Config configures a Server. The zero value of every field but Handler is a
// usable default.
type Config struct {
	// Addr is the host:port to listen on; port 0 picks a free port (see
	// Server.Addr). Zero means DefaultAddr ("127.0.0.1:7420").
	Addr string
	// Handler receives connection events. Required.
	Handler edge.Handler
	// MaxFrameSize is the largest inbound frame payload in bytes. Zero means
	// frame.DefaultMaxSize (64 KiB).
	MaxFrameSize int
	// MaxQueueBytes is how many outbound bytes may wait unwritten per
	// connection (queued for the event loop plus gnet's outbound buffer,
	// length prefixes included) before the connection is closed as a slow
	// consumer. A single frame larger than this can never be sent. Zero means
	// DefaultMaxQueueBytes (4 MiB).
	MaxQueueBytes int
	// EventLoops is the number of event-loop goroutines that serve
	// connections. Zero means runtime.NumCPU().
	EventLoops int
	// DrainTimeout bounds how long a closing connection keeps flushing what
	// was queued before its Error frame; a client that does not read is cut
	// off when it expires. Zero means DefaultDrainTimeout (5 s).
	DrainTimeout time.Duration
	// Logger receives the server's logs. Nil discards them.
	Logger *slog.Logger
}

// Server is a TCP listener on a gnet event loop. Create it with New, then
// Start it; Shutdown stops it. Its methods are safe for concurrent use.
type Server struct {
	// Immutable after New.
	cfg Config // defaults applied
	log *slog.Logger

	// Written by the gnet.Run goroutine before booted (eng, addr) or done
	// (runErr) is closed; read only after that.
	eng     gnet.Engine
	addr    net.Addr
	bootErr error // OnBoot failed; gnet.Run then returns nil
	runErr  error
	booted  chan struct{} // closed once the listener is bound and accepting
	done    chan struct{} // closed once gnet.Run returned (or Start gave up)

	started atomic.Bool

	mu        sync.Mutex
	stopping  bool               // guarded by mu: Shutdown began; new connections are refused
	conns     map[uint64]*conn   // guarded by mu: opened and not yet closed
	draining  map[*conn]struct{} // guarded by mu: closing, waiting for gnet's outbound buffer to empty
	allClosed chan struct{}      // guarded by mu: made by Shutdown, closed when conns is empty
}

// New validates cfg and returns a Server that is not yet listening. It does
// not modify cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("tcp: Config.Handler is nil")
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	_, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("tcp: bad Config.Addr %q: %w", cfg.Addr, err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, fmt.Errorf("tcp: bad port in Config.Addr %q: %w", cfg.Addr, err)
	} else if p > 65535 {
		return nil, fmt.Errorf("tcp: bad port in Config.Addr %q", cfg.Addr)
	}
	switch {
	case cfg.MaxFrameSize < 0:
		return nil, fmt.Errorf("tcp: negative Config.MaxFrameSize %d", cfg.MaxFrameSize)
	case cfg.MaxQueueBytes < 0:
		return nil, fmt.Errorf("tcp: negative Config.MaxQueueBytes %d", cfg.MaxQueueBytes)
	case cfg.EventLoops < 0:
		return nil, fmt.Errorf("tcp: negative Config.EventLoops %d", cfg.EventLoops)
	case cfg.DrainTimeout < 0:
		return nil, fmt.Errorf("tcp: negative Config.DrainTimeout %v", cfg.DrainTimeout)
	}
	if cfg.MaxFrameSize == 0 {
		cfg.MaxFrameSize = frame.DefaultMaxSize
	}
	if cfg.MaxQueueBytes == 0 {
		cfg.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if cfg.EventLoops == 0 {
		cfg.EventLoops = runtime.NumCPU()
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		cfg:      cfg,
		log:      log.With("transport", "tcp"),
		booted:   make(chan struct{}),
		done:     make(chan struct{}),
		conns:    make(map[uint64]*conn),
		draining: make(map[*conn]struct{}),
	}, nil
}

// Start binds Config.Addr and starts the event loops. It returns nil once the
// listener is bound and accepting, or the bind error (which wraps
// syscall.EADDRINUSE when the port is taken). ctx bounds only the start; use
// Shutdown to stop. Start may be called once.
func (s *Server) Start(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return ErrServerClosed
	}
	s.mu.Lock()
	stopping := s.stopping
	s.mu.Unlock()
	if stopping {
		close(s.done)
		return ErrServerClosed
	}
	go s.run()
	select {
	case <-s.booted:
		s.log.Info("tcp listening", "addr", s.addr.String(), "event_loops", s.cfg.EventLoops,
			"gomaxprocs", runtime.GOMAXPROCS(0))
		return nil
	case <-s.done:
		return fmt.Errorf("tcp listen %s: %w", s.cfg.Addr, s.runErr)
	case <-ctx.Done():
		go s.stopEngine()
		return fmt.Errorf("tcp listen %s: %w", s.cfg.Addr, ctx.Err())
	}
}

// run runs the gnet engine until it stops.
func (s *Server) run() {
	pollers := s.cfg.EventLoops + 1 // the loops and the acceptor
	reserveProcs(pollers)
	err := gnet.Run(&events{s: s}, "tcp://"+s.cfg.Addr,
		gnet.WithNumEventLoop(s.cfg.EventLoops),
		gnet.WithReuseAddr(true), // restart despite TIME_WAIT; a live listener still gives EADDRINUSE
		gnet.WithReusePort(false),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithTicker(true),
		gnet.WithLogger(gnetLogger{s.log}),
	)
	releaseProcs(pollers)
	select {
	case <-s.booted:
		s.mu.Lock()
		stopping := s.stopping
		s.mu.Unlock()
		if !stopping {
			// gnet stops the whole engine when accept fails with anything
			// but EAGAIN/EINTR/ECONNRESET/ECONNABORTED (EMFILE, say).
			s.log.Error("tcp engine stopped unexpectedly", "err", err)
		}
	default:
		if err == nil {
			err = s.bootErr
		}
		if err == nil {
			err = errors.New("tcp: engine stopped before accepting")
		}
	}
	s.runErr = err
	close(s.done)
}

// Addr returns the bound listen address, with the real port when Config.Addr
// asked for port 0. It is nil before Start succeeded.
func (s *Server) Addr() net.Addr {
	select {
	case <-s.booted:
		return s.addr
	default:
		return nil
	}
}

// Shutdown stops accepting (a connection that arrives meanwhile gets a
// SHUTTING_DOWN Error frame and is closed), closes every connection with
// ERROR_CODE_SHUTTING_DOWN after what was queued for it, stops the event
// loops and waits for them. When ctx expires first the remaining connections
// are cut off and ctx.Err() is returned. Idempotent: later calls wait for the
// same stop.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	first := !s.stopping
	s.stopping = true
	var conns []*conn
	if first {
		s.allClosed = make(chan struct{})
		if len(s.conns) == 0 {
			close(s.allClosed)
		}
		for _, c := range s.conns {
			conns = append(conns, c)
		}
	}
	allClosed := s.allClosed
	s.mu.Unlock()
	if !s.started.Load() {
		return nil
	}

	if first {
		s.log.Info("tcp shutting down", "conns", len(conns))
		for _, c := range conns {
			c.Close(wirepb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, "server shutting down")
		}
		select {
		case <-allClosed:
		case <-ctx.Done():
		}
		s.stopEngine()
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("tcp shutdown: %w", ctx.Err())
	}
}

// stopEngine tells gnet to stop once it has booted. gnet's Engine.Stop polls
// for completion every 500 ms; we only use it to trigger the stop (with a
// context that is already done) and wait for gnet.Run to return instead.
func (s *Server) stopEngine() {
	select {
	case <-s.booted:
	case <-s.done:
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.eng.Stop(ctx)
}

// events implements gnet.EventHandler for a Server.
type events struct {
	gnet.BuiltinEventEngine
	s *Server
}

// OnBoot records the engine and the bound address. It runs on the gnet.Run
// goroutine after the listener is bound and before the loops start; the
// kernel already queues connections then.
func (e *events) OnBoot(eng gnet.Engine) gnet.Action {
	s := e.s
	addr, err := boundAddr(eng)
	if err != nil {
		s.bootErr = err
		return gnet.Shutdown
	}
	s.eng, s.addr = eng, addr
	close(s.booted)
	return gnet.None
}

// boundAddr asks the kernel for the listener's address: gnet keeps the
// address it was given (port 0 included), so duplicate the listener fd and
// call getsockname on it.
func boundAddr(eng gnet.Engine) (net.Addr, error) {
	fd, err := eng.Dup()
	if err != nil {
		return nil, fmt.Errorf("tcp: dup listener: %w", err)
	}
	defer unix.Close(fd)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("tcp: getsockname: %w", err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}, nil
	case *unix.SockaddrInet6:
		a := &net.TCPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: sa.Port}
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				a.Zone = ifi.Name
			} else {
				a.Zone = strconv.Itoa(int(sa.ZoneId))
			}
		}
		return a, nil
	default:
		return nil, fmt.Errorf("tcp: unexpected listener address %T", sa)
	}
}

// OnOpen registers a new connection and calls Handler.Opened; during
// Shutdown it answers SHUTTING_DOWN and closes instead.
func (e *events) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	s := e.s
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return frame.Append(nil, frame.ErrorFrame(wirepb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, "server shutting down")), gnet.Close
	}
	c := &conn{id: edge.NextConnID(), srv: s, gc: gc, remote: gc.RemoteAddr()}
	s.conns[c.id] = c
	s.mu.Unlock()
	gc.SetContext(c)
	_ = gc.SetNoDelay(true) // inherited from the listener on Linux; explicit elsewhere
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("tcp conn opened", "conn", c.id, "remote", c.remote.String())
	}
	s.cfg.Handler.Opened(c)
	return nil, gnet.None
}

// OnTraffic decodes every complete frame buffered for the connection and
// hands each to Handler.Frame. It also runs when a draining connection is
// woken by the ticker.
func (e *events) OnTraffic(gc gnet.Conn) gnet.Action {
	s := e.s
	c, _ := gc.Context().(*conn)
	if c == nil {
		_, _ = gc.Discard(-1)
		return gnet.Close
	}
	if c.state.Load() != stateOpen {
		_, _ = gc.Discard(-1) // nothing more is read from a closing connection
		if c.flushing && c.drained(gc) {
			return gnet.Close
		}
		return gnet.None
	}
	buf, _ := gc.Peek(-1)
	off := 0
	for c.state.Load() == stateOpen {
		payload, n, err := frame.Next(buf[off:], s.cfg.MaxFrameSize)
		if err != nil {
			size := binary.BigEndian.Uint32(buf[off:])
			s.log.Debug("tcp frame too large", "conn", c.id, "size", size, "max", s.cfg.MaxFrameSize)
			c.Close(wirepb.ErrorCode_ERROR_CODE_FRAME_TOO_LARGE,
				fmt.Sprintf("frame of %d bytes is over the %d-byte limit", size, s.cfg.MaxFrameSize))
			break
		}
		if n == 0 {
			break
		}
		off += n
		f, err := frame.Decode(payload)
		if err != nil {
			s.log.Debug("tcp bad frame", "conn", c.id, "err", err)
			c.Close(wirepb.ErrorCode_ERROR_CODE_BAD_FRAME, "frame does not decode")
			break
		}
		s.cfg.Handler.Frame(c, f)
	}
	switch {
	case c.state.Load() != stateOpen:
		_, _ = gc.Discard(-1)
	case off > 0:
		// Never Discard(0): gnet treats n <= 0 as "discard everything".
		_, _ = gc.Discard(off)
	}
	return gnet.None
}

// OnClose unregisters the connection and calls Handler.Closed.
func (e *events) OnClose(gc gnet.Conn, err error) gnet.Action {
	s := e.s
	c, _ := gc.Context().(*conn)
	if c == nil {
		return gnet.None
	}
	c.state.Store(stateClosed)
	s.mu.Lock()
	delete(s.conns, c.id)
	delete(s.draining, c)
	if s.allClosed != nil && len(s.conns) == 0 {
		select {
		case <-s.allClosed:
		default:
			close(s.allClosed)
		}
	}
	s.mu.Unlock()
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("tcp conn closed", "conn", c.id, "code", wirepb.ErrorCode(c.code.Load()).String(), "err", err)
	}
	s.cfg.Handler.Closed(c)
	return gnet.None
}

// OnTick wakes every draining connection so that its loop can check whether
// its outbound buffer is empty or its drain deadline passed. It runs on
// gnet's ticker goroutine.
func (e *events) OnTick() (time.Duration, gnet.Action) {
	s := e.s
	s.mu.Lock()
	for c := range s.draining {
		_ = c.gc.Wake(nil)
	}
	s.mu.Unlock()
	return tickInterval, gnet.None
}
