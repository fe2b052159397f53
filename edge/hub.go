// Package edge is the session core of an edge node: it signs connections in,
// turns their frames into messages for user actors on NATS (im.up.<uid>.<op>)
// and writes what actors send back on the edge's one subject
// (im.edge.<edgeID>) to the right connections. It never owns a socket:
// edge/tcp (gnet event loop) and edge/ws (gorilla/websocket) hand it
// connections through the Handler interface.
package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/actors/shard"
	"github.com/parleyim/parley/edge/auth"
	"github.com/parleyim/parley/schemas/buspb"
	"github.com/parleyim/parley/schemas/wirepb"
)

// HubConfig configures a Hub.
type HubConfig struct {
	// EdgeID names this edge on the bus; required, a valid id.
	EdgeID   string
	NATS     *nats.Conn
	Verifier *auth.Verifier
	// SignInTimeout closes connections that have not signed in; zero means 10s.
	SignInTimeout time.Duration
	// IdleTimeout closes connections that sent nothing for this long; zero
	// means 90s (devices ping every 25s).
	IdleTimeout time.Duration
	// Tick is how often the shared deadline scan runs; zero means 1s.
	Tick time.Duration
	// MaxBodySize refuses larger message bodies at the edge; zero means 32 KiB.
	MaxBodySize int
	Logger      *slog.Logger
}

// connState is the hub's view of one connection.
type connState struct {
	conn   Conn
	opened time.Time // immutable

	lastSeen atomic.Int64 // unix nanoseconds of the last frame
	signedIn atomic.Bool

	// Written once at sign-in by Frame (calls for one connection are never
	// concurrent) before signedIn is set; read after signedIn.
	uid, device string
}

// Hub is the session core. Safe for concurrent use.
type Hub struct {
	cfg HubConfig
	log *slog.Logger

	mu    sync.RWMutex // guards conns
	conns map[uint64]*connState

	sub      *nats.Subscription
	stop     chan struct{}
	wg       sync.WaitGroup
	shutdown atomic.Bool
}

var _ Handler = (*Hub)(nil)

// NewHub returns a Hub; Start subscribes it.
func NewHub(cfg HubConfig) (*Hub, error) {
	if !auth.ValidID(cfg.EdgeID) {
		return nil, fmt.Errorf("edge: invalid edge id %q", cfg.EdgeID)
	}
	if cfg.NATS == nil || cfg.Verifier == nil {
		return nil, errors.New("edge: NATS and Verifier are required")
	}
	if cfg.SignInTimeout <= 0 {
		cfg.SignInTimeout = 10 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 90 * time.Second
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.MaxBodySize <= 0 {
		cfg.MaxBodySize = 32 << 10
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{cfg: cfg, log: log.With("edge", cfg.EdgeID), conns: make(map[uint64]*connState), stop: make(chan struct{})}, nil
}

// Start subscribes to the edge's subject and starts the deadline ticker.
func (h *Hub) Start() error {
	sub, err := h.cfg.NATS.Subscribe(shard.EdgeSubject(h.cfg.EdgeID), h.onDown)
	if err != nil {
		return fmt.Errorf("edge: subscribe %s: %w", shard.EdgeSubject(h.cfg.EdgeID), err)
	}
	_ = sub.SetPendingLimits(1<<20, 256<<20)
	if err := h.cfg.NATS.FlushTimeout(5 * time.Second); err != nil {
		return fmt.Errorf("edge: flush subscription: %w", err)
	}
	h.sub = sub
	h.wg.Add(1)
	go h.deadlines()
	return nil
}

// Conns returns the number of open connections.
func (h *Hub) Conns() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.conns)
}

// Opened implements Handler.
func (h *Hub) Opened(c Conn) {
	st := &connState{conn: c, opened: time.Now()}
	st.lastSeen.Store(st.opened.UnixNano())
	h.mu.Lock()
	h.conns[c.ID()] = st
	h.mu.Unlock()
	if h.shutdown.Load() {
		c.Close(wirepb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, "server is shutting down")
	}
}

