package client

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/schemas/wirepb"
)

// fakeServer speaks the Parley wire protocol over real TCP and WebSocket
// listeners with in-memory mailboxes. Its framing is written independently
// of the client's so the two check each other. A token is "tok:<uid>".
//
// Hooks are set by newFakeServer's setup functions, before the listeners
// start, and are read-only afterwards.
type fakeServer struct {
	t      testing.TB
	ln     net.Listener
	ws     *httptest.Server
	tcpURL string
	wsURL  string

	// Hooks; nil means default behaviour.
	heartbeatMs uint32
	syncLimit   int // caps every Sync page when > 0
	// onSend decides what happens to the n-th Send (from 1): return sendOK
	// to process it, or a non-nil Error to answer with.
	onSend    func(n int, s *wirepb.Send) (sendAction, *wirepb.Error)
	muteFirst bool // the first connection of each device ignores everything after sign-in
	// skipPush drops the push of m to a device.
	skipPush func(uid, dev string, m *wirepb.Message) bool
	dupPush  bool // push every entry twice
	// onJoin runs when uid's n-th JoinRoom of room (from 1) arrives, after
	// the connection is in the room and before the replay is read; a
	// non-nil Error refuses the join.
	onJoin func(uid, room string, n int) *wirepb.Error
	// onCall answers a Call: a result JSON, or an Error; kill closes the
	// connection without a reply. Nil answers every call with "{}".
	onCall func(c *wirepb.Call) (result string, e *wirepb.Error, kill bool)

	mu      sync.Mutex // guards the following
	boxes   map[string][]*wirepb.Message
	acks    map[string]*wirepb.SendAck // uid/device/client msg id
	conns   map[*fakeConn]bool
	sends   []string // client msg ids of every Send received, in order
	syncs   []uint64 // after_seq of every Sync received, in order
	signIns map[string]int
	acked   map[string]uint64 // uid/device → ack cursor
	msgID   int
	groups  map[string][]string           // group id → member uids
	rooms   map[string][]*wirepb.Message  // room id → history, oldest first
	inRoom  map[string]map[*fakeConn]bool // room id → joined connections
	joins   map[string]int                // uid/room → JoinRooms received
	leaves  []string                      // "uid room" of every LeaveRoom
	calls   []*wirepb.Call                // every Call received

	events chan string // "signin uid dev", "ack uid dev seq"; never blocks the server
}

type sendAction int

const (
	sendOK        sendAction = iota
	sendDrop                 // ignore the Send: no store, no reply
	sendNoReply              // store, but do not reply
	sendStoreKill            // store, then close the connection without a reply
)

type fakeConn struct {
	s        *fakeServer
	uid, dev string
	wmu      sync.Mutex
	writeFn  func(*wirepb.Frame) error
	closeFn  func() error
	mute     bool // ignore every frame after sign-in (tests heartbeats)
}

func (fc *fakeConn) write(f *wirepb.Frame) error {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	return fc.writeFn(f)
}

// newFakeCore returns a fakeServer without listeners: feed it connections
// with serveTCP (net.Pipe inside a synctest bubble).
func newFakeCore(t testing.TB) *fakeServer {
	return &fakeServer{
		t:       t,
		boxes:   make(map[string][]*wirepb.Message),
		acks:    make(map[string]*wirepb.SendAck),
		conns:   make(map[*fakeConn]bool),
		signIns: make(map[string]int),
		acked:   make(map[string]uint64),
		events:  make(chan string, 1000),
		groups:  make(map[string][]string),
		rooms:   make(map[string][]*wirepb.Message),
		inRoom:  make(map[string]map[*fakeConn]bool),
		joins:   make(map[string]int),
	}
}

