// Package host runs user actors for the shards this node owns: it subscribes
// to each shard's subject, consumes each shard's durable deliveries, spawns
// an actor per active user on first message and lets idle ones passivate.
//
// Ownership: this version owns every shard (one logic node). Shard leases
// (JetStream KV, fencing) come with multi-node operation; the mailbox's
// After check already refuses a second writer's append.
package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/actors/delivery"
	"github.com/parleyim/parley/actors/events"
	"github.com/parleyim/parley/actors/msgid"
	"github.com/parleyim/parley/actors/shard"
	"github.com/parleyim/parley/actors/social"
	"github.com/parleyim/parley/actors/user"
	"github.com/parleyim/parley/edge/auth"
	"github.com/parleyim/parley/schemas/buspb"
	"github.com/parleyim/parley/schemas/wirepb"
	"github.com/parleyim/parley/sync/directory"
	"github.com/parleyim/parley/sync/mailbox"
)

// Config configures a Host.
type Config struct {
	NATS  *nats.Conn
	Store mailbox.Store
	// Directory holds groups, friends and blocks.
	Directory directory.Store
	// RequireFriendship refuses 1:1 messages between users who are not friends.
	RequireFriendship bool
	// MaxGroupMembers caps a group's size; zero means 10,000.
	MaxGroupMembers int
	// Shards is the shard count; zero means shard.DefaultCount.
	Shards int
	// Replicas of the delivery stream; zero means 1.
	Replicas int
	// CommitWorkers is the number of concurrent store transactions; zero
	// means 1 (right for the embedded store, which serializes writers).
	CommitWorkers int
	// IdleTimeout passivates an actor with no online device after this long
	// without messages; zero means 2 minutes.
	IdleTimeout time.Duration
	// Heartbeat is the ping interval told to devices; zero means 25s.
	Heartbeat time.Duration
	// MaxBodySize is the largest message body in bytes; zero means 32 KiB.
	MaxBodySize int
	// SendRate and SendBurst limit each user's sends; zero rate: no limit.
	SendRate  float64
	SendBurst int
	// EdgeTimeout takes an edge's devices offline when its heartbeat has
	// not been heard for this long; zero means 10s.
	EdgeTimeout time.Duration
	// IOConcurrency bounds concurrent reads off the actors; zero means 64.
	IOConcurrency int
	Logger        *slog.Logger
}

// Host owns the actors of this node.
type Host struct {
	cfg        Config
	log        *slog.Logger
	system     *actor.ActorSystem
	dispatcher actor.Dispatcher // user actors' mailboxes run on its pooled goroutines
	env        *user.Env
	commit     *mailbox.Committer
	cursors    *mailbox.CursorWriter
	outbox     *delivery.Outbox
	metrics    *metrics
	social     *social.Directory
	ids        *msgid.Gen
	call       func(ctx context.Context, uid, method, params string) (string, error)
	ioSem      chan struct{} // read slots
	ioWG       sync.WaitGroup

	mu       sync.Mutex // guards the following
	actors   map[string]*actor.PID
	stopping map[string]chan struct{}
	edges    map[string]time.Time // edge id → last heartbeat

	stop   chan struct{}          // closed by Shutdown: stops the background loops
	clears chan mailbox.OutboxKey // outbox entries to clear

	subs      []*nats.Subscription // immutable after Start
	consumers []*delivery.Consumer // immutable after Start
	shutdown  atomic.Bool
}

// New returns a Host; Start runs it.
func New(cfg Config) (*Host, error) {
	if cfg.NATS == nil || cfg.Store == nil || cfg.Directory == nil {
		return nil, errors.New("host: NATS, Store and Directory are required")
	}
	if cfg.Shards <= 0 {
		cfg.Shards = shard.DefaultCount
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 2 * time.Minute
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 25 * time.Second
	}
	if cfg.MaxBodySize <= 0 {
		cfg.MaxBodySize = 32 << 10
	}
	if cfg.EdgeTimeout <= 0 {
		cfg.EdgeTimeout = 10 * time.Second
	}
	if cfg.IOConcurrency <= 0 {
		cfg.IOConcurrency = 64
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Host{
		cfg:      cfg,
		log:      log,
		ioSem:    make(chan struct{}, cfg.IOConcurrency),
		actors:   make(map[string]*actor.PID),
		stopping: make(map[string]chan struct{}),
		edges:    make(map[string]time.Time),
		stop:     make(chan struct{}),
		metrics:  newMetrics(),
		clears:   make(chan mailbox.OutboxKey, 1<<16),
	}
	h.ids = msgid.New()
	var err error
	h.social, err = social.New(social.Config{
		Store: cfg.Directory, NATS: cfg.NATS, IDs: h.ids, Fanout: h.Fanout,
		RequireFriendship: cfg.RequireFriendship, MaxGroupMembers: cfg.MaxGroupMembers, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	actorLog := slog.New(levelFloor{log.With("component", "protoactor").Handler(), slog.LevelWarn})
	h.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return actorLog }))
	h.dispatcher = newPooledDispatcher(300, 10*time.Second)
	return h, nil
}

