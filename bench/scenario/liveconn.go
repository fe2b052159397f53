package scenario

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/schemas/wirepb"
)

// liveConn is a raw protocol connection (no SDK) with one reader goroutine.
// It hands every Push and RoomMessage to its handlers as it arrives, and
// matches replies to requests by frame id. It never syncs, deduplicates,
// reorders or retries on its own, so the group and room scenarios verify
// exactly what the server sent. Safe for concurrent use.
type liveConn struct {
	// Immutable after dialLive.
	raw         *rawConn
	uid, device string
	signIn      *wirepb.SignInOK
	h           liveHandlers
	done        chan struct{} // closed when the reader stops

	wmu    sync.Mutex    // serializes writes
	nextID atomic.Uint64 // last request id used; SignIn was 1

	mu      sync.Mutex // guards the following
	pending map[uint64]chan *wirepb.Frame
	err     error // why the connection ended, unless close() ended it
	closing bool
}

// liveHandlers receive a liveConn's server-initiated frames on its reader
// goroutine, with the time the frame was read; nil ignores them. They must
// not block for long: the reader stops reading meanwhile.
type liveHandlers struct {
	push func(m *wirepb.Message, at time.Time)
	room func(m *wirepb.Message, at time.Time)
}

// callError is a request answered with an Error frame.
type callError struct {
	e *wirepb.Error
}

func (e *callError) Error() string {
	return fmt.Sprintf("%s: %s", e.e.GetCode(), e.e.GetMessage())
}

// temporary reports whether err is an Error frame that says retrying may
// succeed.
func temporary(err error) bool {
	var ce *callError
	return errors.As(err, &ce) && (ce.e.GetTemporary() || ce.e.GetCode() == wirepb.ErrorCode_ERROR_CODE_UNAVAILABLE)
}

// dialLive connects (uid, device) to the target, signs in and starts the
// reader.
func dialLive(ctx context.Context, t *target, uid, device string, h liveHandlers) (*liveConn, error) {
	tok, err := t.token(uid)
	if err != nil {
		return nil, err
	}
	raw, ok, err := dialRaw(ctx, t.addr, t.ws, tok, device)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", uid, device, err)
	}
	if raw.nc != nil {
		// dialRaw read exactly the SignInOK: nothing after it is buffered yet.
		raw.br = bufio.NewReaderSize(raw.nc, 16<<10)
	}
	c := &liveConn{raw: raw, uid: uid, device: device, signIn: ok, h: h, done: make(chan struct{}),
		pending: make(map[uint64]chan *wirepb.Frame)}
	c.nextID.Store(1)
	go c.readLoop()
	return c, nil
}

func (c *liveConn) readLoop() {
	defer close(c.done)
	for {
		f, err := c.raw.read(time.Time{})
		if err != nil {
			c.fail(err)
			return
		}
		now := time.Now()
		switch b := f.Body.(type) {
		case *wirepb.Frame_Push:
			if c.h.push != nil {
				c.h.push(b.Push.GetMessage(), now)
			}
			continue
		case *wirepb.Frame_RoomMessage:
			if c.h.room != nil {
				c.h.room(b.RoomMessage.GetMessage(), now)
			}
			continue
		}
		if f.Id == 0 {
			if e := f.GetError(); e != nil {
				// The server says why it is closing; EOF follows.
				c.fail(fmt.Errorf("closed by the server: %w", &callError{e}))
			}
			continue
		}
		c.mu.Lock()
		ch := c.pending[f.Id]
		delete(c.pending, f.Id)
		c.mu.Unlock()
		if ch != nil {
			ch <- f // buffered
		}
		// Otherwise an answer nobody waits for: a keepalive's Pong, or a
		// request that timed out.
	}
}

// fail records why the connection ended (the first reason wins) unless
// close() ended it.
func (c *liveConn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closing && c.err == nil {
		c.err = err
	}
}

// Err returns why the connection ended, or nil while it runs or after close.
func (c *liveConn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// close closes the connection and waits for the reader.
func (c *liveConn) close() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.raw.close()
	<-c.done
}

// write sends one frame, bounded by ctx (10s without a deadline).
func (c *liveConn) write(ctx context.Context, f *wirepb.Frame) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.raw.write(f, deadline)
}

// call sends a request and waits for the frame answering it. An Error
// frame comes back as a *callError.
func (c *liveConn) call(ctx context.Context, f *wirepb.Frame) (*wirepb.Frame, error) {
	id := c.nextID.Add(1)
	f.Id = id
	ch := make(chan *wirepb.Frame, 1)
	c.mu.Lock()
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}
	if err := c.write(ctx, f); err != nil {
		forget()
		return nil, fmt.Errorf("%s/%s: write: %w", c.uid, c.device, err)
	}
	select {
	case r := <-ch:
		if e := r.GetError(); e != nil {
			return r, &callError{e}
		}
		return r, nil
	case <-ctx.Done():
		forget()
		return nil, fmt.Errorf("%s/%s: no answer: %w", c.uid, c.device, ctx.Err())
	case <-c.done:
		forget()
		err := c.Err()
		if err == nil {
			err = errors.New("connection closed")
		}
		return nil, fmt.Errorf("%s/%s: %w", c.uid, c.device, err)
	}
}

