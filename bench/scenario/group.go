package scenario

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/bench/hist"
	"github.com/parleyim/parley/bench/verify"
	"github.com/parleyim/parley/schemas/wirepb"
)

// GroupConfig configures the group scenario: Groups groups of Members users
// each. Every member has a device "d" online over its own raw connection,
// except the Offline fraction, which signs in only after the sends and
// syncs its mailbox. Senders members of each group also have a second
// device, "s", that sends to the group (one sender's device never gets a
// push of its own send: its seq comes in the SendAck, and its other device
// "d" gets the push like every member).
type GroupConfig struct {
	Common `json:"-"`
	// Groups is the number of groups; zero means 1.
	Groups int `json:"groups"`
	// Members is the number of members per group, owner included; zero
	// means 1000. It is lowered, with a note, to what the open-file limit
	// allows.
	Members int `json:"members"`
	// Senders is the number of members per group that send; zero means 4.
	// They are always online.
	Senders int `json:"senders"`
	// Offline is the fraction of each group's members that is offline while
	// the messages are sent (0 ≤ Offline < 1); they sign in at the end and
	// must sync every message exactly once, in seq order.
	Offline float64 `json:"offline"`
	// Rate is the target total send rate over all groups in messages per
	// second (open loop); zero means flat out, each sender running
	// Inflight concurrent sends.
	Rate float64 `json:"rate"`
	// Messages caps the number of messages sent in total; zero means no
	// cap (Rate × Duration, or flat out for Duration).
	Messages int `json:"messages"`
	// Inflight is the number of concurrent sends per sender; zero means 4.
	Inflight int `json:"inflight"`
	// Size is the message body size in bytes; zero means 64, the minimum.
	Size int `json:"size"`
	// Common.Duration is how long to send; zero means 30s.
	//
	// Drain bounds the wait for deliveries after the last send, the lanes'
	// work on a backlog of scheduled sends (rate mode), the wait for the
	// groups' creation notices and the offline members' sync; zero means
	// 30s.
	Drain time.Duration `json:"-"`

	// For tests. callParams caps a group.create or group.members.add
	// Call's member list in bytes; zero means maxCallParams. tamper, if set,
	// sees every push of a message of the run to an online member's device
	// (member counts across groups) and says how many copies to record:
	// 0 loses it, 2 duplicates it.
	callParams int
	tamper     func(member int, r verify.Received) int
}

func (c *GroupConfig) defaults() {
	if c.Groups <= 0 {
		c.Groups = 1
	}
	if c.Members <= 0 {
		c.Members = 1000
	}
	if c.Senders <= 0 {
		c.Senders = 4
	}
	if c.Inflight <= 0 {
		c.Inflight = 4
	}
	c.Size = max(c.Size, minBodySize)
	if c.Duration <= 0 {
		c.Duration = 30 * time.Second
	}
	if c.Drain <= 0 {
		c.Drain = 30 * time.Second
	}
	if c.callParams <= 0 {
		c.callParams = maxCallParams
	}
}

// maxCallParams keeps a group.create or group.members.add Call under the
// server's default 32 KiB limit on params_json.
const maxCallParams = 30 << 10

// groupTarget is the target: a message to a 1,000-member group with
// every member online reaches all of them within 200 ms at p99.
const (
	groupTargetMembers = 1000
	groupTargetP99     = 200 * time.Millisecond
)

// fanTrack follows one group message to the members it must reach.
type fanTrack struct {
	at   time.Time // scheduled send time; immutable
	want int32     // online members other than the sender; immutable
	n    atomic.Int32
	last atomic.Int64 // unix nanos of the latest delivery
}

// groupMember is one member's online device "d".
type groupMember struct {
	uid     string
	group   int
	index   int // in its group; 0 is the owner
	conn    *liveConn
	st      stream
	firstSy atomic.Int64 // unix nanos of the first system push
	sysN    atomic.Int64 // system pushes
}

