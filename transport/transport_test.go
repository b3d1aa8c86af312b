package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// logBuf collects a Mux's log lines so tests can check why it closed a
// connection (and so nothing logs through t.Log after a test ends).
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuf) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// eventuallyLogs waits until the log mentions substr.
func (l *logBuf) eventuallyLogs(t *testing.T, substr string) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(l.String(), substr) },
		5*time.Second, 5*time.Millisecond, "log never mentioned %q; log:\n%s", substr, l)
}

type server struct {
	mux  *Mux
	logs *logBuf
}

// newMux listens on addr (127.0.0.1:0 when empty) and closes the Mux at
// the end of the test.
func newMux(t *testing.T, addr string, maxFrame int) (*Mux, *logBuf) {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	logs := &logBuf{}
	m, err := Listen(Config{Addr: addr, MaxFrameBytes: maxFrame, Logger: logs.logger()})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, m.Close()) })
	return m, logs
}

// startServer runs a Mux serving h until the test ends.
func startServer(t *testing.T, h Handler) *server {
	t.Helper()
	return startServerOpts(t, "", 0, h)
}

func startServerOpts(t *testing.T, addr string, maxFrame int, h Handler) *server {
	t.Helper()
	m, logs := newMux(t, addr, maxFrame)
	serve(t, m, h)
	return &server{mux: m, logs: logs}
}

// serve runs m.Serve in the background and checks it returns nil after Close.
func serve(t *testing.T, m *Mux, h Handler) {
	done := make(chan error, 1)
	go func() { done <- m.Serve(h) }()
	t.Cleanup(func() {
		require.NoError(t, m.Close())
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
}

func (s *server) addr() string { return s.mux.Addr().String() }

func dial(t *testing.T, addr string, opts DialOptions) *Conn {
	t.Helper()
	c, err := DialConn(context.Background(), addr, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// echo answers a ProduceRequest with its partition and timeout.
func echo(_ context.Context, method Method, body []byte) (any, error) {
	var req ProduceRequest
	if err := msgpack.Unmarshal(body, &req); err != nil {
		return nil, Errorf(ErrInvalidRequest, "decode %s: %v", method, err)
	}
	return ProduceResponse{BaseOffset: int64(req.Partition), LastOffset: req.TimeoutMs + int64(len(req.Batch))}, nil
}

func TestConcurrentCallsOneConn(t *testing.T) {
	s := startServer(t, echo)
	c := dial(t, s.addr(), DialOptions{})
	ctx := testCtx(t)

	const workers, calls = 64, 30
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				req := ProduceRequest{Partition: int32(w), TimeoutMs: int64(i), Batch: make([]byte, w*i)}
				var resp ProduceResponse
				if !assert.NoError(t, c.Call(ctx, MethodProduce, req, &resp)) {
					return
				}
				assert.Equal(t, ProduceResponse{BaseOffset: int64(w), LastOffset: int64(i + w*i)}, resp)
			}
		})
	}
	wg.Wait()
}

func TestOutOfOrderReplies(t *testing.T) {
	slowStarted := make(chan struct{})
	release := make(chan struct{})
	s := startServer(t, func(ctx context.Context, method Method, body []byte) (any, error) {
		var req ProduceRequest
		if err := msgpack.Unmarshal(body, &req); err != nil {
			return nil, err
		}
		if req.Partition == 0 { // the slow one
			close(slowStarted)
			<-release
		}
		return ProduceResponse{BaseOffset: int64(req.Partition)}, nil
	})
	c := dial(t, s.addr(), DialOptions{})
	ctx := testCtx(t)

	slow := make(chan error, 1)
	var slowResp ProduceResponse
	go func() { slow <- c.Call(ctx, MethodProduce, ProduceRequest{Partition: 0}, &slowResp) }()
	<-slowStarted

	// The second request overtakes the first on the same connection.
	var fast ProduceResponse
	require.NoError(t, c.Call(ctx, MethodProduce, ProduceRequest{Partition: 1}, &fast))
	assert.EqualValues(t, 1, fast.BaseOffset)
	select {
	case err := <-slow:
		t.Fatalf("slow call finished first: %v", err)
	default:
	}

	close(release)
	require.NoError(t, <-slow)
	assert.EqualValues(t, 0, slowResp.BaseOffset)
}

