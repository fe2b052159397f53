package scenario

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/bench/hist"
	"github.com/parleyim/parley/bench/verify"
	"github.com/parleyim/parley/schemas/wirepb"
)

// RoomConfig configures the room scenario: Rooms chat rooms, each joined by
// Members connections (one distinct user each); Senders members of each
// room send to it over their member connection. Halfway through the sends,
// Late fresh connections per room join with a replay of the last Replay
// messages and stay for the rest.
type RoomConfig struct {
	Common `json:"-"`
	// Rooms is the number of rooms; zero means 10.
	Rooms int `json:"rooms"`
	// Members is the number of member connections per room; zero means 200.
	// It is lowered, with a note, to what the open-file limit allows.
	Members int `json:"members"`
	// Senders is the number of members per room that send; zero means 2. At
	// least one member per room must not send: its stream is the room's
	// order that the late joiners are checked against.
	Senders int `json:"senders"`
	// Rate is the target total send rate over all rooms in messages per
	// second (open loop); zero means flat out.
	Rate float64 `json:"rate"`
	// Messages caps the number of messages sent in total; zero means no cap.
	Messages int `json:"messages"`
	// Inflight is the number of concurrent sends per sender; zero means 1.
	Inflight int `json:"inflight"`
	// Size is the message body size in bytes; zero means 64, the minimum.
	Size int `json:"size"`
	// Late is the number of late joiners per room; zero means none.
	Late int `json:"late"`
	// Replay is how many of the room's latest messages a late joiner asks
	// for; zero means 50. It must not exceed what the server keeps per
	// room (parleyd: 100 by default).
	Replay int `json:"replay"`
	// Common.Duration is how long to send; zero means 30s.
	//
	// Drain bounds the wait for deliveries after the last send and the
	// lanes' work on a backlog of scheduled sends (rate mode); zero means
	// 30s.
	Drain time.Duration `json:"-"`

	// tamper, for tests, sees every room message of the run that reaches
	// a member connection (member counts across rooms; late joiners
	// excluded) and says how many copies to record: 0 loses it, 2
	// duplicates it.
	tamper func(member int, r verify.Received) int
}

func (c *RoomConfig) defaults() {
	if c.Rooms <= 0 {
		c.Rooms = 10
	}
	if c.Members <= 0 {
		c.Members = 200
	}
	if c.Senders <= 0 {
		c.Senders = 2
	}
	if c.Inflight <= 0 {
		c.Inflight = 1
	}
	c.Size = max(c.Size, minBodySize)
	c.Late = max(c.Late, 0)
	if c.Replay <= 0 {
		c.Replay = 50
	}
	if c.Duration <= 0 {
		c.Duration = 30 * time.Second
	}
	if c.Drain <= 0 {
		c.Drain = 30 * time.Second
	}
}

// roomMember is one member connection (or late joiner) and what it got.
type roomMember struct {
	uid    string
	room   int
	sender int // global sender index, or -1
	conn   *liveConn
	st     stream

	// Late joiners only.
	joinedAt time.Time // when JoinRoomOK arrived
	joinLat  time.Duration
	replay   []*wirepb.Message
	mu       sync.Mutex // guards liveIDs
	liveIDs  []string   // msg ids of live messages, in arrival order
}

