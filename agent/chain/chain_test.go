package chain

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/sluice-io/sluice/agent/flow"
	"github.com/sluice-io/sluice/transport"
)

// memChannel is a minimal transactional channel for the sink under test:
// takes become final at Commit, Rollback puts them back at the head.
type memChannel struct {
	mu    sync.Mutex
	queue []flow.Event
}

func (c *memChannel) Start(context.Context) error { return nil }
func (c *memChannel) Stop(context.Context) error  { return nil }
func (c *memChannel) Name() string                { return "c1" }
func (c *memChannel) Counters() *flow.Counters    { return flow.NewCounters(flow.KindChannel, "c1") }
func (c *memChannel) Begin() (flow.Transaction, error) {
	return &memTx{c: c}, nil
}
func (c *memChannel) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

type memTx struct {
	c     *memChannel
	taken []flow.Event
	puts  []flow.Event
}

func (t *memTx) Put(ev flow.Event) error { t.puts = append(t.puts, ev); return nil }
func (t *memTx) Take() (flow.Event, bool, error) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if len(t.c.queue) == 0 {
		return flow.Event{}, false, nil
	}
	ev := t.c.queue[0]
	t.c.queue = t.c.queue[1:]
	t.taken = append(t.taken, ev)
	return ev, true, nil
}
func (t *memTx) Commit() error {
	t.c.mu.Lock()
	t.c.queue = append(t.c.queue, t.puts...)
	t.c.mu.Unlock()
	return nil
}
func (t *memTx) Rollback() error {
	t.c.mu.Lock()
	t.c.queue = append(append([]flow.Event(nil), t.taken...), t.c.queue...)
	t.c.mu.Unlock()
	return nil
}

// collector is the receiving agent's channel processor.
type collector struct {
	mu   sync.Mutex
	evs  []flow.Event
	full bool
	// hold, when set, makes Process wait for it to close or for its
	// context to end, and then commit nothing.
	hold    chan struct{}
	holding int
}

func (c *collector) Process(ctx context.Context, evs []flow.Event) error {
	c.mu.Lock()
	if h := c.hold; h != nil {
		c.holding++
		c.mu.Unlock()
		select {
		case <-h:
		case <-ctx.Done():
		}
		return fmt.Errorf("test: batch abandoned: %w", flow.ErrClosed)
	}
	defer c.mu.Unlock()
	if c.full {
		return fmt.Errorf("test: %w", flow.ErrChannelFull)
	}
	c.evs = append(c.evs, evs...)
	return nil
}

func (c *collector) bodies() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.evs {
		out = append(out, string(e.Body))
	}
	return out
}

func startChainSource(t *testing.T, port string, proc flow.Processor) *Source {
	t.Helper()
	s, err := SourceBuilders()["org.apache.flume.source.AvroSource"]("r1",
		flow.NewProps("b.sources.r1", map[string]string{"bind": "127.0.0.1", "port": port}), proc, flow.Deps{Agent: "b"})
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s.(*Source)
}

func newChainSink(t *testing.T, port string, ch flow.Channel, extra map[string]string) *Sink {
	t.Helper()
	props := map[string]string{"hostname": "127.0.0.1", "port": port, "batch-size": "10",
		"connect-timeout": "2000", "request-timeout": "2000"}
	for k, v := range extra {
		props[k] = v
	}
	k, err := SinkBuilders()["avro"]("k1", flow.NewProps("a.sinks.k1", props), ch, flow.Deps{Agent: "a"})
	require.NoError(t, err)
	require.NoError(t, k.Start(context.Background()))
	t.Cleanup(func() { _ = k.Stop(context.Background()) })
	return k.(*Sink)
}

func portOf(t *testing.T, s *Source) string {
	_, port, err := net.SplitHostPort(s.Addrs()[0].String())
	require.NoError(t, err)
	return port
}

func fill(ch *memChannel, from, n int) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for i := from; i < from+n; i++ {
		ch.queue = append(ch.queue, flow.Event{Headers: map[string]string{"n": strconv.Itoa(i)}, Body: []byte("ev" + strconv.Itoa(i))})
	}
}

