// Package ws is Parley's WebSocket client listener: net/http plus
// gorilla/websocket, one wire Frame per message.
//
// The subprotocol picks the encoding:
//
//	parley.proto  binary messages, each a protobuf wirepb.Frame (also when the
//	              client asks for no subprotocol)
//	parley.json   text messages, each a protojson wirepb.Frame, for browsers
//	              (standard proto3 JSON mapping: lowerCamelCase field names,
//	              64-bit integers as strings, bytes as base64; unknown fields
//	              are ignored, as they are in binary protobuf)
//
// A client that offers subprotocols but none of these gets HTTP 400.
//
// Every connection has one reader goroutine (the one that served the upgrade)
// and, only while frames wait to be written, a writer goroutine: an idle
// connection holds no outbound queue and no writer. The outbound queue is
// bounded in frames (Config.MaxQueue) and bytes (Config.MaxQueueBytes); a
// full queue closes the connection with ERROR_CODE_SLOW_CONSUMER. Frames are
// written in the order Send took them. Handler.Opened, Frame and Closed run
// on the reader goroutine, so they are never concurrent for one connection.
// Closing writes what was queued, the Error frame, then a WebSocket close
// message, waits briefly for the client's close reply and closes the socket.
// TLS (WSS) comes from the net/http server that mounts the Handler.
package ws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyim/parley/edge"
	"github.com/parleyim/parley/edge/frame"
	"github.com/parleyim/parley/schemas/wirepb"
)

// Subprotocol names a client offers in Sec-WebSocket-Protocol.
const (
	// SubprotocolProto carries binary protobuf frames; the default.
	SubprotocolProto = "parley.proto"
	// SubprotocolJSON carries text protojson frames.
	SubprotocolJSON = "parley.json"
)

const (
	// DefaultMaxQueue is the per-connection outbound queue length in frames
	// when Config.MaxQueue is zero.
	DefaultMaxQueue = 1024
	// DefaultMaxQueueBytes is the per-connection outbound queue size in
	// bytes when Config.MaxQueueBytes is zero: 4 MiB, as edge/tcp.
	DefaultMaxQueueBytes = 4 << 20
	// DefaultWriteTimeout is the write deadline when Config.WriteTimeout is
	// zero.
	DefaultWriteTimeout = 10 * time.Second

	// closeGrace is how long a closing connection waits for the client's
	// close reply after sending its close message.
	closeGrace = time.Second
	// handshakeTimeout bounds the upgrade response.
	handshakeTimeout = 10 * time.Second
)

// Config configures a Handler. The zero value of every field but Handler is a
// usable default.
type Config struct {
	// Handler receives connection events. Required.
	Handler edge.Handler
	// MaxFrameSize is the largest inbound message in bytes. A larger one
	// closes the connection with ERROR_CODE_FRAME_TOO_LARGE after at most
	// MaxFrameSize+1 bytes of it were read. Zero means frame.DefaultMaxSize
	// (64 KiB).
	MaxFrameSize int
	// MaxQueue is how many outbound frames may wait unwritten per connection
	// before it is closed as a slow consumer. Zero means DefaultMaxQueue
	// (1024).
	MaxQueue int
	// MaxQueueBytes is how many outbound bytes (protobuf frames as given to
	// Send) may wait unwritten per connection before it is closed as a slow
	// consumer. Zero means DefaultMaxQueueBytes (4 MiB).
	MaxQueueBytes int
	// CheckOrigin decides whether a request's Origin header may connect.
	// Nil allows every origin: a development default (any page, e.g. a
	// local file or another port, can connect). Set it in production so that
	// only your web app's pages can.
	CheckOrigin func(r *http.Request) bool
	// WriteTimeout bounds each write, and the whole close sequence. Zero
	// means DefaultWriteTimeout (10 s).
	WriteTimeout time.Duration
	// Logger receives the handler's logs. Nil discards them.
	Logger *slog.Logger
}

