package scenario

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/parleyim/parley/edge/auth"
)

// The conns scenario measures the in-process server's memory per
// connection, so the client side of the connections must not live in the
// same heap: it runs in a child process, the agent, which is this same
// executable started with these environment variables. Commands must call
// RunAgent first thing in main (tests: in TestMain).
const (
	agentEnv       = "PARLEY_BENCH_AGENT"        // "conns"
	agentConfigEnv = "PARLEY_BENCH_AGENT_CONFIG" // agentConfig as JSON
)

// agentConfig tells the agent what to open.
type agentConfig struct {
	Addr     string        `json:"addr"`
	WS       bool          `json:"ws"`
	Secret   string        `json:"secret"`
	Users    string        `json:"users"` // user id prefix; user i is Users+i
	N        int           `json:"n"`
	Parallel int           `json:"parallel"`
	Timeout  time.Duration `json:"timeout"` // for opening them all
}

// agentOpened is the agent's first line on stdout.
type agentOpened struct {
	Connected int                    `json:"connected"`
	Failed    int                    `json:"failed"`
	Retried   int64                  `json:"retried"`
	Errors    []string               `json:"errors,omitempty"`
	Elapsed   time.Duration          `json:"elapsed"`
	Latency   *hdrhistogram.Snapshot `json:"latency"`
}

// agentChecked answers a "check" command.
type agentChecked struct {
	Alive  int      `json:"alive"`
	Errors []string `json:"errors,omitempty"`
}

// RunAgent runs the conns agent when this process was started as one and
// reports whether it did, with the exit code to use. Otherwise it does
// nothing and returns false.
func RunAgent() (ran bool, code int) {
	if os.Getenv(agentEnv) != "conns" {
		return false, 0
	}
	if err := runAgent(os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "parley-bench agent:", err)
		return true, 1
	}
	return true, 0
}

// runAgent opens the connections, reports, then serves commands from in
// ("check": ping every connection) until in ends, and closes them all.
func runAgent(in io.Reader, out, progressW io.Writer) error {
	var cfg agentConfig
	if err := json.Unmarshal([]byte(os.Getenv(agentConfigEnv)), &cfg); err != nil {
		return fmt.Errorf("bad %s: %w", agentConfigEnv, err)
	}
	if _, err := RaiseNoFile(); err != nil {
		fmt.Fprintln(progressW, "parley-bench agent: raise open-file limit:", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	secret := []byte(cfg.Secret)
	opened := openRaw(ctx, cfg.N, cfg.Parallel, func(ctx context.Context, i int) (*rawConn, error) {
		uid := fmt.Sprintf("%s%d", cfg.Users, i)
		tok, err := auth.Mint(secret, uid, 24*time.Hour)
		if err != nil {
			return nil, err
		}
		c, _, err := dialRaw(ctx, cfg.Addr, cfg.WS, tok, "d")
		return c, err
	}, func(done int64) {
		fmt.Fprintf(progressW, "[conns agent] %d of %d dialed\n", done, cfg.N)
	})
	defer func() {
		for _, c := range opened.conns {
			c.close()
		}
	}()
	enc := json.NewEncoder(out)
	err := enc.Encode(agentOpened{
		Connected: len(opened.conns), Failed: opened.failed, Retried: opened.retried, Errors: opened.errs,
		Elapsed: opened.elapsed, Latency: opened.lat.Export(),
	})
	if err != nil {
		return err
	}

	// Serve commands; ping everything every 20s so that the server's idle
	// timeout (90s by default) never closes a connection held for long.
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			lines <- strings.TrimSpace(sc.Text())
		}
		close(lines)
	}()
	keep := time.NewTicker(20 * time.Second)
	defer keep.Stop()
	var id uint64 = 1
	for {
		select {
		case <-keep.C:
			id++
			for _, c := range opened.conns {
				_ = c.ping(id, false, time.Second)
			}
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			if line != "check" {
				return fmt.Errorf("unknown command %q", line)
			}
			id++
			alive, errs := pingAll(opened.conns, 64, id)
			if err := enc.Encode(agentChecked{Alive: alive, Errors: errs}); err != nil {
				return err
			}
		}
	}
}

// agent is the parent's handle on a running agent.
type agent struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	dec   *json.Decoder
	done  chan error // the agent's exit
}

// startAgent starts this executable as a conns agent.
func startAgent(cfg agentConfig, stderr io.Writer) (*agent, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable for the agent: %w", err)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), agentEnv+"=conns", agentConfigEnv+"="+string(b))
	cmd.Stderr = stderr
	if stderr == nil {
		cmd.Stderr = io.Discard
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start agent %s: %w", exe, err)
	}
	a := &agent{cmd: cmd, stdin: stdin, dec: json.NewDecoder(stdout), done: make(chan error, 1)}
	return a, nil
}

// read decodes the agent's next answer into v, or fails when the agent
// exits or timeout passes.
func (a *agent) read(v any, timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- a.dec.Decode(v) }()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("read from agent: %w", err)
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("agent did not answer within %v", timeout)
	}
}

// stop closes the agent's stdin (it closes its connections and exits) and
// waits for it, killing it after timeout.
func (a *agent) stop(timeout time.Duration) error {
	a.stdin.Close()
	go func() { a.done <- a.cmd.Wait() }()
	select {
	case err := <-a.done:
		return err
	case <-time.After(timeout):
		_ = a.cmd.Process.Kill()
		return fmt.Errorf("agent did not exit within %v; killed", timeout)
	}
}