// newFakeServer returns a fakeServer listening on loopback TCP (tcpURL) and
// WebSocket (wsURL), closed by t.Cleanup. setup, if any, sets hooks before
// the listeners start.
func newFakeServer(t testing.TB, setup ...func(*fakeServer)) *fakeServer {
	t.Helper()
	s := newFakeCore(t)
	for _, f := range setup {
		f(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	s.tcpURL = "tcp://" + ln.Addr().String()
	go s.acceptLoop()
	up := websocket.Upgrader{Subprotocols: []string{"parley.proto", "parley.json"}}
	s.ws = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws" {
			http.NotFound(w, r)
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		s.serveWS(c)
	}))
	s.wsURL = "ws" + strings.TrimPrefix(s.ws.URL, "http") + "/ws"
	t.Cleanup(s.close)
	return s
}

func (s *fakeServer) close() {
	s.ln.Close()
	s.kickAll("")
	s.ws.CloseClientConnections()
	s.ws.Close()
}

func (s *fakeServer) acceptLoop() {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.serveTCP(nc)
	}
}

// serveTCP serves one TCP (or net.Pipe) connection.
func (s *fakeServer) serveTCP(nc net.Conn) {
	defer nc.Close()
	fc := &fakeConn{s: s, closeFn: nc.Close}
	fc.writeFn = func(f *wirepb.Frame) error {
		b, err := proto.Marshal(f)
		if err != nil {
			return err
		}
		out := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
		_, err = nc.Write(append(out, b...))
		return err
	}
	read := func() (*wirepb.Frame, error) {
		var hdr [4]byte
		if _, err := io.ReadFull(nc, hdr[:]); err != nil {
			return nil, err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > 64<<10 {
			return nil, fmt.Errorf("frame of %d bytes", n)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(nc, b); err != nil {
			return nil, err
		}
		f := new(wirepb.Frame)
		return f, proto.Unmarshal(b, f)
	}
	s.serve(fc, read)
}

func (s *fakeServer) serveWS(c *websocket.Conn) {
	defer c.Close()
	json := c.Subprotocol() == "parley.json"
	fc := &fakeConn{s: s, closeFn: c.Close}
	fc.writeFn = func(f *wirepb.Frame) error {
		if json {
			b, err := protojson.Marshal(f)
			if err != nil {
				return err
			}
			return c.WriteMessage(websocket.TextMessage, b)
		}
		b, err := proto.Marshal(f)
		if err != nil {
			return err
		}
		return c.WriteMessage(websocket.BinaryMessage, b)
	}
	read := func() (*wirepb.Frame, error) {
		typ, b, err := c.ReadMessage()
		if err != nil {
			return nil, err
		}
		f := new(wirepb.Frame)
		if json {
			if typ != websocket.TextMessage {
				return nil, fmt.Errorf("json connection got message type %d", typ)
			}
			return f, protojson.Unmarshal(b, f)
		}
		if typ != websocket.BinaryMessage {
			return nil, fmt.Errorf("proto connection got message type %d", typ)
		}
		return f, proto.Unmarshal(b, f)
	}
	s.serve(fc, read)
}

func (s *fakeServer) event(format string, args ...any) {
	select {
	case s.events <- fmt.Sprintf(format, args...):
	default:
	}
}

// serve runs the protocol on one connection.
func (s *fakeServer) serve(fc *fakeConn, read func() (*wirepb.Frame, error)) {
	f, err := read()
	if err != nil {
		return
	}
	in := f.GetSignIn()
	uid, ok := strings.CutPrefix(in.GetToken(), "tok:")
	if in == nil || !ok || uid == "" {
		fc.write(&wirepb.Frame{Id: f.GetId(), Body: &wirepb.Frame_Error{Error: &wirepb.Error{
			Code: wirepb.ErrorCode_ERROR_CODE_UNAUTHENTICATED, Message: "bad token"}}})
		return
	}
	fc.uid, fc.dev = uid, in.GetDeviceId()
	s.mu.Lock()
	s.signIns[uid+"/"+fc.dev]++
	fc.mute = s.signIns[uid+"/"+fc.dev] == 1 && s.muteFirst
	s.conns[fc] = true
	maxSeq := uint64(len(s.boxes[uid]))
	acked := s.acked[uid+"/"+fc.dev]
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, fc)
		for _, m := range s.inRoom {
			delete(m, fc)
		}
		s.mu.Unlock()
	}()
	fc.write(&wirepb.Frame{Id: f.GetId(), Body: &wirepb.Frame_SignInOk{SignInOk: &wirepb.SignInOK{
		UserId: uid, DeviceId: fc.dev, MaxSeq: maxSeq, AckedSeq: acked, HeartbeatMs: s.heartbeatMs}}})
	s.event("signin %s %s", uid, fc.dev)
	for n := 0; ; n++ {
		f, err := read()
		if err != nil {
			return
		}
		if fc.mute {
			continue
		}
		switch b := f.GetBody().(type) {
		case *wirepb.Frame_Ping:
			fc.write(&wirepb.Frame{Id: f.GetId(), Body: &wirepb.Frame_Pong{Pong: &wirepb.Pong{}}})
		case *wirepb.Frame_Send:
			if !s.handleSend(fc, f.GetId(), b.Send) {
				return
			}
		case *wirepb.Frame_Sync:
			s.handleSync(fc, f.GetId(), b.Sync)
		case *wirepb.Frame_Ack:
			s.mu.Lock()
			s.acked[fc.uid+"/"+fc.dev] = b.Ack.GetSeq()
			s.mu.Unlock()
			s.event("ack %s %s %d", fc.uid, fc.dev, b.Ack.GetSeq())
		case *wirepb.Frame_JoinRoom:
			s.handleJoin(fc, f.GetId(), b.JoinRoom)
		case *wirepb.Frame_LeaveRoom:
			room := b.LeaveRoom.GetRoomId()
			s.mu.Lock()
			delete(s.inRoom[room], fc)
			s.leaves = append(s.leaves, fc.uid+" "+room)
			s.mu.Unlock()
			fc.write(&wirepb.Frame{Id: f.GetId(), Body: &wirepb.Frame_LeaveRoomOk{LeaveRoomOk: &wirepb.LeaveRoomOK{RoomId: room}}})
			s.event("leave %s %s", fc.uid, room)
		case *wirepb.Frame_Call:
			if !s.handleCall(fc, f.GetId(), b.Call) {
				return
			}
		default:
			fc.write(&wirepb.Frame{Id: f.GetId(), Body: &wirepb.Frame_Error{Error: &wirepb.Error{
				Code: wirepb.ErrorCode_ERROR_CODE_UNKNOWN_FRAME}}})
		}
	}
}