// Closed implements Handler.
func (h *Hub) Closed(c Conn) {
	h.mu.Lock()
	st, ok := h.conns[c.ID()]
	delete(h.conns, c.ID())
	h.mu.Unlock()
	if ok && st.signedIn.Load() {
		h.publish(st, 0, &buspb.Up{Op: &buspb.Up_Offline{Offline: &buspb.Offline{}}}, "offline")
	}
}

// Frame implements Handler. It never blocks: NATS publishes are buffered.
func (h *Hub) Frame(c Conn, f *wirepb.Frame) {
	h.mu.RLock()
	st, ok := h.conns[c.ID()]
	h.mu.RUnlock()
	if !ok {
		return
	}
	st.lastSeen.Store(time.Now().UnixNano())
	if !st.signedIn.Load() {
		h.signIn(st, f)
		return
	}
	switch body := f.Body.(type) {
	case *wirepb.Frame_Ping:
		h.reply(st, &wirepb.Frame{Id: f.Id, Body: &wirepb.Frame_Pong{Pong: &wirepb.Pong{}}})
	case *wirepb.Frame_Send:
		s := body.Send
		switch {
		case len(s.Body) > h.cfg.MaxBodySize:
			h.replyError(st, f.Id, wirepb.ErrorCode_ERROR_CODE_BODY_TOO_LARGE,
				fmt.Sprintf("body is %d bytes; the limit is %d", len(s.Body), h.cfg.MaxBodySize), s.ClientMsgId)
		case s.ClientMsgId == "" || len(s.ClientMsgId) > 64:
			h.replyError(st, f.Id, wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "client_msg_id must be 1-64 bytes", s.ClientMsgId)
		case s.To == nil || !auth.ValidID(s.To.Id):
			h.replyError(st, f.Id, wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "to.id must be 1-64 of [A-Za-z0-9_-]", s.ClientMsgId)
		default:
			h.publish(st, f.Id, &buspb.Up{Op: &buspb.Up_Send{Send: s}}, "send")
		}
	case *wirepb.Frame_Sync:
		h.publish(st, f.Id, &buspb.Up{Op: &buspb.Up_Sync{Sync: body.Sync}}, "sync")
	case *wirepb.Frame_Ack:
		h.publish(st, f.Id, &buspb.Up{Op: &buspb.Up_Ack{Ack: body.Ack}}, "ack")
	case *wirepb.Frame_Read:
		h.publish(st, f.Id, &buspb.Up{Op: &buspb.Up_Read{Read: body.Read}}, "read")
	case *wirepb.Frame_SignIn:
		h.replyError(st, f.Id, wirepb.ErrorCode_ERROR_CODE_ALREADY_SIGNED_IN, "this connection is already signed in", "")
	default:
		h.replyError(st, f.Id, wirepb.ErrorCode_ERROR_CODE_UNKNOWN_FRAME, "this frame type is not accepted from devices", "")
	}
}

// signIn handles the first frame. Any failure closes the connection after
// the error frame.
func (h *Hub) signIn(st *connState, f *wirepb.Frame) {
	si := f.GetSignIn()
	if si == nil {
		st.conn.Close(wirepb.ErrorCode_ERROR_CODE_NOT_SIGNED_IN, "the first frame must be SignIn")
		return
	}
	if !auth.ValidID(si.DeviceId) {
		st.conn.Close(wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "device_id must be 1-64 of [A-Za-z0-9_-]")
		return
	}
	uid, err := h.cfg.Verifier.Verify(si.Token)
	if err != nil {
		msg := "invalid token"
		switch {
		case errors.Is(err, auth.ErrExpiredToken):
			msg = "token expired"
		case errors.Is(err, auth.ErrInvalidUser):
			msg = "token sub is not a valid user id"
		}
		st.conn.Close(wirepb.ErrorCode_ERROR_CODE_UNAUTHENTICATED, msg)
		return
	}
	st.uid, st.device = uid, si.DeviceId
	st.signedIn.Store(true)
	// The actor answers with SignInOK once the device is registered.
	h.publish(st, f.Id, &buspb.Up{Op: &buspb.Up_Online{Online: &buspb.Online{Platform: si.Platform}}}, "online")
}

