// Package room stores chat-room messages: read diffusion on ONE shared
// JetStream memory stream, never a stream per room (a stream costs ~40 KiB
// and, clustered, a Raft group) and never a copy per member.
//
// Subjects (every one visible with `nats sub`):
//
//	im.room.<roomID>      what a sender publishes (JetStream, stream PARLEY_ROOMS,
//	                      a proto-encoded wire Message). The stream keeps the last
//	                      Config.MaxPerRoom messages of each room for Config.MaxAge.
//	im.roomlive.<roomID>  the stream republishes every message it stored here, with
//	                      the publisher's headers. Edges subscribe to it (core NATS)
//	                      only while they have a local member of the room.
//
// Live traffic comes from the stream's republish rather than from core
// subscribers of im.room.<roomID> because a publish that JetStream refuses
// (a resend inside the dedupe window, or a stream that is unavailable) would
// still reach core subscribers: members would see a resent message twice,
// under two msg ids, and a message whose sender was told to retry. With the
// republish a message is live if and only if it was stored, exactly once.
package room

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/schemas/wirepb"
)

// Stream is the JetStream stream that holds every room's recent history.
const Stream = "PARLEY_ROOMS"

// Headers set by FromConn on a published room message and carried by its
// live copy.
const (
	HeaderEdge = "Parley-Edge"
	HeaderConn = "Parley-Conn"
)

// Subject is where messages for roomID are published (and stored).
func Subject(roomID string) string { return "im.room." + roomID }

// LiveSubject is where the stream republishes the messages of roomID once
// stored; edges subscribe to it while they have local members.
func LiveSubject(roomID string) string { return "im.roomlive." + roomID }

// Config sizes the room stream. Zero values mean the documented defaults.
type Config struct {
	// MaxAge is how long a room message is kept for replay; zero means 1h.
	MaxAge time.Duration
	// MaxPerRoom is how many messages are kept per room (the stream's
	// MaxMsgsPerSubject); older ones are discarded. Zero means 100.
	MaxPerRoom int64
	// MaxBytes caps the whole stream (all rooms, in memory); the oldest
	// messages go first. Zero means 256 MiB.
	MaxBytes int64
	// Replicas is the stream's replication factor; zero means 1.
	Replicas int
}

func (c Config) withDefaults() Config {
	if c.MaxAge <= 0 {
		c.MaxAge = time.Hour
	}
	if c.MaxPerRoom <= 0 {
		c.MaxPerRoom = 100
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 256 << 20
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	return c
}

// dedupeWindow is how long a publish's dedupe id is remembered.
const dedupeWindow = 2 * time.Minute

// EnsureStream creates the room stream, or updates it to cfg.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.Stream, error) {
	cfg = cfg.withDefaults()
	dup := dedupeWindow
	if cfg.MaxAge < dup {
		dup = cfg.MaxAge // the server refuses a dedupe window longer than MaxAge
	}
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              Stream,
		Description:       "Parley chat rooms: the recent history of every room, one subject per room",
		Subjects:          []string{"im.room.>"},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		Storage:           jetstream.MemoryStorage,
		Replicas:          cfg.Replicas,
		MaxAge:            cfg.MaxAge,
		MaxMsgsPerSubject: cfg.MaxPerRoom,
		MaxBytes:          cfg.MaxBytes,
		Duplicates:        dup,
		RePublish:         &jetstream.RePublish{Source: "im.room.>", Destination: "im.roomlive.>"},
	})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", Stream, err)
	}
	return st, nil
}

// PublishOption varies one Publish.
type PublishOption func(*nats.Msg)

// FromConn marks a message as sent by connection connID of edge edgeID, so
// that edge can skip echoing the live copy back to the sender.
func FromConn(edgeID string, connID uint64) PublishOption {
	return func(m *nats.Msg) {
		m.Header.Set(HeaderEdge, edgeID)
		m.Header.Set(HeaderConn, strconv.FormatUint(connID, 10))
	}
}

// Origin returns the edge and connection FromConn recorded in h; ok is false
// when the message carries none (e.g. a push from the business API).
func Origin(h nats.Header) (edgeID string, connID uint64, ok bool) {
	edgeID = h.Get(HeaderEdge)
	if edgeID == "" {
		return "", 0, false
	}
	connID, err := strconv.ParseUint(h.Get(HeaderConn), 10, 64)
	if err != nil {
		return "", 0, false
	}
	return edgeID, connID, true
}

