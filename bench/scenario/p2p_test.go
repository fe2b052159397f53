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
		})
	}
}
