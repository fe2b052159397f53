package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/schemas/wirepb"
)

// Client is a signed-in connection to a Parley server that reconnects,
// resyncs and retries on its own. Create it with Dial and stop it with
// Close. All methods are safe for concurrent use.
type Client struct {
	// Immutable after Dial.
	cfg  Config
	ep   endpoint
	log  *slog.Logger
	msgs chan *wirepb.Message // closed by deliverLoop when it exits
	// roomQ and transQ feed RoomMessages and Transient; closed by shutdown.
	roomQ  *liveQueue
	transQ *liveQueue

	ctx    context.Context // canceled by shutdown
	cancel context.CancelFunc
	// deliverCtx stops deliverLoop alone; it is a child of ctx. Close stops
	// delivery first so that its final Ack covers exactly what the app got.
	deliverCtx    context.Context
	deliverCancel context.CancelFunc
	deliverDone   chan struct{}  // closed when deliverLoop returns
	wg            sync.WaitGroup // every goroutine the client started

	// 1-slot notifications; a send never blocks.
	wake     chan struct{} // deliverLoop: the queue grew
	room     chan struct{} // sync: the queue drained to its low-water mark
	syncKick chan struct{} // syncLoop: sync now
	ackKick  chan struct{} // ackLoop: delivered advanced or a new connection

	reqID       atomic.Uint64 // last request id used
	delivered   atomic.Uint64 // highest seq handed to the app on Messages
	ackedSent   atomic.Uint64 // highest seq the server has for this device's ack cursor
	closeCalled atomic.Bool
	// roomHeldDropped counts room messages dropped while rejoining.
	roomHeldDropped atomic.Uint64

	syncMu sync.Mutex // one Sync round at a time

	// roomMu guards rooms: the rooms the app joined and has not left, which
	// the client rejoins after a reconnect. Never held with mu.
	roomMu sync.Mutex
	rooms  map[string]*roomState

	mu sync.Mutex // guards the following fields
	// cn is the signed-in connection, nil while disconnected. connCh is
	// closed while cn != nil and replaced by an open channel when cn fails.
	cn     *conn
	connCh chan struct{}
	err    error // why the client stopped; nil while running
	userID string
	// signedIn is set after the first sign-in (ResumeFromAck applies once).
	signedIn bool
	// Mailbox state. max is the highest seq appended to queue; seqs
	// 1..max have all been accepted, in order. pending holds entries
	// above max+1 that arrived early, until the gap fills.
	max     uint64
	queue   []*wirepb.Message
	pending map[uint64]*wirepb.Message
}

// Dial connects to the server in cfg.Addr, signs in, and starts the
// background work: delivering pushes, syncing missed messages, acking,
// heartbeats and reconnecting. It makes a single connection attempt and
// returns its error: a *Error for a refused sign-in (an UNAUTHENTICATED one
// for a bad token), or an error wrapping ErrDisconnected for a network
// failure.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	cfg, ep, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:      cfg,
		ep:       ep,
		log:      cfg.Logger.With("addr", cfg.Addr, "device", cfg.DeviceID),
		msgs:     make(chan *wirepb.Message),
		roomQ:    newLiveQueue(cfg.RoomQueueSize),
		transQ:   newLiveQueue(cfg.TransientQueueSize),
		rooms:    make(map[string]*roomState),
		wake:     make(chan struct{}, 1),
		room:     make(chan struct{}, 1),
		syncKick: make(chan struct{}, 1),
		ackKick:  make(chan struct{}, 1),
		connCh:   make(chan struct{}),
		max:      cfg.LastSeq,
		pending:  make(map[uint64]*wirepb.Message),
	}
	c.delivered.Store(cfg.LastSeq)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.deliverCtx, c.deliverCancel = context.WithCancel(c.ctx)
	c.deliverDone = make(chan struct{})
	cn, err := c.connect(ctx)
	if err != nil {
		c.shutdown(err)
		c.wg.Wait()
		return nil, fmt.Errorf("client: dial %s: %w", cfg.Addr, err)
	}
	c.wg.Add(3)
	go c.supervise(cn)
	go c.deliverLoop()
	go c.ackLoop()
	if !cfg.SendOnly {
		c.wg.Add(1)
		go c.syncLoop()
	}
	return c, nil
}

// Messages returns the channel on which the client delivers every entry of
// the user's mailbox after Config.LastSeq exactly once, in seq order and
// without gaps: messages received and messages sent, from this device or
// another. The channel is closed after Close or when the client stops for
// good (see Err).
//
// The client holds up to Config.QueueSize messages for a slow reader; past
// that it stops taking new entries into memory and fetches them again with
// Sync once the reader catches up, so a slow reader never loses messages
// and never grows memory without bound.
func (c *Client) Messages() <-chan *wirepb.Message { return c.msgs }

