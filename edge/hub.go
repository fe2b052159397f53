// Package edge is the session core of an edge node: it signs connections in,
// turns their frames into messages for user actors on NATS (im.up.<uid>.<op>)
// and writes what actors send back on the edge's one subject
// (im.edge.<edgeID>) to the right connections. It also subscribes to
// im.edge.all (a Down for every signed-in connection) and serves chat rooms
// itself (rooms.go): rooms are read diffusion and involve no user actor. It
// never owns a socket: edge/tcp (gnet event loop) and edge/ws
// (gorilla/websocket) hand it connections through the Handler interface.
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
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/actors/msgid"
	"github.com/parleyim/parley/actors/room"
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
	// SignInRate and SignInBurst limit sign-ins per second on this edge;
	// over it a connection is closed with RATE_LIMITED (temporary). Zero
	// rate: no limit.
	SignInRate  float64
	SignInBurst int
	// RoomSendRate and RoomSendBurst limit room sends per connection (room
	// messages never reach the user actor, whose send limit they would
	// otherwise bypass); zero rate: no limit.
	RoomSendRate  float64
	RoomSendBurst int
	// MaxBodySize refuses larger message bodies (and Call params) at the
	// edge; zero means 32 KiB.
	MaxBodySize int
	// Rooms sizes the shared room stream that Start creates or updates.
	Rooms room.Config
	// MaxRoomsPerConn caps the rooms one connection may be in at once; zero
	// means 64.
	MaxRoomsPerConn int
	Logger          *slog.Logger
}

// connState is the hub's view of one connection.
type connState struct {
	conn   Conn
	opened time.Time // immutable

	lastSeen atomic.Int64 // unix nanoseconds of the last frame
	signedIn atomic.Bool

	// Written once at sign-in by Frame (calls for one connection are never
	// concurrent) before signedIn is set; read after signedIn.
	uid, device, platform string

	roomSends  *rate.Limiter // made at the first room send; guarded by roomSendMu
	roomSendMu sync.Mutex

	// rooms is the set of rooms this connection joined; nil until the first
	// join, so idle connections pay nothing. Guarded by Hub.roomsMu.
	rooms map[string]struct{}
}

