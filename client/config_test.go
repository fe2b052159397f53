package client

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestParseAddr(t *testing.T) {
	tests := []struct {
		in      string
		want    endpoint
		wantErr bool
	}{
		{"127.0.0.1:7420", endpoint{addr: "127.0.0.1:7420"}, false},
		{"tcp://example.com:7420", endpoint{addr: "example.com:7420"}, false},
		{"ws://127.0.0.1:7480/ws", endpoint{ws: true, addr: "ws://127.0.0.1:7480/ws"}, false},
		{"ws://127.0.0.1:7480", endpoint{ws: true, addr: "ws://127.0.0.1:7480/ws"}, false},
		{"wss://chat.example.com/im/ws", endpoint{ws: true, addr: "wss://chat.example.com/im/ws"}, false},
		{"[::1]:7420", endpoint{addr: "[::1]:7420"}, false},
		{"localhost", endpoint{}, true},
		{"http://127.0.0.1:7480", endpoint{}, true},
		{"tcp://127.0.0.1", endpoint{}, true},
		{"tcp://127.0.0.1:7420/ws", endpoint{}, true},
		{"ws://", endpoint{}, true},
	}
	for _, tc := range tests {
		got, err := parseAddr(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseAddr(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestConfigDefaultsAndErrors(t *testing.T) {
	cfg, ep, err := Config{Token: "t", DeviceID: "d"}.withDefaults()
	if err != nil {
		t.Fatalf("withDefaults error: %v", err)
	}
	if ep.addr != "127.0.0.1:7420" || ep.ws || cfg.RequestTimeout != 5*time.Second || cfg.MinBackoff != 100*time.Millisecond ||
		cfg.MaxBackoff != 10*time.Second || cfg.QueueSize != 10000 || cfg.Platform != "go" || cfg.Logger == nil {
		t.Errorf("withDefaults() = %+v, %+v; want the documented defaults", cfg, ep)
	}

	bad := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no token", Config{DeviceID: "d"}, "Token or TokenFunc"},
		{"both tokens", Config{Token: "t", TokenFunc: func(context.Context) (string, error) { return "", nil }, DeviceID: "d"}, "not both"},
		{"no device", Config{Token: "t"}, "DeviceID"},
		{"bad device", Config{Token: "t", DeviceID: "a b"}, "DeviceID"},
		{"long device", Config{Token: "t", DeviceID: strings.Repeat("d", 65)}, "DeviceID"},
		{"json over tcp", Config{Token: "t", DeviceID: "d", JSON: true}, "JSON"},
		{"bad addr", Config{Token: "t", DeviceID: "d", Addr: "nope"}, "bad address"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Dial(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Dial(%s) error = %v; want one mentioning %q", tc.name, err, tc.want)
			}
		})
	}
}

func TestBackoffBounds(t *testing.T) {
	for attempt := range 40 {
		want := min(10*time.Second, 100*time.Millisecond<<min(attempt, 30))
		for range 50 {
			if d := backoff(100*time.Millisecond, 10*time.Second, attempt); d <= 0 || d > want {
				t.Fatalf("backoff(attempt %d) = %v; want in (0, %v]", attempt, d, want)
			}
		}
	}
}
