package client

import (
	"context"
	"net"
	"testing"
	"testing/synctest"
	"time"
)

// TestHeartbeatTimeoutReconnects runs in a synctest bubble over net.Pipe: the
// first connection goes silent after sign-in, and the client must drop it
// after two heartbeats without a frame and reconnect; the second connection
// answers pings and must stay up.
func TestHeartbeatTimeoutReconnects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeCore(t)
		s.heartbeatMs = 1000
		s.muteFirst = true
		cfg := Config{
			Token:    "tok:bob",
			DeviceID: "b1",
			Logger:   testLogger(t),
			NetDial: func(context.Context, string, string) (net.Conn, error) {
				a, b := net.Pipe()
				go s.serveTCP(b)
				return a, nil
			},
		}
		c, err := Dial(context.Background(), cfg)
		if err != nil {
			t.Fatalf("Dial error: %v", err)
		}

		time.Sleep(2500 * time.Millisecond) // two heartbeats: not yet dead
		synctest.Wait()
		if got := s.signInCount("bob", "b1"); got != 1 {
			t.Errorf("sign-ins after 2.5 heartbeats = %d; want 1", got)
		}

		time.Sleep(2 * time.Second) // declared dead at 3s, reconnected within the backoff
		synctest.Wait()
		if got := s.signInCount("bob", "b1"); got != 2 {
			t.Errorf("sign-ins after a silent connection = %d; want 2", got)
		}

		time.Sleep(time.Minute) // pings answered: no more reconnects
		synctest.Wait()
		if got := s.signInCount("bob", "b1"); got != 2 {
			t.Errorf("sign-ins after a minute of answered pings = %d; want 2", got)
		}
		if c.Err() != nil {
			t.Errorf("Err() = %v; want nil", c.Err())
		}
		c.Close()
		s.kickAll("")
	})
}
