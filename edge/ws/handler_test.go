package ws

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/parleyim/parley/edge"
	"github.com/parleyim/parley/edge/edgetest"
	"github.com/parleyim/parley/edge/frame"
	"github.com/parleyim/parley/schemas/wirepb"
)

// startWS serves a Handler on an httptest server at /ws and returns the
// ws:// URL. Cleanup shuts both down.
func startWS(t testing.TB, cfg Config) (*Handler, string) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		srv.Close()
	})
	return h, "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
}

func dialWS(t testing.TB, url string, subprotocols ...string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: subprotocols}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("Dial(%v): %v (response %v)", subprotocols, err, resp)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustMarshal(t testing.TB, f *wirepb.Frame) []byte {
	t.Helper()
	b, err := proto.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readFrame reads one message in the mode's encoding.
func readFrame(t testing.TB, c *websocket.Conn, json bool) (*wirepb.Frame, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	mt, data, err := c.ReadMessage()
	if err != nil {
		return nil, err
	}
	f := new(wirepb.Frame)
	if json {
		if mt != websocket.TextMessage {
			t.Fatalf("message type %d; want text", mt)
		}
		return f, protojson.Unmarshal(data, f)
	}
	if mt != websocket.BinaryMessage {
		t.Fatalf("message type %d; want binary", mt)
	}
	return f, proto.Unmarshal(data, f)
}

// expectClose reads an Error frame with code, then a close message with
// wsCode.
func expectClose(t testing.TB, c *websocket.Conn, json bool, code wirepb.ErrorCode, wsCode int) {
	t.Helper()
	f, err := readFrame(t, c, json)
	if err != nil {
		t.Fatalf("read Error frame: %v", err)
	}
	if e := f.GetError(); e.GetCode() != code || e.GetTemporary() != code.Temporary() {
		t.Fatalf("got %v; want Error %v temporary %v", f, code, code.Temporary())
	}
	_, _, err = c.ReadMessage()
	if !websocket.IsCloseError(err, wsCode) {
		t.Fatalf("after Error: %v; want close %d", err, wsCode)
	}
}

func TestNewValidates(t *testing.T) {
	h := edgetest.NewHandler(false)
	for _, cfg := range []Config{
		{},
		{Handler: h, MaxFrameSize: -1},
		{Handler: h, MaxQueue: -1},
		{Handler: h, MaxQueueBytes: -1},
		{Handler: h, WriteTimeout: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) err = nil; want an error", cfg)
		}
	}
	got, err := New(Config{Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	if got.cfg.MaxFrameSize != frame.DefaultMaxSize || got.cfg.MaxQueue != DefaultMaxQueue ||
		got.cfg.MaxQueueBytes != DefaultMaxQueueBytes || got.cfg.WriteTimeout != DefaultWriteTimeout {
		t.Fatalf("defaults = %+v", got.cfg)
	}
}

func TestRoundTripProto(t *testing.T) {
	th := edgetest.NewHandler(true)
	_, url := startWS(t, Config{Handler: th})
	for _, offer := range [][]string{nil, {SubprotocolProto}, {"x-other", SubprotocolProto}} {
		t.Run(fmt.Sprint(offer), func(t *testing.T) {
			c := dialWS(t, url, offer...)
			want := ""
			if offer != nil {
				want = SubprotocolProto
			}
			if c.Subprotocol() != want {
				t.Fatalf("Subprotocol() = %q; want %q", c.Subprotocol(), want)
			}
			sent := &wirepb.Frame{Id: 5, Body: &wirepb.Frame_Send{Send: &wirepb.Send{ClientMsgId: "m1", Body: []byte{0, 1, 2}}}}
			if err := c.WriteMessage(websocket.BinaryMessage, mustMarshal(t, sent)); err != nil {
				t.Fatal(err)
			}
			got, err := readFrame(t, c, false)
			if err != nil || !proto.Equal(got, sent) {
				t.Fatalf("echo = %v, %v; want %v", got, err, sent)
			}
		})
	}
}

func TestRoundTripJSON(t *testing.T) {
	th := edgetest.NewHandler(true)
	_, url := startWS(t, Config{Handler: th})
	c := dialWS(t, url, SubprotocolJSON)
	if c.Subprotocol() != SubprotocolJSON {
		t.Fatalf("Subprotocol() = %q; want %q", c.Subprotocol(), SubprotocolJSON)
	}
	in := `{"id":"7","send":{"to":{"type":"CONVERSATION_TYPE_USER","id":"bob"},"clientMsgId":"m1","contentType":"CONTENT_TYPE_TEXT","body":"aGk="},"futureField":1}`
	if err := c.WriteMessage(websocket.TextMessage, []byte(in)); err != nil {
		t.Fatal(err)
	}
	got, err := readFrame(t, c, true)
	if err != nil {
		t.Fatal(err)
	}
	want := &wirepb.Frame{Id: 7, Body: &wirepb.Frame_Send{Send: &wirepb.Send{
		To:          &wirepb.Conversation{Type: wirepb.ConversationType_CONVERSATION_TYPE_USER, Id: "bob"},
		ClientMsgId: "m1", ContentType: wirepb.ContentType_CONTENT_TYPE_TEXT, Body: []byte("hi"),
	}}}
	if !proto.Equal(got, want) {
		t.Fatalf("echo = %v; want %v", got, want)
	}
}

// TestServerPushJSON: Send takes protobuf; a JSON client gets protojson text.
func TestServerPushJSON(t *testing.T) {
	th := edgetest.NewHandler(false)
	_, url := startWS(t, Config{Handler: th})
	c := dialWS(t, url, SubprotocolJSON)
	sc := edgetest.Recv(t, th.Opens, "Opened")
	push := &wirepb.Frame{Body: &wirepb.Frame_Push{Push: &wirepb.Push{Message: &wirepb.Message{MsgId: "x", Seq: 1 << 60, Body: []byte("hello")}}}}
	if err := sc.Send(mustMarshal(t, push)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	mt, data, err := c.ReadMessage()
	if err != nil || mt != websocket.TextMessage {
		t.Fatalf("ReadMessage = %d, %v; want a text message", mt, err)
	}
	if !bytes.Contains(data, []byte(`"1152921504606846976"`)) || !bytes.Contains(data, []byte(`"aGVsbG8="`)) {
		t.Fatalf("json = %s; want seq as a string and body as base64", data)
	}
	got := new(wirepb.Frame)
	if err := protojson.Unmarshal(data, got); err != nil || !proto.Equal(got, push) {
		t.Fatalf("json %s = %v, %v; want %v", data, got, err, push)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	th := edgetest.NewHandler(false)
	h, url := startWS(t, Config{Handler: th, CheckOrigin: func(r *http.Request) bool {
		return r.Header.Get("Origin") != "https://evil.example"
	}})
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	tests := []struct {
		name   string
		offer  []string
		origin string
		status int
	}{
		{"unknown subprotocol", []string{"mqtt"}, "", http.StatusBadRequest},
		{"bad origin", nil, "https://evil.example", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.Subprotocols = tt.offer
			hdr := http.Header{}
			if tt.origin != "" {
				hdr.Set("Origin", tt.origin)
			}
			c, resp, err := d.Dial(url, hdr)
			if err == nil {
				c.Close()
				t.Fatalf("Dial succeeded; want HTTP %d", tt.status)
			}
			if resp == nil || resp.StatusCode != tt.status {
				t.Fatalf("Dial = %v, %v; want HTTP %d", resp, err, tt.status)
			}
		})
	}
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, resp, err := d.Dial(url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("Dial during shutdown = %v, %v; want HTTP 503", resp, err)
	}
}

func TestBadInput(t *testing.T) {
	th := edgetest.NewHandler(false)
	_, url := startWS(t, Config{Handler: th, MaxFrameSize: 1024})
	ping := &wirepb.Frame{Id: 3, Body: &wirepb.Frame_Ping{Ping: &wirepb.Ping{}}}
	tests := []struct {
		name   string
		json   bool
		mt     int
		data   []byte
		code   wirepb.ErrorCode
		wsCode int
	}{
		{"proto text message", false, websocket.TextMessage, []byte(`{"id":"1"}`), wirepb.ErrorCode_ERROR_CODE_BAD_FRAME, websocket.CloseInvalidFramePayloadData},
		{"proto garbage", false, websocket.BinaryMessage, []byte{0xff, 0xff, 0xff}, wirepb.ErrorCode_ERROR_CODE_BAD_FRAME, websocket.CloseInvalidFramePayloadData},
		{"proto too large", false, websocket.BinaryMessage, make([]byte, 1025), wirepb.ErrorCode_ERROR_CODE_FRAME_TOO_LARGE, websocket.CloseMessageTooBig},
		{"proto far too large", false, websocket.BinaryMessage, make([]byte, 1<<20), wirepb.ErrorCode_ERROR_CODE_FRAME_TOO_LARGE, websocket.CloseMessageTooBig},
		{"json binary message", true, websocket.BinaryMessage, mustMarshal(t, ping), wirepb.ErrorCode_ERROR_CODE_BAD_FRAME, websocket.CloseInvalidFramePayloadData},
		{"json not json", true, websocket.TextMessage, []byte(`{"id":`), wirepb.ErrorCode_ERROR_CODE_BAD_FRAME, websocket.CloseInvalidFramePayloadData},
		{"json wrong type", true, websocket.TextMessage, []byte(`{"id":"x"}`), wirepb.ErrorCode_ERROR_CODE_BAD_FRAME, websocket.CloseInvalidFramePayloadData},
		{"json too large", true, websocket.TextMessage, []byte(`{"id":"1","ping":{}` + strings.Repeat(" ", 1024) + `}`), wirepb.ErrorCode_ERROR_CODE_FRAME_TOO_LARGE, websocket.CloseMessageTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			offer := SubprotocolProto
			if tt.json {
				offer = SubprotocolJSON
			}
			c := dialWS(t, url, offer)
			edgetest.Recv(t, th.Opens, "Opened")
			var good []byte
			mt := websocket.BinaryMessage
			if tt.json {
				good, mt = []byte(`{"id":"3","ping":{}}`), websocket.TextMessage
			} else {
				good = mustMarshal(t, ping)
			}
			if err := c.WriteMessage(mt, good); err != nil {
				t.Fatal(err)
			}
			if f := edgetest.Recv(t, th.Frames, "ping"); !proto.Equal(f, ping) {
				t.Fatalf("frame = %v; want %v", f, ping)
			}
			if err := c.WriteMessage(tt.mt, tt.data); err != nil {
				// The server stops reading after MaxFrameSize+1 bytes and
				// closes; the rest of a huge message may meet a reset.
				t.Logf("write %d bytes: %v", len(tt.data), err)
			}
			expectClose(t, c, tt.json, tt.code, tt.wsCode)
			edgetest.Recv(t, th.Closes, "Closed")
		})
	}
	th.CheckOnce(t)
}

// TestSlowConsumer: a client that never reads is closed with SLOW_CONSUMER
// once MaxQueue frames or MaxQueueBytes bytes wait; another connection keeps
// working.
func TestSlowConsumer(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"frames", Config{MaxQueue: 8}},
		{"bytes", Config{MaxQueueBytes: 256 << 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := edgetest.NewHandler(false)
			cfg := tt.cfg
			cfg.Handler, cfg.WriteTimeout = th, 300*time.Millisecond
			_, url := startWS(t, cfg)
			fast := dialWS(t, url)
			fastConn := edgetest.Recv(t, th.Opens, "Opened fast")
			dialWS(t, url) // never reads
			slow := edgetest.Recv(t, th.Opens, "Opened slow")

			big := mustMarshal(t, &wirepb.Frame{Body: &wirepb.Frame_Push{Push: &wirepb.Push{Message: &wirepb.Message{Body: make([]byte, 64<<10)}}}})
			var err error
			sent := 0
			for stop := time.Now().Add(10 * time.Second); err == nil && time.Now().Before(stop); sent++ {
				err = slow.Send(big)
				if err == nil && sent%8 == 7 {
					time.Sleep(time.Millisecond) // let the writer fill the socket first
				}
			}
			if !errors.Is(err, edge.ErrSlowConsumer) {
				t.Fatalf("after %d sends: err %v; want ErrSlowConsumer", sent, err)
			}
			if err := slow.Send(big); !errors.Is(err, edge.ErrConnClosed) {
				t.Fatalf("Send after slow close = %v; want ErrConnClosed", err)
			}
			if got := edgetest.Recv(t, th.Closes, "Closed slow"); got != slow {
				t.Fatalf("Closed(%d); want %d", got.ID(), slow.ID())
			}
			t.Logf("cut off after %d sends of %d bytes", sent, len(big))

			ping := mustMarshal(t, &wirepb.Frame{Id: 1, Body: &wirepb.Frame_Ping{Ping: &wirepb.Ping{}}})
			if err := fastConn.Send(ping); err != nil {
				t.Fatal(err)
			}
			if f, err := readFrame(t, fast, false); err != nil || f.GetId() != 1 {
				t.Fatalf("fast conn read = %v, %v; want ping 1", f, err)
			}
		})
	}
}

