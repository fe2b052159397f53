// Package node assembles one parleyd process from its parts: NATS (embedded
// or external), the store, the actor host (logic role), and the edge (TCP,
// WebSocket and the session hub), plus the HTTP endpoints for health and
// metrics. cmd/parleyd parses flags into a Config; tests start a Node on
// random ports.
package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parleyim/parley/actors/api"
	"github.com/parleyim/parley/actors/host"
	"github.com/parleyim/parley/actors/room"
	"github.com/parleyim/parley/actors/shard"
	"github.com/parleyim/parley/edge"
	"github.com/parleyim/parley/edge/auth"
	"github.com/parleyim/parley/edge/tcp"
	"github.com/parleyim/parley/edge/web"
	"github.com/parleyim/parley/edge/ws"
	"github.com/parleyim/parley/sync/boltstore"
	"github.com/parleyim/parley/sync/directory"
	"github.com/parleyim/parley/sync/mailbox"
	"github.com/parleyim/parley/sync/mysqlstore"
)

// Default listen addresses. They avoid the usual ports of MySQL, Redis,
// PostgreSQL, RabbitMQ, MQTT and NATS.
const (
	DefaultTCPAddr  = "127.0.0.1:7420"
	DefaultHTTPAddr = "127.0.0.1:7480"
)

// Config configures a Node. An empty address means its default, and a
// default port that is taken falls back to a free one (logged); an address
// that is set and taken is an error naming its flag.
type Config struct {
	// DataDir holds the embedded store and embedded NATS; zero means "./data".
	DataDir string
	// NATSURL connects to an external NATS; empty means run one embedded.
	NATSURL string
	// NATSListen is the embedded NATS address; empty means DefaultNATSAddr.
	NATSListen string
	// TCPListen is the client TCP address; empty means DefaultTCPAddr.
	TCPListen string
	// HTTPListen serves /ws, /healthz, /readyz, /metrics; empty means DefaultHTTPAddr.
	HTTPListen string
	// Store is empty (embedded store under DataDir) or mysql://user:pass@host:port/db.
	Store string
	// Secret is the HS256 secret of client tokens; empty means auth.DevSecret
	// (with a warning).
	Secret string
	// EdgeID names this edge on the bus; empty means hostname + random suffix.
	EdgeID string
	// Shards must match across a deployment; zero means shard.DefaultCount.
	Shards int
	// SignInTimeout and IdleTimeout bound unauthenticated and silent
	// connections; zero means 10s and 90s.
	SignInTimeout, IdleTimeout time.Duration
	// MaxFrameSize is the largest client frame in bytes; zero means 64 KiB.
	MaxFrameSize int
	// MaxBodySize is the largest message body in bytes; zero means 32 KiB.
	MaxBodySize int
	// Pprof serves net/http/pprof under /debug/pprof/ on the HTTP listener.
	// Off by default: profiles expose internals.
	Pprof bool
	// CommitWorkers is the number of mailbox transactions in flight at
	// once; zero means 1 with the embedded store (it has one writer) and 2
	// with MySQL. More overlap more round trips to a distant database, but
	// each commits a smaller batch: on one 2-core machine with MariaDB
	// beside it, 2 carried the most (docs/PERFORMANCE.md).
	CommitWorkers int
	// ActorIdleTimeout passivates a user actor with no online device after
	// this long without messages; zero means 2 minutes.
	ActorIdleTimeout time.Duration
	// Roles is what this process runs: RoleEdge (client listeners) and/or
	// RoleLogic (user actors, the directory and the server API). Empty means
	// both. An edge-only node needs the NATS of a logic node (NATSURL).
	Roles []string
	// APIKey authenticates the business server on the NATS and HTTP API.
	// Empty: with the development secret, DevAPIKey (logged); otherwise
	// the NATS and HTTP API are off.
	APIKey string
	// RequireFriendship refuses 1:1 messages between users who are not friends.
	RequireFriendship bool
	// MaxGroupMembers caps a group's size; zero means 10,000.
	MaxGroupMembers int
	// RoomHistory is how many messages each chat room keeps for replay, and
	// RoomMaxAge how long; zero means 100 and 1 hour.
	RoomHistory int
	RoomMaxAge  time.Duration
	// EdgeTimeout takes an edge's devices offline when its heartbeat has not
	// been heard for this long; zero means 10s.
	EdgeTimeout time.Duration
	// SendRate/SendBurst limit each user's sends per second, and
	// SignInRate/SignInBurst the sign-ins per second of this edge; a zero
	// rate means no limit (cmd/parleyd sets limits by default).
	SendRate, SignInRate   float64
	SendBurst, SignInBurst int
	Logger                 *slog.Logger
}

