package node

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/parleyim/parley/actors/shard"
)

// DefaultNATSAddr is where the embedded NATS server listens unless told
// otherwise: the nats CLI's default, so `nats sub 'im.>'` just works.
const DefaultNATSAddr = "127.0.0.1:4222"

// startEmbeddedNATS runs a NATS server with JetStream inside the process,
// with the shard subject mapping installed.
func startEmbeddedNATS(addr string, explicit bool, dataDir string, shards int, log *slog.Logger) (*server.Server, error) {
	host, port, err := pickAddr(addr, explicit, "--nats-listen")
	if err != nil {
		return nil, err
	}
	src, dest := shard.Mapping(shards)
	opts := &server.Options{
		ServerName: "parley-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(dataDir, "nats"),
		NoSigs:     true,
		// 8 MiB pending per client before NATS calls it a slow consumer; an
		// edge's single subscription carries every push for its devices.
		MaxPending: 64 << 20,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	s.SetLoggerV2(natsLogger{log.With("component", "nats")}, false, false, false)
	go s.Start()
	if !s.ReadyForConnections(15 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats on %s did not start", net.JoinHostPort(host, fmt.Sprint(port)))
	}
	if err := s.GlobalAccount().AddMapping(src, dest); err != nil {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats: add mapping %s -> %s: %w", src, dest, err)
	}
	return s, nil
}

// natsLogger adapts nats-server's printf logger to slog.
type natsLogger struct{ l *slog.Logger }

func (n natsLogger) Noticef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n natsLogger) Fatalf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Errorf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Debugf(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Tracef(format string, v ...any)  {}

// checkMapping verifies that the NATS server routes im.up.<uid>.<op> to the
// shard subjects with the same partition count as this node: without the
// mapping, clients sign in but every request times out.
func checkMapping(nc *nats.Conn, shards int) error {
	probe := "parley-probe-" + nuid.Next()
	want := fmt.Sprintf("im.shard.%d.%s.probe", shard.Of(probe, shards), probe)
	sub, err := nc.SubscribeSync("im.shard.*." + probe + ".probe")
	if err != nil {
		return fmt.Errorf("check nats subject mapping: %w", err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("check nats subject mapping: %w", err)
	}
	if err := nc.Publish(shard.UpSubject(probe, "probe"), nil); err != nil {
		return fmt.Errorf("check nats subject mapping: %w", err)
	}
	m, err := sub.NextMsg(3 * time.Second)
	if err != nil {
		src, dest := shard.Mapping(shards)
		return fmt.Errorf("the NATS server does not map %q to %q (add it under mappings in nats.conf, see the repo's nats.conf): %w", src, dest, err)
	}
	if m.Subject != want {
		return fmt.Errorf("the NATS subject mapping sends %s to %s; want %s: its partition count differs from --shards %d", shard.UpSubject(probe, "probe"), m.Subject, want, shards)
	}
	return nil
}
