package ws

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/edge"
	"github.com/parleyim/parley/edge/frame"
	"github.com/parleyim/parley/schemas/wirepb"
)

// jsonIn decodes parley.json frames; unknown fields are ignored, as binary
// protobuf ignores unknown fields.
var jsonIn = protojson.UnmarshalOptions{DiscardUnknown: true}

// conn is one WebSocket connection.
//
// An idle connection holds no outbound queue and no writer goroutine. Frames
// wait in queue, a slice that grows on demand and is dropped when it
// empties. Send starts a drainer goroutine when it queues a frame and none
// runs; the drainer writes until the queue is empty and exits. Once Close was
// called the drainer (Close starts one if none runs) writes what was queued,
// then runs the close sequence (finish) and closes finished. At most one
// drainer runs at a time, so frames are written in the order Send took them.
type conn struct {
	// Immutable after newConn.
	id     uint64
	h      *Handler
	ws     *websocket.Conn
	json   bool // parley.json: text protojson messages
	remote net.Addr

	readerDone chan struct{} // closed when the read loop returned
	finished   chan struct{} // closed by the drainer that ended the connection

	mu           sync.Mutex // guards the fields below
	queue        [][]byte   // protobuf frames not yet taken by the drainer, oldest first
	pending      int        // frames queued or being written
	pendingBytes int        // their bytes
	draining     bool       // a drainer runs or is being started; it counts in h.wg
	closing      bool       // Close was called
	// Set with closing; the drainer reads them after it saw closing.
	closeCode wirepb.ErrorCode
	closeMsg  string
}

var _ edge.Conn = (*conn)(nil)

func newConn(h *Handler, ws *websocket.Conn) *conn {
	return &conn{
		id:         edge.NextConnID(),
		h:          h,
		ws:         ws,
		json:       ws.Subprotocol() == SubprotocolJSON,
		remote:     ws.RemoteAddr(),
		readerDone: make(chan struct{}),
		finished:   make(chan struct{}),
	}
}

// ID implements edge.Conn.
func (c *conn) ID() uint64 { return c.id }

// RemoteAddr implements edge.Conn.
func (c *conn) RemoteAddr() net.Addr { return c.remote }

// Send implements edge.Conn. It queues b (kept, not copied) for the drainer,
// which converts it to protojson in JSON mode, and starts a drainer if none
// runs. It never blocks.
func (c *conn) Send(b []byte) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return edge.ErrConnClosed
	}
	if c.pending >= c.h.cfg.MaxQueue || c.pendingBytes+len(b) > c.h.cfg.MaxQueueBytes {
		start := c.closeLocked(wirepb.ErrorCode_ERROR_CODE_SLOW_CONSUMER, "outbound queue full")
		c.mu.Unlock()
		if start {
			go c.drain()
		}
		return edge.ErrSlowConsumer
	}
	c.queue = append(c.queue, b)
	c.pending++
	c.pendingBytes += len(b)
	start := c.startDrainLocked()
	c.mu.Unlock()
	if start {
		go c.drain()
	}
	return nil
}

// Close implements edge.Conn: the drainer writes what was queued, the Error
// frame and a close message, then closes the socket.
func (c *conn) Close(code wirepb.ErrorCode, msg string) {
	c.mu.Lock()
	start := c.closeLocked(code, msg)
	c.mu.Unlock()
	if start {
		go c.drain()
	}
}

// closeLocked marks the connection closing, the first time, and reports
// whether the caller must start a drainer to run the close sequence.
func (c *conn) closeLocked(code wirepb.ErrorCode, msg string) (start bool) {
	if c.closing {
		return false
	}
	c.closing = true
	c.closeCode, c.closeMsg = code, msg
	return c.startDrainLocked()
}

// startDrainLocked reports whether the caller must start a drainer (go
// c.drain()) because none runs, and counts it in h.wg.
//
// The Add is safe: ServeHTTP holds a count until serve returns, serve returns
// only after finished is closed, and finished is closed by the drainer that
// ends the connection, after Close; from then on no drainer starts.
func (c *conn) startDrainLocked() bool {
	if c.draining {
		return false
	}
	c.draining = true
	c.h.wg.Add(1)
	return true
}