// TestSendOrder: frames arrive in the order Send took them, although the
// writer exits whenever the queue empties and a new one starts on the next
// Send; each of several concurrent senders keeps its own order.
func TestSendOrder(t *testing.T) {
	for _, json := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", json), func(t *testing.T) {
			const senders, each = 4, 300
			th := edgetest.NewHandler(false)
			_, url := startWS(t, Config{Handler: th, MaxQueue: senders * each})
			offer := SubprotocolProto
			if json {
				offer = SubprotocolJSON
			}
			c := dialWS(t, url, offer)
			sc := edgetest.Recv(t, th.Opens, "Opened")
			frames := make([][]byte, senders*each) // frame k has id k+1
			for k := range frames {
				frames[k] = mustMarshal(t, &wirepb.Frame{Id: uint64(k + 1), Body: &wirepb.Frame_Pong{Pong: &wirepb.Pong{}}})
			}
			var wg sync.WaitGroup
			for s := range senders {
				wg.Go(func() {
					for i := range each {
						if err := sc.Send(frames[s*each+i]); err != nil {
							t.Errorf("sender %d Send %d: %v", s, i, err)
							return
						}
						if i%(s+3) == 0 {
							time.Sleep(50 * time.Microsecond) // let the queue empty now and then
						}
					}
				})
			}
			next := make([]int, senders)
			for range senders * each {
				f, err := readFrame(t, c, json)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				k := int(f.GetId()) - 1
				if s, i := k/each, k%each; k < 0 || s >= senders || i != next[s] {
					t.Fatalf("got frame id %d; want sender %d's frame %d", f.GetId(), s, next[s])
				}
				next[k/each]++
			}
			wg.Wait()
			sc.Close(wirepb.ErrorCode_ERROR_CODE_REPLACED, "signed in elsewhere")
			expectClose(t, c, json, wirepb.ErrorCode_ERROR_CODE_REPLACED, websocket.ClosePolicyViolation)
			edgetest.Recv(t, th.Closes, "Closed")
			th.CheckOnce(t)
		})
	}
}