func TestRoundTrip(t *testing.T) {
	proc := &collector{}
	src := startChainSource(t, "0", proc)
	ch := &memChannel{}
	fill(ch, 0, 25)
	k := newChainSink(t, portOf(t, src), ch, nil)
	ctx := context.Background()
	for _, want := range []flow.Status{flow.Ready, flow.Ready, flow.Ready, flow.Backoff} {
		st, err := k.Process(ctx)
		require.NoError(t, err)
		assert.Equal(t, want, st)
	}
	require.Len(t, proc.evs, 25)
	assert.Equal(t, "7", proc.evs[7].Headers["n"])
	assert.Equal(t, "ev24", string(proc.evs[24].Body))
	assert.Zero(t, ch.len())
	assert.EqualValues(t, 25, k.Counters().Get(flow.EventDrainSuccessCount))
	assert.EqualValues(t, 2, k.Counters().Get(flow.BatchCompleteCount))
	assert.EqualValues(t, 1, k.Counters().Get(flow.BatchUnderflowCount))
	assert.EqualValues(t, 1, k.Counters().Get(flow.BatchEmptyCount))
	assert.EqualValues(t, 25, src.Counters().Get(flow.EventAcceptedCount))
	assert.EqualValues(t, 3, src.Counters().Get(flow.AppendBatchAcceptedCount))
}

// A full channel at the next agent: the batch stays in the sender's
// channel and goes through once the receiver has room.
func TestReceiverChannelFullRollsBack(t *testing.T) {
	proc := &collector{full: true}
	src := startChainSource(t, "0", proc)
	ch := &memChannel{}
	fill(ch, 0, 5)
	k := newChainSink(t, portOf(t, src), ch, nil)
	_, err := k.Process(context.Background())
	require.ErrorIs(t, err, flow.ErrChannelFull)
	assert.Equal(t, 5, ch.len())
	proc.mu.Lock()
	proc.full = false
	proc.mu.Unlock()
	st, err := k.Process(context.Background())
	require.NoError(t, err)
	assert.Equal(t, flow.Ready, st)
	assert.Equal(t, []string{"ev0", "ev1", "ev2", "ev3", "ev4"}, proc.bodies())
}

// The receiving agent goes away mid-stream, a batch in flight, and comes
// back on the same port: the sender's failed batches roll back and are
// sent again; nothing is lost and the order of first deliveries holds.
func TestReceiverRestartedMidStreamLosesNothing(t *testing.T) {
	const n = 300
	proc := &collector{}
	src := startChainSource(t, "0", proc)
	port := portOf(t, src)
	ch := &memChannel{}
	fill(ch, 0, n)
	k := newChainSink(t, port, ch, nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var failures int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil && (ch.len() > 0 || len(proc.bodies()) < n) {
			if _, err := k.Process(ctx); err != nil {
				failures++
				time.Sleep(5 * time.Millisecond) // the runner's back-off
			}
		}
	}()
	require.Eventually(t, func() bool { return len(proc.bodies()) >= n/3 }, 20*time.Second, time.Millisecond)
	// Hold the next batch inside the receiver, then take the receiver down.
	proc.mu.Lock()
	proc.hold = make(chan struct{})
	proc.mu.Unlock()
	require.Eventually(t, func() bool {
		proc.mu.Lock()
		defer proc.mu.Unlock()
		return proc.holding > 0
	}, 20*time.Second, time.Millisecond)
	require.NoError(t, src.Stop(context.Background()))
	require.Eventually(t, func() bool { return k.Counters().Get(flow.EventWriteFail) > 0 }, 20*time.Second, time.Millisecond)
	delivered := len(proc.bodies())
	assert.Less(t, delivered, n, "the stream is not over")
	// While the receiver is down, the undelivered events stay in the
	// sender's channel (between two attempts, all of them are there).
	require.Eventually(t, func() bool { return ch.len() == n-delivered }, 20*time.Second, time.Millisecond)

	proc.mu.Lock()
	close(proc.hold)
	proc.hold = nil
	proc.mu.Unlock()
	startChainSource(t, port, proc)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("stream did not finish after the receiver came back")
	}
	got := proc.bodies()
	seen := map[string]bool{}
	var firsts []string
	dups := 0
	for _, b := range got {
		if seen[b] {
			dups++
			continue
		}
		seen[b] = true
		firsts = append(firsts, b)
	}
	t.Logf("%d events delivered, %d duplicates, %d failed sends", len(got), dups, failures)
	require.Len(t, firsts, n, "every event arrives")
	for i, b := range firsts {
		require.Equal(t, "ev"+strconv.Itoa(i), b, "order of first deliveries")
	}
	assert.Positive(t, failures)
}