// Hub is the session core. Safe for concurrent use.
//
// Lock order: mu and roomsMu are never held together.
type Hub struct {
	// Immutable after NewHub.
	cfg       HubConfig
	log       *slog.Logger
	ids       *msgid.Gen    // room message ids
	signIns   *rate.Limiter // nil: no sign-in limit
	replays   chan struct{} // semaphore: room joins answered off the caller's goroutine
	publishes chan struct{} // semaphore: room publishes in flight
	// tasksCtx is cancelled by Shutdown so room tasks stop early.
	tasksCtx    context.Context
	cancelTasks context.CancelFunc

	mu    sync.RWMutex // guards conns
	conns map[uint64]*connState

	roomsMu     sync.RWMutex // guards rooms, roomsClosed and every connState.rooms
	rooms       map[string]*roomState
	roomsClosed bool           // set by Shutdown: no new members or tasks
	tasks       sync.WaitGroup // room replays and publishes; Add only under roomsMu while !roomsClosed

	// Set by Start.
	js        jetstream.JetStream
	sub       *nats.Subscription // im.edge.<edgeID>
	bcast     *nats.Subscription // im.edge.all
	restarted *nats.Subscription // im.alive.host

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
	if shard.EdgeSubject(cfg.EdgeID) == shard.BroadcastSubject {
		return nil, fmt.Errorf("edge: edge id %q is reserved for the broadcast subject", cfg.EdgeID)
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
	if cfg.MaxRoomsPerConn <= 0 {
		cfg.MaxRoomsPerConn = 64
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var signIns *rate.Limiter
	if cfg.SignInRate > 0 {
		signIns = rate.NewLimiter(rate.Limit(cfg.SignInRate), max(cfg.SignInBurst, 1))
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Hub{
		signIns: signIns,
		cfg:     cfg, log: log.With("edge", cfg.EdgeID), ids: msgid.New(),
		replays: make(chan struct{}, maxRoomReplays), publishes: make(chan struct{}, maxRoomPublishes),
		tasksCtx: ctx, cancelTasks: cancel,
		conns: make(map[uint64]*connState), rooms: make(map[string]*roomState),
		stop: make(chan struct{}),
	}, nil
}

// Start ensures the room stream, subscribes to the edge's subject and to the
// broadcast subject, and starts the deadline ticker.
func (h *Hub) Start() error {
	js, err := jetstream.New(h.cfg.NATS)
	if err != nil {
		return fmt.Errorf("edge: jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := room.EnsureStream(ctx, js, h.cfg.Rooms); err != nil {
		return fmt.Errorf("edge: %w", err)
	}
	h.js = js
	sub, err := h.cfg.NATS.Subscribe(shard.EdgeSubject(h.cfg.EdgeID), h.onDown)
	if err != nil {
		return fmt.Errorf("edge: subscribe %s: %w", shard.EdgeSubject(h.cfg.EdgeID), err)
	}
	_ = sub.SetPendingLimits(1<<20, 256<<20)
	bcast, err := h.cfg.NATS.Subscribe(shard.BroadcastSubject, h.onBroadcast)
	if err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("edge: subscribe %s: %w", shard.BroadcastSubject, err)
	}
	restarted, err := h.cfg.NATS.Subscribe(shard.HostStartedSubject, func(*nats.Msg) { h.resume() })
	if err != nil {
		_ = sub.Unsubscribe()
		_ = bcast.Unsubscribe()
		return fmt.Errorf("edge: subscribe %s: %w", shard.HostStartedSubject, err)
	}
	if err := h.cfg.NATS.FlushTimeout(5 * time.Second); err != nil {
		_ = sub.Unsubscribe()
		_ = bcast.Unsubscribe()
		_ = restarted.Unsubscribe()
		return fmt.Errorf("edge: flush subscriptions: %w", err)
	}
	h.sub, h.bcast, h.restarted = sub, bcast, restarted
	h.alive()
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
	if ok {
		h.leaveAllRooms(st)
	}
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
		case s.To.Type == wirepb.ConversationType_CONVERSATION_TYPE_ROOM:
			h.sendToRoom(st, f.Id, s) // rooms involve no user actor
		default:
			h.publish(st, f.Id, &buspb.Up{Op: &buspb.Up_Send{Send: s}}, "send")
		}
	case *wirepb.Frame_JoinRoom:
		h.joinRoom(st, f.Id, body.JoinRoom)
	case *wirepb.Frame_LeaveRoom:
		h.leaveRoom(st, f.Id, body.LeaveRoom)
	case *wirepb.Frame_Call:
		c := body.Call
		switch {
		case len(c.GetMethod()) == 0 || len(c.GetMethod()) > 64:
			h.replyError(st, f.Id, wirepb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "method must be 1-64 bytes", "")
		case len(c.GetParamsJson()) > h.cfg.MaxBodySize:
			h.replyError(st, f.Id, wirepb.ErrorCode_ERROR_CODE_BODY_TOO_LARGE,
				fmt.Sprintf("params_json is %d bytes; the limit is %d", len(c.GetParamsJson()), h.cfg.MaxBodySize), "")
		default:
			h.publish(st, f.Id, &buspb.Up{Op: &buspb.Up_Call{Call: c}}, "call")
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
	if h.signIns != nil && !h.signIns.Allow() {
		// A reconnect storm: turn some away before the token check. The
		// code is temporary; clients back off with jitter and retry.
		st.conn.Close(wirepb.ErrorCode_ERROR_CODE_RATE_LIMITED, "too many sign-ins on this edge; retry shortly")
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
	st.uid, st.device, st.platform = uid, si.DeviceId, si.Platform
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
	deliver(targets, &d)
}

// onBroadcast writes a Down published on im.edge.all to every signed-in
// connection of this edge.
func (h *Hub) onBroadcast(m *nats.Msg) {
	var d buspb.Down
	if err := proto.Unmarshal(m.Data, &d); err != nil {
		h.log.Warn("dropping undecodable broadcast", "err", err)
		return
	}
	if len(d.ConnIds) > 0 {
		// Connection ids are per edge: on the shared subject they would hit
		// unrelated connections of every other edge.
		h.log.Warn("dropping broadcast with conn_ids", "conn_ids", len(d.ConnIds))
		return
	}
	h.mu.RLock()
	targets := make([]Conn, 0, len(h.conns))
	for _, st := range h.conns {
		if st.signedIn.Load() {
			targets = append(targets, st.conn)
		}
	}
	h.mu.RUnlock()
	deliver(targets, &d)
}

// deliver sends d's frame to each target, then closes it if d asks to.
func deliver(targets []Conn, d *buspb.Down) {
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

// alive publishes the edge's heartbeat: logic nodes take the devices of an
// edge they stop hearing offline.
func (h *Hub) alive() {
	if err := h.cfg.NATS.Publish(shard.EdgeAliveSubject, []byte(h.cfg.EdgeID)); err != nil {
		h.log.Debug("publish heartbeat failed", "err", err)
	}
}

// resume re-announces every signed-in connection to the user actors: a
// logic node (re)started and knows no sessions.
func (h *Hub) resume() {
	h.mu.RLock()
	live := make([]*connState, 0, len(h.conns))
	for _, st := range h.conns {
		if st.signedIn.Load() {
			live = append(live, st)
		}
	}
	h.mu.RUnlock()
	for _, st := range live {
		h.publish(st, 0, &buspb.Up{Op: &buspb.Up_Online{Online: &buspb.Online{Platform: st.platform, Resume: true}}}, "online")
	}
	if len(live) > 0 {
		h.log.Info("re-announced connections to a started logic node", "conns", len(live))
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
			h.alive()
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
// sync), stops the ticker, unsubscribes (rooms too), cancels room replays and
// publishes in flight and waits for them. Idempotent.
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
	h.closeRooms()
	h.cancelTasks()
	done := make(chan struct{})
	go func() { h.wg.Wait(); h.tasks.Wait(); close(done) }()
	var err error
	if h.sub != nil {
		err = errors.Join(h.sub.Unsubscribe(), h.bcast.Unsubscribe(), h.restarted.Unsubscribe())
	}
	select {
	case <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// allowRoomSend takes a token of the connection's room-send budget.
func (st *connState) allowRoomSend(r float64, burst int) bool {
	if r <= 0 {
		return true
	}
	st.roomSendMu.Lock()
	defer st.roomSendMu.Unlock()
	if st.roomSends == nil {
		st.roomSends = rate.NewLimiter(rate.Limit(r), max(burst, 1))
	}
	return st.roomSends.Allow()
}