// TestCloseRacesSend: Close while other goroutines keep sending. Every frame
// whose Send returned nil arrives, in order, before the Error frame.
func TestCloseRacesSend(t *testing.T) {
	const senders, most = 4, 10000
	th := edgetest.NewHandler(false)
	_, url := startWS(t, Config{Handler: th, MaxQueue: senders * most})
	c := dialWS(t, url)
	sc := edgetest.Recv(t, th.Opens, "Opened")
	accepted := make([]int, senders)
	started := make(chan struct{})
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range most {
				if s == 0 && i == 100 {
					close(started)
				}
				b := mustMarshal(t, &wirepb.Frame{Id: uint64(s)<<32 | uint64(i), Body: &wirepb.Frame_Pong{Pong: &wirepb.Pong{}}})
				if err := sc.Send(b); err != nil {
					if !errors.Is(err, edge.ErrConnClosed) {
						t.Errorf("sender %d: %v; want ErrConnClosed", s, err)
					}
					return
				}
				accepted[s]++
			}
		})
	}
	<-started
	sc.Close(wirepb.ErrorCode_ERROR_CODE_REPLACED, "signed in elsewhere")
	wg.Wait()
	got := make([]int, senders)
	for {
		f, err := readFrame(t, c, false)
		if err != nil {
			t.Fatalf("read after %v frames: %v", got, err)
		}
		if e := f.GetError(); e != nil {
			if e.GetCode() != wirepb.ErrorCode_ERROR_CODE_REPLACED {
				t.Fatalf("got %v; want Error REPLACED", f)
			}
			break
		}
		s, i := int(f.GetId()>>32), int(f.GetId()&(1<<32-1))
		if s >= senders || i != got[s] {
			t.Fatalf("got frame %d of sender %d; want frame %d", i, s, got[min(s, senders-1)])
		}
		got[s]++
	}
	if !slices.Equal(got, accepted) {
		t.Fatalf("received %v frames per sender before the Error frame; Send accepted %v", got, accepted)
	}
	if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
		t.Fatalf("after Error: %v; want close %d", err, websocket.ClosePolicyViolation)
	}
	edgetest.Recv(t, th.Closes, "Closed")
	t.Logf("accepted %v frames before Close", accepted)
}

