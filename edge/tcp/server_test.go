package tcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/edge"
	"github.com/parleyim/parley/edge/edgetest"
	"github.com/parleyim/parley/edge/frame"
	"github.com/parleyim/parley/schemas/wirepb"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startServer starts a Server on a random loopback port and shuts it down
// at cleanup.
func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.EventLoops == 0 {
		cfg.EventLoops = 2
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s
}

// dial connects to s. rcvbuf > 0 shrinks the client's receive buffer before
// connecting, so that the server's writes back up quickly.
func dial(t testing.TB, s *Server, rcvbuf int) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
			})
			return errors.Join(err, serr)
		}
	}
	c, err := d.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func encode(t testing.TB, f *wirepb.Frame) []byte {
	t.Helper()
	b, err := proto.Marshal(f)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return b
}

func readFrame(r io.Reader) (*wirepb.Frame, error) {
	var hdr [frame.HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	p := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	return frame.Decode(p)
}

// expectError reads frames until an Error frame and checks its code, then
// checks the server closes the connection.
func expectError(t testing.TB, c net.Conn, code wirepb.ErrorCode) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	f, err := readFrame(r)
	if err != nil {
		t.Fatalf("read Error frame: %v", err)
	}
	e := f.GetError()
	if e.GetCode() != code || e.GetTemporary() != code.Temporary() || f.GetId() != 0 {
		t.Fatalf("got frame %v; want Error %v (temporary %v)", f, code, code.Temporary())
	}
	if f, err := readFrame(r); err != io.EOF {
		t.Fatalf("after Error: got %v, %v; want EOF", f, err)
	}
}

func TestNewValidates(t *testing.T) {
	h := edgetest.NewHandler(false)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"nil handler", Config{}},
		{"no port", Config{Handler: h, Addr: "127.0.0.1"}},
		{"bad port", Config{Handler: h, Addr: "127.0.0.1:http"}},
		{"port too big", Config{Handler: h, Addr: "127.0.0.1:70000"}},
		{"negative frame size", Config{Handler: h, MaxFrameSize: -1}},
		{"negative queue", Config{Handler: h, MaxQueueBytes: -1}},
		{"negative loops", Config{Handler: h, EventLoops: -1}},
		{"negative drain", Config{Handler: h, DrainTimeout: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := New(tt.cfg); err == nil {
				t.Fatalf("New(%+v) = %v, nil; want an error", tt.cfg, s)
			}
		})
	}
	s, err := New(Config{Handler: h})
	if err != nil {
		t.Fatalf("New(defaults): %v", err)
	}
	if s.cfg.Addr != DefaultAddr || s.cfg.MaxFrameSize != frame.DefaultMaxSize || s.cfg.MaxQueueBytes != DefaultMaxQueueBytes ||
		s.cfg.EventLoops < 1 || s.cfg.DrainTimeout != DefaultDrainTimeout {
		t.Fatalf("defaults = %+v", s.cfg)
	}
	if s.Addr() != nil {
		t.Fatalf("Addr() before Start = %v; want nil", s.Addr())
	}
}