// handleSend stores and pushes a Send; false closes the connection.
func (s *fakeServer) handleSend(fc *fakeConn, id uint64, in *wirepb.Send) bool {
	s.mu.Lock()
	s.sends = append(s.sends, in.GetClientMsgId())
	n := len(s.sends)
	s.mu.Unlock()
	action := sendOK
	if s.onSend != nil {
		var e *wirepb.Error
		if action, e = s.onSend(n, in); e != nil {
			e.ClientMsgId = in.GetClientMsgId()
			fc.write(&wirepb.Frame{Id: id, Body: &wirepb.Frame_Error{Error: e}})
			return true
		}
	}
	if action == sendDrop {
		return true
	}
	key := fc.uid + "/" + fc.dev + "/" + in.GetClientMsgId()
	s.mu.Lock()
	if to := in.GetTo(); to.GetType() == wirepb.ConversationType_CONVERSATION_TYPE_ROOM && !s.inRoom[to.GetId()][fc] {
		s.mu.Unlock()
		fc.write(&wirepb.Frame{Id: id, Body: &wirepb.Frame_Error{Error: &wirepb.Error{
			Code: wirepb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, Message: "not in the room", ClientMsgId: in.GetClientMsgId()}}})
		return true
	}
	if ack, ok := s.acks[key]; ok {
		dup := proto.CloneOf(ack)
		dup.Duplicate = true
		s.mu.Unlock()
		if action == sendOK {
			fc.write(&wirepb.Frame{Id: id, Body: &wirepb.Frame_SendAck{SendAck: dup}})
		}
		return action != sendStoreKill
	}
	s.msgID++
	m := &wirepb.Message{
		MsgId: fmt.Sprintf("m%06d", s.msgID), To: in.GetTo(), FromUser: fc.uid, FromDevice: fc.dev,
		ClientMsgId: in.GetClientMsgId(), ContentType: in.GetContentType(), Body: in.GetBody(),
		CreatedAtMs: int64(1700000000000 + s.msgID),
	}
	var ack *wirepb.SendAck
	var pushes []func()
	switch to := in.GetTo(); to.GetType() {
	case wirepb.ConversationType_CONVERSATION_TYPE_ROOM:
		ack = &wirepb.SendAck{MsgId: m.MsgId, CreatedAtMs: m.CreatedAtMs, ClientMsgId: m.ClientMsgId}
		pushes = s.roomAppendLocked(to.GetId(), m)
	case wirepb.ConversationType_CONVERSATION_TYPE_GROUP:
		own := s.appendLocked(fc.uid, m)
		ack = &wirepb.SendAck{MsgId: m.MsgId, Seq: own.Seq, CreatedAtMs: m.CreatedAtMs, ClientMsgId: m.ClientMsgId}
		pushes = s.pushTargetsLocked(fc.uid, own, fc)
		for _, uid := range s.groups[to.GetId()] {
			if uid != fc.uid {
				pushes = append(pushes, s.pushTargetsLocked(uid, s.appendLocked(uid, m), nil)...)
			}
		}
	default:
		own := s.appendLocked(fc.uid, m)
		ack = &wirepb.SendAck{MsgId: m.MsgId, Seq: own.Seq, CreatedAtMs: m.CreatedAtMs, ClientMsgId: m.ClientMsgId}
		pushes = s.pushTargetsLocked(fc.uid, own, fc)
		if to := to.GetId(); to != fc.uid {
			theirs := s.appendLocked(to, m)
			pushes = append(pushes, s.pushTargetsLocked(to, theirs, nil)...)
		}
	}
	s.acks[key] = ack
	s.mu.Unlock()
	switch action {
	case sendOK:
		fc.write(&wirepb.Frame{Id: id, Body: &wirepb.Frame_SendAck{SendAck: ack}})
	case sendStoreKill:
		fc.closeFn()
		return false
	}
	for _, p := range pushes {
		p()
	}
	return true
}

