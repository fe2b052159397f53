// Command parley-bench is Parley's load generator:
//
//	parley-bench p2p   [flags]  1:1 messages at a target rate or flat out, verified
//	parley-bench conns [flags]  idle connections: connect time and server memory per connection
//	parley-bench sync  [flags]  a fresh device catches up on a large mailbox
//	parley-bench storm [flags]  every connection cut at once; reconnect and resync
//	parley-bench group [flags]  group fan-out to online members, offline members sync
//	parley-bench room  [flags]  chat rooms: live fan-out to members, late joiners' replay
//
// Without --addr it starts a server in-process on random loopback ports
// (temporary data dir, embedded store unless --store) and stops it at the
// end. It only ever sends traffic to loopback. Results print on stdout,
// progress once a second on stderr, and with --out the result is written as
// JSON. The exit code is 0 when every verification passed, 1 when one
// failed and 2 when the run could not be set up.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/parleyim/parley/bench/scenario"
)

const usage = `usage: parley-bench <scenario> [flags]

scenarios:
  p2p    N senders each to its own online receiver, at --rate msgs/s (open loop)
         or flat out (--rate 0, --inflight sends per sender); verifies every
         message arrived exactly once and in order
  conns  N idle connections: time to connect, connect latency, server memory
         per connection (in-process server only)
  sync   pre-load --messages into one mailbox, then a fresh device syncs them all
  storm  N connected devices miss a backlog, all connections are cut at once,
         they reconnect and resync; reports the time until all are synced
  group  G groups of S members, every member online on its own connection
         (or a fraction offline that syncs at the end); a few members send
         at --rate; fan-out latency to each member and to the last one;
         verifies every member got every message once, in seq order
  room   R chat rooms of M member connections; senders at --rate; latency to
         each member; verifies each message reached every other member once,
         in sender order, and that late joiners' replay + live has no gap

Run "parley-bench <scenario> -h" for its flags. --quick sizes any scenario to
finish in under 20s on a 2-core machine.
`

func main() {
	if ran, code := scenario.RunAgent(); ran {
		os.Exit(code)
	}
	os.Exit(run(os.Args))
}

// common holds the flags every scenario has.
type common struct {
	scenario.Common
	quick      bool
	out        string
	serverLog  string
	cpuProfile string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", "", "external server, tcp://127.0.0.1:7420 or ws://127.0.0.1:7480/ws (loopback only); empty: start one in-process")
	fs.BoolVar(&c.WS, "ws", false, "in-process server: connect over WebSocket instead of TCP")
	fs.StringVar(&c.Store, "store", "", "in-process server's store: mysql://user:pass@127.0.0.1:3306/db; empty: embedded")
	fs.StringVar(&c.Secret, "secret", "", "token secret, must match the server's; empty: parleyd's development secret with --addr, a random one in-process")
	fs.BoolVar(&c.quick, "quick", false, "small preset that finishes in under 20s on 2 cores (flags you set still win)")
	fs.StringVar(&c.out, "out", autoOut, "write the result as JSON to this file ("+autoOut+": "+resultsDir+"/<scenario>-<UTC time>.json; empty: no file)")
	fs.StringVar(&c.serverLog, "server-log", "warn", "in-process server log level on stderr: debug, info, warn, error or off")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (the in-process server and the load) to this file")
}