func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// serve runs the connection's read loop on the calling goroutine and
// returns once the connection is closed: the close sequence finished or the
// socket failed.
func (c *conn) serve() {
	h := c.h
	h.log.Debug("ws conn opened", "conn", c.id, "remote", c.remote.String(), "json", c.json)
	h.cfg.Handler.Opened(c)
	c.readLoop() // returns after calling Close, so a drainer will close finished
	close(c.readerDone)
	<-c.finished
	h.log.Debug("ws conn closed", "conn", c.id, "code", c.closeCode.String())
	h.cfg.Handler.Closed(c)
}

// readLoop reads messages and hands decoded frames to the Handler until the
// connection fails or a protocol error closes it.
func (c *conn) readLoop() {
	max := c.h.cfg.MaxFrameSize
	for {
		mt, r, err := c.ws.NextReader()
		if err != nil {
			if websocket.IsUnexpectedCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) && !c.isClosing() {
				c.h.log.Debug("ws read", "conn", c.id, "err", err)
			}
			c.Close(wirepb.ErrorCode_ERROR_CODE_UNSPECIFIED, "")
			return
		}
		// Read at most max+1 bytes: enough to tell an oversized message
		// without buffering it.
		data, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
		if err != nil {
			c.h.log.Debug("ws read", "conn", c.id, "err", err)
			c.Close(wirepb.ErrorCode_ERROR_CODE_UNSPECIFIED, "")
			return
		}
		if len(data) > max {
			c.h.log.Debug("ws frame too large", "conn", c.id, "max", max)
			c.Close(wirepb.ErrorCode_ERROR_CODE_FRAME_TOO_LARGE,
				fmt.Sprintf("message over the %d-byte limit", max))
			return
		}
		if c.isClosing() {
			continue // keep reading for the close reply; frames are dropped
		}
		f, reason := c.decode(mt, data)
		if f == nil {
			c.Close(wirepb.ErrorCode_ERROR_CODE_BAD_FRAME, reason)
			return
		}
		c.h.cfg.Handler.Frame(c, f)
	}
}

// decode turns one message into a Frame. On failure reason says why, in words
// fit for the client's Error frame.
func (c *conn) decode(mt int, data []byte) (f *wirepb.Frame, reason string) {
	if c.json {
		if mt != websocket.TextMessage {
			return nil, "parley.json carries text messages"
		}
		f = new(wirepb.Frame)
		if err := jsonIn.Unmarshal(data, f); err != nil {
			c.h.log.Debug("ws bad json frame", "conn", c.id, "err", err)
			return nil, "message is not a JSON Frame"
		}
		return f, ""
	}
	if mt != websocket.BinaryMessage {
		return nil, "parley.proto carries binary messages"
	}
	f, err := frame.Decode(data)
	if err != nil {
		c.h.log.Debug("ws bad frame", "conn", c.id, "err", err)
		return nil, "message does not decode as a Frame"
	}
	return f, ""
}