// publish sends up to the user's actor. If NATS refuses it (disconnected
// with a full buffer), the device gets UNAVAILABLE and retries.
func (h *Hub) publish(st *connState, reqID uint64, up *buspb.Up, op string) {
	up.EdgeId, up.ConnId, up.DeviceId, up.RequestId = h.cfg.EdgeID, st.conn.ID(), st.device, reqID
	b, err := proto.Marshal(up)
	if err == nil {
		err = h.cfg.NATS.Publish(shard.UpSubject(st.uid, op), b)
	}
	if err != nil {
		h.log.Warn("publish to actor failed", "uid", st.uid, "op", op, "err", err)
		if op != "offline" {
			h.replyError(st, reqID, wirepb.ErrorCode_ERROR_CODE_UNAVAILABLE, "server busy, retry", up.GetSend().GetClientMsgId())
		}
	}
}

func (h *Hub) reply(st *connState, f *wirepb.Frame) {
	b, err := proto.Marshal(f)
	if err != nil {
		h.log.Error("encode reply failed", "err", err)
		return
	}
	_ = st.conn.Send(b) // a full queue closes the connection; the device resyncs
}

func (h *Hub) replyError(st *connState, id uint64, code wirepb.ErrorCode, msg, clientMsgID string) {
	h.reply(st, wirepb.ErrorFrame(id, code, msg, clientMsgID))
}

// onDown writes what an actor sent to this edge's connections.
func (h *Hub) onDown(m *nats.Msg) {
	var d buspb.Down
	if err := proto.Unmarshal(m.Data, &d); err != nil {
		h.log.Warn("dropping undecodable down message", "err", err)
		return
	}
	h.mu.RLock()
	targets := make([]Conn, 0, len(d.ConnIds))
	for _, id := range d.ConnIds {
		if st, ok := h.conns[id]; ok {
			targets = append(targets, st.conn)
		}
	}
	h.mu.RUnlock()
	for _, c := range targets {
		if len(d.Frame) > 0 {
			if err := c.Send(d.Frame); err != nil {
				continue
			}
		}
		if d.CloseCode != wirepb.ErrorCode_ERROR_CODE_UNSPECIFIED {
			c.Close(d.CloseCode, d.CloseMessage)
		}
	}
}

// deadlines is the one ticker behind every sign-in and idle deadline: no
// timer or goroutine per connection.
func (h *Hub) deadlines() {
	defer h.wg.Done()
	t := time.NewTicker(h.cfg.Tick)
	defer t.Stop()
	var expired []*connState
	var codes []wirepb.ErrorCode
	for {
		select {
		case <-h.stop:
			return
		case now := <-t.C:
			signInBefore := now.Add(-h.cfg.SignInTimeout)
			idleBefore := now.Add(-h.cfg.IdleTimeout).UnixNano()
			expired, codes = expired[:0], codes[:0]
			h.mu.RLock()
			for _, st := range h.conns {
				switch {
				case !st.signedIn.Load() && st.opened.Before(signInBefore):
					expired, codes = append(expired, st), append(codes, wirepb.ErrorCode_ERROR_CODE_SIGN_IN_TIMEOUT)
				case st.lastSeen.Load() < idleBefore:
					expired, codes = append(expired, st), append(codes, wirepb.ErrorCode_ERROR_CODE_IDLE_TIMEOUT)
				}
			}
			h.mu.RUnlock()
			for i, st := range expired {
				msg := "no SignIn within the deadline"
				if codes[i] == wirepb.ErrorCode_ERROR_CODE_IDLE_TIMEOUT {
					msg = "nothing received within the idle timeout"
				}
				st.conn.Close(codes[i], msg)
			}
		}
	}
}

// Shutdown closes every connection with SHUTTING_DOWN (devices reconnect and
// sync), stops the ticker and unsubscribes. Idempotent.
func (h *Hub) Shutdown(ctx context.Context) error {
	if !h.shutdown.CompareAndSwap(false, true) {
		return nil
	}
	h.mu.RLock()
	all := make([]Conn, 0, len(h.conns))
	for _, st := range h.conns {
		all = append(all, st.conn)
	}
	h.mu.RUnlock()
	for _, c := range all {
		c.Close(wirepb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, "server is shutting down")
	}
	close(h.stop)
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	var err error
	if h.sub != nil {
		err = h.sub.Unsubscribe()
	}
	select {
	case <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
