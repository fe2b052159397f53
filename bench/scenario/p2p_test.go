package scenario

import (
	"context"
	"testing"
	"time"
)

func TestP2P(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  P2PConfig
	}{
		{"rate", P2PConfig{Users: 4, Rate: 400, Inflight: 2}},
		{"flat out", P2PConfig{Users: 3, Inflight: 3}},
		{"ws", P2PConfig{Users: 2, Rate: 100, Common: Common{WS: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Duration = time.Second
			cfg.Progress = t.Output()
			res, err := P2P(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			res.WriteText(t.Output())
			if !res.Pass {
				t.Fatalf("p2p did not pass")
			}
			// The in-process server's stages and the CPU are reported.
			metric := func(name string) float64 {
				for _, m := range res.Metrics {
					if m.Name == name {
						v, _ := m.Value.(float64)
						return v
					}
				}
				t.Fatalf("no metric %q in the result", name)
				return 0
			}
			if got := metric("server: group commits"); got < 1 {
				t.Errorf("server: group commits = %v; want at least 1", got)
			}
			if got := metric("server: JetStream delivery publishes"); got < 1 {
				t.Errorf("server: JetStream delivery publishes = %v; want at least 1", got)
			}
			if got := metric("cpu per message (server and load, one process)"); got <= 0 {
				t.Errorf("cpu per message = %v µs; want more than 0", got)
			}
		})
	}
}