// Start creates the delivery stream, starts the committer and outbox, and
// subscribes to every shard.
func (h *Host) Start(ctx context.Context) error {
	js, err := jetstream.New(h.cfg.NATS)
	if err != nil {
		return fmt.Errorf("host: jetstream: %w", err)
	}
	st, err := delivery.EnsureStream(ctx, js, h.cfg.Replicas)
	if err != nil {
		return err
	}
	h.commit, err = mailbox.NewCommitter(mailbox.CommitterConfig{
		Store: h.cfg.Store, Workers: h.cfg.CommitWorkers, Logger: h.log, Observe: h.metrics.observeCommit,
	})
	if err != nil {
		return err
	}
	h.cursors = mailbox.NewCursorWriter(h.cfg.Store, h.log)
	h.outbox, err = delivery.NewOutbox(delivery.OutboxConfig{
		JetStream: js, Shards: h.cfg.Shards, Logger: h.log, Observe: h.metrics.observePublish,
	})
	if err != nil {
		return err
	}
	if err := h.social.Start(); err != nil {
		return err
	}
	h.env = &user.Env{
		Store:       h.cfg.Store,
		Committer:   h.commit,
		Cursors:     h.cursors,
		Social:      h.social,
		Events:      &events.Publisher{NATS: h.cfg.NATS, Log: h.log},
		Fanout:      h.fanout,
		Delivered:   h.delivered,
		Backlogged:  func() bool { return h.outbox.Backlog() > ackEarlyBacklog },
		Call:        h.call,
		Logger:      h.log,
		Down:        h.down,
		Go:          func(f func(context.Context)) { h.goIO(h.ioSem, f) },
		Passivate:   h.passivate,
		Stopped:     h.stopped,
		Forward:     h.send,
		IdleTimeout: h.cfg.IdleTimeout,
		Heartbeat:   h.cfg.Heartbeat,
		MaxBodySize: h.cfg.MaxBodySize,
		SendRate:    h.cfg.SendRate,
		SendBurst:   h.cfg.SendBurst,
		SyncPage:    200,
		MaxSyncPage: 1000,
		IDs:         h.ids,
	}
	for n := 0; n < h.cfg.Shards; n++ {
		sub, err := h.cfg.NATS.Subscribe(shard.ShardSubject(n), h.onUp)
		if err != nil {
			return fmt.Errorf("host: subscribe shard %d: %w", n, err)
		}
		_ = sub.SetPendingLimits(1<<20, 256<<20)
		h.subs = append(h.subs, sub)
		c, err := delivery.Consume(ctx, st, n, h.onDeliveries, h.log)
		if err != nil {
			return err
		}
		h.consumers = append(h.consumers, c)
	}
	alive, err := h.cfg.NATS.Subscribe(shard.EdgeAliveSubject, func(m *nats.Msg) { h.heard(string(m.Data)) })
	if err != nil {
		return fmt.Errorf("host: subscribe %s: %w", shard.EdgeAliveSubject, err)
	}
	h.subs = append(h.subs, alive)
	if err := h.cfg.NATS.FlushTimeout(5 * time.Second); err != nil {
		return fmt.Errorf("host: flush subscriptions: %w", err)
	}
	h.ioWG.Add(3)
	go h.sweepEdges()
	go h.clearLoop()
	go h.relayLoop()
	// Edges re-announce their connections: this node knows no sessions yet.
	if err := h.cfg.NATS.Publish(shard.HostStartedSubject, nil); err != nil {
		return fmt.Errorf("host: announce start: %w", err)
	}
	h.log.Info("actor host started", "shards", h.cfg.Shards)
	return nil
}

// onUp routes an edge's message to the user's actor. Subject:
// im.shard.<n>.<uid>.<op>.
func (h *Host) onUp(m *nats.Msg) {
	tok := strings.Split(m.Subject, ".")
	if len(tok) != 5 || !auth.ValidID(tok[3]) {
		h.log.Warn("dropping message on malformed shard subject", "subject", m.Subject)
		return
	}
	var up buspb.Up
	if err := proto.Unmarshal(m.Data, &up); err != nil {
		h.log.Warn("dropping undecodable up message", "subject", m.Subject, "err", err)
		return
	}
	h.send(tok[3], &up)
}

