// Package natstest runs an embedded NATS server for tests: JetStream on, a
// random loopback port, storage in the test's temp dir, stopped when the test
// ends.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Start runs a server until t ends.
func Start(t testing.TB) *server.Server {
	t.Helper()
	return StartDir(t, t.TempDir())
}

// StartDir runs a server storing JetStream in dir until t ends (or until
// the test shuts it down), so a test can restart it on the same storage.
func StartDir(t testing.TB, dir string) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: dir,
	})
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("natstest: server not ready in 10s")
	}
	return s
}

// Connect connects to s until t ends.
func Connect(t testing.TB, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}