// TestCloseAfterSends: frames sent before Close arrive, then the Error frame,
// then the close message.
func TestCloseAfterSends(t *testing.T) {
	for _, json := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", json), func(t *testing.T) {
			th := edgetest.NewHandler(false)
			_, url := startWS(t, Config{Handler: th})
			offer := SubprotocolProto
			if json {
				offer = SubprotocolJSON
			}
			c := dialWS(t, url, offer)
			sc := edgetest.Recv(t, th.Opens, "Opened")
			const n = 50
			for i := range n {
				if err := sc.Send(mustMarshal(t, &wirepb.Frame{Id: uint64(i + 1), Body: &wirepb.Frame_Pong{Pong: &wirepb.Pong{}}})); err != nil {
					t.Fatal(err)
				}
			}
			sc.Close(wirepb.ErrorCode_ERROR_CODE_REPLACED, "signed in elsewhere")
			sc.Close(wirepb.ErrorCode_ERROR_CODE_INTERNAL, "ignored")
			if err := sc.Send(nil); !errors.Is(err, edge.ErrConnClosed) {
				t.Fatalf("Send after Close = %v; want ErrConnClosed", err)
			}
			for i := range n {
				f, err := readFrame(t, c, json)
				if err != nil || f.GetId() != uint64(i+1) {
					t.Fatalf("frame %d = %v, %v; want id %d", i, f, err, i+1)
				}
			}
			expectClose(t, c, json, wirepb.ErrorCode_ERROR_CODE_REPLACED, websocket.ClosePolicyViolation)
			edgetest.Recv(t, th.Closes, "Closed")
			th.CheckOnce(t)
		})
	}
}