func TestHandlerErrors(t *testing.T) {
	s := startServer(t, func(ctx context.Context, method Method, body []byte) (any, error) {
		switch method {
		case MethodProduce:
			return nil, &Error{Code: ErrNotLeader, Message: "ask n2", Leader: "127.0.0.2:7071"}
		case MethodFetch:
			return nil, fmt.Errorf("partition 3: %w", Errorf(ErrOffsetOutOfRange, "offset %d", 99))
		case MethodStatus:
			return nil, errors.New("disk on fire")
		}
		return Empty{}, nil
	})
	c := dial(t, s.addr(), DialOptions{})
	ctx := testCtx(t)

	err := c.Call(ctx, MethodProduce, Empty{}, nil)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, &Error{Code: ErrNotLeader, Message: "ask n2", Leader: "127.0.0.2:7071"}, e)
	assert.True(t, CodeOf(err).Retriable())
	assert.NotErrorIs(t, err, ErrNotSent)
	assert.NotErrorIs(t, err, ErrNoReply)

	err = c.Call(ctx, MethodFetch, Empty{}, nil)
	assert.Equal(t, ErrOffsetOutOfRange, CodeOf(err))
	assert.Equal(t, "offset out of range: offset 99", err.Error())

	err = c.Call(ctx, MethodStatus, Empty{}, nil)
	require.ErrorAs(t, err, &e)
	assert.Equal(t, ErrUnknown, e.Code)
	assert.Equal(t, "disk on fire", e.Message)

	var out Empty
	assert.NoError(t, c.Call(ctx, MethodMetadata, Empty{}, &out), "connection still healthy")
}

func TestHandlerPanic(t *testing.T) {
	s := startServer(t, func(ctx context.Context, method Method, body []byte) (any, error) {
		if method == MethodMetaApply {
			panic("boom")
		}
		return Empty{}, nil
	})
	c := dial(t, s.addr(), DialOptions{})
	ctx := testCtx(t)

	err := c.Call(ctx, MethodMetaApply, MetaApplyRequest{Command: []byte("x")}, nil)
	require.Error(t, err)
	assert.Equal(t, ErrUnknown, CodeOf(err))
	assert.Contains(t, err.Error(), "panicked")
	s.logs.eventuallyLogs(t, "handler panicked")

	assert.NoError(t, c.Call(ctx, MethodStatus, Empty{}, nil), "server and connection survive")
}

func TestUnencodableResponse(t *testing.T) {
	s := startServer(t, func(ctx context.Context, method Method, body []byte) (any, error) {
		return make(chan int), nil
	})
	c := dial(t, s.addr(), DialOptions{})
	err := c.Call(testCtx(t), MethodStatus, Empty{}, nil)
	assert.Equal(t, ErrUnknown, CodeOf(err))
}

// rawConn opens a plain TCP connection to the server and writes b.
func rawConn(t *testing.T, addr string, b []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	if len(b) > 0 {
		_, err = c.Write(b)
		require.NoError(t, err)
	}
	return c
}

// requireClosedByPeer waits for the server to close c.
func requireClosedByPeer(t *testing.T, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 64)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue // drain anything the server sent first
		}
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "server did not close the connection")
		return // EOF, or a reset when the server closed with unread input
	}
}

