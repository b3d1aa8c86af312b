package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// limitedServer runs a Mux with cfg (Addr and Logger filled in) serving h.
func limitedServer(t *testing.T, cfg Config, h Handler) *server {
	t.Helper()
	logs := &logBuf{}
	cfg.Addr, cfg.Logger = "127.0.0.1:0", logs.logger()
	m, err := Listen(cfg)
	require.NoError(t, err)
	serve(t, m, h)
	return &server{mux: m, logs: logs}
}

func TestConnectionCap(t *testing.T) {
	s := limitedServer(t, Config{MaxConns: 2}, echo)
	ctx := testCtx(t)
	a := dial(t, s.addr(), DialOptions{})
	b := dial(t, s.addr(), DialOptions{})
	require.NoError(t, a.Call(ctx, MethodProduce, ProduceRequest{}, nil))
	require.NoError(t, b.Call(ctx, MethodProduce, ProduceRequest{}, nil))

	third := rawConn(t, s.addr(), []byte{protoClient})
	requireClosedByPeer(t, third)
	s.logs.eventuallyLogs(t, "connection limit reached")
	require.NoError(t, a.Call(ctx, MethodProduce, ProduceRequest{}, nil), "open connections unaffected")

	// A closed connection frees its place.
	require.NoError(t, b.Close())
	require.Eventually(t, func() bool {
		c, err := DialConn(ctx, s.addr(), DialOptions{})
		if err != nil {
			return false
		}
		defer c.Close()
		return c.Call(ctx, MethodProduce, ProduceRequest{}, nil) == nil
	}, 5*time.Second, 10*time.Millisecond)
}

func TestRaftConnectionsDoNotCount(t *testing.T) {
	s := limitedServer(t, Config{MaxConns: 1}, echo)
	l, err := s.mux.RaftLayer("g")
	require.NoError(t, err)
	for range 3 {
		rawConn(t, s.addr(), raftHeader("g"))
		got, err := l.Accept()
		require.NoError(t, err)
		t.Cleanup(func() { _ = got.Close() })
	}
	c := dial(t, s.addr(), DialOptions{})
	require.NoError(t, c.Call(testCtx(t), MethodProduce, ProduceRequest{}, nil))
}

