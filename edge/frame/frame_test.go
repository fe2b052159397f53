package frame

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/schemas/wirepb"
)

// decodeAll decodes every complete frame in stream and returns the payloads
// and the number of bytes left over.
func decodeAll(t testing.TB, stream []byte, max int) (payloads [][]byte, rest int, err error) {
	t.Helper()
	for {
		p, n, err := Next(stream, max)
		if err != nil {
			return payloads, len(stream), err
		}
		if n == 0 {
			return payloads, len(stream), nil
		}
		payloads = append(payloads, p)
		stream = stream[n:]
	}
}

var errTrailing = errors.New("trailing bytes")

// feed simulates a socket: chunks arrive one by one, the decoder keeps what it
// could not use yet.
func feed(t testing.TB, chunks [][]byte, max int) ([][]byte, error) {
	t.Helper()
	var buf []byte
	var out [][]byte
	for _, c := range chunks {
		buf = append(buf, c...)
		for {
			p, n, err := Next(buf, max)
			if err != nil {
				return out, err
			}
			if n == 0 {
				break
			}
			out = append(out, bytes.Clone(p))
			buf = buf[n:]
		}
	}
	if len(buf) != 0 {
		return out, errTrailing
	}
	return out, nil
}

func TestAppend(t *testing.T) {
	got := Append([]byte{0xaa}, []byte("hi"))
	want := []byte{0xaa, 0, 0, 0, 2, 'h', 'i'}
	if !bytes.Equal(got, want) {
		t.Fatalf("Append = %x; want %x", got, want)
	}
}

func TestNext(t *testing.T) {
	const max = 8
	tests := []struct {
		name    string
		in      []byte
		payload []byte
		n       int
		tooBig  bool
	}{
		{name: "empty", in: nil},
		{name: "partial header", in: []byte{0, 0, 0}},
		{name: "zero length", in: []byte{0, 0, 0, 0}, payload: []byte{}, n: 4},
		{name: "zero length then more", in: []byte{0, 0, 0, 0, 0, 0}, payload: []byte{}, n: 4},
		{name: "partial payload", in: []byte{0, 0, 0, 3, 'a', 'b'}},
		{name: "one", in: []byte{0, 0, 0, 3, 'a', 'b', 'c'}, payload: []byte("abc"), n: 7},
		{name: "coalesced", in: []byte{0, 0, 0, 1, 'a', 0, 0, 0, 1, 'b'}, payload: []byte("a"), n: 5},
		{name: "exact max", in: Append(nil, bytes.Repeat([]byte{'x'}, max)), payload: bytes.Repeat([]byte{'x'}, max), n: 4 + max},
		{name: "max+1 header only", in: []byte{0, 0, 0, max + 1}, tooBig: true},
		{name: "huge header only", in: []byte{0xff, 0xff, 0xff, 0xff}, tooBig: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, n, err := Next(tt.in, max)
			if tt.tooBig {
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("Next(%x) err = %v; want ErrTooLarge", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Next(%x) err = %v; want nil", tt.in, err)
			}
			if n != tt.n || !bytes.Equal(p, tt.payload) || (tt.payload != nil) != (p != nil) {
				t.Fatalf("Next(%x) = %q, %d; want %q, %d", tt.in, p, n, tt.payload, tt.n)
			}
		})
	}
}

func TestNextDefaultMax(t *testing.T) {
	in := []byte{0, 1, 0, 1} // DefaultMaxSize + 1
	if _, _, err := Next(in, 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Next(%x, 0) err = %v; want ErrTooLarge", in, err)
	}
	in = Append(nil, make([]byte, DefaultMaxSize))
	if _, n, err := Next(in, 0); err != nil || n != len(in) {
		t.Fatalf("Next(64 KiB frame, 0) = %d, %v; want %d, nil", n, err, len(in))
	}
}

// TestSplitEveryByte feeds a stream of frames split at every position, and one
// byte at a time, and checks the same frames come out.
func TestSplitEveryByte(t *testing.T) {
	want := [][]byte{[]byte("a"), {}, []byte("hello, world"), bytes.Repeat([]byte{7}, 300), []byte("z")}
	var stream []byte
	for _, p := range want {
		stream = Append(stream, p)
	}
	check := func(name string, chunks [][]byte) {
		t.Helper()
		got, err := feed(t, chunks, 1024)
		if err != nil {
			t.Fatalf("%s: feed err = %v", name, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: got %d frames; want %d", name, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%s: frame %d = %q; want %q", name, i, got[i], want[i])
			}
		}
	}
	for i := 0; i <= len(stream); i++ {
		check("split", [][]byte{stream[:i], stream[i:]})
	}
	var bytewise [][]byte
	for i := range stream {
		bytewise = append(bytewise, stream[i:i+1])
	}
	check("bytewise", bytewise)
	check("coalesced", [][]byte{stream})
}

// TestTooLargeBeforeBuffering checks the error comes with the header alone.
func TestTooLargeBeforeBuffering(t *testing.T) {
	stream := Append(nil, []byte("ok"))
	stream = append(stream, 0x7f, 0xff, 0xff, 0xff)
	got, err := feed(t, [][]byte{stream}, 16)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("feed err = %v; want ErrTooLarge", err)
	}
	if len(got) != 1 || string(got[0]) != "ok" {
		t.Fatalf("frames before the bad prefix = %q; want [ok]", got)
	}
}

