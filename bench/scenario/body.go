package scenario

import (
	"bytes"
	"strconv"
	"time"

	"github.com/parleyim/parley/bench/verify"
)

// Message bodies carry what the receiving side verifies and measures:
//
//	pb1 <sender> <lane> <n> <unix-nanos>|xxxx…
//
// sender, lane and n name the send (verify.Key); unix-nanos is the send's
// scheduled time, from which delivery latency is measured. Padding brings
// the body to the configured size. Plain ASCII: the content type is text.
const bodyMagic = "pb1 "

// minBodySize fits the header with the widest numbers.
const minBodySize = 64

func encodeBody(k verify.Key, at time.Time, size int) []byte {
	b := make([]byte, 0, max(size, minBodySize))
	b = append(b, bodyMagic...)
	b = strconv.AppendInt(b, int64(k.Sender), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(k.Lane.Lane), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, k.N, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, at.UnixNano(), 10)
	b = append(b, '|')
	for len(b) < size {
		b = append(b, 'x')
	}
	return b
}

// decodeBody parses a body made by encodeBody.
func decodeBody(b []byte) (k verify.Key, at time.Time, ok bool) {
	rest, ok := bytes.CutPrefix(b, []byte(bodyMagic))
	if !ok {
		return k, at, false
	}
	head, _, ok := bytes.Cut(rest, []byte("|"))
	if !ok {
		return k, at, false
	}
	f := bytes.Fields(head)
	if len(f) != 4 {
		return k, at, false
	}
	sender, err1 := strconv.ParseInt(string(f[0]), 10, 32)
	lane, err2 := strconv.ParseInt(string(f[1]), 10, 32)
	n, err3 := strconv.ParseUint(string(f[2]), 10, 64)
	ns, err4 := strconv.ParseInt(string(f[3]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return k, at, false
	}
	k = verify.Key{Lane: verify.Lane{Sender: int32(sender), Lane: int32(lane)}, N: n}
	return k, time.Unix(0, ns), true
}
