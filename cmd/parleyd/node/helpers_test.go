package node

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/edge/auth"
	"github.com/parleyim/parley/edge/frame"
	"github.com/parleyim/parley/schemas/wirepb"
)

const testSecret = "node-test-secret"

// startNode runs a node on random loopback ports with its data in dir (a
// fresh temp dir when empty) and the given store URL (embedded when empty).
func startNode(t testing.TB, dir, store string, mod ...func(*Config)) *Node {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := Config{
		DataDir:    dir,
		NATSListen: "127.0.0.1:0",
		TCPListen:  "127.0.0.1:0",
		HTTPListen: "127.0.0.1:0",
		Store:      store,
		Secret:     testSecret,
		Logger:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	for _, m := range mod {
		m(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return n
}

func token(t testing.TB, uid string) string {
	t.Helper()
	tok, err := auth.Mint([]byte(testSecret), uid, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// rawConn is a bare TCP client for tests that need to send exact bytes.
type rawConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr net.Addr) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) write(b []byte) {
	r.t.Helper()
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

func (r *rawConn) send(f *wirepb.Frame) {
	r.t.Helper()
	b, err := proto.Marshal(f)
	if err != nil {
		r.t.Fatal(err)
	}
	r.write(frame.Append(nil, b))
}

// read returns the next frame, or nil and the error (io.EOF when the server
// closed the connection).
func (r *rawConn) read(timeout time.Duration) (*wirepb.Frame, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(timeout))
	var hdr [4]byte
	if _, err := io.ReadFull(r.br, hdr[:]); err != nil {
		return nil, err
	}
	n := int(hdr[0])<<24 | int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
	buf := make([]byte, n)
	if _, err := io.ReadFull(r.br, buf); err != nil {
		return nil, err
	}
	return frame.Decode(buf)
}

func (r *rawConn) mustRead() *wirepb.Frame {
	r.t.Helper()
	f, err := r.read(5 * time.Second)
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return f
}

// expectClose reads until EOF and returns the last Error frame seen.
func (r *rawConn) expectClose() *wirepb.Error {
	r.t.Helper()
	var last *wirepb.Error
	for {
		f, err := r.read(5 * time.Second)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				r.t.Fatalf("connection not closed by the server (last error frame %v)", last)
			}
			return last
		}
		if e := f.GetError(); e != nil {
			last = e
		}
	}
}

func (r *rawConn) signIn(uid, device string) *wirepb.SignInOK {
	r.t.Helper()
	r.send(&wirepb.Frame{Id: 1, Body: &wirepb.Frame_SignIn{SignIn: &wirepb.SignIn{Token: token(r.t, uid), DeviceId: device}}})
	f := r.mustRead()
	ok := f.GetSignInOk()
	if ok == nil {
		r.t.Fatalf("sign in %s/%s: got %v; want SignInOK", uid, device, f)
	}
	return ok
}
