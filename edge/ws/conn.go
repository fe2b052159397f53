package ws

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
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
type conn struct {
	// Immutable after newConn.
	id     uint64
	h      *Handler
	ws     *websocket.Conn
	json   bool // parley.json: text protojson messages
	remote net.Addr
	log    *slog.Logger

	out        chan []byte   // protobuf frames for the writer; never closed
	closing    chan struct{} // closed by Close
	readerDone chan struct{} // closed when the read loop returned

	closeOnce sync.Once
	// Written once by Close before closing is closed; read after.
	closeCode wirepb.ErrorCode
	closeMsg  string
}

var _ edge.Conn = (*conn)(nil)

func newConn(h *Handler, ws *websocket.Conn) *conn {
	id := edge.NextConnID()
	c := &conn{
		id:         id,
		h:          h,
		ws:         ws,
		json:       ws.Subprotocol() == SubprotocolJSON,
		remote:     ws.RemoteAddr(),
		out:        make(chan []byte, h.cfg.MaxQueue),
		closing:    make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	c.log = h.log.With("conn", id)
	return c
}

// ID implements edge.Conn.
func (c *conn) ID() uint64 { return c.id }

// RemoteAddr implements edge.Conn.
func (c *conn) RemoteAddr() net.Addr { return c.remote }

// Send implements edge.Conn. It queues b (kept, not copied) for the writer
// goroutine, which converts it to protojson in JSON mode. It never blocks.
func (c *conn) Send(b []byte) error {
	select {
	case <-c.closing:
		return edge.ErrConnClosed
	default:
	}
	select {
	case c.out <- b:
		return nil
	default:
		c.Close(wirepb.ErrorCode_ERROR_CODE_SLOW_CONSUMER, "outbound queue full")
		return edge.ErrSlowConsumer
	}
}

// Close implements edge.Conn: the writer goroutine writes what was queued,
// the Error frame and a close message, then closes the socket.
func (c *conn) Close(code wirepb.ErrorCode, msg string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeMsg = code, msg
		close(c.closing)
	})
}

// serve runs the connection on the calling goroutine (the reader) and a
// writer goroutine, and returns when both are done.
func (c *conn) serve() {
	h := c.h
	c.log.Debug("ws conn opened", "remote", c.remote.String(), "json", c.json)
	h.cfg.Handler.Opened(c)
	writerDone := make(chan struct{})
	h.wg.Add(1) // the counter is > 0: ServeHTTP holds one
	go func() {
		defer h.wg.Done()
		defer close(writerDone)
		c.writeLoop()
	}()
	c.readLoop()
	close(c.readerDone)
	<-writerDone
	c.log.Debug("ws conn closed", "code", c.closeCode.String())
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
				c.log.Debug("ws read", "err", err)
			}
			c.Close(wirepb.ErrorCode_ERROR_CODE_UNSPECIFIED, "")
			return
		}
		// Read at most max+1 bytes: enough to tell an oversized message
		// without buffering it.
		data, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
		if err != nil {
			c.log.Debug("ws read", "err", err)
			c.Close(wirepb.ErrorCode_ERROR_CODE_UNSPECIFIED, "")
			return
		}
		if len(data) > max {
			c.log.Debug("ws frame too large", "max", max)
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
			c.log.Debug("ws bad json frame", "err", err)
			return nil, "message is not a JSON Frame"
		}
		return f, ""
	}
	if mt != websocket.BinaryMessage {
		return nil, "parley.proto carries binary messages"
	}
	f, err := frame.Decode(data)
	if err != nil {
		c.log.Debug("ws bad frame", "err", err)
		return nil, "message does not decode as a Frame"
	}
	return f, ""
}

func (c *conn) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// writeLoop writes queued frames until Close, then runs the close sequence.
func (c *conn) writeLoop() {
	timeout := c.h.cfg.WriteTimeout
	for {
		select {
		case <-c.closing:
			c.finish()
			return
		default:
		}
		select {
		case b := <-c.out:
			err := c.write(b, time.Now().Add(timeout))
			if errors.Is(err, errBadOutbound) {
				c.Close(wirepb.ErrorCode_ERROR_CODE_INTERNAL, "server error")
				continue
			}
			if err != nil {
				c.log.Debug("ws write", "err", err)
				c.Close(wirepb.ErrorCode_ERROR_CODE_UNSPECIFIED, "")
				_ = c.ws.Close()
				return
			}
		case <-c.closing:
			c.finish()
			return
		}
	}
}

// finish flushes what was queued, writes the Error frame and a close message,
// waits up to closeGrace for the client's close reply and closes the socket.
// All writes share one deadline of Config.WriteTimeout.
func (c *conn) finish() {
	defer c.ws.Close()
	deadline := time.Now().Add(c.h.cfg.WriteTimeout)
flush:
	for {
		select {
		case b := <-c.out:
			if err := c.write(b, deadline); errors.Is(err, errBadOutbound) {
				continue
			} else if err != nil {
				c.log.Debug("ws write", "err", err)
				return
			}
		default:
			break flush
		}
	}
	if c.closeCode != wirepb.ErrorCode_ERROR_CODE_UNSPECIFIED {
		if err := c.write(frame.ErrorFrame(c.closeCode, c.closeMsg), deadline); err != nil {
			c.log.Debug("ws write", "err", err)
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
		c.log.Error("ws frame from the server does not decode", "err", err)
		return fmt.Errorf("%w: conn=%d: %w", errBadOutbound, c.id, err)
	}
	j, err := protojson.Marshal(f)
	if err != nil {
		c.log.Error("ws frame does not encode as json", "err", err)
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
