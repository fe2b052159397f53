package scenario

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// echoServer echoes every connection until it closes.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, msg string) (string, error) {
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

func TestWire(t *testing.T) {
	addr := echoServer(t)
	w := newWire()
	ctx := context.Background()
	c, err := w.dial(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(c, "hello"); err != nil || got != "hello" {
		t.Fatalf("pass: got %q, %v; want hello", got, err)
	}

	w.setBlackhole(true)
	if got, err := roundTrip(c, "void"); err == nil {
		t.Fatalf("blackhole: got %q; want a read timeout", got)
	}
	if w.discarded.Load() != 4 {
		t.Errorf("discarded %d bytes; want 4", w.discarded.Load())
	}

	if n := w.dropAll(); n != 1 {
		t.Errorf("dropAll closed %d connections; want 1", n)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("read after dropAll succeeded; want the connection closed")
	}
	if n := w.open(); n != 0 {
		t.Errorf("%d connections open after dropAll; want 0", n)
	}
	// New connections after the drop pass again.
	c2, err := w.dial(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got, err := roundTrip(c2, "again"); err != nil || got != "again" {
		t.Fatalf("after drop: got %q, %v; want again", got, err)
	}
	if n := w.dialed.Load(); n != 2 {
		t.Errorf("dialed = %d; want 2", n)
	}
}
