package scenario

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/bench/hist"
	"github.com/parleyim/parley/edge/frame"
	"github.com/parleyim/parley/schemas/wirepb"
)

// rawConn is a signed-in connection without the SDK: no goroutines and no
// buffers of its own between frames, so tens of thousands fit in one
// process. It speaks just enough protocol for idle connections: SignIn and
// Ping. Use it from one goroutine at a time; liveConn builds a busy
// connection (a reader goroutine, requests, pushes) on it.
type rawConn struct {
	nc net.Conn        // TCP, or nil
	ws *websocket.Conn // WebSocket, or nil
	// br, when set, buffers TCP reads (busy connections: one read syscall
	// for many frames); nil reads straight from nc, holding no buffer.
	br *bufio.Reader
}

// dialRaw connects to addr (tcp:// or ws://), signs in and returns the
// connection with the SignInOK.
func dialRaw(ctx context.Context, addr string, ws bool, token, device string) (*rawConn, *wirepb.SignInOK, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	r := &rawConn{}
	if ws {
		d := websocket.Dialer{Subprotocols: []string{"parley.proto"}, HandshakeTimeout: time.Until(deadline),
			ReadBufferSize: 1024, WriteBufferSize: 1024}
		c, _, err := d.DialContext(ctx, addr, nil)
		if err != nil {
			return nil, nil, err
		}
		r.ws = c
	} else {
		hp, err := hostPort(addr)
		if err != nil {
			return nil, nil, err
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", hp)
		if err != nil {
			return nil, nil, err
		}
		r.nc = c
	}
	err := r.write(&wirepb.Frame{Id: 1, Body: &wirepb.Frame_SignIn{SignIn: &wirepb.SignIn{
		Token: token, DeviceId: device, Platform: "parley-bench",
	}}}, deadline)
	if err != nil {
		r.close()
		return nil, nil, fmt.Errorf("sign in: %w", err)
	}
	f, err := r.read(deadline)
	if err != nil {
		r.close()
		return nil, nil, fmt.Errorf("sign in: %w", err)
	}
	okf := f.GetSignInOk()
	if okf == nil {
		r.close()
		if e := f.GetError(); e != nil {
			return nil, nil, fmt.Errorf("sign in: %w", &callError{e})
		}
		return nil, nil, fmt.Errorf("sign in answered with %v", f)
	}
	return r, okf, nil
}

func (r *rawConn) write(f *wirepb.Frame, deadline time.Time) error {
	b, err := proto.Marshal(f)
	if err != nil {
		return err
	}
	if r.ws != nil {
		_ = r.ws.SetWriteDeadline(deadline)
		return r.ws.WriteMessage(websocket.BinaryMessage, b)
	}
	_ = r.nc.SetWriteDeadline(deadline)
	_, err = r.nc.Write(frame.Append(nil, b))
	return err
}

func (r *rawConn) read(deadline time.Time) (*wirepb.Frame, error) {
	if r.ws != nil {
		_ = r.ws.SetReadDeadline(deadline)
		_, b, err := r.ws.ReadMessage()
		if err != nil {
			return nil, err
		}
		return frame.Decode(b)
	}
	_ = r.nc.SetReadDeadline(deadline)
	var src io.Reader = r.nc
	if r.br != nil {
		src = r.br
	}
	var hdr [frame.HeaderSize]byte
	if _, err := io.ReadFull(src, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > 8<<20 {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(src, b); err != nil {
		return nil, err
	}
	return frame.Decode(b)
}

// ping sends a Ping and reads until its Pong; with wait false it only
// sends (a keepalive whose Pong is read by the next ping with wait).
func (r *rawConn) ping(id uint64, wait bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if err := r.write(&wirepb.Frame{Id: id, Body: &wirepb.Frame_Ping{Ping: &wirepb.Ping{}}}, deadline); err != nil {
		return err
	}
	for wait {
		f, err := r.read(deadline)
		if err != nil {
			return err
		}
		if e := f.GetError(); e != nil && f.GetId() == 0 {
			return fmt.Errorf("closed by server: %v: %s", e.GetCode(), e.GetMessage())
		}
		if f.GetPong() != nil && f.GetId() == id {
			return nil
		}
	}
	return nil
}

func (r *rawConn) close() {
	if r.ws != nil {
		r.ws.Close()
	} else {
		r.nc.Close()
	}
}

// rawOpen is the outcome of opening many raw connections.
type rawOpen struct {
	conns   []*rawConn // the ones that signed in
	failed  int
	retried int64    // sign-ins refused as temporary (RATE_LIMITED) and dialed again
	errs    []string // the first few errors
	lat     *hist.Recorder
	elapsed time.Duration
}

// openRaw opens n raw connections with parallel dialers, dial(i) making
// the i-th. Progress, if not nil, is told the count every second.
func openRaw(ctx context.Context, n, parallel int, dial func(ctx context.Context, i int) (*rawConn, error), tick func(done int64)) rawOpen {
	out := rawOpen{lat: hist.New()}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		done    atomic.Int64
		retried atomic.Int64
	)
	start := time.Now()
	stopTick := make(chan struct{})
	var tickWG sync.WaitGroup
	if tick != nil {
		tickWG.Go(func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stopTick:
					return
				case <-t.C:
					tick(done.Load())
				}
			}
		})
	}
	next := make(chan int)
	for range min(parallel, n) {
		wg.Go(func() {
			for i := range next {
				t0 := time.Now()
				var c *rawConn
				err := retryTemporary(ctx, 10*time.Millisecond, 500*time.Millisecond, &retried, func() (err error) {
					c, err = dial(ctx, i)
					return err
				})
				lat := time.Since(t0)
				mu.Lock()
				if err != nil {
					out.failed++
					if len(out.errs) < 5 {
						out.errs = append(out.errs, fmt.Sprintf("conn %d: %v", i, err))
					}
				} else {
					out.conns = append(out.conns, c)
					out.lat.Record(lat)
				}
				mu.Unlock()
				done.Add(1)
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			mu.Lock()
			out.failed += n - i
			out.errs = append(out.errs, fmt.Sprintf("stopped after %d dials: %v", i, ctx.Err()))
			mu.Unlock()
			break feed
		}
	}
	close(next)
	wg.Wait()
	out.elapsed = time.Since(start)
	out.retried = retried.Load()
	close(stopTick)
	tickWG.Wait()
	return out
}

// pingAll pings every connection (parallel at a time) and waits for each
// Pong; it returns how many answered and the first errors.
func pingAll(conns []*rawConn, parallel int, id uint64) (alive int, errs []string) {
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	next := make(chan *rawConn)
	for range min(parallel, max(len(conns), 1)) {
		wg.Go(func() {
			for c := range next {
				err := c.ping(id, true, 10*time.Second)
				mu.Lock()
				if err == nil {
					alive++
				} else if len(errs) < 5 {
					errs = append(errs, err.Error())
				}
				mu.Unlock()
			}
		})
	}
	for _, c := range conns {
		next <- c
	}
	close(next)
	wg.Wait()
	return alive, errs
}