// drain writes queued frames, each with a deadline of Config.WriteTimeout,
// until the queue is empty, and exits. Once Close was called it writes what
// is left, then runs finish and closes finished; from the moment it sees
// Close, all its writes share one deadline of Config.WriteTimeout.
func (c *conn) drain() {
	defer c.h.wg.Done()
	timeout := c.h.cfg.WriteTimeout
	var (
		batch         [][]byte  // frames taken from queue; its array goes back to queue
		closeDeadline time.Time // zero until this drainer saw closing
	)
	for {
		c.mu.Lock()
		closing := c.closing
		if len(c.queue) == 0 && !closing {
			c.draining = false
			c.queue = nil // an idle connection holds no queue
			c.mu.Unlock()
			return
		}
		batch, c.queue = c.queue, batch[:0]
		c.mu.Unlock()
		if closing && closeDeadline.IsZero() {
			closeDeadline = time.Now().Add(timeout)
		}
		if len(batch) == 0 { // closing, everything written
			c.finish(closeDeadline)
			close(c.finished)
			return
		}
		for i, b := range batch {
			batch[i] = nil
			deadline := closeDeadline
			if deadline.IsZero() {
				deadline = time.Now().Add(timeout)
			}
			err := c.write(b, deadline)
			c.mu.Lock()
			c.pending--
			c.pendingBytes -= len(b)
			if c.closing && closeDeadline.IsZero() {
				closeDeadline = time.Now().Add(timeout)
			}
			c.mu.Unlock()
			if errors.Is(err, errBadOutbound) {
				c.Close(wirepb.ErrorCode_ERROR_CODE_INTERNAL, "server error")
				if closeDeadline.IsZero() {
					closeDeadline = time.Now().Add(timeout)
				}
				continue
			}
			if err != nil {
				c.h.log.Debug("ws write", "conn", c.id, "err", err)
				c.Close(wirepb.ErrorCode_ERROR_CODE_UNSPECIFIED, "") // no drainer starts: this one runs
				_ = c.ws.Close()
				close(c.finished)
				return
			}
		}
	}
}

// finish writes the Error frame and a close message, waits up to closeGrace
// for the client's close reply and closes the socket. Writes use deadline.
func (c *conn) finish(deadline time.Time) {
	defer c.ws.Close()
	if c.closeCode != wirepb.ErrorCode_ERROR_CODE_UNSPECIFIED {
		if err := c.write(frame.ErrorFrame(c.closeCode, c.closeMsg), deadline); err != nil {
			c.h.log.Debug("ws write", "conn", c.id, "err", err)
			return
		}
	}
	msg := websocket.FormatCloseMessage(wsCloseCode(c.closeCode), truncateUTF8(c.closeMsg, 123))
	if err := c.ws.WriteControl(websocket.CloseMessage, msg, deadline); err != nil {
		return // the client is gone, or already closed: no reply to wait for
	}
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-c.readerDone:
	case <-t.C:
	}
}

// errBadOutbound marks a frame given to Send that cannot be converted to
// JSON: a server bug. The connection closes with ERROR_CODE_INTERNAL.
var errBadOutbound = errors.New("ws: bad outbound frame")

// write writes one protobuf frame, converted to protojson in JSON mode.
func (c *conn) write(b []byte, deadline time.Time) error {
	if err := c.ws.SetWriteDeadline(deadline); err != nil {
		return err
	}
	if !c.json {
		return c.ws.WriteMessage(websocket.BinaryMessage, b)
	}
	f := new(wirepb.Frame)
	if err := proto.Unmarshal(b, f); err != nil {
		c.h.log.Error("ws frame from the server does not decode", "conn", c.id, "err", err)
		return fmt.Errorf("%w: conn=%d: %w", errBadOutbound, c.id, err)
	}
	j, err := protojson.Marshal(f)
	if err != nil {
		c.h.log.Error("ws frame does not encode as json", "conn", c.id, "err", err)
		return fmt.Errorf("%w: conn=%d: json: %w", errBadOutbound, c.id, err)
	}
	return c.ws.WriteMessage(websocket.TextMessage, j)
}

// wsCloseCode maps an Error code to a WebSocket close status.
func wsCloseCode(code wirepb.ErrorCode) int {
	switch code {
	case wirepb.ErrorCode_ERROR_CODE_UNSPECIFIED:
		return websocket.CloseNormalClosure
	case wirepb.ErrorCode_ERROR_CODE_SHUTTING_DOWN:
		return websocket.CloseGoingAway
	case wirepb.ErrorCode_ERROR_CODE_FRAME_TOO_LARGE:
		return websocket.CloseMessageTooBig
	case wirepb.ErrorCode_ERROR_CODE_BAD_FRAME:
		return websocket.CloseInvalidFramePayloadData
	case wirepb.ErrorCode_ERROR_CODE_INTERNAL:
		return websocket.CloseInternalServerErr
	}
	if code.Temporary() {
		return websocket.CloseTryAgainLater
	}
	return websocket.ClosePolicyViolation
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