// Group runs the group scenario. It returns an error only when the run
// could not be set up; a failed verification is a Result with Pass false.
func Group(ctx context.Context, cfg GroupConfig) (*Result, error) {
	cfg.defaults()
	start := time.Now()
	if cfg.Offline < 0 || cfg.Offline >= 1 {
		return nil, fmt.Errorf("offline fraction %v: want 0 ≤ offline < 1", cfg.Offline)
	}
	if cfg.Members < 2 {
		return nil, fmt.Errorf("%d members per group: want at least 2", cfg.Members)
	}
	// Online connections: every online member's "d" plus each sender's "s".
	// Clamp the members per group to the open-file limit.
	perMember, reserve := 2, reserveFilesInProcess // client + server side
	if cfg.Addr != "" {
		perMember, reserve = 1, reserveFiles
	}
	total, clampMsg := clampByFiles("group member connections", cfg.Groups*(cfg.Members+cfg.Senders), perMember, reserve)
	if clampMsg != "" {
		cfg.Members = max(total/cfg.Groups-cfg.Senders, 2)
		clampMsg += fmt.Sprintf(" (%d members per group)", cfg.Members)
		if cfg.Progress != nil {
			fmt.Fprintln(cfg.Progress, "group:", clampMsg)
		}
	}
	offline := int(math.Floor(cfg.Offline * float64(cfg.Members)))
	online := cfg.Members - offline
	if cfg.Senders > online || online < 2 {
		return nil, fmt.Errorf("%d senders but %d of %d members online per group: want at least 2 online and no more senders than online members",
			cfg.Senders, online, cfg.Members)
	}
	t, err := openTarget(ctx, cfg.Common)
	if err != nil {
		return nil, err
	}
	defer t.close()
	res := newResult("group", t, configOf(cfg.Common, cfg))
	if clampMsg != "" {
		res.note("%s", clampMsg)
	}
	G, S, K := cfg.Groups, cfg.Members, cfg.Senders
	groupID := func(g int) string { return t.user("grp", g) }
	memberUID := func(g, i int) string { return t.user(fmt.Sprintf("g%dm", g), i) }
	nsenders := G * K
	senderUID := func(s int32) string { return memberUID(int(s)/K, int(s)%K) }

	// Which create/add call adds each member: the owner (member 0) and the
	// first members go in group.create, the rest in group.members.add calls,
	// each under the params limit.
	chunks := make([][][]string, G) // per group, per call: the members it adds
	chunkOf := make([][]int, G)     // per group, per member: its call
	for g := range G {
		chunkOf[g] = make([]int, S)
		var cur []string
		size := 64
		for i := 1; i < S; i++ {
			uid := memberUID(g, i)
			if size+len(uid)+3 > cfg.callParams {
				chunks[g] = append(chunks[g], cur)
				cur, size = nil, 64
			}
			cur = append(cur, uid)
			size += len(uid) + 3
			chunkOf[g][i] = len(chunks[g])
		}
		chunks[g] = append(chunks[g], cur)
	}
	// A member gets the group.created notice if it was in the create call,
	// and one group.members_added notice for every add call from its own on.
	sysWant := func(g, i int) int { return len(chunks[g]) - chunkOf[g][i] }

	// 1. Connect the online members ("d") and the senders ("s").
	var tracks sync.Map // verify.Key -> *fanTrack
	deliverLat := hist.New()
	var untracked, noticeBytes atomic.Int64 // noticeBytes: the largest system message body
	members := make([]*groupMember, 0, G*online)
	for g := range G {
		for i := range online {
			members = append(members, &groupMember{uid: memberUID(g, i), group: g, index: i})
		}
	}
	pushHandler := func(j int, m *groupMember) func(*wirepb.Message, time.Time) {
		return func(msg *wirepb.Message, now time.Time) {
			rec, k, at := classifyGroupPush(msg, groupID(m.group), nsenders, senderUID)
			copies := 1
			if cfg.tamper != nil && !rec.System && !rec.Foreign {
				copies = cfg.tamper(j, rec)
			}
			switch {
			case rec.System:
				m.firstSy.CompareAndSwap(0, now.UnixNano())
				m.sysN.Add(1)
				for n := int64(len(msg.GetBody())); ; {
					old := noticeBytes.Load()
					if n <= old || noticeBytes.CompareAndSwap(old, n) {
						break
					}
				}
			case !rec.Foreign && senderUID(k.Sender) != m.uid && int(k.Sender)/K == m.group:
				deliverLat.Record(now.Sub(at))
				if v, ok := tracks.Load(k); ok {
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
			for range copies {
				m.st.add(rec, now)
			}
		}
	}
	connLat := hist.New()
	var dialed atomic.Int64
	nconns := len(members) + nsenders
	stop := progress(cfg.Progress, "group", func() string {
		return fmt.Sprintf("connecting: %d of %d", dialed.Load(), nconns)
	})
	dconns, err := dialLiveAll(ctx, len(members), 64, func(ctx context.Context, i int) (*liveConn, error) {
		t0 := time.Now()
		c, err := dialLive(ctx, t, members[i].uid, "d", liveHandlers{push: pushHandler(i, members[i])})
		if err == nil {
			connLat.Record(time.Since(t0))
			members[i].conn = c
			dialed.Add(1)
		}
		return c, err
	})
	if err != nil {
		stop()
		return nil, fmt.Errorf("connect members: %w", err)
	}
	defer closeLive(dconns)
	sendStreams := make([]*stream, nsenders)
	sconns, err := dialLiveAll(ctx, nsenders, 64, func(ctx context.Context, s int) (*liveConn, error) {
		st := &stream{}
		sendStreams[s] = st
		t0 := time.Now()
		c, err := dialLive(ctx, t, senderUID(int32(s)), "s", liveHandlers{push: func(msg *wirepb.Message, now time.Time) {
			st.add(verify.Received{Seq: msg.GetSeq()}, now)
		}})
		if err == nil {
			connLat.Record(time.Since(t0))
			dialed.Add(1)
		}
		return c, err
	})
	stop()
	if err != nil {
		return nil, fmt.Errorf("connect senders: %w", err)
	}
	defer closeLive(sconns)
	all := append(append([]*liveConn{}, dconns...), sconns...)
	stopAlive := keepAlive(all, 20*time.Second)
	defer stopAlive()
	for _, c := range all {
		if c.signIn.GetMaxSeq() != 0 {
			return nil, fmt.Errorf("%s/%s signed in with mailbox max %d; want a fresh user", c.uid, c.device, c.signIn.GetMaxSeq())
		}
	}

	// 2. Create the groups: each owner (member 0) over its "s" connection.
	createStart := time.Now()
	createLat := hist.New()
	var createErr error
	var cmu sync.Mutex
	var cwg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for g := range G {
		cwg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			owner := sconns[g*K]
			t0 := time.Now()
			err := owner.apiCall(ctx, "group.create", map[string]any{
				"group_id": groupID(g), "name": fmt.Sprintf("bench group %d", g), "members": chunks[g][0],
			}, nil)
			for c := 1; err == nil && c < len(chunks[g]); c++ {
				err = owner.apiCall(ctx, "group.members.add", map[string]any{"group_id": groupID(g), "users": chunks[g][c]}, nil)
			}
			createLat.Record(time.Since(t0))
			if err != nil {
				cmu.Lock()
				if createErr == nil {
					createErr = fmt.Errorf("create group %s: %w", groupID(g), err)
				}
				cmu.Unlock()
			}
		})
	}
	cwg.Wait()
	if createErr != nil {
		return nil, createErr
	}
	// Wait until every online device has its group notices, so that the
	// sends start on groups every member knows about.
	noticed := func() int {
		n := 0
		for _, m := range members {
			if int(m.sysN.Load()) >= sysWant(m.group, m.index) {
				n++
			}
		}
		return n
	}
	stop = progress(cfg.Progress, "group", func() string {
		return fmt.Sprintf("creating %d groups: %d of %d online members notified", G, noticed(), len(members))
	})
	notifyBy := time.Now().Add(cfg.Drain)
	for noticed() < len(members) && time.Now().Before(notifyBy) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	notifiedAll := time.Since(createStart)
	notifyLat := hist.New()
	for _, m := range members {
		if ns := m.firstSy.Load(); ns != 0 {
			notifyLat.Record(time.Unix(0, ns).Sub(createStart))
		}
	}
	if n := noticed(); n < len(members) {
		res.check("group notices", false, "%d of %d online members got their group notices (system messages) within %v", n, len(members), cfg.Drain)
		return res.finish(start), nil
	}

	// 3. Send.
	wantPer := int32(online - 1)
	var sendRetries atomic.Int64
	run := newSendRun(sendPlan{
		nsenders:   nsenders,
		recipients: groupIDs(G, groupID),
		convType:   wirepb.ConversationType_CONVERSATION_TYPE_GROUP,
		to:         func(s int, _ int64) int { return s / K },
		send: func(ctx context.Context, s int, to *wirepb.Conversation, key verify.Key, at time.Time, body []byte) (*wirepb.SendAck, error) {
			tracks.Store(key, &fanTrack{at: at, want: wantPer})
			return sconns[s].sendRetrying(ctx, to, clientMsgID(key), body, &sendRetries)
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
	stop = progress(cfg.Progress, "group", func() string {
		d := delivered()
		return fmt.Sprintf("%s delivered %d (%.0f/s)", run.line(&sendRate), d, recvRate.per(d))
	})
	err = run.run(ctx)
	sentAt := time.Now()
	expected := run.expected()
	waits := make([]<-chan struct{}, len(members))
	for i, m := range members {
		waits[i] = m.st.expect(len(expected[m.group]))
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

	// 4. Verify the online devices against their mailboxes.
	vctx, cancel := context.WithTimeout(ctx, cfg.Drain)
	report, sysBad := verifyGroupMembers(vctx, members, expected, func(m *groupMember) int {
		return sysWant(m.group, m.index)
	})
	senderBad, senderDetail := verifySenderDevices(vctx, sconns, sendStreams, run)
	cancel()

	// 5. The offline members sign in and sync.
	var offReport verify.Report
	var offErr error
	var offSynced atomic.Int64
	offLat := hist.New()
	if offline > 0 {
		var offMembers []offlineMember
		for g := range G {
			for i := online; i < S; i++ {
				offMembers = append(offMembers, offlineMember{uid: memberUID(g, i), group: g, sys: sysWant(g, i)})
			}
		}
		stop = progress(cfg.Progress, "group", func() string {
			return fmt.Sprintf("offline members syncing: %d of %d", offSynced.Load(), len(offMembers))
		})
		offReport, offErr = syncOffline(ctx, t, offMembers, expected, nsenders, senderUID, groupID, cfg.Drain, offLat, &offSynced)
		stop()
	}
	dead, deadErr := deadConns(all)

	// Fan-out per message: send → the last online member delivered.
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

	acked := run.acked.Load()
	sendSecs := run.sendSeconds()
	deliveries := deliverLat.Count()
	res.metric("groups", float64(G), "")
	res.metric("members per group", float64(S), "")
	res.metric("online members per group", float64(online), "")
	res.metric("offline members per group", float64(offline), "")
	res.metric("senders per group", float64(K), "")
	if cfg.Rate > 0 {
		res.metric("target rate (all groups)", cfg.Rate, "msgs/s")
	} else {
		res.metric("target rate (all groups)", "flat out", "")
	}
	res.metric("in flight per sender", float64(cfg.Inflight), "")
	res.metric("body size", float64(cfg.Size), "B")
	res.metric("group create calls per group", float64(len(chunks[0])), "")
	res.metric("groups created, all online members notified", notifiedAll.Seconds()*1000, "ms")
	res.metric("largest group notice (system message body)", float64(noticeBytes.Load()), "B")
	res.metric("scheduled", float64(run.scheduled.Load()), "msgs")
	res.metric("acked", float64(acked), "msgs")
	res.metric("send errors", float64(run.failed.Load()), "")
	res.metric("resends after a temporary refusal", float64(sendRetries.Load()), "")
	if cfg.Rate > 0 {
		res.metric("unsent (behind schedule at the end)", float64(run.unsent.Load()), "msgs")
	}
	res.metric("throughput (acked)", perSec(acked, sendSecs), "msgs/s")
	res.metric("deliveries to other online members", float64(deliveries), "")
	var lastDelivery int64
	for _, m := range members {
		lastDelivery = max(lastDelivery, m.st.last.Load())
	}
	res.metric("delivery throughput", perSec(deliveries, time.Unix(0, lastDelivery).Sub(run.start).Seconds()), "pushes/s")
	res.metric("messages delivered to every online member", float64(complete), "")
	res.metric("delivery tail after last send", lag.Seconds()*1000, "ms")
	res.latency("connect", connLat)
	res.latency("group create (all calls of a group)", createLat)
	res.latency("group create → online member notified", notifyLat)
	res.latency("send→ack", run.ackLat)
	res.latency("send→delivered (each online member)", deliverLat)
	res.latency("send→last online member delivered", lastLat)
	if offline > 0 {
		res.latency("offline member: sign-in → mailbox synced", offLat)
	}

	errs := run.sendErrors()
	res.check("sends", run.failed.Load() == 0, "%d acked, %d failed%s", acked, run.failed.Load(), firstOf(errs))
	res.check("members caught up", caughtUp == len(members), "%d of %d online members got every acknowledged message within %v", caughtUp, len(members), cfg.Drain)
	res.check("exactly once, in seq order", report.OK(), "online members: %s", report)
	res.check("group notices", sysBad == 0, "%d of %d online members got exactly their group notices (%d system messages in all)", len(members)-sysBad, len(members), report.System)
	res.check("sender devices", senderBad == 0, "%d of %d sending devices: pushes in seq order, and pushes plus SendAcks exactly 1..max%s", nsenders-senderBad, nsenders, prefixed(senderDetail))
	res.check("fan-out complete", incomplete == 0 && untracked.Load() == 0, "%d of %d acknowledged messages reached all %d other online members of their group (%d deliveries of untracked messages)",
		complete, complete+incomplete, wantPer, untracked.Load())
	if offline > 0 {
		res.check("offline members synced", offErr == nil && offReport.OK(), "%d of %d synced: %s%s", offSynced.Load(), G*offline, offReport, errSuffix(offErr))
	}
	res.check("connections alive", dead == 0, "%d of %d connections ended during the run%s", dead, len(all), errSuffix(deadErr))
	if n := sendRetries.Load(); n > 0 {
		res.note("the server refused sends %d times as temporary (RATE_LIMITED: a parleyd's per-user --send-rate; or UNAVAILABLE); each was resent with the same client_msg_id, and send→ack includes the wait", n)
	}
	if cfg.Rate > 0 && run.unsent.Load() > 0 {
		res.note("the server did not keep up with %.0f msgs/s: %d scheduled sends were still queued %v after the window; they were not sent, and send→ack counts each at the lower bound of its latency", cfg.Rate, run.unsent.Load(), cfg.Drain)
	}
	p99 := time.Duration(deliverLat.Summary().P99Ms * float64(time.Millisecond))
	verdict := "met"
	if p99 > groupTargetP99 || caughtUp < len(members) {
		verdict = "NOT met"
	}
	res.note("target: a message to a %d-member group with every member online reaches all of them within %v at p99; this run (%d members, %d online): p99 send→delivered %v, p99 send→last member %v: %s",
		groupTargetMembers, groupTargetP99, S, online, p99.Round(100*time.Microsecond),
		time.Duration(lastLat.Summary().P99Ms*float64(time.Millisecond)).Round(100*time.Microsecond), verdict)
	res.note("%s; members' deliveries exclude the sender's own other device; the load generator runs on the same %d CPUs as the server", latencyFrom(cfg.Rate), numCPU())
	return res.finish(start), nil
}

func groupIDs(n int, id func(int) string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = id(i)
	}
	return out
}

// clientMsgID is the idempotency key of the send named k.
func clientMsgID(k verify.Key) string {
	return fmt.Sprintf("%d.%d.%d", k.Sender, k.Lane.Lane, k.N)
}

// classifyGroupPush turns a pushed mailbox entry into what verify checks:
// a system message, one of the generator's messages to groupID from the
// sender its body names, or a foreign entry.
func classifyGroupPush(msg *wirepb.Message, groupID string, nsenders int, senderUID func(int32) string) (verify.Received, verify.Key, time.Time) {
	rec := verify.Received{Seq: msg.GetSeq()}
	if msg.GetContentType() == wirepb.ContentType_CONTENT_TYPE_SYSTEM {
		rec.System = msg.GetTo().GetId() == groupID
		rec.Foreign = !rec.System
		return rec, verify.Key{}, time.Time{}
	}
	k, at, ok := decodeBody(msg.GetBody())
	ok = ok && k.Sender >= 0 && int(k.Sender) < nsenders && msg.GetFromUser() == senderUID(k.Sender) &&
		msg.GetTo().GetType() == wirepb.ConversationType_CONVERSATION_TYPE_GROUP && msg.GetTo().GetId() == groupID
	rec.Key, rec.Foreign = k, !ok
	return rec, k, at
}

// verifyGroupMembers asks every online member's mailbox max (a Sync past
// the end reads no entries) and checks the device's pushes against
// expected[group]: every message once, seqs contiguous from 1 up to the
// max, lanes in order. sysBad counts devices whose number of system
// messages is not sysWant.
func verifyGroupMembers(ctx context.Context, members []*groupMember, expected [][]verify.Key, sysWant func(*groupMember) int) (verify.Report, int) {
	reports := make([]verify.Report, len(members))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i, m := range members {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			b, err := m.conn.syncPage(ctx, math.MaxUint64, 1)
			var mailboxMax uint64
			if err == nil {
				mailboxMax = b.GetMaxSeq()
			}
			reports[i] = verify.Check(m.st.received(), expected[m.group], 1, mailboxMax)
			if err != nil {
				reports[i].SeqErrors++
				reports[i].Problems = append(reports[i].Problems, "mailbox max: "+err.Error())
			}
		})
	}
	wg.Wait()
	var total verify.Report
	sysBad := 0
	for i, rep := range reports {
		total.Add(members[i].uid, rep)
		if rep.System != sysWant(members[i]) {
			sysBad++
		}
	}
	return total, sysBad
}

// verifySenderDevices checks each sending device: it gets pushes of
// everything but its own sends, whose seqs come in SendAcks, so its pushes
// must arrive in increasing seq order and, with its acked seqs, make up
// exactly 1..max of the mailbox, each seq once.
func verifySenderDevices(ctx context.Context, conns []*liveConn, streams []*stream, run *sendRun) (bad int, detail string) {
	for s, c := range conns {
		var acks []uint64
		for _, ll := range run.lanes[s] {
			for _, a := range ll.acks {
				acks = append(acks, a.seq)
			}
		}
		var mailboxMax uint64
		b, err := c.syncPage(ctx, math.MaxUint64, 1)
		if err == nil {
			mailboxMax = b.GetMaxSeq()
		}
		problem := ""
		if err != nil {
			problem = "mailbox max: " + err.Error()
		} else {
			problem = checkSenderDevice(streams[s].received(), acks, mailboxMax)
		}
		if problem != "" {
			bad++
			if detail == "" {
				detail = fmt.Sprintf("%s/%s: %s", c.uid, c.device, problem)
			}
		}
	}
	return bad, detail
}

// checkSenderDevice returns what is wrong with a sending device's pushes
// and acked seqs against its mailbox max, or "".
func checkSenderDevice(pushes []verify.Received, acks []uint64, mailboxMax uint64) string {
	seen := make([]bool, mailboxMax+1)
	var prev uint64
	for _, p := range pushes {
		switch {
		case p.Seq <= prev:
			return fmt.Sprintf("push of seq %d after seq %d", p.Seq, prev)
		case p.Seq > mailboxMax:
			return fmt.Sprintf("push of seq %d beyond the mailbox max %d", p.Seq, mailboxMax)
		}
		prev = p.Seq
		seen[p.Seq] = true
	}
	for _, a := range acks {
		switch {
		case a == 0 || a > mailboxMax:
			return fmt.Sprintf("SendAck seq %d outside the mailbox 1..%d", a, mailboxMax)
		case seen[a]:
			return fmt.Sprintf("seq %d both pushed and acked, or acked twice", a)
		}
		seen[a] = true
	}
	for q := uint64(1); q <= mailboxMax; q++ {
		if !seen[q] {
			return fmt.Sprintf("seq %d of %d neither pushed nor acked", q, mailboxMax)
		}
	}
	return ""
}

// offlineMember is a member that signs in only after the sends.
type offlineMember struct {
	uid   string
	group int
	sys   int // system messages its mailbox must hold
}

// syncOffline signs in every offline member's device "d" once its mailbox
// holds everything (sys system messages and the acknowledged messages of
// its group), reads the whole mailbox with Sync and checks it. lat records
// each member's time from sign-in to the last page; synced counts the
// members done.
func syncOffline(ctx context.Context, t *target, members []offlineMember, expected [][]verify.Key, nsenders int,
	senderUID func(int32) string, groupID func(int) string, timeout time.Duration, lat *hist.Recorder, synced *atomic.Int64) (verify.Report, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	reports := make([]verify.Report, len(members))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, 32)
	for i, m := range members {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			want := uint64(m.sys + len(expected[m.group]))
			got, err := syncMailbox(ctx, t, m.uid, want, lat)
			var rep verify.Report
			if err == nil {
				recs := make([]verify.Received, len(got.msgs))
				for j, msg := range got.msgs {
					recs[j], _, _ = classifyGroupPush(msg, groupID(m.group), nsenders, senderUID)
				}
				rep = verify.Check(recs, expected[m.group], 1, got.max)
				if got.pushes > 0 {
					rep.Unexpected += got.pushes
					rep.Problems = append(rep.Problems, fmt.Sprintf("%d pushes after sign-in, when every message was committed already", got.pushes))
				}
				if rep.System != m.sys {
					rep.Unexpected++
					rep.Problems = append(rep.Problems, fmt.Sprintf("%d system messages; want %d", rep.System, m.sys))
				}
			}
			mu.Lock()
			defer mu.Unlock()
			reports[i] = rep
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", m.uid, err)
			}
			if err == nil {
				synced.Add(1)
			}
		})
	}
	wg.Wait()
	var total verify.Report
	for i, rep := range reports {
		total.Add(members[i].uid, rep)
	}
	return total, firstErr
}