// TestBadOutboundJSON: a frame from the server that does not convert to JSON
// closes the connection with INTERNAL; what was accepted before and after it
// is still written first.
func TestBadOutboundJSON(t *testing.T) {
	th := edgetest.NewHandler(false)
	_, url := startWS(t, Config{Handler: th, Logger: slog.New(slog.DiscardHandler)})
	c := dialWS(t, url, SubprotocolJSON)
	sc := edgetest.Recv(t, th.Opens, "Opened")
	pong := func(id uint64) []byte {
		return mustMarshal(t, &wirepb.Frame{Id: id, Body: &wirepb.Frame_Pong{Pong: &wirepb.Pong{}}})
	}
	if err := sc.Send(pong(1)); err != nil {
		t.Fatal(err)
	}
	if err := sc.Send([]byte{0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	want := []uint64{1}
	if err := sc.Send(pong(2)); err == nil {
		want = append(want, 2)
	} else if !errors.Is(err, edge.ErrConnClosed) {
		t.Fatalf("Send after a bad frame = %v; want nil or ErrConnClosed", err)
	}
	for _, id := range want {
		if f, err := readFrame(t, c, true); err != nil || f.GetId() != id {
			t.Fatalf("read = %v, %v; want pong %d", f, err, id)
		}
	}
	expectClose(t, c, true, wirepb.ErrorCode_ERROR_CODE_INTERNAL, websocket.CloseInternalServerErr)
	edgetest.Recv(t, th.Closes, "Closed")
}

func TestClientHangUp(t *testing.T) {
	th := edgetest.NewHandler(false)
	_, url := startWS(t, Config{Handler: th})
	c := dialWS(t, url)
	sc := edgetest.Recv(t, th.Opens, "Opened")
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
	if got := edgetest.Recv(t, th.Closes, "Closed"); got != sc {
		t.Fatalf("Closed(%d); want %d", got.ID(), sc.ID())
	}
	c2 := dialWS(t, url)
	sc2 := edgetest.Recv(t, th.Opens, "Opened")
	c2.NetConn().Close() // no close handshake at all
	if got := edgetest.Recv(t, th.Closes, "Closed"); got != sc2 {
		t.Fatalf("Closed(%d); want %d", got.ID(), sc2.ID())
	}
	th.CheckOnce(t)
}

func TestShutdown(t *testing.T) {
	th := edgetest.NewHandler(false)
	h, url := startWS(t, Config{Handler: th})
	offers := []string{SubprotocolProto, SubprotocolJSON, SubprotocolProto}
	var clients []*websocket.Conn
	for _, o := range offers {
		clients = append(clients, dialWS(t, url, o))
		edgetest.Recv(t, th.Opens, "Opened")
	}
	// Clients answer the close message (gorilla does while reading).
	errs := make(chan error, len(clients))
	for i, c := range clients {
		go func() {
			json := offers[i] == SubprotocolJSON
			f, err := readFrame(t, c, json)
			if err == nil && f.GetError().GetCode() != wirepb.ErrorCode_ERROR_CODE_SHUTTING_DOWN {
				err = fmt.Errorf("got %v; want SHUTTING_DOWN", f)
			}
			if err == nil && !f.GetError().GetTemporary() {
				err = errors.New("SHUTTING_DOWN not temporary")
			}
			if err == nil {
				_, _, err = c.ReadMessage()
				if websocket.IsCloseError(err, websocket.CloseGoingAway) {
					err = nil
				}
			}
			errs <- err
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v; want nil", err)
	}
	t.Logf("Shutdown took %v", time.Since(start))
	for range clients {
		if err := edgetest.Recv(t, errs, "client"); err != nil {
			t.Fatal(err)
		}
		edgetest.Recv(t, th.Closes, "Closed")
	}
	th.CheckOnce(t)
	if err := h.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown = %v; want nil", err)
	}
}

// TestShutdownDeadline: a client that never reads cannot hold Shutdown past
// its context.
func TestShutdownDeadline(t *testing.T) {
	th := edgetest.NewHandler(false)
	h, url := startWS(t, Config{Handler: th, WriteTimeout: time.Minute, MaxQueue: 4096, MaxQueueBytes: 64 << 20})
	dialWS(t, url) // never reads
	sc := edgetest.Recv(t, th.Opens, "Opened")
	big := make([]byte, 256<<10)
	for range 64 {
		if err := sc.Send(big); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := h.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v; want DeadlineExceeded", err)
	}
	edgetest.Recv(t, th.Closes, "Closed")
}

func BenchmarkEcho(b *testing.B) {
	for _, json := range []bool{false, true} {
		b.Run(fmt.Sprintf("json=%v", json), func(b *testing.B) {
			th := edgetest.NewHandler(true)
			_, url := startWS(b, Config{Handler: th, Logger: slog.New(slog.DiscardHandler)})
			offer, mt := SubprotocolProto, websocket.BinaryMessage
			f := &wirepb.Frame{Id: 1, Body: &wirepb.Frame_Send{Send: &wirepb.Send{ClientMsgId: "m", Body: make([]byte, 256)}}}
			msg := mustMarshal(b, f)
			if json {
				offer, mt = SubprotocolJSON, websocket.TextMessage
				msg, _ = protojson.Marshal(f)
			}
			c := dialWS(b, url, offer)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.WriteMessage(mt, msg); err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.ReadMessage(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
