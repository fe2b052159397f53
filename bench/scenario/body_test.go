package scenario

import (
	"testing"
	"time"

	"github.com/parleyim/parley/bench/verify"
)

func TestBody(t *testing.T) {
	k := verify.Key{Lane: verify.Lane{Sender: 12, Lane: 3}, N: 99999}
	at := time.Unix(1_800_000_000, 123456789)
	for _, size := range []int{0, 64, 1000} {
		b := encodeBody(k, at, size)
		if len(b) < size {
			t.Errorf("encodeBody(size %d) is %d bytes", size, len(b))
		}
		gk, gat, ok := decodeBody(b)
		if !ok || gk != k || !gat.Equal(at) {
			t.Errorf("decodeBody(encodeBody(%v, %v)) = %v, %v, %v", k, at, gk, gat, ok)
		}
	}
	for _, bad := range []string{"", "hello", "pb1 1 2 3|", "pb1 a b c d|", "pb1 1 2 3 4"} {
		if _, _, ok := decodeBody([]byte(bad)); ok {
			t.Errorf("decodeBody(%q) ok; want not", bad)
		}
	}
}
