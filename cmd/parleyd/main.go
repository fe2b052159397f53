// Command parleyd is the Parley server. With no flags it runs every role in
// one process on embedded defaults: embedded NATS with JetStream, the
// embedded store under ./data, client TCP on 127.0.0.1:7420 and
// HTTP/WebSocket on 127.0.0.1:7480.
//
// Every flag can also come from the environment (PARLEY_ + the flag name in
// upper case with - as _, e.g. PARLEY_STORE) or from a config file given with
// --config (lines of "flag-name = value", # comments). Precedence: command
// line, then environment, then config file.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/parleyim/parley/cmd/parleyd/node"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "parleyd:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("parleyd", flag.ContinueOnError)
	var cfg node.Config
	configFile := fs.String("config", "", "config file of `flag-name = value` lines")
	fs.StringVar(&cfg.DataDir, "data-dir", "data", "directory for the embedded store and embedded NATS")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "external NATS URL (empty: run NATS embedded)")
	fs.StringVar(&cfg.NATSListen, "nats-listen", "", "embedded NATS address (default "+node.DefaultNATSAddr+", a free port if taken)")
	fs.StringVar(&cfg.TCPListen, "tcp-listen", "", "client TCP address (default "+node.DefaultTCPAddr+", a free port if taken)")
	fs.StringVar(&cfg.HTTPListen, "http-listen", "", "HTTP/WebSocket address (default "+node.DefaultHTTPAddr+", a free port if taken)")
	fs.StringVar(&cfg.Store, "store", "", "store: empty for the embedded store, or mysql://user:pass@host:port/db")
	fs.StringVar(&cfg.Secret, "secret", "", "HS256 secret of client tokens (default: the development secret)")
	fs.StringVar(&cfg.EdgeID, "edge-id", "", "this edge's id on the bus (default: hostname + random suffix)")
	fs.IntVar(&cfg.Shards, "shards", 0, "shard count, the same on every node (default 64)")
	fs.DurationVar(&cfg.SignInTimeout, "signin-timeout", 10*time.Second, "close connections that do not sign in within this")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", 90*time.Second, "close connections silent for this long")
	fs.IntVar(&cfg.MaxFrameSize, "max-frame", 64<<10, "largest client frame in bytes")
	fs.IntVar(&cfg.MaxBodySize, "max-body", 32<<10, "largest message body in bytes")
	fs.IntVar(&cfg.CommitWorkers, "commit-workers", 0, "mailbox transactions in flight at once (default 1 embedded, 2 MySQL; more for a distant database)")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "serve /debug/pprof/ on the HTTP listener")
	roles := fs.String("roles", "edge,logic", "roles of this process: edge (client listeners), logic (actors, directory, server API), or both")
	fs.StringVar(&cfg.APIKey, "api-key", "", "server API key for NATS and HTTP (default: the development key with the development secret, else the API is off)")
	fs.BoolVar(&cfg.RequireFriendship, "require-friendship", false, "refuse 1:1 messages between users who are not friends")
	fs.IntVar(&cfg.MaxGroupMembers, "max-group-members", 10_000, "largest group")
	fs.IntVar(&cfg.RoomHistory, "room-history", 100, "messages each chat room keeps for replay")
	fs.DurationVar(&cfg.RoomMaxAge, "room-max-age", time.Hour, "how long chat room messages are kept for replay")
	fs.Float64Var(&cfg.SendRate, "send-rate", 200, "messages per second each user may send (all devices together; 0: no limit)")
	fs.IntVar(&cfg.SendBurst, "send-burst", 400, "burst of --send-rate")
	fs.Float64Var(&cfg.SignInRate, "signin-rate", 5000, "sign-ins per second this edge accepts (0: no limit); more are told RATE_LIMITED and retry")
	fs.IntVar(&cfg.SignInBurst, "signin-burst", 5000, "burst of --signin-rate")
	fs.DurationVar(&cfg.EdgeTimeout, "edge-timeout", 10*time.Second, "take an edge's devices offline when its heartbeat is not heard for this long")
	logFormat := fs.String("log-format", "text", "text or json")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	shutdownTimeout := fs.Duration("shutdown-timeout", 15*time.Second, "how long a graceful shutdown may take")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if err := applyEnvAndFile(fs, *configFile); err != nil {
		return err
	}
	for _, r := range strings.Split(*roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			cfg.Roles = append(cfg.Roles, r)
		}
	}
	log, err := newLogger(*logFormat, *logLevel)
	if err != nil {
		return err
	}
	cfg.Logger = log

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := node.Start(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	if err := n.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// applyEnvAndFile sets every flag not given on the command line from
// PARLEY_<NAME> or, failing that, from the config file.
func applyEnvAndFile(fs *flag.FlagSet, path string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	file := map[string]string{}
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("--config: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for line := 1; sc.Scan(); line++ {
			text := strings.TrimSpace(sc.Text())
			if text == "" || strings.HasPrefix(text, "#") {
				continue
			}
			k, v, ok := strings.Cut(text, "=")
			k, v = strings.TrimSpace(k), strings.Trim(strings.TrimSpace(v), `"`)
			if !ok || fs.Lookup(k) == nil {
				return fmt.Errorf("--config %s:%d: want flag-name = value with a known flag name", path, line)
			}
			file[k] = v
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("--config: %w", err)
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil || f.Name == "config" {
			return
		}
		env := "PARLEY_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v, ok := os.LookupEnv(env)
		src := env
		if !ok {
			v, ok = file[f.Name]
			src = "--config " + f.Name
		}
		if ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", src, v, e)
			}
		}
	})
	return err
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, errors.New("--log-format must be text or json")
}
