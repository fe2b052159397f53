package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/edge/auth"
)

// testEnv returns an env with the given variables, host name and empty
// stdin, and the buffers behind stdout and stderr.
func testEnv(vars map[string]string, host string) (env, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return env{
		stdin:  strings.NewReader(""),
		stdout: &out,
		stderr: &errb,
		getenv: func(k string) string { return vars[k] },
		hostname: func() (string, error) {
			if host == "" {
				return "", errors.New("no host name")
			}
			return host, nil
		},
	}, &out, &errb
}

func TestParseToken(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		vars    map[string]string
		want    tokenOpts
		wantErr error
	}{
		{"defaults", []string{"alice"}, nil, tokenOpts{user: "alice", secret: auth.DevSecret, ttl: 24 * time.Hour}, nil},
		{"flags after user", []string{"alice", "--secret", "s3", "--ttl", "1h"}, nil, tokenOpts{user: "alice", secret: "s3", ttl: time.Hour}, nil},
		{"flags before user", []string{"-ttl=2m", "bob"}, nil, tokenOpts{user: "bob", secret: auth.DevSecret, ttl: 2 * time.Minute}, nil},
		{"env secret", []string{"alice"}, map[string]string{"PARLEY_SECRET": "envs"}, tokenOpts{user: "alice", secret: "envs", ttl: 24 * time.Hour}, nil},
		{"flag beats env", []string{"alice", "--secret", "f"}, map[string]string{"PARLEY_SECRET": "envs"}, tokenOpts{user: "alice", secret: "f", ttl: 24 * time.Hour}, nil},
		{"after --", []string{"--", "carol"}, nil, tokenOpts{user: "carol", secret: auth.DevSecret, ttl: 24 * time.Hour}, nil},
		{"no user", nil, nil, tokenOpts{}, &usageError{}},
		{"two users", []string{"a", "b"}, nil, tokenOpts{}, &usageError{}},
		{"bad user", []string{"a b"}, nil, tokenOpts{}, &usageError{}},
		{"bad ttl", []string{"a", "--ttl", "-1h"}, nil, tokenOpts{}, &usageError{}},
		{"unknown flag", []string{"a", "--nope"}, nil, tokenOpts{}, errFlagsReported},
		{"help", []string{"-h"}, nil, tokenOpts{}, errHelpShown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _, _ := testEnv(tc.vars, "h")
			got, err := parseToken(tc.args, e)
			if !sameErr(err, tc.wantErr) {
				t.Fatalf("parseToken(%q) error = %v; want %v", tc.args, err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("parseToken(%q) = %+v; want %+v", tc.args, got, tc.want)
			}
		})
	}
}

// sameErr matches err against want: nil, a sentinel, or any *usageError.
func sameErr(err, want error) bool {
	if _, ok := want.(*usageError); ok {
		var u *usageError
		return errors.As(err, &u)
	}
	if want == nil {
		return err == nil
	}
	return errors.Is(err, want)
}

func TestParseConnFlags(t *testing.T) {
	tests := []struct {
		name    string
		cmd     string
		args    []string
		vars    map[string]string
		host    string
		check   func(t *testing.T, o connOpts)
		wantErr error
	}{
		{
			name: "chat defaults", cmd: "chat", args: []string{"--user", "alice", "--to", "bob"}, host: "my.host.example",
			check: func(t *testing.T, o connOpts) {
				want := connOpts{addr: "tcp://127.0.0.1:7420", user: "alice", secret: auth.DevSecret, device: "cli-my-host-example"}
				if o != want {
					t.Errorf("opts = %+v; want %+v", o, want)
				}
			},
		},
		{
			name: "env address and secret", cmd: "sync", args: []string{"--user", "alice", "--json"},
			vars: map[string]string{"PARLEY_ADDR": "ws://h:1/ws", "PARLEY_SECRET": "s"}, host: "h",
			check: func(t *testing.T, o connOpts) {
				if o.addr != "ws://h:1/ws" || o.secret != "s" || !o.json || o.device != "cli-h" {
					t.Errorf("opts = %+v; want addr ws://h:1/ws, secret s, json, device cli-h", o)
				}
			},
		},
		{
			name: "token without user", cmd: "send", args: []string{"--token", "T", "--to", "bob", "--device", "d1", "--addr", "wss://x/ws", "--wire-json"},
			check: func(t *testing.T, o connOpts) {
				if o.token != "T" || o.user != "" || o.device != "d1" || o.addr != "wss://x/ws" || !o.wireJSON {
					t.Errorf("opts = %+v; want token T, no user, device d1, wss, wire json", o)
				}
			},
		},
		{name: "no host name", cmd: "sync", args: []string{"--user", "a"}, check: func(t *testing.T, o connOpts) {
			if o.device != "cli" {
				t.Errorf("device = %q; want cli", o.device)
			}
		}},
		{name: "no user or token", cmd: "sync", args: nil, wantErr: &usageError{}},
		{name: "bad user", cmd: "sync", args: []string{"--user", "a/b"}, wantErr: &usageError{}},
		{name: "bad device", cmd: "sync", args: []string{"--user", "a", "--device", "a b"}, wantErr: &usageError{}},
		{name: "wire json over tcp", cmd: "sync", args: []string{"--user", "a", "--wire-json"}, wantErr: &usageError{}},
		{name: "chat without --to", cmd: "chat", args: []string{"--user", "a"}, wantErr: &usageError{}},
		{name: "send without --to", cmd: "send", args: []string{"--user", "a"}, wantErr: &usageError{}},
		{name: "stray argument", cmd: "sync", args: []string{"--user", "a", "extra"}, wantErr: &usageError{}},
		{name: "bad after", cmd: "sync", args: []string{"--user", "a", "--after", "-1"}, wantErr: errFlagsReported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _, _ := testEnv(tc.vars, tc.host)
			var o connOpts
			var err error
			switch tc.cmd {
			case "chat":
				var c chatOpts
				c, err = parseChat(tc.args, e)
				o = c.conn
			case "send":
				var s sendOpts
				s, err = parseSend(tc.args, e)
				o = s.conn
			case "sync":
				var s syncOpts
				s, err = parseSync(tc.args, e)
				o = s.conn
			}
			if !sameErr(err, tc.wantErr) {
				t.Fatalf("parse %s %q error = %v; want %v", tc.cmd, tc.args, err, tc.wantErr)
			}
			if err == nil {
				tc.check(t, o)
			}
		})
	}
}