// Room runs the room scenario. It returns an error only when the run could
// not be set up; a failed verification is a Result with Pass false.
func Room(ctx context.Context, cfg RoomConfig) (*Result, error) {
	cfg.defaults()
	start := time.Now()
	if cfg.Members < 2 || cfg.Senders >= cfg.Members {
		return nil, fmt.Errorf("%d members and %d senders per room: want at least 2 members and fewer senders than members", cfg.Members, cfg.Senders)
	}
	perConn, reserve := 2, reserveFilesInProcess
	if cfg.Addr != "" {
		perConn, reserve = 1, reserveFiles
	}
	total, clampMsg := clampByFiles("room member connections", cfg.Rooms*(cfg.Members+cfg.Late), perConn, reserve)
	if clampMsg != "" {
		cfg.Members = max(total/cfg.Rooms-cfg.Late, cfg.Senders+1)
		clampMsg += fmt.Sprintf(" (%d members per room)", cfg.Members)
		if cfg.Progress != nil {
			fmt.Fprintln(cfg.Progress, "room:", clampMsg)
		}
	}
	t, err := openTarget(ctx, cfg.Common)
	if err != nil {
		return nil, err
	}
	defer t.close()
	res := newResult("room", t, configOf(cfg.Common, cfg))
	if clampMsg != "" {
		res.note("%s", clampMsg)
	}
	R, M, K := cfg.Rooms, cfg.Members, cfg.Senders
	roomID := func(r int) string { return t.user("room", r) }
	nsenders := R * K
	senderUID := func(s int32) string { return t.user(fmt.Sprintf("r%dm", int(s)/K), int(s)%K) }
	conv := func(r int) *wirepb.Conversation {
		return &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_ROOM, Id: roomID(r)}
	}

	var tracks sync.Map // verify.Key -> *fanTrack
	deliverLat := hist.New()
	var untracked atomic.Int64
	// decode turns a room message into what verify checks.
	decode := func(msg *wirepb.Message, r int) (verify.Key, time.Time, bool) {
		k, at, ok := decodeBody(msg.GetBody())
		ok = ok && k.Sender >= 0 && int(k.Sender) < nsenders && int(k.Sender)/K == r &&
			msg.GetFromUser() == senderUID(k.Sender) && msg.GetSeq() == 0 &&
			msg.GetTo().GetType() == wirepb.ConversationType_CONVERSATION_TYPE_ROOM && msg.GetTo().GetId() == roomID(r)
		return k, at, ok
	}
	handler := func(j int, m *roomMember, late bool) func(*wirepb.Message, time.Time) {
		var pos uint64 // arrival position, to name entries in problems; owned by the reader
		return func(msg *wirepb.Message, now time.Time) {
			pos++
			k, at, ok := decode(msg, m.room)
			copies := 1
			if cfg.tamper != nil && ok && !late {
				copies = cfg.tamper(j, verify.Received{Seq: pos, Key: k})
			}
			if ok && !late {
				deliverLat.Record(now.Sub(at))
				if v, found := tracks.Load(k); found {
					tr := v.(*fanTrack)
					tr.n.Add(1)
					for {
						last := tr.last.Load()
						if now.UnixNano() <= last || tr.last.CompareAndSwap(last, now.UnixNano()) {
							break
						}
					}
				} else {
					untracked.Add(1)
				}
			}
			if late {
				m.mu.Lock()
				m.liveIDs = append(m.liveIDs, msg.GetMsgId())
				m.mu.Unlock()
			}
			for range copies {
				m.st.add(verify.Received{Seq: pos, Key: k, Foreign: !ok}, now)
			}
		}
	}

	// 1. Connect and join the members.
	members := make([]*roomMember, 0, R*M)
	for r := range R {
		for i := range M {
			s := -1
			if i < K {
				s = r*K + i
			}
			members = append(members, &roomMember{uid: t.user(fmt.Sprintf("r%dm", r), i), room: r, sender: s})
		}
	}
	connLat, joinLat := hist.New(), hist.New()
	var joined, joinRetries atomic.Int64
	stop := progress(cfg.Progress, "room", func() string {
		return fmt.Sprintf("connecting and joining: %d of %d", joined.Load(), len(members))
	})
	conns, err := dialLiveAll(ctx, len(members), 64, func(ctx context.Context, i int) (*liveConn, error) {
		m := members[i]
		t0 := time.Now()
		c, err := dialLive(ctx, t, m.uid, "d", liveHandlers{room: handler(i, m, false)})
		if err != nil {
			return nil, err
		}
		connLat.Record(time.Since(t0))
		m.conn = c
		t1 := time.Now()
		if _, err := joinWithRetry(ctx, c, roomID(m.room), 0, &joinRetries); err != nil {
			return c, fmt.Errorf("join %s: %w", roomID(m.room), err)
		}
		joinLat.Record(time.Since(t1))
		joined.Add(1)
		return c, nil
	})
	stop()
	if err != nil {
		return nil, fmt.Errorf("connect members: %w", err)
	}
	defer closeLive(conns)
	stopAlive := keepAlive(conns, 20*time.Second)
	defer stopAlive()

	// 2. Send; halfway through, the late joiners join.
	var lates []*roomMember
	for r := range R {
		for j := range cfg.Late {
			lates = append(lates, &roomMember{uid: t.user(fmt.Sprintf("r%dl", r), j), room: r, sender: -1})
		}
	}
	wantPer := int32(M - 1)
	var sendRetries atomic.Int64
	run := newSendRun(sendPlan{
		nsenders:   nsenders,
		recipients: groupIDs(R, roomID),
		convType:   wirepb.ConversationType_CONVERSATION_TYPE_ROOM,
		to:         func(s int, _ int64) int { return s / K },
		send: func(ctx context.Context, s int, _ *wirepb.Conversation, key verify.Key, at time.Time, body []byte) (*wirepb.SendAck, error) {
			tracks.Store(key, &fanTrack{at: at, want: wantPer})
			r, i := s/K, s%K
			return members[r*M+i].conn.sendRetrying(ctx, conv(r), clientMsgID(key), body, &sendRetries)
		},
		rate: cfg.Rate, inflight: cfg.Inflight, window: cfg.Duration, count: int64(cfg.Messages), size: cfg.Size, drain: cfg.Drain,
	})
	delivered := func() int64 {
		var d int64
		for _, m := range members {
			d += m.st.count.Load()
		}
		return d
	}
	sendRate, recvRate := startRate(), startRate()
	var lateJoined atomic.Int64
	stop = progress(cfg.Progress, "room", func() string {
		d := delivered()
		s := fmt.Sprintf("%s delivered %d (%.0f/s)", run.line(&sendRate), d, recvRate.per(d))
		if len(lates) > 0 {
			s += fmt.Sprintf(" late joiners %d of %d", lateJoined.Load(), len(lates))
		}
		return s
	})
	sendDone := make(chan struct{})
	replayLat := hist.New()
	var lateConns []*liveConn
	var lateErr error
	var lateWG sync.WaitGroup
	if len(lates) > 0 {
		lateWG.Go(func() {
			select {
			case <-time.After(cfg.Duration / 2):
			case <-sendDone:
			case <-ctx.Done():
				return
			}
			lateConns, lateErr = dialLiveAll(ctx, len(lates), 64, func(ctx context.Context, i int) (*liveConn, error) {
				m := lates[i]
				c, err := dialLive(ctx, t, m.uid, "d", liveHandlers{room: handler(-1, m, true)})
				if err != nil {
					return nil, err
				}
				m.conn = c
				t0 := time.Now()
				ok, err := joinWithRetry(ctx, c, roomID(m.room), uint32(cfg.Replay), &joinRetries)
				if err != nil {
					return c, fmt.Errorf("late join %s: %w", roomID(m.room), err)
				}
				m.joinedAt = time.Now()
				m.joinLat = m.joinedAt.Sub(t0)
				replayLat.Record(m.joinLat)
				m.replay = ok.GetMessages()
				lateJoined.Add(1)
				return c, nil
			})
		})
	}
	err = run.run(ctx)
	close(sendDone)
	lateWG.Wait()
	sentAt := time.Now()
	defer closeLive(lateConns)
	expected := run.expected()
	memberExpected := func(m *roomMember) []verify.Key {
		if m.sender < 0 {
			return expected[m.room]
		}
		var out []verify.Key
		for _, k := range expected[m.room] {
			if int(k.Sender) != m.sender {
				out = append(out, k)
			}
		}
		return out
	}
	waits := make([]<-chan struct{}, len(members))
	for i, m := range members {
		waits[i] = m.st.expect(len(memberExpected(m)))
	}
	wctx, cancel := context.WithTimeout(ctx, cfg.Drain)
	caughtUp := waitAll(wctx, waits)
	cancel()
	lag := time.Since(sentAt)
	waitQuiet(ctx, delivered)
	stop()
	if err != nil {
		return nil, err
	}

	// 3. Verify.
	var report verify.Report
	for _, m := range members {
		report.Add(m.uid, verify.CheckUnsequenced(m.st.received(), memberExpected(m)))
	}
	lateBad, lateDetail, overlap := 0, "", 0
	minReplay, maxReplay := -1, 0
	if lateErr == nil {
		// The reference stream of each room: its first member that does not
		// send, which was there from the start.
		ref := func(r int) []verify.Received { return members[r*M+K].st.received() }
		// Let the late joiners catch up with the end of their room too.
		waitLate(ctx, lates, ref, cfg.Drain)
		for _, m := range lates {
			o, problem := checkLateJoiner(m, ref(m.room), cfg.Replay, func(msg *wirepb.Message) (verify.Key, bool) {
				k, _, ok := decode(msg, m.room)
				return k, ok
			})
			overlap += o
			if minReplay < 0 || len(m.replay) < minReplay {
				minReplay = len(m.replay)
			}
			maxReplay = max(maxReplay, len(m.replay))
			if problem != "" {
				lateBad++
				if lateDetail == "" {
					lateDetail = m.uid + ": " + problem
				}
			}
		}
	}
	lastLat := hist.New()
	complete, incomplete := 0, 0
	for _, keys := range expected {
		for _, k := range keys {
			v, ok := tracks.Load(k)
			if !ok {
				incomplete++
				continue
			}
			tr := v.(*fanTrack)
			if tr.n.Load() >= tr.want {
				complete++
				lastLat.Record(time.Unix(0, tr.last.Load()).Sub(tr.at))
			} else {
				incomplete++
			}
		}
	}
	dead, deadErr := deadConns(append(append([]*liveConn{}, conns...), lateConns...))

	acked := run.acked.Load()
	sendSecs := run.sendSeconds()
	deliveries := deliverLat.Count()
	res.metric("rooms", float64(R), "")
	res.metric("member connections per room", float64(M), "")
	res.metric("senders per room", float64(K), "")
	if cfg.Rate > 0 {
		res.metric("target rate (all rooms)", cfg.Rate, "msgs/s")
	} else {
		res.metric("target rate (all rooms)", "flat out", "")
	}
	res.metric("in flight per sender", float64(cfg.Inflight), "")
	res.metric("body size", float64(cfg.Size), "B")
	res.metric("scheduled", float64(run.scheduled.Load()), "msgs")
	res.metric("acked", float64(acked), "msgs")
	res.metric("send errors", float64(run.failed.Load()), "")
	res.metric("resends after a temporary refusal", float64(sendRetries.Load()), "")
	if cfg.Rate > 0 {
		res.metric("unsent (behind schedule at the end)", float64(run.unsent.Load()), "msgs")
	}
	res.metric("throughput (acked)", perSec(acked, sendSecs), "msgs/s")
	res.metric("deliveries to members", float64(deliveries), "")
	var lastDelivery int64
	for _, m := range members {
		lastDelivery = max(lastDelivery, m.st.last.Load())
	}
	res.metric("delivery throughput", perSec(deliveries, time.Unix(0, lastDelivery).Sub(run.start).Seconds()), "msgs/s")
	res.metric("messages delivered to every other member", float64(complete), "")
	res.metric("delivery tail after last send", lag.Seconds()*1000, "ms")
	res.metric("join retries (server busy)", float64(joinRetries.Load()), "")
	if len(lates) > 0 {
		res.metric("late joiners", float64(len(lates)), "")
		res.metric("replay asked", float64(cfg.Replay), "msgs")
		res.metric("replayed per late joiner, least", float64(max(minReplay, 0)), "msgs")
		res.metric("replayed per late joiner, most", float64(maxReplay), "msgs")
		res.metric("live messages also in the replay (deduplicated by msg id)", float64(overlap), "")
	}
	res.latency("connect", connLat)
	res.latency("join (no replay)", joinLat)
	res.latency("send→ack", run.ackLat)
	res.latency("send→delivered (each member)", deliverLat)
	res.latency("send→last member delivered", lastLat)
	if len(lates) > 0 {
		res.latency("late join with replay: JoinRoom → JoinRoomOK", replayLat)
	}

	res.check("sends", run.failed.Load() == 0, "%d acked, %d failed%s", acked, run.failed.Load(), firstOf(run.sendErrors()))
	res.check("members caught up", caughtUp == len(members), "%d of %d members got every acknowledged message within %v", caughtUp, len(members), cfg.Drain)
	res.check("exactly once, in sender order", report.OK(), "%s", report)
	res.check("fan-out complete", incomplete == 0 && untracked.Load() == 0, "%d of %d acknowledged messages reached all %d other members of their room (%d deliveries of untracked messages)",
		complete, complete+incomplete, wantPer, untracked.Load())
	if len(lates) > 0 {
		res.check("late joiners", lateErr == nil && lateBad == 0, "%d of %d: replay then live is the room's latest messages in room order, no gap, nothing twice%s%s",
			len(lates)-lateBad, len(lates), prefixed(lateDetail), errSuffix(lateErr))
	}
	res.check("connections alive", dead == 0, "%d of %d connections ended during the run%s", dead, len(conns)+len(lateConns), errSuffix(deadErr))
	if n := sendRetries.Load(); n > 0 {
		res.note("the server refused sends %d times as temporary (RATE_LIMITED: a parleyd's per-user --send-rate; or UNAVAILABLE); each was resent with the same client_msg_id, and send→ack includes the wait", n)
	}
	if cfg.Rate > 0 && run.unsent.Load() > 0 {
		res.note("the server did not keep up with %.0f msgs/s: %d scheduled sends were still queued %v after the window; they were not sent, and send→ack counts each at the lower bound of its latency", cfg.Rate, run.unsent.Load(), cfg.Drain)
	}
	res.note("a member never gets its own message back (it has the SendAck); %s; the load generator runs on the same %d CPUs as the server", latencyFrom(cfg.Rate), numCPU())
	return res.finish(start), nil
}

