package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parleyim/parley/bench/scenario"
)

func TestMain(m *testing.M) {
	if ran, code := scenario.RunAgent(); ran {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{
		{"parley-bench"},
		{"parley-bench", "nope"},
		{"parley-bench", "p2p", "--no-such-flag"},
		{"parley-bench", "p2p", "extra"},
		{"parley-bench", "p2p", "--server-log", "loud"},
		{"parley-bench", "p2p", "--addr", "tcp://10.1.2.3:7420"},
	} {
		if code := run(args); code != 2 {
			t.Errorf("run(%q) = %d; want 2", args, code)
		}
	}
}

func TestRunWritesJSON(t *testing.T) {
	out := filepath.Join(t.TempDir(), "result.json")
	args := []string{"parley-bench", "p2p", "--quick", "--users", "2", "--rate", "50", "--duration", "500ms",
		"--server-log", "off", "--out", out}
	if code := run(args); code != 0 {
		t.Fatalf("run(%q) = %d; want 0", args, code)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res scenario.Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("result file: %v\n%s", err, b)
	}
	cfg, _ := res.Config.(map[string]any)
	if !res.Pass || res.Scenario != "p2p" || len(res.Command) != len(args) || res.Machine.NumCPU == 0 ||
		cfg["users"] != 2.0 || cfg["duration_s"] != 0.5 || len(res.Checks) == 0 {
		t.Errorf("result file = %s; want a passing p2p run with the flags given winning over --quick", b)
	}
}

func TestRedactArgs(t *testing.T) {
	got := redactArgs([]string{"p2p", "--secret", "s3", "--secret=s4", "--store", "mysql://u:pw@127.0.0.1/db", "--addr", "tcp://127.0.0.1:1"})
	want := []string{"p2p", "--secret", "REDACTED", "--secret=REDACTED", "--store", "mysql://u:xxxxx@127.0.0.1/db", "--addr", "tcp://127.0.0.1:1"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("redactArgs = %q; want %q", got, want)
	}
}