func TestAddrInUse(t *testing.T) {
	s := startServer(t, Config{Handler: edgetest.NewHandler(false)})
	if port := s.Addr().(*net.TCPAddr).Port; port == 0 {
		t.Fatalf("Addr() = %v; want the real port", s.Addr())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, addr := range []string{s.Addr().String(), ln.Addr().String()} {
		s2, err := New(Config{Handler: edgetest.NewHandler(false), Addr: addr, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		err = s2.Start(context.Background())
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("Start(%s) err = %v; want EADDRINUSE", addr, err)
		}
		if err := s2.Shutdown(context.Background()); err != nil {
			t.Fatalf("Shutdown after failed Start: %v", err)
		}
	}
}

func TestNoDelay(t *testing.T) {
	h := edgetest.NewHandler(false)
	s := startServer(t, Config{Handler: h})
	dial(t, s, 0)
	c := edgetest.Recv(t, h.Opens, "Opened").(*conn)
	v, err := unix.GetsockoptInt(c.gc.Fd(), unix.IPPROTO_TCP, unix.TCP_NODELAY)
	if err != nil || v == 0 {
		t.Fatalf("TCP_NODELAY = %d, %v; want on", v, err)
	}
}

// TestSplitCoalesced writes frames split and coalesced at random boundaries
// over a real socket; the handler must see the same frames in order.
func TestSplitCoalesced(t *testing.T) {
	h := edgetest.NewHandler(false)
	s := startServer(t, Config{Handler: h})
	c := dial(t, s, 0)
	rng := rand.New(rand.NewPCG(1, 2))

	const n = 300
	var want []*wirepb.Frame
	var stream []byte
	for i := range n {
		body := make([]byte, rng.IntN(3000))
		for j := range body {
			body[j] = byte(i + j)
		}
		f := &wirepb.Frame{Id: uint64(i + 1), Body: &wirepb.Frame_Send{Send: &wirepb.Send{ClientMsgId: fmt.Sprint(i), Body: body}}}
		if i%50 == 0 {
			f = &wirepb.Frame{} // zero-length frame
		}
		want = append(want, f)
		stream = frame.Append(stream, encode(t, f))
	}
	go func() {
		for len(stream) > 0 {
			k := min(len(stream), 1+rng.IntN(2000))
			if rng.IntN(3) == 0 {
				k = min(len(stream), 1+rng.IntN(5)) // tiny pieces, header splits
			}
			if _, err := c.Write(stream[:k]); err != nil {
				return
			}
			stream = stream[k:]
			if rng.IntN(4) == 0 {
				time.Sleep(time.Millisecond) // let the piece arrive alone
			}
		}
	}()
	for i := range n {
		got := edgetest.Recv(t, h.Frames, fmt.Sprintf("frame %d", i))
		if !proto.Equal(got, want[i]) {
			t.Fatalf("frame %d = %v; want %v", i, got, want[i])
		}
	}
}

// TestSlowReader is the test DESIGN.md asks of the event loop: a goroutine
// outside the loop pushes 4,000 frames of varied sizes to a client that reads
// in small pieces with pauses through a small receive window. Every frame must
// arrive intact and in order.
func TestSlowReader(t *testing.T) {
	h := edgetest.NewHandler(false)
	s := startServer(t, Config{Handler: h, MaxQueueBytes: 256 << 20})
	c := dial(t, s, 4096)
	sc := edgetest.Recv(t, h.Opens, "Opened")

	const n = 4000
	rng := rand.New(rand.NewPCG(3, 4))
	sizes := make([]int, n)
	total := 0
	for i := range sizes {
		sizes[i] = rng.IntN(8192)
		if i%97 == 0 {
			sizes[i] = 0
		}
		total += sizes[i]
	}
	body := func(i int) []byte {
		b := make([]byte, sizes[i])
		for j := range b {
			b[j] = byte(i*31 + j)
		}
		return b
	}

	pushed := make(chan error, 1)
	go func() {
		for i := range n {
			f := &wirepb.Frame{Body: &wirepb.Frame_Push{Push: &wirepb.Push{Message: &wirepb.Message{Seq: uint64(i + 1), Body: body(i)}}}}
			b, err := proto.Marshal(f)
			if err == nil {
				err = sc.Send(b)
			}
			if err != nil {
				pushed <- fmt.Errorf("Send %d: %w", i, err)
				return
			}
		}
		pushed <- nil
	}()

	deadline := time.Now().Add(60 * time.Second)
	_ = c.SetReadDeadline(deadline)
	r := &slowReader{r: c, rng: rand.New(rand.NewPCG(5, 6))}
	start := time.Now()
	var readAtPushDone int
	for i := range n {
		f, err := readFrame(r)
		if err != nil {
			t.Fatalf("frame %d of %d: %v (read %d bytes)", i, n, err, r.n)
		}
		m := f.GetPush().GetMessage()
		if m.GetSeq() != uint64(i+1) || !bytes.Equal(m.GetBody(), body(i)) {
			t.Fatalf("frame %d: seq %d, %d-byte body; want seq %d, %d bytes (intact: %v)",
				i, m.GetSeq(), len(m.GetBody()), i+1, sizes[i], bytes.Equal(m.GetBody(), body(i)))
		}
		if readAtPushDone == 0 {
			select {
			case err := <-pushed:
				if err != nil {
					t.Fatal(err)
				}
				readAtPushDone = r.n
			default:
			}
		}
	}
	t.Logf("%d frames, %d body bytes, in %v; the pusher finished when the client had read %d bytes",
		n, total, time.Since(start).Round(time.Millisecond), readAtPushDone)
}

// slowReader reads in random small pieces and pauses now and then.
type slowReader struct {
	r   io.Reader
	rng *rand.Rand
	n   int
}

func (s *slowReader) Read(p []byte) (int, error) {
	if k := 1 + s.rng.IntN(1024); len(p) > k {
		p = p[:k]
	}
	if s.rng.IntN(32) == 0 {
		time.Sleep(time.Millisecond)
	}
	n, err := s.r.Read(p)
	s.n += n
	return n, err
}

// TestSlowConsumer: a client that never reads is disconnected with
// SLOW_CONSUMER once its queue passes MaxQueueBytes; others keep working.
func TestSlowConsumer(t *testing.T) {
	h := edgetest.NewHandler(true)
	const maxQueue = 256 << 10
	s := startServer(t, Config{Handler: h, MaxQueueBytes: maxQueue, DrainTimeout: 200 * time.Millisecond})
	fast := dial(t, s, 0)
	fastConn := edgetest.Recv(t, h.Opens, "Opened fast")
	dial(t, s, 4096) // never reads
	slow := edgetest.Recv(t, h.Opens, "Opened slow")

	echo := func(id uint64) {
		t.Helper()
		ping := encode(t, &wirepb.Frame{Id: id, Body: &wirepb.Frame_Ping{Ping: &wirepb.Ping{}}})
		_ = fast.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := fast.Write(frame.Append(nil, ping)); err != nil {
			t.Fatalf("write ping: %v", err)
		}
		f, err := readFrame(fast)
		if err != nil || f.GetId() != id || f.GetPing() == nil {
			t.Fatalf("echo = %v, %v; want ping %d", f, err, id)
		}
	}
	echo(1)

	payload := encode(t, &wirepb.Frame{Body: &wirepb.Frame_Push{Push: &wirepb.Push{Message: &wirepb.Message{Body: make([]byte, 4096)}}}})
	var err error
	sent := 0
	for stop := time.Now().Add(10 * time.Second); err == nil && time.Now().Before(stop); sent++ {
		err = slow.Send(payload)
		if sent%16 == 15 {
			// Pace the pusher so the loop keeps up: the limit must trip on
			// the bytes the client does not read, not on a burst.
			time.Sleep(time.Millisecond)
		}
		if sent%64 == 63 {
			echo(uint64(sent)) // the other connection is unaffected meanwhile
		}
	}
	if !errors.Is(err, edge.ErrSlowConsumer) && !errors.Is(err, edge.ErrConnClosed) {
		t.Fatalf("Send to a client that never reads: %d sends, last err %v; want ErrSlowConsumer", sent, err)
	}
	if got := edgetest.Recv(t, h.Closes, "Closed slow"); got != slow {
		t.Fatalf("Closed(%d); want conn %d", got.ID(), slow.ID())
	}
	if code := wirepb.ErrorCode(slow.(*conn).code.Load()); code != wirepb.ErrorCode_ERROR_CODE_SLOW_CONSUMER {
		t.Fatalf("close code = %v; want SLOW_CONSUMER", code)
	}
	if err := slow.Send(payload); !errors.Is(err, edge.ErrConnClosed) {
		t.Fatalf("Send after close = %v; want ErrConnClosed", err)
	}
	if sent*len(payload) < maxQueue {
		t.Fatalf("cut off after %d bytes; want more than MaxQueueBytes %d", sent*len(payload), maxQueue)
	}
	t.Logf("slow consumer cut off after %d sends of %d bytes", sent, len(payload))
	echo(1 << 40)
	if err := fastConn.Send(payload); err != nil {
		t.Fatalf("Send to the fast conn = %v", err)
	}
}

func TestBadInput(t *testing.T) {
	h := edgetest.NewHandler(false)
	s := startServer(t, Config{Handler: h, MaxFrameSize: 1024})
	ping := frame.Append(nil, encode(t, &wirepb.Frame{Id: 7, Body: &wirepb.Frame_Ping{Ping: &wirepb.Ping{}}}))
	tests := []struct {
		name string
		in   []byte
		code wirepb.ErrorCode
	}{
		{"max+1 prefix", []byte{0, 0, 4, 1}, wirepb.ErrorCode_ERROR_CODE_FRAME_TOO_LARGE},
		{"huge prefix with bytes", append([]byte{0xff, 0xff, 0xff, 0xff}, make([]byte, 3000)...), wirepb.ErrorCode_ERROR_CODE_FRAME_TOO_LARGE},
		{"garbage", []byte{0, 0, 0, 3, 0xff, 0xff, 0xff}, wirepb.ErrorCode_ERROR_CODE_BAD_FRAME},
		{"truncated field", []byte{0, 0, 0, 2, 0x0a, 0x05}, wirepb.ErrorCode_ERROR_CODE_BAD_FRAME},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, s, 0)
			edgetest.Recv(t, h.Opens, "Opened")
			// A good frame first: it is delivered, then the bad bytes close.
			if _, err := c.Write(append(append([]byte(nil), ping...), tt.in...)); err != nil {
				t.Fatal(err)
			}
			if f := edgetest.Recv(t, h.Frames, "ping"); f.GetId() != 7 {
				t.Fatalf("frame = %v; want ping 7", f)
			}
			expectError(t, c, tt.code)
			edgetest.Recv(t, h.Closes, "Closed")
		})
	}
	t.Run("exact max accepted", func(t *testing.T) {
		c := dial(t, s, 0)
		edgetest.Recv(t, h.Opens, "Opened")
		f := &wirepb.Frame{Id: 9, Body: &wirepb.Frame_Send{Send: &wirepb.Send{}}}
		for body := 0; ; body++ {
			f.GetSend().Body = make([]byte, body)
			if proto.Size(f) == 1024 {
				break
			}
		}
		if _, err := c.Write(frame.Append(nil, encode(t, f))); err != nil {
			t.Fatal(err)
		}
		if got := edgetest.Recv(t, h.Frames, "max-size frame"); got.GetId() != 9 {
			t.Fatalf("frame = %v; want id 9", got)
		}
	})
}

