package tcp

import (
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/parleyim/parley/edge"
	"github.com/parleyim/parley/edge/frame"
	"github.com/parleyim/parley/schemas/wirepb"
)

// Connection states, in order.
const (
	stateOpen    int32 = iota // frames flow both ways
	stateClosing              // Close was called: Send refuses, input is discarded
	stateClosed               // gnet closed the socket (OnClose ran)
)

// conn is one TCP connection. It is small on purpose: an idle connection
// costs this struct, a map entry and gnet's own conn, nothing else.
type conn struct {
	// Immutable after OnOpen.
	id     uint64
	srv    *Server
	gc     gnet.Conn // only its concurrency-safe methods are used off the loop
	remote net.Addr

	// Safe for concurrent use.
	queued atomic.Int64 // bytes handed to AsyncWrite whose callback has not run
	state  atomic.Int32 // stateOpen, stateClosing, stateClosed
	code   atomic.Int32 // the wirepb.ErrorCode given to Close, for logs and tests

	// Owned by the connection's event loop.
	flushing      bool      // the Error frame (if any) is in gnet's buffer; close once it is empty
	drainDeadline time.Time // cut the connection off at this time even if not drained
}

var _ edge.Conn = (*conn)(nil)

// ID implements edge.Conn.
func (c *conn) ID() uint64 { return c.id }

// RemoteAddr implements edge.Conn.
func (c *conn) RemoteAddr() net.Addr { return c.remote }

// Send implements edge.Conn. It copies frame behind a length prefix and
// queues it on the event loop with AsyncWrite; it never blocks.
func (c *conn) Send(b []byte) error {
	if c.state.Load() != stateOpen {
		return edge.ErrConnClosed
	}
	n := int64(frame.HeaderSize + len(b))
	max := int64(c.srv.cfg.MaxQueueBytes)
	if c.queued.Add(n) > max {
		c.queued.Add(-n)
		c.Close(wirepb.ErrorCode_ERROR_CODE_SLOW_CONSUMER, "outbound queue full")
		return edge.ErrSlowConsumer
	}
	buf := frame.Append(make([]byte, 0, n), b)
	err := c.gc.AsyncWrite(buf, func(gc gnet.Conn, err error) error {
		// On the loop, after gnet wrote buf to the socket or copied what the
		// socket did not take into its outbound buffer.
		left := c.queued.Add(-n)
		if err == nil && c.state.Load() == stateOpen && int64(gc.OutboundBuffered())+left > max {
			c.Close(wirepb.ErrorCode_ERROR_CODE_SLOW_CONSUMER, "outbound queue full")
		}
		return nil
	})
	if err != nil {
		c.queued.Add(-n)
		return fmt.Errorf("tcp send conn=%d: %w: %w", c.id, edge.ErrConnClosed, err)
	}
	return nil
}

// Close implements edge.Conn. The Error frame is queued behind every frame
// sent before; the socket is closed once gnet's outbound buffer is empty or
// Config.DrainTimeout passed.
func (c *conn) Close(code wirepb.ErrorCode, msg string) {
	if !c.state.CompareAndSwap(stateOpen, stateClosing) {
		return
	}
	c.code.Store(int32(code))
	var err error
	if code == wirepb.ErrorCode_ERROR_CODE_UNSPECIFIED {
		// Wake queues behind earlier AsyncWrites like a write would.
		err = c.gc.Wake(c.startFlush)
	} else {
		err = c.gc.AsyncWrite(frame.Append(nil, frame.ErrorFrame(code, msg)), c.startFlush)
	}
	if err != nil {
		_ = c.gc.Close()
	}
}

// startFlush runs on the loop once the Error frame (if any) was written or
// buffered: from now on the connection closes as soon as it is drained.
func (c *conn) startFlush(gc gnet.Conn, err error) error {
	if err != nil || c.flushing {
		return nil // already closed
	}
	c.flushing = true
	c.drainDeadline = time.Now().Add(c.srv.cfg.DrainTimeout)
	if c.drained(gc) {
		return gc.EventLoop().Close(gc)
	}
	return nil
}

// drained reports, on the loop, whether a flushing connection can be closed
// now. If not, it registers the connection for the ticker to wake it.
func (c *conn) drained(gc gnet.Conn) bool {
	if gc.OutboundBuffered() == 0 {
		return true
	}
	if time.Now().After(c.drainDeadline) {
		c.srv.log.Debug("tcp drain timeout", "conn", c.id, "unwritten", gc.OutboundBuffered())
		return true
	}
	s := c.srv
	s.mu.Lock()
	s.draining[c] = struct{}{}
	s.mu.Unlock()
	return false
}