// syncedMailbox is a whole mailbox read with Sync.
type syncedMailbox struct {
	msgs   []*wirepb.Message
	max    uint64 // max seq the last page reported
	pushes int    // pushes that arrived meanwhile
}

// syncMailbox waits (signing in again every 50ms) until uid's mailbox max
// reaches want, then reads the mailbox from seq 1 in pages. lat records
// the time from the last sign-in to the last page.
func syncMailbox(ctx context.Context, t *target, uid string, want uint64, lat *hist.Recorder) (syncedMailbox, error) {
	var out syncedMailbox
	var pushes atomic.Int64
	for {
		t0 := time.Now()
		c, err := dialLive(ctx, t, uid, "d", liveHandlers{push: func(*wirepb.Message, time.Time) { pushes.Add(1) }})
		if err != nil {
			return out, err
		}
		if have := c.signIn.GetMaxSeq(); have < want {
			c.close()
			select {
			case <-ctx.Done():
				return out, fmt.Errorf("mailbox max %d of %d: %w", have, want, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		defer c.close()
		var after uint64
		for {
			b, err := c.syncPage(ctx, after, 1000)
			if err != nil {
				return out, fmt.Errorf("sync after %d: %w", after, err)
			}
			out.msgs = append(out.msgs, b.GetMessages()...)
			out.max = b.GetMaxSeq()
			if n := len(b.GetMessages()); n > 0 {
				after = b.GetMessages()[n-1].GetSeq()
			}
			if !b.GetHasMore() {
				break
			}
			if len(b.GetMessages()) == 0 {
				return out, fmt.Errorf("sync after %d: an empty page that has more", after)
			}
		}
		lat.Record(time.Since(t0))
		out.pushes = int(pushes.Load())
		return out, nil
	}
}
