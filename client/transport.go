package client

import (
	"time"

	"github.com/parleyim/parley/schemas/wirepb"
)

// transport is one connection to an edge, carrying whole wire Frames.
// Implemented by tcpTransport (also used over net.Pipe in tests) and
// wsTransport.
//
// readFrame is called by one goroutine at a time, writeFrame by one
// goroutine at a time (the conn's write lock), and close from anywhere; close
// unblocks a pending readFrame.
type transport interface {
	// readFrame returns the next frame. Errors wrap ErrFrameTooLarge or
	// ErrProtocol for bad input; anything else is the connection's error.
	readFrame() (*wirepb.Frame, error)
	// writeFrame writes f, giving up at deadline. A frame over maxSendFrame
	// returns ErrFrameTooLarge before anything is written.
	writeFrame(f *wirepb.Frame, deadline time.Time) error
	// close closes the connection. Idempotent.
	close() error
}
