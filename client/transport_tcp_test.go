package client

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/schemas/wirepb"
)

func TestAppendFrameReadPayloadRoundTrip(t *testing.T) {
	frames := []*wirepb.Frame{
		{},
		{Id: 1, Body: &wirepb.Frame_Ping{Ping: &wirepb.Ping{}}},
		{Id: 7, Body: &wirepb.Frame_Send{Send: &wirepb.Send{ClientMsgId: "c", Body: bytes.Repeat([]byte("x"), 70000-200)}}},
	}
	var stream []byte
	for _, f := range frames[:2] {
		var err error
		if stream, err = appendFrame(stream, f); err != nil {
			t.Fatalf("appendFrame(%v) error: %v", f, err)
		}
	}
	r := bytes.NewReader(stream)
	var buf []byte
	for i, want := range frames[:2] {
		p, err := readPayload(r, &buf, 1<<20)
		if err != nil {
			t.Fatalf("readPayload #%d error: %v", i, err)
		}
		got, err := decodeProto(p)
		if err != nil || !proto.Equal(got, want) {
			t.Errorf("frame #%d = %v, %v; want %v", i, got, err, want)
		}
	}
	if _, err := readPayload(r, &buf, 1<<20); err != io.EOF {
		t.Errorf("readPayload at the end error = %v; want io.EOF", err)
	}
	if _, err := appendFrame(nil, frames[2]); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("appendFrame of a %d-byte frame error = %v; want ErrFrameTooLarge", proto.Size(frames[2]), err)
	}
}

func TestReadPayloadErrors(t *testing.T) {
	hdr := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	tests := []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"empty", nil, 10, io.EOF},
		{"short header", []byte{0, 0}, 10, io.ErrUnexpectedEOF},
		{"over max", hdr(11), 10, ErrFrameTooLarge},
		{"huge length, no allocation", hdr(0xffffffff), 10, ErrFrameTooLarge},
		{"short payload", append(hdr(5), 1, 2), 10, io.ErrUnexpectedEOF},
		{"header only", hdr(3), 10, io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf []byte
			_, err := readPayload(bytes.NewReader(tc.in), &buf, tc.max)
			if !errors.Is(err, tc.want) {
				t.Errorf("readPayload(%x) error = %v; want %v", tc.in, err, tc.want)
			}
		})
	}
}

// FuzzReadFrame feeds untrusted server bytes to the TCP frame reader and the
// protobuf and protojson decoders: nothing may panic, a payload never
// exceeds the limit, and every decoded frame re-encodes to a frame that
// decodes to the same thing.
func FuzzReadFrame(f *testing.F) {
	for _, fr := range []*wirepb.Frame{
		{Id: 1, Body: &wirepb.Frame_SignInOk{SignInOk: &wirepb.SignInOK{UserId: "u", MaxSeq: 3, HeartbeatMs: 25000}}},
		{Body: &wirepb.Frame_Push{Push: &wirepb.Push{Message: &wirepb.Message{Seq: 9, Body: []byte("hi")}}}},
		{Id: 2, Body: &wirepb.Frame_SyncBatch{SyncBatch: &wirepb.SyncBatch{Messages: []*wirepb.Message{{Seq: 1}, {Seq: 2}}, HasMore: true}}},
		{Body: &wirepb.Frame_Error{Error: &wirepb.Error{Code: wirepb.ErrorCode_ERROR_CODE_REPLACED}}},
	} {
		b, err := appendFrame(nil, fr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Add([]byte(`{"id":"1","signInOk":{"userId":"u"}}`))
	const max = 4096
	f.Fuzz(func(t *testing.T, data []byte) {
		tr := newTCPTransport(nil, max)
		tr.r.Reset(bytes.NewReader(data))
		for {
			var buf []byte
			p, err := readPayload(tr.r, &buf, max)
			if err != nil {
				break
			}
			if len(p) > max {
				t.Fatalf("payload of %d bytes over max %d", len(p), max)
			}
			fr, err := decodeProto(p)
			if err != nil {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("decodeProto error %v does not wrap ErrProtocol", err)
				}
				continue
			}
			b, err := appendFrame(nil, fr)
			if err != nil {
				continue // a valid but huge frame cannot be sent back
			}
			var buf2 []byte
			p2, err := readPayload(bytes.NewReader(b), &buf2, 1<<20)
			if err != nil {
				t.Fatalf("re-read of a re-encoded frame error: %v", err)
			}
			fr2, err := decodeProto(p2)
			if err != nil || !proto.Equal(fr, fr2) {
				t.Fatalf("re-encoded frame decodes to %v, %v; want %v", fr2, err, fr)
			}
		}
		if _, err := decodeJSON(data); err != nil && !errors.Is(err, ErrProtocol) {
			t.Fatalf("decodeJSON error %v does not wrap ErrProtocol", err)
		}
	})
}
