// Package frame is the TCP framing of the Parley wire protocol and the
// helpers both client transports (edge/tcp, edge/ws) share.
//
// On TCP every wire Frame travels as
//
//	+--------------------+--------------------------------------+
//	| length: uint32, BE | length bytes: protobuf wirepb.Frame  |
//	+--------------------+--------------------------------------+
//
// The length counts only the payload, never the 4 header bytes. A length of
// zero is a valid (empty) Frame. A receiver rejects a length over its
// maximum as soon as it has the 4 header bytes, before buffering or
// allocating anything of that size. WebSocket needs no framing: one message is
// one Frame.
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/schemas/wirepb"
)

// HeaderSize is the size in bytes of the big-endian uint32 length prefix.
const HeaderSize = 4

// DefaultMaxSize is the default maximum payload size in bytes (64 KiB) of one
// frame, not counting the header.
const DefaultMaxSize = 64 << 10

// ErrTooLarge is returned by Next when a length prefix exceeds the maximum.
// The connection must be closed with ERROR_CODE_FRAME_TOO_LARGE.
var ErrTooLarge = errors.New("frame: too large")

// ErrBadFrame is returned by Decode for bytes that are not a protobuf Frame.
// The connection must be closed with ERROR_CODE_BAD_FRAME.
var ErrBadFrame = errors.New("frame: bad frame")

// Append appends the length prefix and payload to dst and returns the
// extended slice. payload must be shorter than 4 GiB.
func Append(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// Next decodes the first frame in buf, which holds bytes as they arrived from
// the socket, split or coalesced in any way. It returns the frame's payload
// (aliasing buf) and n, the number of bytes of buf the frame used (header
// included). When buf does not yet hold a whole frame it returns (nil, 0, nil):
// read more and call again with the bytes appended. When the length prefix
// exceeds max it returns an error wrapping ErrTooLarge as soon as the 4 header
// bytes are present. A max of zero or less means DefaultMaxSize.
//
// A zero-length frame returns an empty payload with n == HeaderSize.
func Next(buf []byte, max int) (payload []byte, n int, err error) {
	if max <= 0 {
		max = DefaultMaxSize
	}
	if len(buf) < HeaderSize {
		return nil, 0, nil
	}
	size := binary.BigEndian.Uint32(buf)
	if uint64(size) > uint64(max) {
		return nil, 0, fmt.Errorf("%w: length %d over max %d", ErrTooLarge, size, max)
	}
	end := HeaderSize + int(size)
	if len(buf) < end {
		return nil, 0, nil
	}
	return buf[HeaderSize:end:end], end, nil
}

// Decode unmarshals one protobuf payload into a new Frame that the caller
// owns (it does not alias payload). Errors wrap ErrBadFrame. An empty payload
// is a valid Frame with no body; the session core decides what that means.
func Decode(payload []byte) (*wirepb.Frame, error) {
	f := new(wirepb.Frame)
	if err := proto.Unmarshal(payload, f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadFrame, err)
	}
	return f, nil
}

// ErrorFrame returns the protobuf encoding (no length prefix) of a Frame with
// id 0 and an Error body carrying code, msg and code.Temporary() (the one
// temporary table, kept with the codes in schemas/wirepb). Transports send it
// before closing a connection. Invalid UTF-8 in msg is replaced so that
// encoding never fails.
func ErrorFrame(code wirepb.ErrorCode, msg string) []byte {
	f := &wirepb.Frame{Body: &wirepb.Frame_Error{Error: &wirepb.Error{
		Code:      code,
		Message:   strings.ToValidUTF8(msg, "\uFFFD"),
		Temporary: code.Temporary(),
	}}}
	b, err := proto.Marshal(f)
	if err != nil {
		// Unreachable: every field is valid. Keep the code at least.
		f.GetError().Message = ""
		b, _ = proto.Marshal(f)
	}
	return b
}
