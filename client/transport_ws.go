package client

import (
	"context"
	"fmt"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/schemas/wirepb"
)

// WebSocket subprotocols: one message is one Frame, binary protobuf or
// protojson text.
const (
	subprotocolProto = "parley.proto"
	subprotocolJSON  = "parley.json"
)

// wsTransport speaks the wire protocol over a gorilla WebSocket.
type wsTransport struct {
	c    *websocket.Conn // immutable; reads by the reader, writes by the writer
	json bool            // immutable
}

var _ transport = (*wsTransport)(nil)

func dialWS(ctx context.Context, cfg *Config, url string) (transport, error) {
	want := subprotocolProto
	if cfg.JSON {
		want = subprotocolJSON
	}
	d := websocket.Dialer{
		HandshakeTimeout: cfg.RequestTimeout,
		Subprotocols:     []string{want},
		NetDialContext:   cfg.NetDial,
	}
	c, resp, err := d.DialContext(ctx, url, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w: dial %s: %w (http status %d)", ErrDisconnected, url, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("%w: dial %s: %w", ErrDisconnected, url, err)
	}
	if got := c.Subprotocol(); got != want {
		c.Close()
		return nil, fmt.Errorf("%w: dial %s: server chose subprotocol %q, want %q", ErrProtocol, url, got, want)
	}
	c.SetReadLimit(int64(cfg.MaxFrameSize))
	return &wsTransport{c: c, json: cfg.JSON}, nil
}

func (t *wsTransport) readFrame() (*wirepb.Frame, error) {
	typ, data, err := t.c.ReadMessage()
	if err != nil {
		if err == websocket.ErrReadLimit {
			return nil, fmt.Errorf("%w: %w", ErrFrameTooLarge, err)
		}
		return nil, err
	}
	switch typ {
	case websocket.BinaryMessage:
		return decodeProto(data)
	case websocket.TextMessage:
		return decodeJSON(data)
	}
	return nil, fmt.Errorf("%w: websocket message type %d", ErrProtocol, typ)
}

func (t *wsTransport) writeFrame(f *wirepb.Frame, deadline time.Time) error {
	if n := proto.Size(f); n > maxSendFrame {
		return fmt.Errorf("%w: %d bytes over %d", ErrFrameTooLarge, n, maxSendFrame)
	}
	typ := websocket.BinaryMessage
	var b []byte
	var err error
	if t.json {
		typ = websocket.TextMessage
		b, err = protojson.Marshal(f)
	} else {
		b, err = proto.Marshal(f)
	}
	if err != nil {
		return fmt.Errorf("client: encode frame: %w", err)
	}
	if err := t.c.SetWriteDeadline(deadline); err != nil {
		return err
	}
	return t.c.WriteMessage(typ, b)
}

func (t *wsTransport) close() error {
	// Best effort: a close message lets the server tell a hang-up from a
	// network failure.
	_ = t.c.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(100*time.Millisecond))
	return t.c.Close()
}

// decodeJSON unmarshals a protojson text frame, ignoring unknown fields so
// that a newer server does not break an older client.
func decodeJSON(data []byte) (*wirepb.Frame, error) {
	f := new(wirepb.Frame)
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, f); err != nil {
		return nil, fmt.Errorf("%w: decode json frame: %w", ErrProtocol, err)
	}
	return f, nil
}