// onDeliveries hands a batch to the recipients' actors and calls done once
// every one committed (or with the first failure).
func (h *Host) onDeliveries(_ context.Context, batch *buspb.DeliveryBatch, done func(error)) {
	byUser := make(map[string][]*wirepb.Message)
	for _, d := range batch.Deliveries {
		if d.Message == nil || d.Message.MsgId == "" {
			h.log.Warn("skipping malformed delivery", "recipient", d.Recipient)
			continue
		}
		if len(d.Recipients) == 0 {
			d.Recipients = []string{d.Recipient}
		}
		for i, uid := range d.Recipients {
			if !auth.ValidID(uid) {
				h.log.Warn("skipping malformed delivery", "recipient", uid)
				continue
			}
			msg := d.Message
			if i > 0 { // every mailbox stamps its own seq on its copy
				msg = proto.CloneOf(msg)
			}
			byUser[uid] = append(byUser[uid], msg)
		}
	}
	one := all(len(byUser), done)
	for uid, msgs := range byUser {
		h.send(uid, &user.Deliver{Messages: msgs, Done: one})
	}
}

// all returns a callback to be called n times; the last call calls done
// with the first error passed (nil if none). With n == 0, done is called at
// once.
func all(n int, done func(error)) func(error) {
	if n == 0 {
		done(nil)
		return nil
	}
	var mu sync.Mutex
	var first error
	return func(err error) {
		mu.Lock()
		if err != nil && first == nil {
			first = err
		}
		n--
		last := n == 0
		mu.Unlock()
		if last {
			done(first)
		}
	}
}

// SetCall sets what runs clients' Call frames; call it before Start.
func (h *Host) SetCall(call func(ctx context.Context, uid, method, params string) (string, error)) {
	h.call = call
}

// Social is the host's group/friend directory.
func (h *Host) Social() *social.Directory { return h.social }

// fanout hands msg to the recipients' mailboxes: one delivery per shard,
// naming every recipient of that shard, so a group of any size costs at most
// one bus message per shard (and the outbox coalesces those further).
func (h *Host) fanout(recipients []string, msg *wirepb.Message, done func(error)) {
	byShard := make(map[int][]string)
	for _, uid := range recipients {
		n := shard.Of(uid, h.cfg.Shards)
		byShard[n] = append(byShard[n], uid)
	}
	one := all(len(byShard), done)
	for _, uids := range byShard {
		h.outbox.Publish(&buspb.Delivery{Recipients: uids, Message: msg}, one)
	}
}

// Fanout is fanout waiting for the outcome.
func (h *Host) Fanout(ctx context.Context, recipients []string, msg *wirepb.Message) error {
	ch := make(chan error, 1)
	h.fanout(recipients, msg, func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ask sends msg to uid's actor only if it is running (an inactive user has
// no online device), and reports whether it did.
func (h *Host) ask(uid string, msg any) bool {
	h.mu.Lock()
	pid, ok := h.actors[uid]
	h.mu.Unlock()
	if ok {
		h.system.Root.Send(pid, msg)
	}
	return ok
}

// Presence returns uid's online devices.
func (h *Host) Presence(ctx context.Context, uid string) ([]user.Device, error) {
	ch := make(chan []user.Device, 1)
	if !h.ask(uid, &user.PresenceQuery{Reply: ch}) {
		return []user.Device{}, nil
	}
	return wait(ctx, ch)
}

// Disconnect closes uid's connections of device (all devices when empty)
// with code and returns how many it closed.
func (h *Host) Disconnect(ctx context.Context, uid, device string, code wirepb.ErrorCode, message string) (int, error) {
	ch := make(chan int, 1)
	if !h.ask(uid, &user.Disconnect{DeviceID: device, Code: code, Message: message, Reply: ch}) {
		return 0, nil
	}
	return wait(ctx, ch)
}

// PushTransient pushes msg (not stored, seq 0) to uid's online devices and
// returns how many it was sent to.
func (h *Host) PushTransient(ctx context.Context, uid string, msg *wirepb.Message) (int, error) {
	ch := make(chan int, 1)
	if !h.ask(uid, &user.TransientPush{Message: msg, Reply: ch}) {
		return 0, nil
	}
	return wait(ctx, ch)
}

func wait[T any](ctx context.Context, ch <-chan T) (T, error) {
	select {
	case v := <-ch:
		return v, nil
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("waiting for the user actor: %w", ctx.Err())
	}
}

// heard records an edge's heartbeat.
func (h *Host) heard(edgeID string) {
	if !auth.ValidID(edgeID) {
		return
	}
	h.mu.Lock()
	h.edges[edgeID] = time.Now()
	h.mu.Unlock()
}

// sweepEdges takes the devices of edges that went silent offline: every
// running actor forgets its sessions on such an edge. An edge never heard
// is left alone (its heartbeat may not have arrived yet).
func (h *Host) sweepEdges() {
	defer h.ioWG.Done()
	t := time.NewTicker(h.cfg.EdgeTimeout / 4)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case now := <-t.C:
			var gone []string
			h.mu.Lock()
			for id, seen := range h.edges {
				if now.Sub(seen) > h.cfg.EdgeTimeout {
					gone = append(gone, id)
					delete(h.edges, id)
				}
			}
			var pids []*actor.PID
			if len(gone) > 0 {
				pids = make([]*actor.PID, 0, len(h.actors))
				for _, pid := range h.actors {
					pids = append(pids, pid)
				}
			}
			h.mu.Unlock()
			for _, id := range gone {
				h.log.Warn("edge stopped sending heartbeats; its devices are offline", "edge", id, "silent_for", h.cfg.EdgeTimeout)
				for _, pid := range pids {
					h.system.Root.Send(pid, &user.EdgeGone{EdgeID: id})
				}
			}
		}
	}
}

