// Package tcp is Parley's raw-TCP client listener: length-prefixed protobuf
// frames (see edge/frame) on a gnet v2 epoll event loop.
//
// # Why gnet
//
// A few event-loop goroutines hold every socket, so an idle connection costs
// a small struct and no goroutine or buffer (gnet takes read and write ring
// buffers from a pool only while bytes are pending). The design card named
// tidwall/evio; its only served release (v1.0.8) loses pushed bytes when a
// wake-up arrives during a partial write, leaves Nagle on and has no
// back-pressure. gnet v2 is its maintained descendant with the same model and
// a queued, concurrency-safe AsyncWrite. TestSlowReader is the proof the design
// asks for: a goroutine outside the loop pushes 4,000 frames of varied sizes
// to a client that reads in small slow pieces through a small receive window,
// and every frame must arrive intact and in order.
//
// # Behaviour
//
//   - Handler.Opened, Frame and Closed run on the connection's event loop, so
//     they are never concurrent for one connection and must not block.
//   - Conn.Send may be called from any goroutine. It length-prefixes the
//     frame and hands it to gnet's AsyncWrite. Bytes not yet written to the
//     socket (queued for the loop plus gnet's outbound buffer) are counted per
//     connection; past Config.MaxQueueBytes the connection is closed with
//     ERROR_CODE_SLOW_CONSUMER.
//   - Conn.Close queues the Error frame behind everything sent before it,
//     waits (up to Config.DrainTimeout) until gnet's outbound buffer is empty
//     and then closes, so a reading client sees the Error frame before EOF.
//   - A length prefix over Config.MaxFrameSize closes the connection with
//     ERROR_CODE_FRAME_TOO_LARGE before anything of that size is buffered;
//     bytes that do not decode as a Frame close it with ERROR_CODE_BAD_FRAME.
//   - GOMAXPROCS: gnet's pollers block in epoll_wait(2), each holding a Go P
//     until the runtime takes it back (up to 10 ms later on a quiet
//     scheduler), so a running Server adds one P per event loop and one for
//     the acceptor, and takes them back when it stops; see procs.go for the
//     measurement.
//   - TLS: this listener is plain TCP. Put a TLS-terminating proxy in front of
//     it, or use the WebSocket listener (edge/ws), which gets TLS from
//     net/http.
package tcp
