package ws

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/edge/edgetest"
	"github.com/parleyim/parley/schemas/wirepb"
)

// clientsEnv makes the test binary a client process for TestIdleMemory
// (see TestMain): "URL N" opens N connections to URL.
const clientsEnv = "PARLEY_WS_MEMTEST_CLIENTS"

func TestMain(m *testing.M) {
	if spec := os.Getenv(clientsEnv); spec != "" {
		if err := runClients(spec, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "ws memtest clients:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runClients opens the connections spec names, and on each sends a Ping
// and reads its echo (so the server has read and written once, as for a
// sign-in). It then writes "ready" to out, holds them idle until in ends and
// closes them.
func runClients(spec string, in io.Reader, out io.Writer) error {
	url, nStr, _ := strings.Cut(spec, " ")
	n, err := strconv.Atoi(nStr)
	if err != nil {
		return fmt.Errorf("bad %s %q: %w", clientsEnv, spec, err)
	}
	ping, err := proto.Marshal(&wirepb.Frame{Id: 1, Body: &wirepb.Frame_Ping{Ping: &wirepb.Ping{}}})
	if err != nil {
		return err
	}
	conns := make([]*websocket.Conn, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	const parallel = 16
	for w := range parallel {
		wg.Go(func() {
			d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Subprotocols: []string{SubprotocolProto}}
			for i := w; i < n; i += parallel {
				c, _, err := d.Dial(url, nil)
				if err != nil {
					errs <- fmt.Errorf("dial %d: %w", i, err)
					return
				}
				conns[i] = c
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if err := c.WriteMessage(websocket.BinaryMessage, ping); err != nil {
					errs <- fmt.Errorf("write %d: %w", i, err)
					return
				}
				if _, _, err := c.ReadMessage(); err != nil {
					errs <- fmt.Errorf("read %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if _, err := fmt.Fprintln(out, "ready"); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, in)
	for _, c := range conns {
		c.Close()
	}
	return nil
}

// memInUse collects garbage until the heap stops shrinking and returns the
// heap and stack memory in use.
func memInUse() (heap, stack uint64) {
	var ms runtime.MemStats
	var last uint64
	for range 5 {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if last != 0 && ms.HeapInuse >= last {
			break
		}
		last = ms.HeapInuse
		time.Sleep(50 * time.Millisecond)
	}
	return ms.HeapInuse, ms.StackInuse
}

// TestIdleMemory reports the server's memory per idle connection: the
// clients run in a child process, so the heap and stack delta in this one is
// the server side alone. Each connection has read one frame and written one
// (an echo), like a signed-in client with nothing flowing.
func TestIdleMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const n = 2000
	th := edgetest.NewHandler(true)
	// Info level to a sink: a production logger that drops debug records.
	_, url := startWS(t, Config{Handler: th, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})

	// Warm up once in this process: lazily built package state is not a
	// per-connection cost.
	warm := dialWS(t, url)
	edgetest.Recv(t, th.Opens, "Opened warm-up")
	if err := warm.WriteMessage(websocket.BinaryMessage, mustMarshal(t, &wirepb.Frame{Id: 1, Body: &wirepb.Frame_Ping{Ping: &wirepb.Ping{}}})); err != nil {
		t.Fatal(err)
	}
	if _, err := readFrame(t, warm, false); err != nil {
		t.Fatal(err)
	}
	warm.Close()
	edgetest.Recv(t, th.Closes, "Closed warm-up")

	heap0, stack0 := memInUse()
	goroutines0 := runtime.NumGoroutine()

	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", clientsEnv, url, n))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("client process: %v\n%s", err, stderr.Bytes())
		}
		for range n {
			edgetest.Recv(t, th.Closes, "Closed")
		}
	}()
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("client process said %q", line)
		}
		ready <- err
	}()
	if err := edgetest.Recv(t, ready, "client process"); err != nil {
		t.Fatalf("client process: %v\n%s", err, stderr.Bytes())
	}
	for range n {
		edgetest.Recv(t, th.Opens, "Opened")
	}
	opened := time.Since(start)

	heap1, stack1 := memInUse()
	goroutines1 := runtime.NumGoroutine()
	heapPer := (float64(heap1) - float64(heap0)) / n
	stackPer := (float64(stack1) - float64(stack0)) / n
	total := heapPer + stackPer
	t.Logf("%d idle connections (opened in %v): %.0f bytes each (heap %.0f, stack %.0f), %.2f goroutines each",
		n, opened.Round(time.Millisecond), total, heapPer, stackPer, float64(goroutines1-goroutines0)/n)
	if total > 48<<10 {
		t.Errorf("%.0f bytes per idle connection; want at most %d", total, 48<<10)
	}
	// One reader each; a writer only while frames wait. The margin is for
	// drainers still on their way out.
	if g := goroutines1 - goroutines0; g > n+n/2 {
		t.Errorf("%d goroutines for %d idle connections; want about one each", g, n)
	}
}