// send sends a text message with client msg id cmid and returns its
// SendAck.
func (c *liveConn) send(ctx context.Context, to *wirepb.Conversation, cmid string, body []byte) (*wirepb.SendAck, error) {
	r, err := c.call(ctx, &wirepb.Frame{Body: &wirepb.Frame_Send{Send: &wirepb.Send{
		To: to, ClientMsgId: cmid, ContentType: wirepb.ContentType_CONTENT_TYPE_TEXT, Body: body,
	}}})
	if err != nil {
		return nil, err
	}
	ack := r.GetSendAck()
	if ack == nil {
		return nil, fmt.Errorf("send answered with %T", r.Body)
	}
	return ack, nil
}

// sendRetrying is send that, like a client should, resends with the same
// client msg id after a temporary refusal (RATE_LIMITED, UNAVAILABLE),
// backing off from 10ms to 500ms with jitter, until ctx ends. retries
// counts the resends.
func (c *liveConn) sendRetrying(ctx context.Context, to *wirepb.Conversation, cmid string, body []byte, retries *atomic.Int64) (*wirepb.SendAck, error) {
	var ack *wirepb.SendAck
	err := retryTemporary(ctx, 10*time.Millisecond, 500*time.Millisecond, retries, func() (err error) {
		ack, err = c.send(ctx, to, cmid, body)
		return err
	})
	return ack, err
}

// retryTemporary calls f until it succeeds, fails for good, or ctx ends,
// waiting after each temporary refusal (RATE_LIMITED, UNAVAILABLE) as a
// client should: from first, doubling up to max, with jitter. retries
// counts the refusals.
func retryTemporary(ctx context.Context, first, max time.Duration, retries *atomic.Int64, f func() error) error {
	backoff := first
	for {
		err := f()
		if err == nil || !temporary(err) {
			return err
		}
		retries.Add(1)
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (retried until %w)", err, ctx.Err())
		case <-time.After(wait):
		}
		backoff = min(2*backoff, max)
	}
}

// syncPage asks for up to limit mailbox entries after seq after.
func (c *liveConn) syncPage(ctx context.Context, after uint64, limit uint32) (*wirepb.SyncBatch, error) {
	r, err := c.call(ctx, &wirepb.Frame{Body: &wirepb.Frame_Sync{Sync: &wirepb.Sync{AfterSeq: after, Limit: limit}}})
	if err != nil {
		return nil, err
	}
	b := r.GetSyncBatch()
	if b == nil {
		return nil, fmt.Errorf("sync answered with %T", r.Body)
	}
	return b, nil
}

// joinRoom joins a room asking for a replay of up to replay messages.
func (c *liveConn) joinRoom(ctx context.Context, roomID string, replay uint32) (*wirepb.JoinRoomOK, error) {
	r, err := c.call(ctx, &wirepb.Frame{Body: &wirepb.Frame_JoinRoom{JoinRoom: &wirepb.JoinRoom{RoomId: roomID, Replay: replay}}})
	if err != nil {
		return nil, err
	}
	ok := r.GetJoinRoomOk()
	if ok == nil {
		return nil, fmt.Errorf("join room answered with %T", r.Body)
	}
	return ok, nil
}

// apiCall runs a server API method as the signed-in user (a Call frame)
// and decodes its JSON result into out (if not nil).
func (c *liveConn) apiCall(ctx context.Context, method string, params, out any) error {
	b, err := json.Marshal(params)
	if err != nil {
		return err
	}
	r, err := c.call(ctx, &wirepb.Frame{Body: &wirepb.Frame_Call{Call: &wirepb.Call{Method: method, ParamsJson: string(b)}}})
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	res := r.GetCallResult()
	if res == nil {
		return fmt.Errorf("%s answered with %T", method, r.Body)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(res.GetResultJson()), out); err != nil {
			return fmt.Errorf("%s: decode result: %w", method, err)
		}
	}
	return nil
}

// dialLiveAll opens n live connections with at most parallel dials at a
// time, dial(i) making the i-th. On the first error it closes what it
// opened (dial may return a connection with its error, to be closed too).
func dialLiveAll(ctx context.Context, n, parallel int, dial func(ctx context.Context, i int) (*liveConn, error)) ([]*liveConn, error) {
	return dialEach(ctx, n, parallel, "connection", nil, dial, closeLive)
}

// closeLive closes every non-nil connection, in parallel.
func closeLive(cs []*liveConn) {
	var wg sync.WaitGroup
	for _, c := range cs {
		if c != nil {
			wg.Go(c.close)
		}
	}
	wg.Wait()
}

// keepAlive pings every connection every interval (without waiting for the
// Pong) so that the server's idle timeout, 90s by default, never closes a
// connection that only receives. It returns a func that stops it.
func keepAlive(conns []*liveConn, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, c := range conns {
					id := c.nextID.Add(1)
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					_ = c.write(ctx, &wirepb.Frame{Id: id, Body: &wirepb.Frame_Ping{Ping: &wirepb.Ping{}}})
					cancel()
				}
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
}

// deadConns counts connections that ended (closed by the server or the
// network) and returns the first reason.
func deadConns(conns []*liveConn) (n int, first error) {
	for _, c := range conns {
		if err := c.Err(); err != nil {
			n++
			if first == nil {
				first = fmt.Errorf("%s/%s: %w", c.uid, c.device, err)
			}
		}
	}
	return n, first
}