// TestCloseAfterSends: frames sent before Close arrive before its Error frame,
// then EOF.
func TestCloseAfterSends(t *testing.T) {
	h := edgetest.NewHandler(false)
	s := startServer(t, Config{Handler: h})
	c := dial(t, s, 4096)
	sc := edgetest.Recv(t, h.Opens, "Opened")
	const n = 200
	for i := range n {
		b := encode(t, &wirepb.Frame{Id: uint64(i + 1), Body: &wirepb.Frame_Push{Push: &wirepb.Push{Message: &wirepb.Message{Body: make([]byte, 2000)}}}})
		if err := sc.Send(b); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	sc.Close(wirepb.ErrorCode_ERROR_CODE_REPLACED, "signed in elsewhere")
	sc.Close(wirepb.ErrorCode_ERROR_CODE_INTERNAL, "second close is a no-op")
	if err := sc.Send([]byte{}); !errors.Is(err, edge.ErrConnClosed) {
		t.Fatalf("Send after Close = %v; want ErrConnClosed", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	for i := range n {
		f, err := readFrame(r)
		if err != nil || f.GetId() != uint64(i+1) {
			t.Fatalf("frame %d = %v, %v; want id %d", i, f, err, i+1)
		}
	}
	f, err := readFrame(r)
	if err != nil || f.GetError().GetCode() != wirepb.ErrorCode_ERROR_CODE_REPLACED || f.GetError().GetMessage() != "signed in elsewhere" {
		t.Fatalf("after the frames: %v, %v; want Error REPLACED", f, err)
	}
	if f, err := readFrame(r); err != io.EOF {
		t.Fatalf("after Error: %v, %v; want EOF", f, err)
	}
	edgetest.Recv(t, h.Closes, "Closed")
	h.CheckOnce(t)
}

func TestClientHangUp(t *testing.T) {
	h := edgetest.NewHandler(false)
	s := startServer(t, Config{Handler: h})
	c := dial(t, s, 0)
	sc := edgetest.Recv(t, h.Opens, "Opened")
	c.Close()
	if got := edgetest.Recv(t, h.Closes, "Closed"); got != sc {
		t.Fatalf("Closed(%d); want %d", got.ID(), sc.ID())
	}
	if code := wirepb.ErrorCode(sc.(*conn).code.Load()); code != wirepb.ErrorCode_ERROR_CODE_UNSPECIFIED {
		t.Fatalf("code = %v; want UNSPECIFIED", code)
	}
	sc.Close(wirepb.ErrorCode_ERROR_CODE_INTERNAL, "after close") // no-op, no panic
	h.CheckOnce(t)
}

func TestShutdown(t *testing.T) {
	h := edgetest.NewHandler(false)
	s, err := New(Config{Handler: h, Addr: "127.0.0.1:0", Logger: testLogger(t), EventLoops: 2})
	if err != nil {
		t.Fatal(err)
	}
	procsBefore := runtime.GOMAXPROCS(0)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Two loops and the acceptor each park a P in epoll_wait (procs.go).
	if got, want := runtime.GOMAXPROCS(0), procsBefore+3; got != want {
		t.Errorf("GOMAXPROCS while serving = %d; want %d", got, want)
	}
	var clients []net.Conn
	for range 3 {
		clients = append(clients, dial(t, s, 0))
		edgetest.Recv(t, h.Opens, "Opened")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v; want nil", err)
	}
	t.Logf("Shutdown took %v", time.Since(start))
	if got := runtime.GOMAXPROCS(0); got != procsBefore {
		t.Errorf("GOMAXPROCS after Shutdown = %d; want %d", got, procsBefore)
	}
	for _, c := range clients {
		expectError(t, c, wirepb.ErrorCode_ERROR_CODE_SHUTTING_DOWN)
	}
	for range 3 {
		edgetest.Recv(t, h.Closes, "Closed")
	}
	h.CheckOnce(t)
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown = %v; want nil", err)
	}
	if c, err := net.DialTimeout("tcp", s.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatalf("Dial after Shutdown succeeded; want refused")
	}
	if err := s.Start(ctx); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Start after Shutdown = %v; want ErrServerClosed", err)
	}
}

func TestShutdownBeforeStart(t *testing.T) {
	s, err := New(Config{Handler: edgetest.NewHandler(false), Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown before Start = %v; want nil", err)
	}
	if err := s.Start(context.Background()); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Start after Shutdown = %v; want ErrServerClosed", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown = %v; want nil", err)
	}
}