// Publish stores msg in its room's history; the stream then delivers it live
// on LiveSubject. msg.To must name a room. A non-empty dedupeID makes resends
// within two minutes store nothing new: duplicate is true and stored is the
// original message (or msg itself when the original has already been
// discarded from the history); otherwise stored is msg.
func Publish(ctx context.Context, js jetstream.JetStream, msg *wirepb.Message, dedupeID string, opts ...PublishOption) (stored *wirepb.Message, duplicate bool, err error) {
	to := msg.GetTo()
	if to.GetType() != wirepb.ConversationType_CONVERSATION_TYPE_ROOM || !wirepb.ValidID(to.GetId()) {
		return nil, false, fmt.Errorf("publish room message: to must be a room with a valid id, got %v", to)
	}
	data, err := proto.Marshal(msg)
	if err != nil {
		return nil, false, fmt.Errorf("encode room message room=%s: %w", to.Id, err)
	}
	m := &nats.Msg{Subject: Subject(to.Id), Data: data, Header: nats.Header{}}
	for _, o := range opts {
		o(m)
	}
	var pubOpts []jetstream.PublishOpt
	if dedupeID != "" {
		pubOpts = append(pubOpts, jetstream.WithMsgID(dedupeID))
	}
	ack, err := js.PublishMsg(ctx, m, pubOpts...)
	if err != nil {
		return nil, false, fmt.Errorf("publish room message room=%s: %w", to.Id, err)
	}
	if !ack.Duplicate {
		return msg, false, nil
	}
	// A resend: answer with the message that was stored the first time, as
	// the wire protocol promises. The PubAck of a duplicate carries the
	// original's stream sequence.
	// Best effort: in a busy room the original may already have been
	// discarded, and the resend is still not stored twice.
	if orig, err := messageAt(ctx, js, ack.Sequence); err == nil {
		return orig, true, nil
	}
	return msg, true, nil
}

// messageAt reads the room message at stream sequence seq.
func messageAt(ctx context.Context, js jetstream.JetStream, seq uint64) (*wirepb.Message, error) {
	st, err := js.Stream(ctx, Stream)
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", Stream, err)
	}
	raw, err := st.GetMsg(ctx, seq)
	if err != nil {
		return nil, fmt.Errorf("get room message seq=%d: %w", seq, err)
	}
	var m wirepb.Message
	if err := proto.Unmarshal(raw.Data, &m); err != nil {
		return nil, fmt.Errorf("decode room message seq=%d: %w", seq, err)
	}
	return &m, nil
}

// replayFetch is how many messages one pull request asks for; it bounds the
// memory of a replay whatever the per-room history holds.
const replayFetch = 256

// ErrInvalidRoom is returned for a room id that is not 1-64 of [A-Za-z0-9_-].
var ErrInvalidRoom = errors.New("room: invalid room id")

// Replay returns the last n messages of roomID, oldest first (fewer if the
// room holds fewer). It reads the room's whole history (at most MaxPerRoom
// messages) through a short-lived consumer and keeps the last n; an empty
// room costs one round trip and no waiting. Undecodable messages are skipped.
func Replay(ctx context.Context, js jetstream.JetStream, roomID string, n int) ([]*wirepb.Message, error) {
	if !wirepb.ValidID(roomID) {
		return nil, fmt.Errorf("replay room=%q: %w", roomID, ErrInvalidRoom)
	}
	if n <= 0 {
		return nil, nil
	}
	cons, err := js.CreateConsumer(ctx, Stream, jetstream.ConsumerConfig{
		FilterSubject: Subject(roomID),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckNonePolicy,
		MemoryStorage: true,
		Replicas:      1,
		// Deleted below; the threshold only cleans up if that delete fails,
		// since the stream allows a limited number of consumers (1,000 by
		// default in JetStream 2.15).
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("replay room=%s: create consumer: %w", roomID, err)
	}
	info := cons.CachedInfo()
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = js.DeleteConsumer(dctx, Stream, info.Name)
	}()
	pending := info.NumPending
	if pending == 0 {
		return nil, nil
	}
	// ring keeps the last n decoded messages; next is where the next one goes.
	ring := make([]*wirepb.Message, 0, min(uint64(n), pending))
	next := 0
	for fetched := uint64(0); fetched < pending; {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("replay room=%s: %w", roomID, err)
		}
		batch, err := cons.FetchNoWait(int(min(pending-fetched, replayFetch)))
		if err != nil {
			return nil, fmt.Errorf("replay room=%s: fetch: %w", roomID, err)
		}
		got := 0
		for jm := range batch.Messages() {
			got++
			var m wirepb.Message
			if err := proto.Unmarshal(jm.Data(), &m); err != nil {
				continue // not ours to fail a replay over; the writer validates
			}
			if len(ring) < cap(ring) {
				ring = append(ring, &m)
			} else {
				ring[next] = &m
			}
			next = (next + 1) % cap(ring)
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("replay room=%s: fetch: %w", roomID, err)
		}
		if got == 0 {
			break // the rest aged out since the consumer was created
		}
		fetched += uint64(got)
	}
	if len(ring) < cap(ring) {
		return ring, nil
	}
	// The ring is full: its oldest message is at next.
	out := make([]*wirepb.Message, 0, len(ring))
	out = append(out, ring[next:]...)
	return append(out, ring[:next]...), nil
}
