package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/parleyim/parley/schemas/wirepb"
)

// DefaultAddr is the address Dial uses when Config.Addr is empty: parleyd's
// default TCP listener.
const DefaultAddr = "tcp://127.0.0.1:7420"

const (
	defaultPlatform       = "go"
	defaultRequestTimeout = 5 * time.Second
	defaultMinBackoff     = 100 * time.Millisecond
	defaultMaxBackoff     = 10 * time.Second
	defaultQueueSize      = 10000
	defaultMaxFrameSize   = 8 << 20
	defaultLiveQueueSize  = 1000
	// defaultHeartbeat is used when SignInOK carries no heartbeat_ms.
	defaultHeartbeat = 25 * time.Second
	// maxSendFrame is the largest frame the client writes: the server's
	// default frame limit. A bigger frame would make the server close the
	// connection, and a Send retried across reconnects would loop.
	maxSendFrame = 64 << 10
	// ackDelay coalesces Ack frames: at most one per ackDelay.
	ackDelay = 200 * time.Millisecond
	// syncPage is the Sync page size the client asks for: the server's
	// largest (a page is also capped at ~512 KiB), lowered to the free room
	// in the delivery queue. A catch-up is one round trip per page, so 200
	// (the server's default) made it 1.5–1.9× slower (docs/PERFORMANCE.md).
	syncPage = 1000
	// closeWriteTimeout bounds the final Ack written by Close.
	closeWriteTimeout = time.Second
)