func TestOversizedFrameClosesOnlyThatConn(t *testing.T) {
	s := startServerOpts(t, "", 1024, echo)
	good := dial(t, s.addr(), DialOptions{})
	ctx := testCtx(t)
	require.NoError(t, good.Call(ctx, MethodProduce, ProduceRequest{}, nil))

	// A raw connection announcing a 2 KiB frame is cut off at the length.
	bad := rawConn(t, s.addr(), binary.BigEndian.AppendUint32([]byte{protoClient}, 2048))
	requireClosedByPeer(t, bad)
	s.logs.eventuallyLogs(t, "frame too large")

	// A client that does not know the server's limit loses its connection;
	// the outcome is unknown to it.
	big := dial(t, s.addr(), DialOptions{})
	err := big.Call(ctx, MethodProduce, ProduceRequest{Batch: make([]byte, 4096)}, nil)
	require.ErrorIs(t, err, ErrNoReply)
	assert.NotErrorIs(t, err, ErrNotSent)

	// A client that knows the limit refuses to send, and its connection lives.
	limited := dial(t, s.addr(), DialOptions{MaxFrameBytes: 1024})
	err = limited.Call(ctx, MethodProduce, ProduceRequest{Batch: make([]byte, 4096)}, nil)
	require.ErrorIs(t, err, ErrNotSent)
	require.ErrorIs(t, err, ErrFrameTooLarge)
	assert.NoError(t, limited.Call(ctx, MethodProduce, ProduceRequest{}, nil))

	// The server serves everyone else as before.
	assert.NoError(t, good.Call(ctx, MethodProduce, ProduceRequest{}, nil))
}

func TestOversizedResponse(t *testing.T) {
	s := startServerOpts(t, "", 1024, func(ctx context.Context, method Method, body []byte) (any, error) {
		return FetchResponse{Batches: [][]byte{make([]byte, 4096)}}, nil
	})
	c := dial(t, s.addr(), DialOptions{})
	err := c.Call(testCtx(t), MethodFetch, FetchRequest{}, nil)
	assert.Equal(t, ErrUnknown, CodeOf(err))
	assert.Contains(t, err.Error(), "frame limit")
}

func TestMalformedConnectionsAreClosed(t *testing.T) {
	s := startServer(t, echo)
	m := s.mux
	_, err := m.RaftLayer("known")
	require.NoError(t, err)

	good := dial(t, s.addr(), DialOptions{})
	ctx := testCtx(t)

	garbageFrame := rawFrame([]byte("not msgpack at all"))
	badMsgpack := rawFrame([]byte{0x95, 1, 4, 1, 0xc0, 0xc1}) // 0xc1 is never valid
	response, err := appendFrame(nil, Frame{ID: 1, Method: MethodStatus, Kind: KindResponse, Body: []byte{0x80}})
	require.NoError(t, err)
	unknownGroup := append([]byte{protoRaft, 0, 5}, "other"...)

	cases := map[string]struct {
		in     []byte
		reason string
	}{
		"garbage bytes":         {append([]byte{protoClient}, "GET / HTTP/1.1\r\n\r\n"...), "bad frame"},
		"garbage frame":         {append([]byte{protoClient}, garbageFrame...), "malformed frame"},
		"bad msgpack":           {append([]byte{protoClient}, badMsgpack...), "invalid msgpack code"},
		"response from client":  {append([]byte{protoClient}, response...), "expected a request frame"},
		"unknown protocol byte": {[]byte("X"), "unknown protocol byte"},
		"unknown raft group":    {unknownGroup, "unknown group"},
		"empty raft group":      {[]byte{protoRaft, 0, 0}, "empty group name"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := rawConn(t, s.addr(), tc.in)
			requireClosedByPeer(t, c)
			s.logs.eventuallyLogs(t, tc.reason)
			require.NoError(t, good.Call(ctx, MethodProduce, ProduceRequest{}, nil), "other connections unaffected")
		})
	}
}

func TestHeaderTimeout(t *testing.T) {
	m, logs := newMux(t, "", 0)
	m.headerTimeout = 50 * time.Millisecond
	serve(t, m, echo)

	idle := rawConn(t, m.Addr().String(), nil)
	requireClosedByPeer(t, idle)
	logs.eventuallyLogs(t, "before its protocol byte")

	// A Raft header that stalls half-way is cut off too.
	slow := rawConn(t, m.Addr().String(), []byte{protoRaft, 0})
	requireClosedByPeer(t, slow)
	logs.eventuallyLogs(t, "reading group header")

	require.Eventually(t, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.conns) == 0
	}, 5*time.Second, 5*time.Millisecond, "timed-out connections are forgotten")
}