func run(args []string) int {
	if len(args) < 2 || strings.HasPrefix(args[1], "-") {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	name := args[1]
	fs := flag.NewFlagSet("parley-bench "+name, flag.ContinueOnError)
	var c common
	c.register(fs)
	var (
		users, inflight, size, conns, parallel, messages, senders, backlog int
		groups, members, rooms, replay, late                               int
		rate, offline                                                      float64
		duration                                                           time.Duration
		serverHTTP                                                         string
	)
	// quick holds the --quick preset of each flag that has one.
	quick := map[string]string{}
	switch name {
	case "p2p":
		fs.IntVar(&users, "users", 64, "sender→receiver pairs")
		fs.Float64Var(&rate, "rate", 0, "target total rate in msgs/s (open loop, latency from the scheduled time); 0: flat out")
		fs.IntVar(&inflight, "inflight", 4, "concurrent sends per sender")
		fs.IntVar(&size, "size", 64, "message body bytes (at least 64)")
		fs.DurationVar(&duration, "duration", 30*time.Second, "how long to send")
		fs.StringVar(&serverHTTP, "server-http", "", "with --addr: the server's HTTP address (host:port), to break its time down by stage from /metrics")
		quick = map[string]string{"users": "50", "rate": "2000", "duration": "10s"}
	case "conns":
		fs.IntVar(&conns, "conns", 10000, "idle connections (each a distinct user); lowered to fit the open-file limit")
		fs.IntVar(&parallel, "parallel", 64, "concurrent dials")
		fs.DurationVar(&duration, "duration", 5*time.Second, "how long to hold them idle")
		fs.StringVar(&serverHTTP, "server-http", "", "with --addr: the server's HTTP address (host:port), started with --pprof, to measure its memory per connection")
		quick = map[string]string{"conns": "8000", "duration": "3s"}
	case "sync":
		fs.IntVar(&messages, "messages", 200000, "messages to pre-load into the mailbox (K)")
		fs.IntVar(&senders, "senders", 16, "users sending them in parallel")
		fs.IntVar(&senders, "users", 16, "same as --senders")
		fs.IntVar(&inflight, "inflight", 4, "concurrent sends per sender")
		fs.IntVar(&size, "size", 64, "message body bytes (at least 64)")
		fs.DurationVar(&duration, "duration", 2*time.Minute, "bound on the pre-load and, separately, on the catch-up")
		quick = map[string]string{"messages": "50000", "duration": "30s"}
	case "storm":
		fs.IntVar(&conns, "conns", 2000, "connected devices (each a distinct user); lowered to fit the open-file limit")
		fs.IntVar(&conns, "users", 2000, "same as --conns")
		fs.IntVar(&backlog, "backlog", 5, "messages each device misses before the cut and must sync")
		fs.IntVar(&senders, "senders", 16, "users sending the backlog")
		fs.IntVar(&inflight, "inflight", 4, "concurrent sends per sender")
		fs.DurationVar(&duration, "duration", time.Minute, "bound on the recovery after the cut")
		quick = map[string]string{"conns": "2000", "duration": "15s"}
	case "group":
		fs.IntVar(&groups, "groups", 1, "groups (each of --members distinct users)")
		fs.IntVar(&members, "members", 1000, "members per group, owner included; lowered to fit the open-file limit")
		fs.IntVar(&senders, "senders", 4, "members per group that send (from a second device)")
		fs.Float64Var(&offline, "offline", 0, "fraction of each group's members offline during the sends; they sign in and sync at the end")
		fs.Float64Var(&rate, "rate", 5, "target total rate over all groups in msgs/s (open loop, latency from the scheduled time); 0: flat out")
		fs.IntVar(&messages, "messages", 0, "send at most this many messages in total; 0: rate × duration")
		fs.IntVar(&inflight, "inflight", 4, "concurrent sends per sender")
		fs.IntVar(&size, "size", 64, "message body bytes (at least 64)")
		fs.DurationVar(&duration, "duration", 30*time.Second, "how long to send")
		quick = map[string]string{"members": "200", "rate": "25", "duration": "10s"}
	case "room":
		fs.IntVar(&rooms, "rooms", 10, "chat rooms")
		fs.IntVar(&members, "members", 200, "member connections per room (each a distinct user); lowered to fit the open-file limit")
		fs.IntVar(&senders, "senders", 2, "members per room that send")
		fs.Float64Var(&rate, "rate", 100, "target total rate over all rooms in msgs/s (open loop, latency from the scheduled time); 0: flat out")
		fs.IntVar(&messages, "messages", 0, "send at most this many messages in total; 0: rate × duration")
		fs.IntVar(&inflight, "inflight", 1, "concurrent sends per sender")
		fs.IntVar(&size, "size", 64, "message body bytes (at least 64)")
		fs.IntVar(&late, "late", 1, "late joiners per room: fresh connections that join halfway through the sends with --replay")
		fs.IntVar(&replay, "replay", 50, "messages a late joiner asks to replay (parleyd keeps 100 per room by default)")
		fs.DurationVar(&duration, "duration", 30*time.Second, "how long to send")
		quick = map[string]string{"rooms": "5", "members": "100", "duration": "10s"}
	case "-h", "--help", "help":
		fmt.Fprint(os.Stdout, usage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "parley-bench: unknown scenario %q\n\n%s", name, usage)
		return 2
	}
	if err := fs.Parse(args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "parley-bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if c.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for flagName, v := range quick {
			if !set[flagName] {
				if err := fs.Set(flagName, v); err != nil {
					panic(err) // the presets are ours
				}
			}
		}
	}
	c.Duration = duration
	c.Progress = os.Stderr
	logger, err := serverLogger(c.serverLog)
	if err != nil {
		fmt.Fprintln(os.Stderr, "parley-bench:", err)
		return 2
	}
	c.ServerLogger = logger
	if limit, err := scenario.RaiseNoFile(); err != nil {
		fmt.Fprintf(os.Stderr, "parley-bench: could not raise the open-file limit (now %d): %v\n", limit, err)
	}

	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "parley-bench:", err)
			return 2
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			fmt.Fprintln(os.Stderr, "parley-bench:", err)
			return 2
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Every phase has its own bound; this one catches anything they miss.
	ctx, cancel := context.WithTimeout(ctx, 4*duration+10*time.Minute)
	defer cancel()
	var res *scenario.Result
	switch name {
	case "p2p":
		res, err = scenario.P2P(ctx, scenario.P2PConfig{Common: c.Common, Users: users, Rate: rate, Inflight: inflight, Size: size, ServerHTTP: serverHTTP})
	case "conns":
		res, err = scenario.Conns(ctx, scenario.ConnsConfig{Common: c.Common, Conns: conns, Parallel: parallel, ServerHTTP: serverHTTP})
	case "sync":
		res, err = scenario.Sync(ctx, scenario.SyncConfig{Common: c.Common, Messages: messages, Senders: senders, Inflight: inflight, Size: size})
	case "storm":
		res, err = scenario.Storm(ctx, scenario.StormConfig{Common: c.Common, Clients: conns, Backlog: backlog, Senders: senders, Inflight: inflight})
	case "group":
		res, err = scenario.Group(ctx, scenario.GroupConfig{Common: c.Common, Groups: groups, Members: members, Senders: senders,
			Offline: offline, Rate: rate, Messages: messages, Inflight: inflight, Size: size})
	case "room":
		res, err = scenario.Room(ctx, scenario.RoomConfig{Common: c.Common, Rooms: rooms, Members: members, Senders: senders,
			Rate: rate, Messages: messages, Inflight: inflight, Size: size, Late: late, Replay: replay})
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "parley-bench %s: %v\n", name, err)
		return 2
	}
	res.Command = redactArgs(args)
	res.WriteText(os.Stdout)
	if c.out == autoOut {
		c.out = filepath.Join(resultsDir, name+"-"+time.Now().UTC().Format("20060102T150405.000Z")+".json")
		if err := os.MkdirAll(resultsDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "parley-bench: write result:", err)
			return 2
		}
	}
	if c.out != "" {
		if err := writeJSON(c.out, res); err != nil {
			fmt.Fprintln(os.Stderr, "parley-bench:", err)
			return 2
		}
		fmt.Fprintf(os.Stdout, "result written to %s\n", c.out)
	}
	if !res.Pass {
		return 1
	}
	return 0
}

// redactArgs returns args with the --secret value and URL passwords hidden,
// for the result file.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	hideNext := false
	for i, a := range args {
		switch {
		case hideNext:
			a, hideNext = "REDACTED", false
		case a == "--secret" || a == "-secret":
			hideNext = true
		case strings.HasPrefix(a, "--secret=") || strings.HasPrefix(a, "-secret="):
			a = a[:strings.Index(a, "=")+1] + "REDACTED"
		default:
			if u, err := url.Parse(a); err == nil && u.User != nil {
				if _, ok := u.User.Password(); ok {
					a = u.Redacted()
				}
			}
		}
		out[i] = a
	}
	return out
}

func serverLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	switch level {
	case "off":
		return nil, nil
	case "debug":
		l = slog.LevelDebug
	case "info":
		l = slog.LevelInfo
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		return nil, fmt.Errorf("--server-log %q: want debug, info, warn, error or off", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// Where results go unless --out says otherwise.
const (
	autoOut    = "auto"
	resultsDir = "bench-results"
)

func writeJSON(path string, res *scenario.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	enc := json.NewEncoder(f)
	enc.SetIndent("", "  ")
	err = enc.Encode(res)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write result %s: %w", path, err)
	}
	return nil
}