func TestDecode(t *testing.T) {
	want := &wirepb.Frame{Id: 42, Body: &wirepb.Frame_Ping{Ping: &wirepb.Ping{}}}
	b, err := proto.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil || !proto.Equal(got, want) {
		t.Fatalf("Decode(%x) = %v, %v; want %v", b, got, err, want)
	}
	if _, err := Decode([]byte{0xff, 0xff, 0xff}); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("Decode(garbage) err = %v; want ErrBadFrame", err)
	}
	empty, err := Decode(nil)
	if err != nil || empty.GetBody() != nil {
		t.Fatalf("Decode(nil) = %v, %v; want empty frame", empty, err)
	}
}

func TestErrorFrame(t *testing.T) {
	tests := []struct {
		code      wirepb.ErrorCode
		temporary bool
	}{
		{wirepb.ErrorCode_ERROR_CODE_BAD_FRAME, false},
		{wirepb.ErrorCode_ERROR_CODE_FRAME_TOO_LARGE, false},
		{wirepb.ErrorCode_ERROR_CODE_UNAUTHENTICATED, false},
		{wirepb.ErrorCode_ERROR_CODE_REPLACED, false},
		{wirepb.ErrorCode_ERROR_CODE_SLOW_CONSUMER, true},
		{wirepb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, true},
		{wirepb.ErrorCode_ERROR_CODE_UNAVAILABLE, true},
		{wirepb.ErrorCode_ERROR_CODE_RATE_LIMITED, true},
		{wirepb.ErrorCode_ERROR_CODE_IDLE_TIMEOUT, true},
	}
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			f, err := Decode(ErrorFrame(tt.code, "why\xff"))
			if err != nil {
				t.Fatalf("Decode(ErrorFrame) err = %v", err)
			}
			e := f.GetError()
			if e.GetCode() != tt.code || e.GetTemporary() != tt.temporary || e.GetMessage() != "why\uFFFD" || f.GetId() != 0 {
				t.Fatalf("ErrorFrame(%v) = %v; want code %v temporary %v message %q id 0", tt.code, f, tt.code, tt.temporary, "why\uFFFD")
			}
		})
	}
}

func FuzzNext(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0}, 16)
	f.Add(Append(Append(nil, []byte("abc")), nil), 3)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1}, 0)
	f.Add([]byte{0, 0, 1}, 1)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		if max > 1<<20 || max < -1 {
			max %= 1 << 20
		}
		whole, rest, errWhole := decodeAll(t, data, max)
		eff := max
		if eff <= 0 {
			eff = DefaultMaxSize
		}
		used := 0
		for _, p := range whole {
			if len(p) > eff {
				t.Fatalf("payload of %d bytes over max %d", len(p), eff)
			}
			used += HeaderSize + len(p)
		}
		if used+rest != len(data) {
			t.Fatalf("used %d + rest %d != %d", used, rest, len(data))
		}
		// Byte at a time must give the same frames and the same verdict.
		var chunks [][]byte
		for i := range data {
			chunks = append(chunks, data[i:i+1])
		}
		split, errSplit := feed(t, chunks, max)
		if errors.Is(errWhole, ErrTooLarge) != errors.Is(errSplit, ErrTooLarge) {
			t.Fatalf("whole err = %v; bytewise err = %v", errWhole, errSplit)
		}
		if errWhole == nil && (rest > 0) != errors.Is(errSplit, errTrailing) {
			t.Fatalf("rest = %d; bytewise err = %v", rest, errSplit)
		}
		if len(split) != len(whole) {
			t.Fatalf("bytewise gave %d frames; whole gave %d", len(split), len(whole))
		}
		for i := range whole {
			if !bytes.Equal(split[i], whole[i]) {
				t.Fatalf("frame %d: bytewise %x; whole %x", i, split[i], whole[i])
			}
		}
	})
}

func FuzzDecodeFrame(f *testing.F) {
	seed := func(fr *wirepb.Frame) []byte {
		b, _ := proto.Marshal(fr)
		return Append(nil, b)
	}
	f.Add(seed(&wirepb.Frame{Id: 1, Body: &wirepb.Frame_SignIn{SignIn: &wirepb.SignIn{Token: "t", DeviceId: "d"}}}))
	f.Add(seed(&wirepb.Frame{Body: &wirepb.Frame_Send{Send: &wirepb.Send{ClientMsgId: "c", Body: []byte("hi"),
		To: &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_USER, Id: "bob"}}}}))
	f.Add(Append(nil, ErrorFrame(wirepb.ErrorCode_ERROR_CODE_SLOW_CONSUMER, "slow")))
	f.Add([]byte{0, 0, 0, 3, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		payloads, _, _ := decodeAll(t, data, DefaultMaxSize)
		for _, p := range payloads {
			fr, err := Decode(p)
			if err != nil {
				if !errors.Is(err, ErrBadFrame) {
					t.Fatalf("Decode err = %v; want ErrBadFrame", err)
				}
				continue
			}
			b, err := proto.Marshal(fr)
			if err != nil {
				// Decoded strings are valid UTF-8, so re-encoding must work.
				t.Fatalf("Marshal(decoded %v) err = %v", fr, err)
			}
			again, err := Decode(b)
			if err != nil || !proto.Equal(again, fr) {
				t.Fatalf("round trip = %v, %v; want %v", again, err, fr)
			}
		}
	})
}