func TestClientDisconnectCancelsHandler(t *testing.T) {
	started := make(chan struct{}, 1)
	var running, cancelled atomic.Int32
	s := startServer(t, func(ctx context.Context, method Method, body []byte) (any, error) {
		running.Add(1)
		defer running.Add(-1)
		started <- struct{}{}
		<-ctx.Done()
		cancelled.Add(1)
		return nil, ctx.Err()
	})
	c, err := DialConn(testCtx(t), s.addr(), DialOptions{})
	require.NoError(t, err)

	callErr := make(chan error, 1)
	go func() { callErr <- c.Call(context.Background(), MethodFetch, FetchRequest{MaxWaitMs: 60_000}, nil) }()
	<-started
	require.NoError(t, c.Close())

	err = <-callErr
	require.ErrorIs(t, err, ErrNoReply, "the request was sent: outcome unknown")
	assert.NotErrorIs(t, err, ErrNotSent)

	require.Eventually(t, func() bool { return cancelled.Load() == 1 && running.Load() == 0 },
		5*time.Second, 5*time.Millisecond, "handler context not cancelled")
	require.Eventually(t, func() bool {
		s.mux.mu.Lock()
		defer s.mux.mu.Unlock()
		return len(s.mux.conns) == 0
	}, 5*time.Second, 5*time.Millisecond, "server still tracks the connection")
}

func TestMuxCloseCancelsHandlers(t *testing.T) {
	started := make(chan struct{}, 1)
	var exited atomic.Int32
	m, _ := newMux(t, "", 0)
	done := make(chan error, 1)
	go func() {
		done <- m.Serve(func(ctx context.Context, method Method, body []byte) (any, error) {
			started <- struct{}{}
			<-ctx.Done()
			exited.Add(1)
			return nil, ctx.Err()
		})
	}()
	c := dial(t, m.Addr().String(), DialOptions{})
	callErr := make(chan error, 1)
	go func() { callErr <- c.Call(context.Background(), MethodStatus, Empty{}, nil) }()
	<-started

	// Close waits for the handler, so it must have been cancelled.
	require.NoError(t, m.Close())
	assert.EqualValues(t, 1, exited.Load())
	require.NoError(t, <-done)
	assert.ErrorIs(t, <-callErr, ErrNoReply)

	_, err := DialConn(testCtx(t), m.Addr().String(), DialOptions{Timeout: time.Second})
	assert.ErrorIs(t, err, ErrNotSent, "listener closed")
	assert.ErrorIs(t, m.Serve(echo), ErrMuxClosed)
}

func TestInFlightBound(t *testing.T) {
	release := make(chan struct{})
	var active, peak atomic.Int32
	s := startServer(t, func(ctx context.Context, method Method, body []byte) (any, error) {
		n := active.Add(1)
		defer active.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		return Empty{}, nil
	})
	c := dial(t, s.addr(), DialOptions{})
	ctx := testCtx(t)

	const calls = maxInFlight + 44
	var wg sync.WaitGroup
	for range calls {
		wg.Go(func() { assert.NoError(t, c.Call(ctx, MethodStatus, Empty{}, nil)) })
	}
	require.Eventually(t, func() bool { return active.Load() == maxInFlight },
		5*time.Second, 5*time.Millisecond, "server should run %d handlers at once", maxInFlight)
	close(release)
	wg.Wait()
	assert.EqualValues(t, maxInFlight, peak.Load(), "never more than maxInFlight handlers per connection")
}

