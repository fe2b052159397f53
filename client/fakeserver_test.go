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

	mu      sync.Mutex // guards the following
	boxes   map[string][]*wirepb.Message
	acks    map[string]*wirepb.SendAck // uid/device/client msg id
	conns   map[*fakeConn]bool
	sends   []string // client msg ids of every Send received, in order
	syncs   []uint64 // after_seq of every Sync received, in order
	signIns map[string]int
	acked   map[string]uint64 // uid/device → ack cursor
	msgID   int

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
	own := s.appendLocked(fc.uid, m)
	ack := &wirepb.SendAck{MsgId: m.MsgId, Seq: own.Seq, CreatedAtMs: m.CreatedAtMs, ClientMsgId: m.ClientMsgId}
	s.acks[key] = ack
	pushes := s.pushTargetsLocked(fc.uid, own, fc)
	if to := in.GetTo().GetId(); to != fc.uid {
		theirs := s.appendLocked(to, m)
		pushes = append(pushes, s.pushTargetsLocked(to, theirs, nil)...)
	}
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
