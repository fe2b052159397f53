package client

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/schemas/wirepb"
)

// TCP framing: every frame is
//
//	+----------------------+------------------------------------+
//	| length: uint32, BE   | length bytes: protobuf wirepb.Frame |
//	+----------------------+------------------------------------+
//
// The length counts the payload only. The client rejects a length over
// Config.MaxFrameSize as soon as it has read the 4 header bytes, before it
// allocates anything.
const headerSize = 4

// keepBuffer is the largest read buffer a tcpTransport keeps between frames;
// a bigger frame gets a one-off buffer.
const keepBuffer = 64 << 10

// tcpTransport speaks length-prefixed protobuf over a net.Conn.
type tcpTransport struct {
	nc net.Conn // immutable

	// Owned by the reader.
	r    *bufio.Reader
	max  int
	rbuf []byte

	// Owned by the writer.
	wbuf []byte
}

var _ transport = (*tcpTransport)(nil)

func dialTCP(ctx context.Context, cfg *Config, addr string) (transport, error) {
	var nc net.Conn
	var err error
	if cfg.NetDial != nil {
		nc, err = cfg.NetDial(ctx, "tcp", addr)
	} else {
		var d net.Dialer
		nc, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDisconnected, err)
	}
	return newTCPTransport(nc, cfg.MaxFrameSize), nil
}

func newTCPTransport(nc net.Conn, max int) *tcpTransport {
	return &tcpTransport{nc: nc, r: bufio.NewReaderSize(nc, 16<<10), max: max}
}

func (t *tcpTransport) readFrame() (*wirepb.Frame, error) {
	payload, err := readPayload(t.r, &t.rbuf, t.max)
	if err != nil {
		return nil, err
	}
	return decodeProto(payload)
}

func (t *tcpTransport) writeFrame(f *wirepb.Frame, deadline time.Time) error {
	b, err := appendFrame(t.wbuf[:0], f)
	if err != nil {
		return err
	}
	if cap(b) <= keepBuffer {
		t.wbuf = b[:0]
	}
	if err := t.nc.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err = t.nc.Write(b)
	return err
}

func (t *tcpTransport) close() error { return t.nc.Close() }

// appendFrame appends f's length prefix and protobuf encoding to dst. It
// fails with ErrFrameTooLarge when the payload is over maxSendFrame.
func appendFrame(dst []byte, f *wirepb.Frame) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst, err := proto.MarshalOptions{}.MarshalAppend(dst, f)
	if err != nil {
		return nil, fmt.Errorf("client: encode frame: %w", err)
	}
	n := len(dst) - start - headerSize
	if n > maxSendFrame {
		return nil, fmt.Errorf("%w: %d bytes over %d", ErrFrameTooLarge, n, maxSendFrame)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

// readPayload reads one length-prefixed payload from r. It reuses *buf for
// payloads up to keepBuffer and rejects a length over max before reading or
// allocating. A clean end of stream before a header is io.EOF; one inside a
// frame is io.ErrUnexpectedEOF.
func readPayload(r io.Reader, buf *[]byte, max int) ([]byte, error) {
	var hdr [headerSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("%w: length %d over max %d", ErrFrameTooLarge, n, max)
	}
	var p []byte
	switch {
	case int(n) <= cap(*buf):
		p = (*buf)[:n]
	case n <= keepBuffer:
		*buf = make([]byte, keepBuffer)
		p = (*buf)[:n]
	default:
		p = make([]byte, n)
	}
	if _, err := io.ReadFull(r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return p, nil
}

// decodeProto unmarshals a payload into a new Frame that does not alias it.
func decodeProto(payload []byte) (*wirepb.Frame, error) {
	f := new(wirepb.Frame)
	if err := proto.Unmarshal(payload, f); err != nil {
		return nil, fmt.Errorf("%w: decode frame: %w", ErrProtocol, err)
	}
	return f, nil
}