// The roles of a node.
const (
	RoleEdge  = "edge"
	RoleLogic = "logic"
)

// DevAPIKey is the server API key used with the development token secret
// when no --api-key is set. Never in production.
const DevAPIKey = "parley-dev-api-key"

func (c Config) runs(role string) bool {
	return len(c.Roles) == 0 || slices.Contains(c.Roles, role)
}

// Node is one running parleyd.
type Node struct {
	cfg Config
	log *slog.Logger

	natsSrv *server.Server // nil with an external NATS
	nc      *nats.Conn     // the logic role's, and the edge's when it runs alone
	edgeNC  *nats.Conn     // the edge role's: nc, or its own beside the logic role
	store   mailbox.Store
	dir     directory.Store
	host    *host.Host
	api     *api.Service
	micro   micro.Service
	hub     *edge.Hub
	tcp     *tcp.Server
	ws      *ws.Handler
	httpSrv *http.Server
	httpLn  net.Listener
	ready   atomic.Bool
	closed  atomic.Bool

	devTokens bool // serve /dev/token: only with the development secret
}

// Start starts every part and returns the running node. On error, whatever
// started is stopped.
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	if cfg.DataDir == "" {
		cfg.DataDir = "data"
	}
	if cfg.Shards <= 0 {
		cfg.Shards = shard.DefaultCount
	}
	if cfg.EdgeID == "" {
		cfg.EdgeID = defaultEdgeID()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, r := range cfg.Roles {
		if r != RoleEdge && r != RoleLogic {
			return nil, fmt.Errorf("--roles: unknown role %q (want edge and/or logic)", r)
		}
	}
	if !cfg.runs(RoleLogic) && cfg.NATSURL == "" {
		return nil, errors.New("--roles edge needs --nats-url: the NATS of the logic node (an edge alone has no one to talk to)")
	}
	n := &Node{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = n.Shutdown(sctx)
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}

	// NATS.
	natsURL := cfg.NATSURL
	if natsURL == "" {
		addr, explicit := orDefault(cfg.NATSListen, DefaultNATSAddr)
		n.natsSrv, err = startEmbeddedNATS(addr, explicit, cfg.DataDir, cfg.Shards, log)
		if err != nil {
			return nil, err
		}
		natsURL = n.natsSrv.ClientURL()
		if u := "nats://" + addr; u != natsURL && !explicit {
			log.Warn("default NATS port taken; embedded NATS is on another port", "url", natsURL, "cli", "nats --server "+natsURL)
		} else {
			log.Info("embedded NATS listening", "url", natsURL)
		}
	}
	connect := func(name string) (*nats.Conn, error) {
		nc, err := nats.Connect(natsURL, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectBufSize(64<<20))
		if err != nil {
			return nil, fmt.Errorf("connect nats %s: %w", natsURL, err)
		}
		return nc, nil
	}
	if n.nc, err = connect("parleyd " + cfg.EdgeID); err != nil {
		return nil, err
	}
	n.edgeNC = n.nc
	if cfg.runs(RoleLogic) && cfg.runs(RoleEdge) {
		// Each role on its own connection, as in separate processes: a
		// connection is one reader goroutine in the client and one in the
		// server, which one connection for both roles made the bottleneck
		// of the p2p load (docs/PERFORMANCE.md).
		if n.edgeNC, err = connect("parleyd " + cfg.EdgeID + " edge"); err != nil {
			return nil, err
		}
	}
	if err := checkMapping(n.nc, cfg.Shards); err != nil {
		return nil, fmt.Errorf("--nats-url %s: %w", natsURL, err)
	}

	if cfg.runs(RoleLogic) {
		if err := n.startLogic(ctx); err != nil {
			return nil, err
		}
	}
	if cfg.runs(RoleEdge) {
		if err := n.startEdge(ctx); err != nil {
			return nil, err
		}
	}
	httpAddr, explicit := orDefault(cfg.HTTPListen, DefaultHTTPAddr)
	n.httpLn, err = listen(httpAddr, explicit, "--http-listen")
	if err != nil {
		return nil, err
	}
	n.httpSrv = &http.Server{Handler: n.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := n.httpSrv.Serve(n.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "err", err)
		}
	}()
	n.ready.Store(true)
	attrs := []any{"edge", cfg.EdgeID, "roles", cfg.Roles, "http", n.HTTPAddr().String(), "nats", natsURL}
	if n.tcp != nil {
		attrs = append(attrs, "tcp", n.TCPAddr().String(), "ws", "ws://"+n.HTTPAddr().String()+"/ws", "web", "http://"+n.HTTPAddr().String()+"/")
	}
	log.Info("parleyd ready", attrs...)
	return n, nil
}