// appendLocked appends a copy of m to uid's mailbox and returns it.
func (s *fakeServer) appendLocked(uid string, m *wirepb.Message) *wirepb.Message {
	e := proto.CloneOf(m)
	e.Seq = uint64(len(s.boxes[uid]) + 1)
	s.boxes[uid] = append(s.boxes[uid], e)
	return e
}

// pushTargetsLocked returns functions that push e to uid's devices, except
// the connection skip.
func (s *fakeServer) pushTargetsLocked(uid string, e *wirepb.Message, skip *fakeConn) []func() {
	var out []func()
	for c := range s.conns {
		if c.uid != uid || c == skip || (s.skipPush != nil && s.skipPush(uid, c.dev, e)) {
			continue
		}
		f := &wirepb.Frame{Body: &wirepb.Frame_Push{Push: &wirepb.Push{Message: e}}}
		out = append(out, func() {
			c.write(f)
			if s.dupPush {
				c.write(f)
			}
		})
	}
	return out
}

func (s *fakeServer) handleSync(fc *fakeConn, id uint64, in *wirepb.Sync) {
	limit := int(in.GetLimit())
	if limit == 0 {
		limit = 200
	}
	if s.syncLimit > 0 {
		limit = min(limit, s.syncLimit)
	}
	s.mu.Lock()
	s.syncs = append(s.syncs, in.GetAfterSeq())
	box := s.boxes[fc.uid]
	max := uint64(len(box))
	var page []*wirepb.Message
	for seq := in.GetAfterSeq() + 1; seq <= max && len(page) < limit; seq++ {
		page = append(page, box[seq-1])
	}
	s.mu.Unlock()
	more := len(page) > 0 && page[len(page)-1].GetSeq() < max
	fc.write(&wirepb.Frame{Id: id, Body: &wirepb.Frame_SyncBatch{SyncBatch: &wirepb.SyncBatch{
		Messages: page, MaxSeq: max, HasMore: more}}})
}