func TestSlowlorisFrame(t *testing.T) {
	s := limitedServer(t, Config{FrameTimeout: 100 * time.Millisecond}, echo)
	req, err := appendFrame(nil, Frame{ID: 1, Method: MethodProduce, Kind: KindRequest, Body: mustMarshal(t, ProduceRequest{Topic: "t"})})
	require.NoError(t, err)
	cases := map[string][]byte{
		"half a length prefix": req[:2],
		"half a body":          req[:len(req)-3],
	}
	for name, partial := range cases {
		t.Run(name, func(t *testing.T) {
			c := rawConn(t, s.addr(), append([]byte{protoClient}, partial...))
			requireClosedByPeer(t, c)
			s.logs.eventuallyLogs(t, "frame not completed in time")
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{})
	s := limitedServer(t, Config{IdleTimeout: 100 * time.Millisecond}, func(ctx context.Context, m Method, body []byte) (any, error) {
		if m == MethodFetch {
			close(started)
			<-release // a long poll: the connection is busy, not idle
		}
		return Empty{}, nil
	})
	idle := rawConn(t, s.addr(), []byte{protoClient})
	requireClosedByPeer(t, idle)
	s.logs.eventuallyLogs(t, "closing idle client connection")

	c := dial(t, s.addr(), DialOptions{})
	done := make(chan error, 1)
	go func() { done <- c.Call(testCtx(t), MethodFetch, FetchRequest{}, nil) }()
	<-started
	// Several idle periods pass while the call is in progress.
	idle2 := rawConn(t, s.addr(), []byte{protoClient})
	requireClosedByPeer(t, idle2)
	idle3 := rawConn(t, s.addr(), []byte{protoClient})
	requireClosedByPeer(t, idle3)
	close(release)
	require.NoError(t, <-done)
}

// TestOversizedRequestRefusedBeforeReading sends only a frame's length
// prefix and the first bytes of its envelope: a produce announcing more
// than its method's cap is answered at once, without the server waiting
// for (or buffering) the body; the skipped body keeps the stream in sync.
func TestOversizedRequestRefusedBeforeReading(t *testing.T) {
	s := limitedServer(t, Config{MaxFrameBytes: 32 << 20, MethodMaxBytes: map[Method]int{MethodProduce: 1 << 10}}, echo)
	const size = 16 << 20
	head := binary.BigEndian.AppendUint32([]byte{protoClient}, size)
	envelope := []byte{0x95, 0xcd, 0x01, 0x2c, byte(MethodProduce)} // [id 300, method produce, ...
	c := rawConn(t, s.addr(), append(head, envelope...))
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	br := bufio.NewReader(c)
	f, err := ReadFrame(br, 0)
	require.NoError(t, err, "no early answer")
	assert.EqualValues(t, 300, f.ID)
	require.NotNil(t, f.Err)
	assert.Equal(t, ErrRecordTooLarge, f.Err.Code)
	assert.Contains(t, f.Err.Message, "16777216")

	// The rest of the refused frame is skipped; the next request is served.
	_, err = c.Write(make([]byte, size-len(envelope)))
	require.NoError(t, err)
	next, err := appendFrame(nil, Frame{ID: 301, Method: MethodProduce, Kind: KindRequest, Body: mustMarshal(t, ProduceRequest{Partition: 3})})
	require.NoError(t, err)
	_, err = c.Write(next)
	require.NoError(t, err)
	f, err = ReadFrame(br, 0)
	require.NoError(t, err)
	assert.EqualValues(t, 301, f.ID)
	assert.Nil(t, f.Err)
}

func TestInFlightBytesBound(t *testing.T) {
	release := make(chan struct{})
	var started atomic.Int32
	s := limitedServer(t, Config{MaxInFlightBytes: 3000}, func(ctx context.Context, m Method, body []byte) (any, error) {
		started.Add(1)
		<-release
		return Empty{}, nil
	})
	ctx := testCtx(t)
	big := ProduceRequest{Batch: make([]byte, 2000)}
	errs := make(chan error, 2)
	for range 2 {
		c := dial(t, s.addr(), DialOptions{})
		go func() { errs <- c.Call(ctx, MethodProduce, big, nil) }()
	}
	// One request fits; the other waits for its bytes before it is read.
	require.Eventually(t, func() bool { return started.Load() == 1 && s.mux.inflight.waiting() == 1 },
		5*time.Second, 5*time.Millisecond, "started %d", started.Load())
	close(release)
	for range 2 {
		require.NoError(t, <-errs)
	}
	assert.EqualValues(t, 2, started.Load())
	// Bytes are released just after the reply is written.
	require.Eventually(t, func() bool { return s.mux.inflight.used() == 0 }, 5*time.Second, 5*time.Millisecond)
}

// TestPoolReplacesIdleConn: the pool does not reuse a connection idle for
// longer than its idle limit (the server would close it any moment).
func TestPoolReplacesIdleConn(t *testing.T) {
	var peers sync.Map
	s := startServer(t, func(ctx context.Context, m Method, body []byte) (any, error) {
		peers.Store(PeerAddr(ctx).String(), true)
		return Empty{}, nil
	})
	p := NewPool(DialOptions{})
	defer p.Close()
	ctx := testCtx(t)
	require.NoError(t, p.Call(ctx, s.addr(), MethodStatus, Empty{}, nil))
	require.NoError(t, p.Call(ctx, s.addr(), MethodStatus, Empty{}, nil))
	count := func() (n int) {
		peers.Range(func(any, any) bool { n++; return true })
		return n
	}
	require.Equal(t, 1, count(), "a busy connection is reused")
	p.idle = time.Nanosecond
	require.NoError(t, p.Call(ctx, s.addr(), MethodStatus, Empty{}, nil))
	assert.Equal(t, 2, count(), "an idle connection is replaced")
}