// startLogic opens the store and starts the actor host and the server API.
func (n *Node) startLogic(ctx context.Context) (err error) {
	cfg, log := n.cfg, n.log
	if cfg.CommitWorkers < 0 {
		return fmt.Errorf("--commit-workers %d: must not be negative", cfg.CommitWorkers)
	}
	switch {
	case cfg.Store == "" || cfg.Store == "embedded":
		path := filepath.Join(cfg.DataDir, "parley.db")
		n.store, err = boltstore.Open(path, boltstore.Options{})
		if err != nil {
			return fmt.Errorf("open embedded store: %w", err)
		}
		log.Info("embedded store opened", "path", path)
	case strings.HasPrefix(cfg.Store, "mysql://"):
		dsn, err := mysqlstore.ParseURL(cfg.Store)
		if err != nil {
			return fmt.Errorf("--store: %w", err)
		}
		n.store, err = mysqlstore.Open(ctx, dsn, mysqlstore.Options{})
		if err != nil {
			return fmt.Errorf("open mysql store: %w", err)
		}
		log.Info("mysql store opened")
	default:
		return fmt.Errorf("--store %q: want empty (embedded) or mysql://user:pass@host:port/db", cfg.Store)
	}

	n.dir = n.store.(directory.Store) // both stores hold the directory too

	workers := cfg.CommitWorkers
	if _, ok := n.store.(*mysqlstore.Store); ok && workers == 0 {
		workers = 2
	}
	n.host, err = host.New(host.Config{
		NATS: n.nc, Store: n.store, Directory: n.dir, Shards: cfg.Shards, CommitWorkers: workers,
		RequireFriendship: cfg.RequireFriendship, MaxGroupMembers: cfg.MaxGroupMembers, EdgeTimeout: cfg.EdgeTimeout,
		SendRate: cfg.SendRate, SendBurst: cfg.SendBurst,
		MaxBodySize: cfg.MaxBodySize, IdleTimeout: cfg.ActorIdleTimeout, Logger: log,
	})
	if err != nil {
		return err
	}
	n.api, err = api.New(api.Config{Host: n.host, Store: n.store, NATS: n.nc, APIKey: n.apiKey(), MaxBodySize: cfg.MaxBodySize, Logger: log})
	if err != nil {
		return err
	}
	n.host.SetCall(n.api.CallAs)
	js, err := jetstream.New(n.nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if _, err := room.EnsureStream(ctx, js, n.roomConfig()); err != nil { // the API pushes to rooms
		return err
	}
	if err := n.host.Start(ctx); err != nil {
		return err
	}
	if n.apiKey() != "" {
		if n.micro, err = n.api.Register(Version); err != nil {
			return err
		}
		if n.cfg.APIKey == "" {
			log.Warn("no --api-key set: the server API accepts the development key; never do this in production", "api_key", DevAPIKey)
		}
	} else {
		log.Warn("no --api-key set: the server API over NATS and HTTP is off")
	}
	return nil
}

// startEdge starts the session hub and the TCP and WebSocket listeners.
func (n *Node) startEdge(ctx context.Context) (err error) {
	cfg, log := n.cfg, n.log
	secret := cfg.Secret
	if secret == "" {
		secret = auth.DevSecret
		n.devTokens = true
		log.Warn("no --secret set: using the development token secret and serving /dev/token; never do this in production")
	}
	verifier, err := auth.NewVerifier([]byte(secret))
	if err != nil {
		return err
	}
	n.hub, err = edge.NewHub(edge.HubConfig{
		EdgeID: cfg.EdgeID, NATS: n.edgeNC, Verifier: verifier,
		SignInTimeout: cfg.SignInTimeout, IdleTimeout: cfg.IdleTimeout, MaxBodySize: cfg.MaxBodySize,
		Rooms: n.roomConfig(), SignInRate: cfg.SignInRate, SignInBurst: cfg.SignInBurst,
		RoomSendRate: cfg.SendRate, RoomSendBurst: cfg.SendBurst, Logger: log,
	})
	if err != nil {
		return err
	}
	if err := n.hub.Start(); err != nil {
		return err
	}
	tcpAddr, explicit := orDefault(cfg.TCPListen, DefaultTCPAddr)
	if tcpAddr, err = freeIfTaken(tcpAddr, explicit, "--tcp-listen"); err != nil {
		return err
	}
	n.tcp, err = tcp.New(tcp.Config{Addr: tcpAddr, Handler: n.hub, MaxFrameSize: cfg.MaxFrameSize, Logger: log})
	if err != nil {
		return err
	}
	if err := n.tcp.Start(ctx); err != nil {
		return fmt.Errorf("--tcp-listen %s: %w", tcpAddr, err)
	}
	n.ws, err = ws.New(ws.Config{Handler: n.hub, MaxFrameSize: cfg.MaxFrameSize, Logger: log})
	if err != nil {
		return err
	}
	return nil
}

func (n *Node) roomConfig() room.Config {
	return room.Config{MaxAge: n.cfg.RoomMaxAge, MaxPerRoom: int64(n.cfg.RoomHistory)}
}

// Version is parleyd's version, reported by the micro service.
const Version = "0.3.0-dev"

// apiKey is the server API key in force ("" = NATS and HTTP API off).
func (n *Node) apiKey() string {
	switch {
	case n.cfg.APIKey != "":
		return n.cfg.APIKey
	case n.cfg.Secret == "":
		return DevAPIKey
	}
	return ""
}

func (n *Node) routes() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	if n.hub != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parley_edge_connections", Help: "Open client connections on this edge.",
		}, func() float64 { return float64(n.hub.Conns()) }))
		var page web.Config
		if n.devTokens {
			page.Mint = func(uid string) (string, error) { return auth.Mint([]byte(auth.DevSecret), uid, 24*time.Hour) }
		}
		mux.Handle("/", web.Handler(page))
		mux.Handle("/ws", n.ws)
	}
	if n.host != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parley_actors_active", Help: "User actors running on this node.",
		}, func() float64 { return float64(n.host.ActiveActors()) }))
		reg.MustRegister(n.host.Collectors()...)
	}
	if n.api != nil && n.apiKey() != "" {
		mux.Handle(api.HTTPPrefix, n.api)
	}
	if n.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !n.ready.Load() || n.nc.Status() != nats.CONNECTED {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// TCPAddr is the client TCP address.
func (n *Node) TCPAddr() net.Addr { return n.tcp.Addr() }

// HTTPAddr is the HTTP address (WebSocket at /ws).
func (n *Node) HTTPAddr() net.Addr { return n.httpLn.Addr() }

// NATSURL is the URL of the NATS the node uses.
func (n *Node) NATSURL() string { return n.nc.ConnectedUrl() }

// Shutdown drains the node: stops accepting, closes client connections with
// SHUTTING_DOWN, finishes in-flight commits and deliveries, and stops NATS.
// Idempotent.
func (n *Node) Shutdown(ctx context.Context) error {
	if !n.closed.CompareAndSwap(false, true) {
		return nil
	}
	n.ready.Store(false)
	var errs []error
	if n.hub != nil {
		errs = append(errs, n.hub.Shutdown(ctx))
	}
	if n.tcp != nil {
		errs = append(errs, n.tcp.Shutdown(ctx))
	}
	if n.ws != nil {
		errs = append(errs, n.ws.Shutdown(ctx))
	}
	if n.httpSrv != nil {
		errs = append(errs, n.httpSrv.Shutdown(ctx))
	}
	if n.micro != nil {
		errs = append(errs, n.micro.Stop())
	}
	if n.host != nil {
		errs = append(errs, n.host.Shutdown(ctx))
	}
	if n.edgeNC != nil && n.edgeNC != n.nc {
		errs = append(errs, n.edgeNC.Drain())
	}
	if n.nc != nil {
		errs = append(errs, n.nc.Drain())
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	if n.natsSrv != nil {
		n.natsSrv.Shutdown()
		n.natsSrv.WaitForShutdown()
	}
	return errors.Join(errs...)
}

func orDefault(addr, def string) (string, bool) {
	if addr == "" {
		return def, false
	}
	return addr, true
}

// freeIfTaken returns addr, or the same host with port 0 when addr is a
// default that is taken.
func freeIfTaken(addr string, explicit bool, flag string) (string, error) {
	h, p, err := pickAddr(addr, explicit, flag)
	if err != nil {
		return "", err
	}
	if p == -1 {
		p = 0
	}
	return net.JoinHostPort(h, fmt.Sprint(p)), nil
}

func defaultEdgeID() string {
	host, _ := os.Hostname()
	var b strings.Builder
	for _, c := range host {
		if c < 128 && auth.ValidID(string(c)) {
			b.WriteRune(c)
		}
		if b.Len() >= 40 {
			break
		}
	}
	var r [4]byte
	_, _ = rand.Read(r[:])
	if b.Len() == 0 {
		b.WriteString("edge")
	}
	return b.String() + "-" + hex.EncodeToString(r[:])
}
