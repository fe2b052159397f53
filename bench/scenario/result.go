package scenario

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/parleyim/parley/bench/hist"
)

// Result is what a scenario measured and whether its verification passed.
// It encodes to the JSON result file as is.
type Result struct {
	Scenario string    `json:"scenario"`
	Command  []string  `json:"command,omitempty"` // set by the caller
	Date     time.Time `json:"date"`
	Machine  Machine   `json:"machine"`
	Server   string    `json:"server"`
	// Config is the scenario's effective configuration (defaults filled in).
	Config         any       `json:"config"`
	ElapsedSeconds float64   `json:"elapsed_seconds"`
	Metrics        []Metric  `json:"metrics"`
	Latency        []Latency `json:"latency,omitempty"`
	Checks         []Check   `json:"checks"`
	Notes          []string  `json:"notes,omitempty"`
	// Pass is true when every check passed.
	Pass bool `json:"pass"`
}

// Machine describes where the run happened.
type Machine struct {
	NumCPU    int    `json:"num_cpu"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	GoVersion string `json:"go_version"`
	Hostname  string `json:"hostname"`
	// LoadAvg is /proc/loadavg's 1, 5 and 15 minute load averages when the
	// run started (empty where there is none): on a shared machine it
	// tells whether something else competed for the CPUs.
	LoadAvg string `json:"load_avg,omitempty"`
}

// Metric is one number. Value is a float64, or the string "n/a" when it
// cannot be measured in this setup.
type Metric struct {
	Name  string `json:"name"`
	Value any    `json:"value"`
	Unit  string `json:"unit,omitempty"`
}

// Latency is one latency distribution.
type Latency struct {
	Name string `json:"name"`
	hist.Summary
}

// Check is one verification; a run passes only when all of them do.
type Check struct {
	Name   string `json:"name"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail"`
}

func newResult(scenario string, t *target, cfg any) *Result {
	host, _ := os.Hostname()
	r := &Result{
		Scenario: scenario,
		Date:     time.Now().UTC().Truncate(time.Second),
		Machine: Machine{
			NumCPU: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
			GoVersion: runtime.Version(), Hostname: host, LoadAvg: loadAvg(),
		},
		Config: cfg,
	}
	if t != nil {
		r.Server = t.desc
	}
	return r
}

// configOf merges the common settings into a scenario's JSON config.
func configOf(c Common, scenario any) map[string]any {
	m := map[string]any{}
	if b, err := json.Marshal(scenario); err == nil {
		_ = json.Unmarshal(b, &m)
	}
	m["addr"] = c.Addr
	if c.Addr == "" {
		m["addr"] = "in-process"
		m["store"] = "embedded"
		if c.Store != "" {
			m["store"] = redactURL(c.Store)
		}
		m["ws"] = c.WS
	}
	m["duration_s"] = c.Duration.Seconds()
	return m
}

// redactURL hides a password in a URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	return u.Redacted()
}

func numCPU() int { return runtime.NumCPU() }

// loadAvg returns the first three fields of /proc/loadavg, or "".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func (r *Result) metric(name string, v any, unit string) {
	r.Metrics = append(r.Metrics, Metric{Name: name, Value: v, Unit: unit})
}

func (r *Result) latency(name string, rec *hist.Recorder) {
	r.Latency = append(r.Latency, Latency{Name: name, Summary: rec.Summary()})
}

func (r *Result) check(name string, pass bool, format string, args ...any) {
	r.Checks = append(r.Checks, Check{Name: name, Pass: pass, Detail: fmt.Sprintf(format, args...)})
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// finish sets Pass and the elapsed time.
func (r *Result) finish(start time.Time) *Result {
	r.ElapsedSeconds = time.Since(start).Seconds()
	r.Pass = len(r.Checks) > 0
	for _, c := range r.Checks {
		r.Pass = r.Pass && c.Pass
	}
	return r
}

// WriteText prints r for people.
func (r *Result) WriteText(w io.Writer) {
	fmt.Fprintf(w, "%s  %s  %s/%s %d CPUs  %s\n", r.Scenario, r.Date.Format(time.RFC3339), r.Machine.GOOS, r.Machine.GOARCH, r.Machine.NumCPU, r.Machine.GoVersion)
	if r.Machine.LoadAvg != "" {
		fmt.Fprintf(w, "load average at start: %s\n", r.Machine.LoadAvg)
	}
	fmt.Fprintf(w, "server: %s\n", r.Server)
	if len(r.Command) > 0 {
		fmt.Fprintf(w, "command: %s\n", strings.Join(r.Command, " "))
	}
	width := 0
	for _, m := range r.Metrics {
		width = max(width, len(m.Name))
	}
	for _, l := range r.Latency {
		width = max(width, len("latency "+l.Name))
	}
	for _, m := range r.Metrics {
		fmt.Fprintf(w, "  %-*s  %s\n", width, m.Name, formatValue(m.Value, m.Unit))
	}
	for _, l := range r.Latency {
		fmt.Fprintf(w, "  %-*s  %s\n", width, "latency "+l.Name, l.Summary)
	}
	for _, c := range r.Checks {
		verdict := "PASS"
		if !c.Pass {
			verdict = "FAIL"
		}
		fmt.Fprintf(w, "  check %-*s  %s  %s\n", max(0, width-6), c.Name, verdict, c.Detail)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "RESULT %s: %s (%.1fs)\n", r.Scenario, verdict, r.ElapsedSeconds)
}

func formatValue(v any, unit string) string {
	var s string
	switch x := v.(type) {
	case float64:
		switch {
		case x == float64(int64(x)) && (x < 1e15 && x > -1e15):
			s = fmt.Sprintf("%d", int64(x))
		case x >= 100 || x <= -100:
			s = fmt.Sprintf("%.0f", x)
		default:
			s = fmt.Sprintf("%.3g", x)
		}
	case int:
		s = fmt.Sprintf("%d", x)
	case int64:
		s = fmt.Sprintf("%d", x)
	default:
		s = fmt.Sprint(x)
	}
	if unit != "" && s != "n/a" {
		s += " " + unit
	}
	return s
}