func TestSourceRejectsBadRequests(t *testing.T) {
	proc := &collector{}
	src := startChainSource(t, "0", proc)
	conn, err := transport.DialConn(context.Background(), src.Addrs()[0].String(), transport.DialOptions{Timeout: 2 * time.Second})
	require.NoError(t, err)
	defer conn.Close()
	ctx := context.Background()
	err = conn.Call(ctx, MethodAppendBatch, "not a batch", nil)
	assert.Equal(t, transport.ErrInvalidRequest, transport.CodeOf(err), "%v", err)
	err = conn.Call(ctx, transport.MethodProduce, transport.ProduceRequest{Topic: "x"}, nil)
	assert.Equal(t, transport.ErrInvalidRequest, transport.CodeOf(err), "%v", err)
	// The connection still works for good requests.
	var resp AppendBatchResponse
	require.NoError(t, conn.Call(ctx, MethodAppendBatch, AppendBatchRequest{Events: []WireEvent{{Body: []byte("ok")}}}, &resp))
	assert.Equal(t, 1, resp.Accepted)
	assert.Equal(t, []string{"ok"}, proc.bodies())
	assert.EqualValues(t, 1, src.Counters().Get(flow.EventReadFail))
}

func TestBadConfigNamesTheProperty(t *testing.T) {
	_, err := SinkBuilders()["avro"]("k1", flow.NewProps("a.sinks.k1", map[string]string{"hostname": "h"}), &memChannel{}, flow.Deps{})
	assert.ErrorContains(t, err, "a.sinks.k1.port")
	_, err = SinkBuilders()["avro"]("k1", flow.NewProps("a.sinks.k1", map[string]string{"hostname": "h", "port": "1", "batch-size": "0"}), &memChannel{}, flow.Deps{})
	assert.ErrorContains(t, err, "a.sinks.k1.batch-size")
	_, err = SinkBuilders()["avro"]("k1", flow.NewProps("a.sinks.k1", map[string]string{"hostname": "h", "port": "1", "compression-type": "deflate"}), &memChannel{}, flow.Deps{})
	assert.ErrorContains(t, err, "a.sinks.k1.compression-type")
	_, err = SourceBuilders()["avro"]("r1", flow.NewProps("b.sources.r1", map[string]string{"port": "1"}), &collector{}, flow.Deps{})
	assert.ErrorContains(t, err, "b.sources.r1.bind")
}

func FuzzDecodeAppendBatch(f *testing.F) {
	good, _ := msgpack.Marshal(AppendBatchRequest{Agent: "a", Sink: "k", Events: []WireEvent{{Headers: map[string]string{"k": "v"}, Body: []byte("x")}}})
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0xc0})
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeAppendBatch(body)
		if err != nil {
			require.ErrorIs(t, err, errBadRequest)
			return
		}
		require.LessOrEqual(t, len(req.Events), maxBatchEvents)
		// What decodes re-encodes and decodes to the same events.
		again, err := msgpack.Marshal(req)
		require.NoError(t, err)
		req2, err := decodeAppendBatch(again)
		require.NoError(t, err)
		require.Equal(t, len(req.Events), len(req2.Events))
		_ = fromWire(req.Events)
	})
}