func TestErrorClassification(t *testing.T) {
	// An address nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadAddr := ln.Addr().String()
	require.NoError(t, ln.Close())

	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	s := startServer(t, func(ctx context.Context, method Method, body []byte) (any, error) {
		if method == MethodFetch {
			select {
			case <-block:
			case <-ctx.Done():
			}
		}
		return Empty{}, nil
	})

	t.Run("dial failure", func(t *testing.T) {
		_, err := DialConn(testCtx(t), deadAddr, DialOptions{Timeout: time.Second})
		require.ErrorIs(t, err, ErrNotSent)
		assert.NotErrorIs(t, err, ErrNoReply)

		p := NewPool(DialOptions{Timeout: time.Second})
		defer p.Close()
		err = p.Call(testCtx(t), deadAddr, MethodStatus, Empty{}, nil)
		require.ErrorIs(t, err, ErrNotSent)
		assert.NotErrorIs(t, err, ErrNoReply)
	})

	t.Run("closed conn", func(t *testing.T) {
		c := dial(t, s.addr(), DialOptions{})
		require.NoError(t, c.Close())
		err := c.Call(testCtx(t), MethodStatus, Empty{}, nil)
		require.ErrorIs(t, err, ErrNotSent)
		assert.ErrorIs(t, err, net.ErrClosed)
	})

	t.Run("context already done", func(t *testing.T) {
		c := dial(t, s.addr(), DialOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := c.Call(ctx, MethodStatus, Empty{}, nil)
		require.ErrorIs(t, err, ErrNotSent)
		assert.ErrorIs(t, err, context.Canceled)
		assert.NoError(t, c.Call(testCtx(t), MethodStatus, Empty{}, nil), "connection still usable")
	})

	t.Run("unencodable request", func(t *testing.T) {
		c := dial(t, s.addr(), DialOptions{})
		err := c.Call(testCtx(t), MethodStatus, make(chan int), nil)
		require.ErrorIs(t, err, ErrNotSent)
	})

	t.Run("deadline while waiting", func(t *testing.T) {
		c := dial(t, s.addr(), DialOptions{})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := c.Call(ctx, MethodFetch, Empty{}, nil)
		require.ErrorIs(t, err, ErrNoReply)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.NotErrorIs(t, err, ErrNotSent)
		assert.NoError(t, c.Call(testCtx(t), MethodStatus, Empty{}, nil), "a late reply is dropped, connection still usable")
	})

	t.Run("connection lost after write", func(t *testing.T) {
		// A fake server that reads one request and hangs up.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		go func() {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			defer nc.Close()
			var b [1]byte
			_, _ = io.ReadFull(nc, b[:])
			_, _ = ReadFrame(newBufReader(nc), 0)
		}()
		c := dial(t, ln.Addr().String(), DialOptions{})
		err = c.Call(testCtx(t), MethodStatus, Empty{}, nil)
		require.ErrorIs(t, err, ErrNoReply)
		assert.NotErrorIs(t, err, ErrNotSent)
		<-c.Done()
		err = c.Call(testCtx(t), MethodStatus, Empty{}, nil)
		assert.ErrorIs(t, err, ErrNotSent, "a broken conn sends nothing")
	})
}

func TestPoolRedialAfterRestart(t *testing.T) {
	var calls atomic.Int32
	h := func(ctx context.Context, method Method, body []byte) (any, error) {
		calls.Add(1)
		return Empty{}, nil
	}
	m, err := Listen(Config{Addr: "127.0.0.1:0", Logger: (&logBuf{}).logger()})
	require.NoError(t, err)
	addr := m.Addr().String()
	done := make(chan error, 1)
	go func() { done <- m.Serve(h) }()

	p := NewPool(DialOptions{Timeout: time.Second})
	defer p.Close()
	ctx := testCtx(t)

	var wg sync.WaitGroup
	for range 20 { // concurrent first calls race to dial
		wg.Go(func() { assert.NoError(t, p.Call(ctx, addr, MethodStatus, Empty{}, nil)) })
	}
	wg.Wait()
	first := p.slots[addr].conn.Load()
	require.NotNil(t, first)

	// Stop the server: the pooled connection breaks.
	require.NoError(t, m.Close())
	require.NoError(t, <-done)
	select {
	case <-first.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("pooled connection did not notice the server closing")
	}
	err = p.Call(ctx, addr, MethodStatus, Empty{}, nil)
	require.ErrorIs(t, err, ErrNotSent, "server down: dial fails")

	// Restart on the same address: the pool redials.
	m2, _ := newMux(t, addr, 0)
	serve(t, m2, h)
	require.NoError(t, p.Call(ctx, addr, MethodStatus, Empty{}, nil))
	second := p.slots[addr].conn.Load()
	assert.NotSame(t, first, second)
	assert.EqualValues(t, 21, calls.Load())

	require.NoError(t, p.Close())
	err = p.Call(ctx, addr, MethodStatus, Empty{}, nil)
	assert.ErrorIs(t, err, ErrNotSent, "closed pool")
	<-second.Done()
}