// Handler is an http.Handler that upgrades requests to WebSocket connections
// and serves them; mount it at /ws. Create it with New. Safe for concurrent
// use.
type Handler struct {
	// Immutable after New.
	cfg      Config // defaults applied
	log      *slog.Logger
	upgrader websocket.Upgrader

	mu       sync.Mutex
	shutting bool               // guarded by mu: Shutdown began; no new connections
	conns    map[*conn]struct{} // guarded by mu: upgraded, not yet finished

	// wg counts each connection's reader (ServeHTTP) and writer (drainer)
	// goroutines. Add with a zero counter happens only under mu while
	// !shutting; a drainer is added while its ServeHTTP holds a count.
	wg sync.WaitGroup
}

// New validates cfg and returns a Handler. It does not modify cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Handler == nil {
		return nil, errors.New("ws: Config.Handler is nil")
	}
	switch {
	case cfg.MaxFrameSize < 0:
		return nil, fmt.Errorf("ws: negative Config.MaxFrameSize %d", cfg.MaxFrameSize)
	case cfg.MaxQueue < 0:
		return nil, fmt.Errorf("ws: negative Config.MaxQueue %d", cfg.MaxQueue)
	case cfg.MaxQueueBytes < 0:
		return nil, fmt.Errorf("ws: negative Config.MaxQueueBytes %d", cfg.MaxQueueBytes)
	case cfg.WriteTimeout < 0:
		return nil, fmt.Errorf("ws: negative Config.WriteTimeout %v", cfg.WriteTimeout)
	}
	if cfg.MaxFrameSize == 0 {
		cfg.MaxFrameSize = frame.DefaultMaxSize
	}
	if cfg.MaxQueue == 0 {
		cfg.MaxQueue = DefaultMaxQueue
	}
	if cfg.MaxQueueBytes == 0 {
		cfg.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	checkOrigin := cfg.CheckOrigin
	if checkOrigin == nil {
		checkOrigin = func(*http.Request) bool { return true }
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{
		cfg: cfg,
		log: log.With("transport", "ws"),
		upgrader: websocket.Upgrader{
			HandshakeTimeout: handshakeTimeout,
			Subprotocols:     []string{SubprotocolProto, SubprotocolJSON},
			CheckOrigin:      checkOrigin,
			// ReadBufferSize 0, WriteBufferSize 0 and no WriteBufferPool:
			// gorilla reuses net/http's 4 KiB bufio.Reader and Writer. Both
			// stay reachable from net/http's conn while ServeHTTP runs, so
			// reusing them costs nothing; a pool or an own read buffer would
			// add to them (measured by TestIdleMemory).
		},
		conns: make(map[*conn]struct{}),
	}, nil
}

// ServeHTTP upgrades the request and serves the connection until it closes.
// It answers 400 to a client offering only unknown subprotocols and 503
// during Shutdown.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if offered := websocket.Subprotocols(r); len(offered) > 0 &&
		!slices.Contains(offered, SubprotocolProto) && !slices.Contains(offered, SubprotocolJSON) {
		http.Error(w, "unsupported subprotocol: offer parley.proto or parley.json", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	if h.shutting {
		h.mu.Unlock()
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()

	ws, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		h.log.Debug("ws upgrade failed", "remote", r.RemoteAddr, "err", err)
		return // the upgrader wrote the HTTP error
	}
	c := newConn(h, ws)

	h.mu.Lock()
	h.conns[c] = struct{}{}
	shutting := h.shutting
	h.mu.Unlock()
	if shutting {
		c.Close(wirepb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, "server shutting down")
	}

	c.serve()

	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

// Shutdown closes every connection with ERROR_CODE_SHUTTING_DOWN (after what
// was queued for it), refuses new ones with 503 and waits for all connection
// goroutines. When ctx expires first it cuts the remaining sockets and
// returns ctx.Err(). Idempotent.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.shutting = true
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	if len(conns) > 0 {
		h.log.Info("ws shutting down", "conns", len(conns))
	}
	for _, c := range conns {
		c.Close(wirepb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, "server shutting down")
	}

	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	h.mu.Lock()
	for c := range h.conns {
		_ = c.ws.Close() // unblocks its reader and writer
	}
	h.mu.Unlock()
	return fmt.Errorf("ws shutdown: %w", ctx.Err())
}
