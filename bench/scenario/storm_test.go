package scenario

import (
	"context"
	"testing"
	"time"
)

func TestStorm(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  StormConfig
	}{
		{"tcp", StormConfig{Clients: 40, Backlog: 3, Senders: 4}},
		{"ws", StormConfig{Clients: 10, Backlog: 2, Senders: 2, Common: Common{WS: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Duration = 20 * time.Second
			cfg.Progress = t.Output()
			res, err := Storm(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			res.WriteText(t.Output())
			if !res.Pass {
				t.Fatalf("storm did not pass")
			}
		})
	}
}
