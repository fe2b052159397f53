package edgetest

import (
	"net"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/edge"
	"github.com/parleyim/parley/schemas/wirepb"
)

// Conn is an edge.Conn with no socket: it decodes and records every frame
// the session core sends, for tests that drive an edge.Hub directly.
type Conn struct {
	id     uint64
	Frames chan *wirepb.Frame // every frame sent; a full channel is a slow consumer
	Closes chan *wirepb.Error // the Close call, once

	mu     sync.Mutex // guards closed
	closed bool
}

var _ edge.Conn = (*Conn)(nil)

// NewConn returns a Conn with a fresh edge.NextConnID whose Frames holds
// 4,096 frames.
func NewConn() *Conn {
	return &Conn{id: edge.NextConnID(), Frames: make(chan *wirepb.Frame, 1<<12), Closes: make(chan *wirepb.Error, 1)}
}

// ID implements edge.Conn.
func (c *Conn) ID() uint64 { return c.id }

// Send implements edge.Conn. It panics on bytes that are not a Frame: the
// core must never send those.
func (c *Conn) Send(frame []byte) error {
	f := new(wirepb.Frame)
	if err := proto.Unmarshal(frame, f); err != nil {
		panic("edgetest: core sent an undecodable frame: " + err.Error())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return edge.ErrConnClosed
	}
	select {
	case c.Frames <- f:
		return nil
	default:
		c.closeLocked(wirepb.ErrorCode_ERROR_CODE_SLOW_CONSUMER, "slow consumer")
		return edge.ErrSlowConsumer
	}
}

// Close implements edge.Conn. It does not call the handler's Closed: the
// test does, as a transport would.
func (c *Conn) Close(code wirepb.ErrorCode, msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, msg)
}

func (c *Conn) closeLocked(code wirepb.ErrorCode, msg string) {
	if c.closed {
		return
	}
	c.closed = true
	c.Closes <- &wirepb.Error{Code: code, Message: msg}
}

// RemoteAddr implements edge.Conn.
func (c *Conn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
