// Package edgetest has test helpers shared by the edge transports' tests.
package edgetest

import (
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/edge"
	"github.com/parleyim/parley/schemas/wirepb"
)

// Handler is an edge.Handler that records what a transport reports. With
// Echo set it sends every frame back instead of recording it.
type Handler struct {
	Echo   bool
	Opens  chan edge.Conn     // every Opened connection
	Closes chan edge.Conn     // every Closed connection
	Frames chan *wirepb.Frame // every frame, unless Echo

	mu     sync.Mutex
	events map[uint64][2]int // id -> {opened, closed} counts
}

var _ edge.Handler = (*Handler)(nil)

// NewHandler returns a Handler whose channels hold 16,384 events each.
func NewHandler(echo bool) *Handler {
	return &Handler{
		Echo:   echo,
		Opens:  make(chan edge.Conn, 1<<14),
		Closes: make(chan edge.Conn, 1<<14),
		Frames: make(chan *wirepb.Frame, 1<<14),
		events: make(map[uint64][2]int),
	}
}

func (h *Handler) count(c edge.Conn, i int) {
	h.mu.Lock()
	e := h.events[c.ID()]
	e[i]++
	h.events[c.ID()] = e
	h.mu.Unlock()
}

// Opened implements edge.Handler.
func (h *Handler) Opened(c edge.Conn) { h.count(c, 0); h.Opens <- c }

// Closed implements edge.Handler.
func (h *Handler) Closed(c edge.Conn) { h.count(c, 1); h.Closes <- c }

// Frame implements edge.Handler.
func (h *Handler) Frame(c edge.Conn, f *wirepb.Frame) {
	if h.Echo {
		b, err := proto.Marshal(f)
		if err != nil {
			panic(err)
		}
		_ = c.Send(b)
		return
	}
	h.Frames <- f
}

// CheckOnce fails t unless every connection saw Opened and Closed exactly once.
func (h *Handler) CheckOnce(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, e := range h.events {
		if e != [2]int{1, 1} {
			t.Errorf("conn %d: Opened %d times, Closed %d times; want 1, 1", id, e[0], e[1])
		}
	}
}

// Recv returns the next value of ch, failing t after 10 seconds.
func Recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}
