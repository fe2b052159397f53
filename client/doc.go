// Package client is the Go client SDK of Parley: one long connection to an
// edge over TCP (length-prefixed protobuf) or WebSocket (protobuf or
// protojson), that signs in, sends, receives, syncs and acks, and hides
// disconnects from the app.
//
//	c, err := client.Dial(ctx, client.Config{
//		Addr:     "tcp://127.0.0.1:7420",
//		Token:    token, // a JWT from the business server
//		DeviceID: "laptop-1",
//		LastSeq:  lastSeqTheAppStored,
//	})
//	if err != nil { … }
//	defer c.Close()
//	go func() {
//		for m := range c.Messages() { // every mailbox entry once, in seq order
//			store(m) // then persist m.Seq as the next LastSeq
//		}
//	}()
//	ack, err := c.SendText(ctx, "bob", "hi")
//
// # Delivery
//
// Correctness comes from the mailbox seq, never from pushes. The client keeps
// the highest contiguous seq it holds (MaxSeq). A pushed entry with seq
// MaxSeq+1 is delivered; one above it (a gap) is held and a Sync after MaxSeq
// fetches what is missing; one at or below it is a duplicate and dropped.
// After every sign-in, if the server's max_seq is above MaxSeq, the client
// syncs. Sync pages are requested until has_more is false. The client's own
// sends are mailbox entries too: the client builds the entry from the Send and
// its SendAck, so sending does not cost a Sync. Entries reach the app through
// one channel, Messages, in seq order with no gaps and no repeats.
//
// Delivery is bounded: at most QueueSize entries wait for the app, and at
// most QueueSize early entries wait for a gap to fill. Past that an entry is
// dropped from memory only — it is durable on the server — and fetched again
// with Sync once the app has read the queue down to half.
//
// Acks: after the app has received entries from Messages, the client sends
// Ack{seq} for the last one, at most once per 200 ms, and once more on Close.
//
// # Groups
//
// A group message (SendGroupText, or Send to a GROUP conversation) is a
// mailbox entry like a one-to-one message: the SendAck carries its seq in
// the sender's mailbox, where it comes out of Messages with To set to the
// group, and every member receives it at a seq of their own mailbox.
// Membership is managed with Call ("group.create", "group.members.add", …).
//
// # Rooms
//
// Rooms are read diffusion: nothing of a room is in any mailbox, so room
// messages have seq 0 and never touch MaxSeq or Messages. JoinRoom joins a
// room on the connection and returns a replay of its latest messages; live
// messages then come out of RoomMessages, deduplicated by msg id against
// the replay and the recent live ones (a bounded set per room). Live
// messages that arrive before the server confirms a join are held and
// released after the replay. SendRoomText sends to a joined room; the
// SendAck has seq 0 and the message comes out of RoomMessages once.
//
// The client remembers the joined rooms. After a reconnect it joins them
// again with the same replay size and sends the part of the replay the app
// has not seen (what it missed while disconnected) to RoomMessages, so the
// app sees no duplicates; a room the server refuses is forgotten and
// reported to Config.OnRoomLost. LeaveRoom forgets the room.
//
// RoomMessages never blocks the connection: past Config.RoomQueueSize
// waiting messages the oldest is dropped and counted (Stats). A room message
// the app did not read in time is gone, apart from later replays.
//
// # Transient pushes
//
// A Push whose message has seq 0 is a server push that is not stored (a
// broadcast to everyone online, say). It comes out of Transient, bounded by
// Config.TransientQueueSize with the same drop-oldest rule, and never counts
// as a gap, never triggers a Sync and never moves MaxSeq.
//
// # Calls
//
// Call runs an API operation (friends, blocks, groups) as the signed-in
// user over the same connection, with JSON parameters and result. Calls
// change state and carry no idempotency key, so the client never retries
// them: a timeout or disconnect is returned and the outcome is unknown.
//
// # Connection
//
// A heartbeat Ping goes out every heartbeat_ms (from SignInOK, 25 s if
// unset); a connection on which nothing arrives for two heartbeats is
// dropped. On a disconnect — end of stream, a read or write error, an Error
// frame with id 0 (SHUTTING_DOWN, SLOW_CONSUMER, IDLE_TIMEOUT, …), missed
// heartbeats — the client reconnects with exponential backoff and full
// jitter (a random delay up to MinBackoff·2^attempt, capped at MaxBackoff),
// calls TokenFunc again, signs in and resyncs. It stops for good, closing
// Messages and setting Err, when the sign-in is refused (UNAUTHENTICATED and
// other non-retryable codes) or when the server says REPLACED: the same
// device signed in on another connection, and reconnecting would only evict
// that one in turn.
//
// # Requests
//
// Requests carry a fresh non-zero id per attempt. Send retries timeouts,
// disconnects and temporary errors with the same client msg id until its
// context ends; the server dedupes resends (a resend's SendAck has Duplicate
// set). JoinRoom retries the same way (joining twice is harmless); Call and
// LeaveRoom do not retry. Non-temporary errors are returned as *Error.
package client