// Config configures a Client. It is a value: Dial copies it and fills zero
// fields with their documented defaults.
type Config struct {
	// Addr is the server address: "tcp://host:port", "ws://host:port/ws" or
	// "wss://host:port/ws". A bare "host:port" means TCP; a ws URL without a
	// path gets "/ws". Zero means DefaultAddr.
	Addr string
	// JSON selects the "parley.json" WebSocket subprotocol (protojson text
	// frames) instead of "parley.proto" (binary protobuf). WebSocket only.
	JSON bool

	// Token is the JWT sent in SignIn. Set Token or TokenFunc, not both.
	Token string
	// TokenFunc returns the JWT to sign in with. It is called on every
	// connect and reconnect, so it can refresh an expiring token.
	TokenFunc func(ctx context.Context) (string, error)
	// DeviceID names this install: 1–64 characters of [A-Za-z0-9_-].
	// Required.
	DeviceID string
	// Platform is free text for the server's logs and presence. Zero means
	// "go".
	Platform string

	// LastSeq is the highest mailbox seq this device already holds (the app
	// persists the seq of the last message it processed). Messages delivers
	// from LastSeq+1 on.
	LastSeq uint64
	// ResumeFromAck starts delivery after this device's ack cursor as the
	// server reports it at the first sign-in, when that is above LastSeq:
	// for devices that keep no local state, such as the CLI.
	ResumeFromAck bool
	// SendOnly makes a client that only sends: it never syncs, ignores
	// pushes (transient ones too), sends no Acks, and Messages delivers
	// nothing until it is closed. Rooms and Call work as usual. For
	// scripts, load generators and room-only clients.
	SendOnly bool

	// RequestTimeout bounds one attempt of a request (sign-in, Send, a Sync
	// page) and one write. Send and Sync retry after a timeout with the same
	// idempotency key. Zero means 5s.
	RequestTimeout time.Duration
	// DisableReconnect makes the client stop at the first disconnect
	// instead of reconnecting. By default the client reconnects with
	// exponential backoff and full jitter between MinBackoff and MaxBackoff.
	DisableReconnect bool
	// MinBackoff is the first reconnect delay's upper bound. Zero means 100ms.
	MinBackoff time.Duration
	// MaxBackoff caps the reconnect delay. Zero means 10s.
	MaxBackoff time.Duration

	// QueueSize bounds the messages the client holds for a slow reader of
	// Messages, and separately the out-of-order pushes it holds while it
	// fills a gap. Past it, pushes are dropped from memory and fetched
	// again with Sync once the reader catches up: nothing is lost, memory
	// stays bounded. Zero means 10000.
	QueueSize int
	// MaxFrameSize is the largest frame accepted from the server, in bytes
	// (the protobuf payload on TCP, the message on WebSocket); a bigger one
	// drops the connection. Zero means 8 MiB, which fits a full Sync page
	// of maximum-size bodies.
	MaxFrameSize int

	// RoomQueueSize bounds the room messages waiting for the app on
	// RoomMessages. Room messages are not stored in any mailbox, so the
	// client cannot fetch them again: when the app does not read and the
	// buffer is full, the oldest waiting message is dropped and counted in
	// Stats().RoomDropped. The connection's reader never blocks on it.
	// Zero means 1000.
	RoomQueueSize int
	// TransientQueueSize bounds the transient pushes (seq 0) waiting for
	// the app on Transient, with the same drop-oldest rule, counted in
	// Stats().TransientDropped. Zero means 1000.
	TransientQueueSize int
	// OnRoomLost, if set, is called when the client gives up a room it had
	// joined because the server refused to rejoin it after a reconnect (a
	// non-temporary error, such as PERMISSION_DENIED): the client has
	// forgotten the room and err is the server's *Error. It runs on its own
	// goroutine of the client and must not block for long.
	OnRoomLost func(roomID string, err error)

	// Logger receives the client's logs. Nil means discard.
	Logger *slog.Logger

	// NetDial, if set, opens the network connection for either transport
	// (the TCP connection itself, or the one under the WebSocket), with
	// network "tcp": for a proxy, socket options of your own, or a
	// connection wrapper in tests. Nil means a net.Dialer.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// endpoint is a parsed Config.Addr.
type endpoint struct {
	ws   bool   // WebSocket, else TCP
	addr string // host:port for TCP, the URL for WebSocket
}

// withDefaults validates c and returns a copy with defaults filled in.
func (c Config) withDefaults() (Config, endpoint, error) {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	ep, err := parseAddr(c.Addr)
	if err != nil {
		return c, ep, err
	}
	if c.JSON && !ep.ws {
		return c, ep, fmt.Errorf("client: JSON needs a ws:// or wss:// address, not %q", c.Addr)
	}
	switch {
	case c.Token == "" && c.TokenFunc == nil:
		return c, ep, errors.New("client: set Token or TokenFunc")
	case c.Token != "" && c.TokenFunc != nil:
		return c, ep, errors.New("client: set Token or TokenFunc, not both")
	}
	if !wirepb.ValidID(c.DeviceID) {
		return c, ep, fmt.Errorf("client: invalid DeviceID %q: want 1-64 of [A-Za-z0-9_-]", c.DeviceID)
	}
	if c.Platform == "" {
		c.Platform = defaultPlatform
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = defaultRequestTimeout
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = defaultMinBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = defaultMaxBackoff
	}
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	if c.QueueSize <= 0 {
		c.QueueSize = defaultQueueSize
	}
	if c.MaxFrameSize <= 0 {
		c.MaxFrameSize = defaultMaxFrameSize
	}
	if c.RoomQueueSize <= 0 {
		c.RoomQueueSize = defaultLiveQueueSize
	}
	if c.TransientQueueSize <= 0 {
		c.TransientQueueSize = defaultLiveQueueSize
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, ep, nil
}

// parseAddr parses "tcp://h:p", "ws://h:p/path", "wss://…" or a bare "h:p".
func parseAddr(addr string) (endpoint, error) {
	if !strings.Contains(addr, "://") {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return endpoint{}, fmt.Errorf("client: bad address %q: %w", addr, err)
		}
		return endpoint{addr: addr}, nil
	}
	u, err := url.Parse(addr)
	if err != nil {
		return endpoint{}, fmt.Errorf("client: bad address %q: %w", addr, err)
	}
	switch u.Scheme {
	case "tcp":
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			return endpoint{}, fmt.Errorf("client: bad address %q: %w", addr, err)
		}
		if u.Path != "" && u.Path != "/" {
			return endpoint{}, fmt.Errorf("client: bad address %q: a tcp address has no path", addr)
		}
		return endpoint{addr: u.Host}, nil
	case "ws", "wss":
		if u.Host == "" {
			return endpoint{}, fmt.Errorf("client: bad address %q: no host", addr)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/ws"
		}
		return endpoint{ws: true, addr: u.String()}, nil
	}
	return endpoint{}, fmt.Errorf("client: bad address %q: scheme %q is not tcp, ws or wss", addr, u.Scheme)
}
