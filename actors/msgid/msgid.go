// Package msgid makes Parley's message ids: globally unique, time ordered,
// 26 characters of lower-case base32hex.
package msgid

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"sync"
	"time"
)

// msgIDEncoding is base32hex in lower case without padding: the encoded
// strings sort like the bytes they encode.
var msgIDEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// Gen makes message ids: 6 bytes of Unix milliseconds, 2 random bytes chosen
// per process (so two nodes almost never share a prefix) and an 8-byte counter
// that starts at a random value and only grows. Ids are unique, sort by
// creation time across the process, and encode to 26 characters.
type Gen struct {
	mu      sync.Mutex // guards the following
	node    [2]byte
	lastMS  int64
	counter uint64
}

// New returns a generator.
func New() *Gen {
	g := &Gen{}
	var seed [10]byte
	_, _ = rand.Read(seed[:])
	copy(g.node[:], seed[:2])
	g.counter = binary.BigEndian.Uint64(seed[2:]) >> 1
	return g
}

// Next returns a new id and the millisecond timestamp it carries. Safe for
// concurrent use.
func (g *Gen) Next(now time.Time) (string, int64) {
	g.mu.Lock()
	ms := now.UnixMilli()
	if ms < g.lastMS {
		ms = g.lastMS // the clock stepped back: keep ids ordered
	}
	g.lastMS = ms
	g.counter++
	c := g.counter
	g.mu.Unlock()

	var b [16]byte
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	copy(b[6:8], g.node[:])
	binary.BigEndian.PutUint64(b[8:], c)
	return msgIDEncoding.EncodeToString(b[:]), ms
}