// kickAll closes the connections of uid (every user when uid is ""),
// after an Error frame with id 0 when code is set.
func (s *fakeServer) kickAll(uid string, code ...wirepb.ErrorCode) {
	s.mu.Lock()
	var victims []*fakeConn
	for c := range s.conns {
		if uid == "" || c.uid == uid {
			victims = append(victims, c)
		}
	}
	s.mu.Unlock()
	for _, c := range victims {
		if len(code) > 0 {
			c.write(&wirepb.Frame{Body: &wirepb.Frame_Error{Error: &wirepb.Error{Code: code[0], Message: "test kick"}}})
		}
		c.closeFn()
	}
}

// inject appends a message from "system" to uid's mailbox without pushing it.
func (s *fakeServer) inject(uid, text string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgID++
	m := &wirepb.Message{
		MsgId: fmt.Sprintf("m%06d", s.msgID), To: &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_USER, Id: uid},
		FromUser: "system", FromDevice: "srv", ContentType: wirepb.ContentType_CONTENT_TYPE_TEXT, Body: []byte(text),
	}
	return s.appendLocked(uid, m).Seq
}

func (s *fakeServer) signInCount(uid, dev string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signIns[uid+"/"+dev]
}

func (s *fakeServer) sendIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sends...)
}

func (s *fakeServer) syncAfters() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.syncs...)
}

func (s *fakeServer) boxLen(uid string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.boxes[uid])
}

// roomAppendLocked adds m (seq 0) to room's history and returns functions
// that send it live to every connection in the room.
func (s *fakeServer) roomAppendLocked(room string, m *wirepb.Message) []func() {
	e := proto.CloneOf(m)
	e.Seq = 0
	s.rooms[room] = append(s.rooms[room], e)
	var out []func()
	for c := range s.inRoom[room] {
		f := &wirepb.Frame{Body: &wirepb.Frame_RoomMessage{RoomMessage: &wirepb.RoomMessage{Message: e}}}
		out = append(out, func() { c.write(f) })
	}
	return out
}

// roomPublish adds a message from "srv" to room's history and sends it to
// the connections in the room; it returns the msg id.
func (s *fakeServer) roomPublish(room, text string) string {
	s.mu.Lock()
	s.msgID++
	m := &wirepb.Message{
		MsgId: fmt.Sprintf("m%06d", s.msgID), To: &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_ROOM, Id: room},
		FromUser: "srv", FromDevice: "srv", ContentType: wirepb.ContentType_CONTENT_TYPE_TEXT, Body: []byte(text),
		CreatedAtMs: int64(1700000000000 + s.msgID),
	}
	sends := s.roomAppendLocked(room, m)
	s.mu.Unlock()
	for _, f := range sends {
		f()
	}
	return m.MsgId
}

// roomInject adds a message from "srv" to room's history without sending
// it to anyone, as if it was sent while a connection was away.
func (s *fakeServer) roomInject(room, text string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgID++
	m := &wirepb.Message{
		MsgId: fmt.Sprintf("m%06d", s.msgID), To: &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_ROOM, Id: room},
		FromUser: "srv", FromDevice: "srv", ContentType: wirepb.ContentType_CONTENT_TYPE_TEXT, Body: []byte(text),
	}
	s.rooms[room] = append(s.rooms[room], m)
	return m.MsgId
}