// joinWithRetry joins a room, retrying temporary refusals (the edge answers
// UNAVAILABLE when too many replays run at once) for up to 30s; retries
// counts them.
func joinWithRetry(ctx context.Context, c *liveConn, roomID string, replay uint32, retries *atomic.Int64) (*wirepb.JoinRoomOK, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var ok *wirepb.JoinRoomOK
	err := retryTemporary(ctx, 5*time.Millisecond, 200*time.Millisecond, retries, func() (err error) {
		ok, err = c.joinRoom(ctx, roomID, replay)
		return err
	})
	return ok, err
}

// waitLate waits, at most timeout, until every late joiner's latest live
// message is the latest message of its room's reference stream.
func waitLate(ctx context.Context, lates []*roomMember, ref func(room int) []verify.Received, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for _, m := range lates {
		r := ref(m.room)
		if len(r) == 0 {
			continue
		}
		want := r[len(r)-1].Key
		for time.Now().Before(deadline) && ctx.Err() == nil {
			got := m.st.received()
			if len(got) > 0 && got[len(got)-1].Key == want {
				break
			}
			if len(got) == 0 && len(m.replay) > 0 {
				if k, _, ok := decodeBody(m.replay[len(m.replay)-1].GetBody()); ok && k == want {
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// checkLateJoiner checks what a late joiner got against ref, the room's
// whole stream as a member that was there from the start and never sent
// got it: its replay followed by its live messages (without those already
// in the replay, which the protocol allows) must be a suffix of ref, and
// the replay must hold `replay` messages unless the room had fewer when it
// joined. It returns how many live messages repeated the replay.
func checkLateJoiner(m *roomMember, ref []verify.Received, replay int, decode func(*wirepb.Message) (verify.Key, bool)) (overlap int, problem string) {
	inReplay := make(map[string]bool, len(m.replay))
	var combined []verify.Key
	for _, msg := range m.replay {
		k, ok := decode(msg)
		if !ok {
			return 0, fmt.Sprintf("replayed message %s is not a message of this run", msg.GetMsgId())
		}
		if inReplay[msg.GetMsgId()] {
			return 0, fmt.Sprintf("message %s twice in the replay", msg.GetMsgId())
		}
		inReplay[msg.GetMsgId()] = true
		combined = append(combined, k)
	}
	live := m.st.received()
	m.mu.Lock()
	ids := append([]string(nil), m.liveIDs...)
	m.mu.Unlock()
	for i, r := range live {
		if r.Foreign {
			return overlap, fmt.Sprintf("live message %d is not a message of this run", i+1)
		}
		if inReplay[ids[i]] {
			overlap++
			continue
		}
		combined = append(combined, r.Key)
	}
	if len(combined) > len(ref) {
		return overlap, fmt.Sprintf("got %d messages (replay %d + live), more than the %d the room had", len(combined), len(m.replay), len(ref))
	}
	tail := ref[len(ref)-len(combined):]
	for i, k := range combined {
		if tail[i].Key != k {
			return overlap, fmt.Sprintf("message %d of replay+live is %s; the room's order has %s there (replay %d, live %d)", i+1, k, tail[i].Key, len(m.replay), len(live))
		}
	}
	if len(m.replay) < replay && len(combined) < len(ref) {
		return overlap, fmt.Sprintf("replay of %d messages (asked %d) misses the room's %d earlier ones", len(m.replay), replay, len(ref)-len(combined))
	}
	return overlap, ""
}