// Transient returns the channel of transient pushes: messages the server
// pushes with seq 0, such as a broadcast to everyone online. They are in no
// mailbox, so they never come out of Messages, never count as a gap and
// never move MaxSeq; a device that is offline or does not read them in time
// misses them. At most Config.TransientQueueSize wait: past that the oldest
// is dropped (Stats().TransientDropped). A SendOnly client ignores them.
// The channel is closed when the client stops.
func (c *Client) Transient() <-chan *wirepb.Message { return c.transQ.ch }

// Stats counts what the client dropped on the app's behalf.
type Stats struct {
	// RoomDropped is how many room messages were dropped because the app
	// did not read RoomMessages in time (Config.RoomQueueSize), or because
	// too many arrived while the client was rejoining a room.
	RoomDropped uint64
	// TransientDropped is how many transient pushes were dropped because
	// the app did not read Transient in time (Config.TransientQueueSize).
	TransientDropped uint64
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{
		RoomDropped:      c.roomQ.dropped.Load() + c.roomHeldDropped.Load(),
		TransientDropped: c.transQ.dropped.Load(),
	}
}

// onTransient hands a seq-0 push to Transient.
func (c *Client) onTransient(m *wirepb.Message) {
	if c.cfg.SendOnly || m == nil {
		return
	}
	c.transQ.push(m)
}

// MaxSeq returns the highest seq the client holds: every entry up to it has
// been delivered on Messages or is queued for it.
func (c *Client) MaxSeq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.max
}

// UserID returns the user id the server signed this client in as.
func (c *Client) UserID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.userID
}

// Err returns nil while the client runs, ErrClosed after Close, or the error
// that stopped it: a sign-in refused on reconnect (such as an expired token),
// the device signed in elsewhere (a *Error with code REPLACED), or, with
// DisableReconnect, why the connection ended.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close sends a final Ack for what the app has received, closes the
// connection, stops every goroutine the client started and closes Messages.
// Messages still queued are dropped: they stay in the server's mailbox and
// come back after LastSeq on the next Dial. Close is idempotent and always
// returns nil.
func (c *Client) Close() error {
	if c.closeCalled.CompareAndSwap(false, true) {
		c.deliverCancel()
		<-c.deliverDone
		c.sendAck(closeWriteTimeout)
		c.shutdown(ErrClosed)
	}
	c.wg.Wait()
	return nil
}

// shutdown stops the client for good with err (the first one wins).
func (c *Client) shutdown(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	cn := c.cn
	c.mu.Unlock()
	c.cancel()
	if cn != nil {
		c.failConn(cn, ErrClosed)
	}
	c.roomQ.close()
	c.transQ.close()
}

// supervise owns the connection's lifetime: it waits for cn to fail, then
// reconnects with backoff until it succeeds, the client closes or the
// failure is fatal.
func (c *Client) supervise(cn *conn) {
	defer c.wg.Done()
	attempt := 0
	for {
		select {
		case <-cn.done:
		case <-c.ctx.Done():
			c.failConn(cn, ErrClosed)
			return
		}
		err := cn.err
		if c.ctx.Err() != nil {
			return
		}
		var e *Error
		if errors.As(err, &e) && e.Code == wirepb.ErrorCode_ERROR_CODE_REPLACED {
			c.log.Warn("device signed in elsewhere, stopping", "err", err)
			c.shutdown(err)
			return
		}
		if c.cfg.DisableReconnect {
			c.log.Info("disconnected, reconnect disabled", "err", err)
			c.shutdown(err)
			return
		}
		c.log.Info("disconnected", "err", err, "up", time.Since(cn.readyAt).Round(time.Millisecond))
		if time.Since(cn.readyAt) >= c.cfg.MaxBackoff {
			attempt = 0 // the connection was stable
		}
		for {
			d := backoff(c.cfg.MinBackoff, c.cfg.MaxBackoff, attempt)
			attempt++
			select {
			case <-time.After(d):
			case <-c.ctx.Done():
				return
			}
			next, err := c.connect(c.ctx)
			if err == nil {
				c.log.Info("reconnected", "attempt", attempt)
				cn = next
				break
			}
			if c.ctx.Err() != nil {
				return
			}
			if fatalSignIn(err) {
				c.log.Error("sign-in refused, stopping", "err", err)
				c.shutdown(err)
				return
			}
			c.log.Info("reconnect failed", "attempt", attempt, "err", err)
		}
	}
}

// backoff returns a random delay in [0, min(maxD, minD·2^attempt)): full
// jitter, so many clients cut off at once do not come back at once.
func backoff(minD, maxD time.Duration, attempt int) time.Duration {
	d := maxD
	if attempt < 30 && minD<<attempt < maxD {
		d = minD << attempt
	}
	return rand.N(d) + 1
}