// roomResend sends the history entry with msg id to the room's connections
// again, as a duplicate live message.
func (s *fakeServer) roomResend(room, msgID string) {
	s.mu.Lock()
	var sends []func()
	for _, m := range s.rooms[room] {
		if m.GetMsgId() == msgID {
			for c := range s.inRoom[room] {
				f := &wirepb.Frame{Body: &wirepb.Frame_RoomMessage{RoomMessage: &wirepb.RoomMessage{Message: m}}}
				sends = append(sends, func() { c.write(f) })
			}
		}
	}
	s.mu.Unlock()
	for _, f := range sends {
		f()
	}
}

func (s *fakeServer) handleJoin(fc *fakeConn, id uint64, in *wirepb.JoinRoom) {
	room := in.GetRoomId()
	s.mu.Lock()
	s.joins[fc.uid+"/"+room]++
	n := s.joins[fc.uid+"/"+room]
	if s.inRoom[room] == nil {
		s.inRoom[room] = make(map[*fakeConn]bool)
	}
	s.inRoom[room][fc] = true
	s.mu.Unlock()
	if s.onJoin != nil {
		if e := s.onJoin(fc.uid, room, n); e != nil {
			s.mu.Lock()
			delete(s.inRoom[room], fc)
			s.mu.Unlock()
			fc.write(&wirepb.Frame{Id: id, Body: &wirepb.Frame_Error{Error: e}})
			s.event("join %s %s refused", fc.uid, room)
			return
		}
	}
	s.mu.Lock()
	h := s.rooms[room]
	h = h[max(0, len(h)-int(in.GetReplay())):]
	replay := append([]*wirepb.Message(nil), h...)
	s.mu.Unlock()
	fc.write(&wirepb.Frame{Id: id, Body: &wirepb.Frame_JoinRoomOk{JoinRoomOk: &wirepb.JoinRoomOK{RoomId: room, Messages: replay}}})
	s.event("join %s %s", fc.uid, room)
}

// handleCall answers a Call; false closes the connection.
func (s *fakeServer) handleCall(fc *fakeConn, id uint64, in *wirepb.Call) bool {
	s.mu.Lock()
	s.calls = append(s.calls, in)
	s.mu.Unlock()
	result, e, kill := "{}", (*wirepb.Error)(nil), false
	if s.onCall != nil {
		result, e, kill = s.onCall(in)
	}
	switch {
	case kill:
		fc.closeFn()
		return false
	case e != nil:
		fc.write(&wirepb.Frame{Id: id, Body: &wirepb.Frame_Error{Error: e}})
	default:
		fc.write(&wirepb.Frame{Id: id, Body: &wirepb.Frame_CallResult{CallResult: &wirepb.CallResult{Method: in.GetMethod(), ResultJson: result}}})
	}
	return true
}

// pushTransient pushes a seq-0 message from "srv" to uid's devices.
func (s *fakeServer) pushTransient(uid, text string) string {
	s.mu.Lock()
	s.msgID++
	m := &wirepb.Message{
		MsgId: fmt.Sprintf("m%06d", s.msgID), To: &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_USER, Id: uid},
		FromUser: "srv", FromDevice: "srv", ContentType: wirepb.ContentType_CONTENT_TYPE_SYSTEM, Body: []byte(text),
	}
	pushes := s.pushTargetsLocked(uid, m, nil)
	s.mu.Unlock()
	for _, p := range pushes {
		p()
	}
	return m.MsgId
}

func (s *fakeServer) joinCount(uid, room string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.joins[uid+"/"+room]
}

func (s *fakeServer) callsSeen() []*wirepb.Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*wirepb.Call(nil), s.calls...)
}
