package edge

import (
	"errors"
	"net"
	"sync/atomic"

	"github.com/parleyim/parley/schemas/wirepb"
)

// ErrSlowConsumer is returned by Conn.Send when the connection's outbound
// queue is full; the connection is being closed with SLOW_CONSUMER.
var ErrSlowConsumer = errors.New("edge: slow consumer")

// ErrConnClosed is returned by Conn.Send after the connection closed.
var ErrConnClosed = errors.New("edge: connection closed")

// Conn is one client connection as the session core (Hub) sees it. The core
// never owns a socket: edge/tcp (gnet event loop) and edge/ws (gorilla
// websocket) implement Conn and hand decoded frames to a Handler.
type Conn interface {
	// ID is unique among this edge's connections for the process lifetime.
	ID() uint64
	// Send queues one protobuf-encoded wire Frame for writing and never
	// blocks. The transport adds its framing (and converts to protojson for a
	// JSON WebSocket). When the bounded outbound queue is full the connection
	// is closed with ERROR_CODE_SLOW_CONSUMER and ErrSlowConsumer returned.
	// The transport may keep frame until it is written (edge/ws queues the
	// slice itself), so the caller must not modify it after the call; the
	// same slice may be sent to many connections.
	Send(frame []byte) error
	// Close writes an Error frame with code and msg (none when code is
	// ERROR_CODE_UNSPECIFIED), flushes what was queued before it, and closes
	// the connection. Idempotent; never blocks.
	Close(code wirepb.ErrorCode, msg string)
	// RemoteAddr is the peer's address.
	RemoteAddr() net.Addr
}

// Handler receives connection events from a transport. Implemented by Hub
// (and by test handlers). Calls for one connection are never concurrent; calls
// must not block (the TCP transport calls them on its event loop).
type Handler interface {
	// Opened is called once when a connection is accepted.
	Opened(c Conn)
	// Frame is called for every decoded frame. The handler owns f.
	Frame(c Conn, f *wirepb.Frame)
	// Closed is called once after the connection closed, whoever closed it.
	Closed(c Conn)
}

var lastConnID atomic.Uint64

// NextConnID returns a new connection id, unique in this process. Both
// transports use it so ids never collide on one edge.
func NextConnID() uint64 { return lastConnID.Add(1) }