// connect dials, signs in and installs a new connection, bounded by ctx and
// RequestTimeout.
func (c *Client) connect(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	token := c.cfg.Token
	if c.cfg.TokenFunc != nil {
		var err error
		if token, err = c.cfg.TokenFunc(ctx); err != nil {
			return nil, fmt.Errorf("get token: %w", err)
		}
	}
	var t transport
	var err error
	if c.ep.ws {
		t, err = dialWS(ctx, &c.cfg, c.ep.addr)
	} else {
		t, err = dialTCP(ctx, &c.cfg, c.ep.addr)
	}
	if err != nil {
		return nil, err
	}
	cn := newConn(t, c.reqID.Add(1))
	c.wg.Add(1)
	go c.readLoop(cn)

	w := cn.register(cn.signInID, nil)
	f := &wirepb.Frame{Id: cn.signInID, Body: &wirepb.Frame_SignIn{SignIn: &wirepb.SignIn{
		Token: token, DeviceId: c.cfg.DeviceID, Platform: c.cfg.Platform,
	}}}
	if err := c.write(cn, f, c.cfg.RequestTimeout); err != nil {
		c.failConn(cn, err)
		return nil, fmt.Errorf("sign in: %w", err)
	}
	var reply *wirepb.Frame
	select {
	case reply = <-w.reply:
	case <-cn.done:
		// The reply (an Error before the server hangs up) may have won the race.
		select {
		case reply = <-w.reply:
		default:
			var e *Error
			if errors.As(cn.err, &e) { // refused with a closing Error frame
				return nil, fmt.Errorf("sign in: %w", e)
			}
			return nil, fmt.Errorf("sign in: %w", cn.err)
		}
	case <-ctx.Done():
		c.failConn(cn, ctx.Err())
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("sign in: %w", ErrTimeout)
		}
		return nil, fmt.Errorf("sign in: %w", ctx.Err())
	}
	if e := reply.GetError(); e != nil {
		err := wireError(e)
		c.failConn(cn, err)
		return nil, fmt.Errorf("sign in: %w", err)
	}
	ok := reply.GetSignInOk()
	if ok == nil {
		err := fmt.Errorf("%w: sign-in answered with %T", ErrProtocol, reply.GetBody())
		c.failConn(cn, err)
		return nil, err
	}

	// Rejoin the app's rooms before anything else can use cn, so that a
	// room Send retried on cn reaches the server after the JoinRoom.
	rejoins := c.writeRejoins(cn)

	c.mu.Lock()
	select {
	case <-cn.done: // failed between the reply and now
		c.mu.Unlock()
		return nil, fmt.Errorf("sign in: %w", cn.err)
	default:
	}
	if c.ctx.Err() != nil {
		c.mu.Unlock()
		c.failConn(cn, ErrClosed)
		return nil, ErrClosed
	}
	cn.readyAt = time.Now()
	c.cn = cn
	close(c.connCh)
	behind := ok.GetMaxSeq() > c.max
	c.mu.Unlock()

	c.log.Debug("signed in", "user", ok.GetUserId(), "max_seq", ok.GetMaxSeq(), "acked_seq", ok.GetAckedSeq())
	c.wg.Add(1)
	go c.keepAlive(cn)
	if behind && !c.cfg.SendOnly {
		notify(c.syncKick)
	}
	notify(c.ackKick)
	if len(rejoins) > 0 {
		c.wg.Add(1)
		go c.awaitRejoins(cn, rejoins)
	}
	return cn, nil
}

// onSignIn records a SignInOK. The reader calls it before it reads the next
// frame, so pushes after the sign-in see its effects.
func (c *Client) onSignIn(cn *conn, ok *wirepb.SignInOK) {
	cn.heartbeat = time.Duration(ok.GetHeartbeatMs()) * time.Millisecond
	if cn.heartbeat <= 0 {
		cn.heartbeat = defaultHeartbeat
	}
	c.mu.Lock()
	c.userID = ok.GetUserId()
	if !c.signedIn {
		c.signedIn = true
		if c.cfg.ResumeFromAck && ok.GetAckedSeq() > c.max && !c.cfg.SendOnly {
			c.max = ok.GetAckedSeq()
			c.dropStalePendingLocked()
			if ok.GetAckedSeq() > c.delivered.Load() {
				c.delivered.Store(ok.GetAckedSeq())
			}
		}
	}
	if ok.GetMaxSeq() < c.max {
		c.log.Warn("server mailbox is behind this device", "max_seq", ok.GetMaxSeq(), "have", c.max)
	}
	c.mu.Unlock()
	c.ackedSent.Store(ok.GetAckedSeq())
}

// notify does a non-blocking send on a 1-slot channel.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