func TestParseSendText(t *testing.T) {
	tests := []struct {
		args        []string
		wantText    string
		wantHasText bool
		wantTimeout time.Duration
	}{
		{[]string{"--user", "a", "--to", "b"}, "", false, 30 * time.Second},
		{[]string{"--user", "a", "--to", "b", "--text", "hi there"}, "hi there", true, 30 * time.Second},
		{[]string{"--user", "a", "--to", "b", "--text=", "--timeout", "0"}, "", true, 0},
	}
	for _, tc := range tests {
		e, _, _ := testEnv(nil, "h")
		got, err := parseSend(tc.args, e)
		if err != nil {
			t.Fatalf("parseSend(%q) error: %v", tc.args, err)
		}
		if got.to != "b" || got.text != tc.wantText || got.hasText != tc.wantHasText || got.timeout != tc.wantTimeout {
			t.Errorf("parseSend(%q) = to %q text %q hasText %v timeout %v; want b %q %v %v",
				tc.args, got.to, got.text, got.hasText, got.timeout, tc.wantText, tc.wantHasText, tc.wantTimeout)
		}
	}
}

func TestParseSyncAfter(t *testing.T) {
	e, _, _ := testEnv(nil, "h")
	got, err := parseSync([]string{"--user", "a", "--after", "42"}, e)
	if err != nil || got.after != 42 {
		t.Fatalf("parseSync(--after 42) = %d, %v; want 42", got.after, err)
	}
}

func TestSanitizeID(t *testing.T) {
	tests := []struct{ in, want string }{
		{"cli-laptop", "cli-laptop"},
		{"cli-my.host.local", "cli-my-host-local"},
		{"cli-höst", "cli-h--st"},
		{"cli-" + strings.Repeat("x", 100), "cli-" + strings.Repeat("x", 60)},
	}
	for _, tc := range tests {
		got := sanitizeID(tc.in)
		if got != tc.want || !auth.ValidID(got) {
			t.Errorf("sanitizeID(%q) = %q (valid %v); want %q", tc.in, got, auth.ValidID(got), tc.want)
		}
	}
}

func TestConfigMintsToken(t *testing.T) {
	o := connOpts{addr: "tcp://h:1", user: "alice", secret: "sekret", device: "d1"}
	cfg, err := o.config()
	if err != nil {
		t.Fatalf("config() error: %v", err)
	}
	v, err := auth.NewVerifier([]byte("sekret"))
	if err != nil {
		t.Fatal(err)
	}
	if uid, err := v.Verify(cfg.Token); err != nil || uid != "alice" {
		t.Errorf("minted token verifies as %q, %v; want alice", uid, err)
	}
	if cfg.DeviceID != "d1" || cfg.Addr != "tcp://h:1" || cfg.Platform != "cli" {
		t.Errorf("config() = %+v; want device d1, addr tcp://h:1, platform cli", cfg)
	}
	o.token = "given"
	if cfg, _ := o.config(); cfg.Token != "given" {
		t.Errorf("config() with --token uses token %q; want given", cfg.Token)
	}
}

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"no command", nil, exitUsage, "", "Usage: parley <command>"},
		{"help", []string{"help"}, exitOK, "Usage: parley <command>", ""},
		{"-h", []string{"-h"}, exitOK, "Commands:", ""},
		{"unknown", []string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate"`},
		{"bad flag", []string{"sync", "--bogus"}, exitUsage, "", "Usage: parley sync"},
		{"command help", []string{"chat", "-h"}, exitOK, "", "-to user"},
		{"missing user", []string{"send", "--to", "b"}, exitUsage, "", "--user is required"},
		{"token", []string{"token", "alice"}, exitOK, "eyJ", ""},
		{"unreachable", []string{"sync", "--user", "a", "--addr", "127.0.0.1:1"}, exitError, "", "connection refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, out, errb := testEnv(nil, "h")
			got := run(context.Background(), tc.args, e)
			if got != tc.wantCode || !strings.Contains(out.String(), tc.wantStdout) || !strings.Contains(errb.String(), tc.wantStderr) {
				t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d, stdout containing %q, stderr containing %q",
					tc.args, got, out.String(), errb.String(), tc.wantCode, tc.wantStdout, tc.wantStderr)
			}
		})
	}
}

func TestRunTokenVerifies(t *testing.T) {
	e, out, _ := testEnv(map[string]string{"PARLEY_SECRET": "from-env"}, "h")
	if code := run(context.Background(), []string{"token", "bob", "--ttl", "1m"}, e); code != exitOK {
		t.Fatalf("run(token bob) = %d; want 0", code)
	}
	v, err := auth.NewVerifier([]byte("from-env"))
	if err != nil {
		t.Fatal(err)
	}
	if uid, err := v.Verify(strings.TrimSpace(out.String())); err != nil || uid != "bob" {
		t.Errorf("printed token verifies as %q, %v; want bob", uid, err)
	}
}
