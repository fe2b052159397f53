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
		{"parley-bench", "group", "--offline", "1"},
		{"parley-bench", "group", "--members", "4", "--senders", "5"},
		{"parley-bench", "room", "--members", "2", "--senders", "2"},
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

// TestRunWritesJSONByDefault checks that a run without --out leaves its result
// in bench-results/, and that --out "" writes none.
func TestRunWritesJSONByDefault(t *testing.T) {
	t.Chdir(t.TempDir())
	args := []string{"parley-bench", "conns", "--conns", "4", "--duration", "10ms", "--server-log", "off"}
	if code := run(args); code != 0 {
		t.Fatalf("run(%q) = %d; want 0", args, code)
	}
	files, err := filepath.Glob(filepath.Join(resultsDir, "conns-*.json"))
	if err != nil || len(files) != 1 {
		t.Fatalf("result files %v (%v); want one %s/conns-<time>.json", files, err, resultsDir)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var res scenario.Result
	if err := json.Unmarshal(b, &res); err != nil || res.Scenario != "conns" {
		t.Errorf("result file %s = %s (%v); want a conns result", files[0], b, err)
	}

	if err := os.RemoveAll(resultsDir); err != nil {
		t.Fatal(err)
	}
	if code := run(append(args, "--out", "")); code != 0 {
		t.Fatalf("run with --out \"\" = %d; want 0", code)
	}
	if _, err := os.Stat(resultsDir); !os.IsNotExist(err) {
		t.Errorf("--out \"\" made %s (stat: %v); want no result file", resultsDir, err)
	}
}

func TestRedactArgs(t *testing.T) {
	got := redactArgs([]string{"p2p", "--secret", "s3", "--secret=s4", "--store", "mysql://u:pw@127.0.0.1/db", "--addr", "tcp://127.0.0.1:1"})
	want := []string{"p2p", "--secret", "REDACTED", "--secret=REDACTED", "--store", "mysql://u:xxxxx@127.0.0.1/db", "--addr", "tcp://127.0.0.1:1"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("redactArgs = %q; want %q", got, want)
	}
}

// TestRunGroupAndRoom runs the group and room scenarios through their flags.
func TestRunGroupAndRoom(t *testing.T) {
	for _, tc := range []struct {
		args []string
		cfg  map[string]any // expected in the result's config
	}{
		{[]string{"group", "--quick", "--members", "6", "--senders", "2", "--offline", "0.5", "--rate", "20", "--duration", "500ms"},
			map[string]any{"members": 6.0, "senders": 2.0, "offline": 0.5, "groups": 1.0}},
		{[]string{"room", "--quick", "--rooms", "2", "--members", "4", "--rate", "20", "--duration", "500ms", "--replay", "5"},
			map[string]any{"rooms": 2.0, "members": 4.0, "late": 1.0, "replay": 5.0}},
	} {
		t.Run(tc.args[0], func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "result.json")
			args := append(append([]string{"parley-bench"}, tc.args...), "--server-log", "off", "--out", out)
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
			for k, v := range tc.cfg {
				if cfg[k] != v {
					t.Errorf("config %s = %v; want %v", k, cfg[k], v)
				}
			}
			if !res.Pass || res.Scenario != tc.args[0] {
				t.Errorf("result file = %s; want a passing %s run", b, tc.args[0])
			}
		})
	}
}