func TestPoolRetriesStaleConn(t *testing.T) {
	s := startServer(t, echo)
	p := NewPool(DialOptions{})
	defer p.Close()
	ctx := testCtx(t)
	require.NoError(t, p.Call(ctx, s.addr(), MethodProduce, ProduceRequest{}, nil))

	// Break the pooled conn behind the pool's back; the next call finds it
	// dead before writing and transparently uses a new one.
	stale := p.slots[s.addr()].conn.Load()
	require.NoError(t, stale.Close())
	require.NoError(t, p.Call(ctx, s.addr(), MethodProduce, ProduceRequest{}, nil))
	assert.NotSame(t, stale, p.slots[s.addr()].conn.Load())
}

func TestDialerLocalAddr(t *testing.T) {
	for _, host := range []string{"", "0.0.0.0", "::", "[::]", "localhost"} {
		assert.Nil(t, Dialer(host, time.Second).LocalAddr, "host %q", host)
	}
	assert.Equal(t, time.Second, Dialer("", time.Second).Timeout)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	c, err := Dialer("127.0.0.1", time.Second).Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, "127.0.0.1", c.LocalAddr().(*net.TCPAddr).IP.String())

	m, _ := newMux(t, "127.0.0.1:0", 0)
	assert.Equal(t, "127.0.0.1", m.LocalHost())
	all, _ := newMux(t, ":0", 0)
	assert.Equal(t, "", all.LocalHost())
}

func TestSourceAddressSecondLoopback(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot bind 127.0.0.2 here: %v", err)
	}
	require.NoError(t, probe.Close())

	// Node A on 127.0.0.2 dials node B on 127.0.0.1.
	a, _ := newMux(t, "127.0.0.2:0", 0)
	b, _ := newMux(t, "127.0.0.1:0", 0)
	assert.Equal(t, "127.0.0.2", a.LocalHost())
	serve(t, a, echo)
	serve(t, b, echo)

	la, err := a.RaftLayer("g")
	require.NoError(t, err)
	lb, err := b.RaftLayer("g")
	require.NoError(t, err)

	out, err := la.Dial(rServerAddr(b), time.Second)
	require.NoError(t, err)
	defer out.Close()
	in, err := lb.Accept()
	require.NoError(t, err)
	defer in.Close()
	assert.Equal(t, "127.0.0.2", in.RemoteAddr().(*net.TCPAddr).IP.String())
	assert.Equal(t, "127.0.0.2", out.LocalAddr().(*net.TCPAddr).IP.String())

	// Client connections honour DialOptions.LocalHost the same way.
	c := dial(t, b.Addr().String(), DialOptions{LocalHost: "127.0.0.2"})
	assert.Equal(t, "127.0.0.2", c.nc.LocalAddr().(*net.TCPAddr).IP.String())
	require.NoError(t, c.Call(testCtx(t), MethodProduce, ProduceRequest{}, nil))
}

func BenchmarkCall(b *testing.B) {
	m, err := Listen(Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(b, err)
	go func() { _ = m.Serve(echo) }()
	defer m.Close()
	c, err := DialConn(context.Background(), m.Addr().String(), DialOptions{})
	require.NoError(b, err)
	defer c.Close()
	ctx := context.Background()
	req := ProduceRequest{Topic: "bench", Batch: make([]byte, 100)}

	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		var resp ProduceResponse
		for b.Loop() {
			if err := c.Call(ctx, MethodProduce, req, &resp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var resp ProduceResponse
			for pb.Next() {
				if err := c.Call(ctx, MethodProduce, req, &resp); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