// send delivers msg to uid's actor, spawning it if needed.
func (h *Host) send(uid string, msg any) {
	h.mu.Lock()
	pid, ok := h.actors[uid]
	if !ok {
		var waitOn <-chan struct{}
		if ch, stopping := h.stopping[uid]; stopping {
			waitOn = ch
		}
		env := h.env
		pid = h.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return user.New(uid, env, waitOn) }, actor.WithDispatcher(h.dispatcher)))
		h.actors[uid] = pid
	}
	h.mu.Unlock()
	h.system.Root.Send(pid, msg)
}

func (h *Host) passivate(uid string, pid *actor.PID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cur, ok := h.actors[uid]; !ok || !cur.Equal(pid) || h.shutdown.Load() {
		return false
	}
	delete(h.actors, uid)
	h.stopping[uid] = make(chan struct{})
	return true
}

func (h *Host) stopped(uid string, pid *actor.PID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch, ok := h.stopping[uid]; ok {
		close(ch)
		delete(h.stopping, uid)
	}
	if cur, ok := h.actors[uid]; ok && cur.Equal(pid) {
		delete(h.actors, uid) // stopped for another reason (shutdown)
	}
}

// down publishes d to edgeID. Best effort: a lost push is repaired by sync.
func (h *Host) down(edgeID string, d *buspb.Down) {
	b, err := proto.Marshal(d)
	if err != nil {
		h.log.Error("encode down message failed", "err", err)
		return
	}
	if err := h.cfg.NATS.Publish(shard.EdgeSubject(edgeID), b); err != nil {
		h.log.Warn("publish to edge failed", "edge", edgeID, "err", err)
	}
}

// goIO runs f on a goroutine once one of sem's slots is free.
func (h *Host) goIO(sem chan struct{}, f func(ctx context.Context)) {
	h.ioWG.Add(1)
	go func() {
		defer h.ioWG.Done()
		sem <- struct{}{}
		defer func() { <-sem }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f(ctx)
	}()
}

// ActiveActors returns how many user actors are running.
func (h *Host) ActiveActors() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.actors)
}

// Shutdown stops taking work, commits and publishes what is in flight, and
// stops every actor. Idempotent; returns ctx.Err() if the deadline wins.
func (h *Host) Shutdown(ctx context.Context) error {
	if !h.shutdown.CompareAndSwap(false, true) {
		return nil
	}
	close(h.stop)
	var errs []error
	for _, s := range h.subs {
		if err := s.Drain(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range h.consumers {
		if err := c.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	// Let actors finish what the drained subscriptions gave them.
	h.mu.Lock()
	pids := make([]*actor.PID, 0, len(h.actors))
	for _, pid := range h.actors {
		pids = append(pids, pid)
	}
	h.mu.Unlock()
	if h.commit != nil {
		errs = append(errs, h.commit.Close(ctx))
	}
	if h.outbox != nil {
		errs = append(errs, h.outbox.Close(ctx))
	}

	if h.social != nil {
		errs = append(errs, h.social.Close())
	}
	futures := make([]*actor.Future, len(pids))
	for i, pid := range pids {
		futures[i] = h.system.Root.PoisonFuture(pid)
	}
	for _, f := range futures {
		_ = f.Wait()
	}
	if h.cursors != nil { // after the actors: they set cursors
		errs = append(errs, h.cursors.Close(ctx))
	}
	done := make(chan struct{})
	go func() { h.ioWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	h.system.Shutdown()
	return errors.Join(errs...)
}

// levelFloor drops records below min: protoactor logs every actor start at
// info level.
type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (l levelFloor) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= l.min && l.Handler.Enabled(ctx, lv)
}

func (l levelFloor) WithAttrs(as []slog.Attr) slog.Handler {
	return levelFloor{l.Handler.WithAttrs(as), l.min}
}

func (l levelFloor) WithGroup(name string) slog.Handler {
	return levelFloor{l.Handler.WithGroup(name), l.min}
}
