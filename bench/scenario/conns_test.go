package scenario

import (
	"context"
	"testing"
	"time"
)

func TestConns(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  ConnsConfig
	}{
		{"tcp", ConnsConfig{Conns: 200, Parallel: 16}},
		{"ws", ConnsConfig{Conns: 50, Common: Common{WS: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Duration = 500 * time.Millisecond
			cfg.Progress = t.Output()
			res, err := Conns(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			res.WriteText(t.Output())
			if !res.Pass {
				t.Fatalf("conns did not pass")
			}
		})
	}
}