// TestShutdownDeadline: a client that never reads cannot hold Shutdown past
// its context.
func TestShutdownDeadline(t *testing.T) {
	h := edgetest.NewHandler(false)
	s, err := New(Config{Handler: h, Addr: "127.0.0.1:0", Logger: testLogger(t), DrainTimeout: time.Minute, MaxQueueBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	dial(t, s, 4096)
	sc := edgetest.Recv(t, h.Opens, "Opened")
	big := make([]byte, 1<<20)
	for range 16 {
		if err := sc.Send(big); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v; want DeadlineExceeded", err)
	}
	edgetest.Recv(t, h.Closes, "Closed") // the engine stop cut it off
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := s.Shutdown(ctx2); err != nil {
		t.Fatalf("second Shutdown = %v; want nil", err)
	}
}

// TestIdleMemory reports the heap cost of idle connections (both ends live
// in this process, so it is an upper bound for the server side).
func TestIdleMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	h := edgetest.NewHandler(false)
	s := startServer(t, Config{Handler: h})
	const n = 2000
	var before, after runtimeMem
	before.read()
	for range n {
		dial(t, s, 0)
		edgetest.Recv(t, h.Opens, "Opened")
	}
	after.read()
	t.Logf("%d idle connections: %.0f bytes of heap each (client and server sides together)", n, float64(int64(after.heap)-int64(before.heap))/n)
}

func BenchmarkEcho(b *testing.B) {
	for _, size := range []int{64, 1024, 16 << 10} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			h := edgetest.NewHandler(true)
			s := startServer(b, Config{Handler: h, Logger: slog.New(slog.DiscardHandler)})
			c := dial(b, s, 0)
			f := &wirepb.Frame{Id: 1, Body: &wirepb.Frame_Send{Send: &wirepb.Send{ClientMsgId: "m"}}}
			for body := 0; proto.Size(f) < size; body++ {
				f.GetSend().Body = make([]byte, body)
			}
			out := frame.Append(nil, encode(b, f))
			in := make([]byte, len(out))
			b.SetBytes(int64(len(out)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(out); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, in); err != nil {
					b.Fatal(err)
				}
			}
			if !bytes.Equal(in, out) {
				b.Fatalf("echo differs")
			}
		})
	}
}

type runtimeMem struct{ heap uint64 }

func (m *runtimeMem) read() {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.heap = ms.HeapAlloc
}
