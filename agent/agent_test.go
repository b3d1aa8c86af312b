package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/agent/config"
	"github.com/sluice-io/sluice/agent/flow"
)

// pushSource hands the test its Processor.
type pushSource struct {
	name string
	proc flow.Processor
	c    *flow.Counters
}

func (s *pushSource) Start(context.Context) error { return nil }
func (s *pushSource) Stop(context.Context) error  { return nil }
func (s *pushSource) Name() string                { return s.name }
func (s *pushSource) Counters() *flow.Counters    { return s.c }

// recSink records what it delivered; fail makes Process fail after taking.
type recSink struct {
	name  string
	ch    flow.Channel
	c     *flow.Counters
	fail  atomic.Bool
	calls atomic.Int64
	mu    sync.Mutex
	got   []string
}

func (s *recSink) Start(context.Context) error { return nil }
func (s *recSink) Stop(context.Context) error  { return nil }
func (s *recSink) Name() string                { return s.name }
func (s *recSink) Counters() *flow.Counters    { return s.c }
func (s *recSink) Process(context.Context) (flow.Status, error) {
	s.calls.Add(1)
	tx, err := s.ch.Begin()
	if err != nil {
		return flow.Backoff, err
	}
	var evs []string
	for range 10 {
		ev, ok, err := tx.Take()
		if err != nil || !ok {
			break
		}
		evs = append(evs, string(ev.Body))
	}
	if s.fail.Load() {
		tx.Rollback()
		return flow.Backoff, errors.New("delivery failed")
	}
	if err := tx.Commit(); err != nil {
		return flow.Backoff, err
	}
	if len(evs) == 0 {
		return flow.Backoff, nil
	}
	s.mu.Lock()
	s.got = append(s.got, evs...)
	s.mu.Unlock()
	return flow.Ready, nil
}

func (s *recSink) delivered() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

type harness struct {
	reg     Registry
	sources map[string]*pushSource
	sinks   map[string]*recSink
}

func newHarness() *harness {
	h := &harness{reg: DefaultRegistry(nil), sources: map[string]*pushSource{}, sinks: map[string]*recSink{}}
	h.reg.Sources["push"] = func(name string, p *flow.Props, proc flow.Processor, d flow.Deps) (flow.Source, error) {
		s := &pushSource{name: name, proc: proc, c: flow.NewCounters(flow.KindSource, name)}
		h.sources[name] = s
		return s, nil
	}
	h.reg.Sinks["rec"] = func(name string, p *flow.Props, ch flow.Channel, d flow.Deps) (flow.Sink, error) {
		s := &recSink{name: name, ch: ch, c: flow.NewCounters(flow.KindSink, name)}
		if p.Bool("fail", false) {
			s.fail.Store(true)
		}
		h.sinks[name] = s
		return s, nil
	}
	return h
}

func (h *harness) build(t *testing.T, conf string, prev *Agent) *Agent {
	t.Helper()
	cfg, probs, err := config.Load(strings.NewReader(conf), "a1", h.reg.Catalog(), config.Options{})
	require.NoError(t, err)
	require.Empty(t, probs)
	a, bprobs, err := Build(cfg, h.reg, flow.Deps{Logger: slog.New(slog.DiscardHandler), DataDir: t.TempDir()},
		Options{BackoffStep: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, ErrorBackoff: 10 * time.Millisecond}, prev)
	require.NoError(t, err)
	require.Empty(t, bprobs)
	return a
}

func events(bodies ...string) []flow.Event {
	out := make([]flow.Event, len(bodies))
	for i, b := range bodies {
		out[i] = flow.Event{Body: []byte(b), Headers: map[string]string{"kind": b[:1]}}
	}
	return out
}

func drainAll(t *testing.T, ch flow.Channel) []string {
	t.Helper()
	tx, err := ch.Begin()
	require.NoError(t, err)
	var out []string
	for {
		ev, ok, err := tx.Take()
		require.NoError(t, err)
		if !ok {
			break
		}
		out = append(out, string(ev.Body))
	}
	require.NoError(t, tx.Commit())
	return out
}

func TestReplicatingWithFailingOptionalChannel(t *testing.T) {
	h := newHarness()
	a := h.build(t, `
a1.sources = r1
a1.channels = c1 c2
a1.sources.r1.type = push
a1.sources.r1.channels = c1 c2
a1.sources.r1.selector.optional = c2
a1.channels.c1.type = memory
a1.channels.c2.type = memory
a1.channels.c2.capacity = 1
a1.channels.c2.transactionCapacity = 1
a1.channels.c2.keep-alive = 0
`, nil)
	require.NoError(t, a.Start(context.Background()))
	defer a.Stop(context.Background())
	// c2 cannot take a batch of 3 (transactionCapacity 1): it is optional,
	// so the batch is still accepted.
	require.NoError(t, h.sources["r1"].proc.Process(context.Background(), events("a1", "a2", "a3")))
	require.Equal(t, []string{"a1", "a2", "a3"}, drainAll(t, a.Channel("c1")))
	require.Empty(t, drainAll(t, a.Channel("c2")))
}

func TestRequiredChannelFailureFailsTheBatch(t *testing.T) {
	h := newHarness()
	a := h.build(t, `
a1.sources = r1
a1.channels = c1 c2
a1.sources.r1.type = push
a1.sources.r1.channels = c1 c2
a1.channels.c1.type = memory
a1.channels.c2.type = memory
a1.channels.c2.capacity = 2
a1.channels.c2.transactionCapacity = 2
a1.channels.c2.keep-alive = 0
`, nil)
	require.NoError(t, a.Start(context.Background()))
	defer a.Stop(context.Background())
	err := h.sources["r1"].proc.Process(context.Background(), events("a1", "a2", "a3"))
	require.ErrorIs(t, err, flow.ErrTxFull)
	require.ErrorContains(t, err, "required channel c2")
	// Fan-out is not atomic: c1 committed before c2 failed (Flume too).
	require.Equal(t, []string{"a1", "a2", "a3"}, drainAll(t, a.Channel("c1")))
}

func TestMultiplexingMappingOptionalDefault(t *testing.T) {
	h := newHarness()
	a := h.build(t, `
a1.sources = r1
a1.channels = c1 c2 c3
a1.sources.r1.type = push
a1.sources.r1.channels = c1 c2 c3
a1.sources.r1.selector.type = multiplexing
a1.sources.r1.selector.header = kind
a1.sources.r1.selector.mapping.e = c1
a1.sources.r1.selector.mapping.i = c2
a1.sources.r1.selector.optional.i = c1 c2
a1.sources.r1.selector.default = c3
a1.channels.c1.type = memory
a1.channels.c2.type = memory
a1.channels.c3.type = memory
`, nil)
	require.NoError(t, a.Start(context.Background()))
	defer a.Stop(context.Background())
	evs := events("e1", "i1", "x1")
	evs = append(evs, flow.Event{Body: []byte("noheader")})
	require.NoError(t, h.sources["r1"].proc.Process(context.Background(), evs))
	require.Equal(t, []string{"e1", "i1"}, drainAll(t, a.Channel("c1")), "e mapped; i optional")
	require.Equal(t, []string{"i1"}, drainAll(t, a.Channel("c2")), "required and optional counts once")
	require.Equal(t, []string{"x1", "noheader"}, drainAll(t, a.Channel("c3")), "unmapped and missing go to default")
}

const runConf = `
a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = push
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.channels.c1.capacity = 1000
a1.sinks.k1.type = rec
a1.sinks.k1.channel = c1
`

func TestRunnerDeliversAndStopDrains(t *testing.T) {
	h := newHarness()
	a := h.build(t, runConf, nil)
	require.NoError(t, a.Start(context.Background()))
	var want []string
	for i := range 30 {
		b := fmt.Sprintf("e%02d", i)
		want = append(want, b)
		require.NoError(t, h.sources["r1"].proc.Process(context.Background(), events(b)))
	}
	require.Eventually(t, func() bool { return len(h.sinks["k1"].delivered()) == 30 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, want, h.sinks["k1"].delivered())
	require.NoError(t, a.Stop(context.Background()))
	rep, err := flow.Report(a.Counters())
	require.NoError(t, err)
	require.Contains(t, string(rep), `"CHANNEL.c1":{`)
	require.Contains(t, string(rep), `"EventPutSuccessCount":"30"`)
}

func TestReloadKeepsUnchangedChannelWithItsEvents(t *testing.T) {
	h := newHarness()
	a := h.build(t, runConf+"a1.sinks.k1.fail = true\n", nil)
	require.NoError(t, a.Start(context.Background()))
	require.NoError(t, h.sources["r1"].proc.Process(context.Background(), events("a", "b", "c")))
	ch := a.Channel("c1")
	b := h.build(t, runConf, a)
	require.Same(t, ch, b.Channel("c1"))
	require.NoError(t, a.Replace(context.Background(), b))
	defer b.Stop(context.Background())
	require.Eventually(t, func() bool { return len(h.sinks["k1"].delivered()) == 3 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, []string{"a", "b", "c"}, h.sinks["k1"].delivered())
}

const groupConf = `
a1.sources = r1
a1.channels = c1
a1.sinks = k1 k2
a1.sources.r1.type = push
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.channels.c1.capacity = 10000
a1.channels.c1.transactionCapacity = 1000
a1.sinks.k1.type = rec
a1.sinks.k1.channel = c1
a1.sinks.k2.type = rec
a1.sinks.k2.channel = c1
a1.sinkgroups = g1
a1.sinkgroups.g1.sinks = k1 k2
`

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestFailoverPenaltyAndReturn(t *testing.T) {
	h := newHarness()
	a := h.build(t, groupConf+`
a1.sinkgroups.g1.processor.type = failover
a1.sinkgroups.g1.processor.priority.k1 = 10
a1.sinkgroups.g1.processor.priority.k2 = 5
a1.sinkgroups.g1.processor.maxpenalty = 10000
`, nil)
	clk := &fakeClock{now: time.Unix(1000, 0)}
	p := a.runners[0].proc
	setClock(t, p, clk.Now)
	ctx := context.Background()
	src := h.sources["r1"]
	require.NoError(t, a.Channel("c1").Start(ctx))
	k1, k2 := h.sinks["k1"], h.sinks["k2"]

	push := func(b string) {
		require.NoError(t, src.proc.Process(ctx, events(b)))
		_, err := p.Process(ctx)
		require.NoError(t, err)
	}
	push("a")
	require.Equal(t, []string{"a"}, k1.delivered(), "the highest priority sink serves")
	k1.fail.Store(true)
	push("b")
	require.Equal(t, []string{"b"}, k2.delivered(), "k1 failed: k2 at once, nothing lost")
	k1.fail.Store(false)
	calls := k1.calls.Load()
	push("c")
	require.Equal(t, calls, k1.calls.Load(), "k1 is penalised for 2 s after its first failure")
	require.Equal(t, []string{"b", "c"}, k2.delivered())
	clk.advance(2100 * time.Millisecond)
	push("d")
	require.Equal(t, []string{"a", "d"}, k1.delivered(), "after the penalty k1 is back")
}

func TestLoadBalanceRoundRobinSpreadsAndBacksOff(t *testing.T) {
	h := newHarness()
	a := h.build(t, groupConf+`
a1.sinkgroups.g1.processor.type = load_balance
a1.sinkgroups.g1.processor.selector = round_robin
a1.sinkgroups.g1.processor.backoff = true
`, nil)
	clk := &fakeClock{now: time.Unix(1000, 0)}
	p := a.runners[0].proc
	setClock(t, p, clk.Now)
	ctx := context.Background()
	require.NoError(t, a.Channel("c1").Start(ctx))
	k1, k2 := h.sinks["k1"], h.sinks["k2"]
	for i := range 10 {
		require.NoError(t, h.sources["r1"].proc.Process(ctx, events(fmt.Sprint("e", i))))
		_, err := p.Process(ctx)
		require.NoError(t, err)
	}
	require.Len(t, k1.delivered(), 5)
	require.Len(t, k2.delivered(), 5)
	k2.fail.Store(true)
	for i := range 4 {
		require.NoError(t, h.sources["r1"].proc.Process(ctx, events(fmt.Sprint("f", i))))
		_, err := p.Process(ctx)
		require.NoError(t, err, "a failing sink hands over to the next")
	}
	require.Len(t, k1.delivered(), 9)
	require.Equal(t, int64(1), k2.calls.Load()-5, "with backoff, k2 is blacklisted after failing once")
}

func TestDefaultProcessorRejectsTwoSinks(t *testing.T) {
	h := newHarness()
	cfg, _, err := config.Load(strings.NewReader(groupConf), "a1", h.reg.Catalog(), config.Options{})
	require.NoError(t, err)
	a, probs, err := Build(cfg, h.reg, flow.Deps{Logger: slog.New(slog.DiscardHandler)}, Options{}, nil)
	require.NoError(t, err)
	require.Len(t, probs, 1)
	require.ErrorContains(t, probs[0], "exactly one sink")
	require.Len(t, a.runners, 2, "the group is dropped; its sinks run on their own")
}

func TestStopDrainsMemoryChannels(t *testing.T) {
	h := newHarness()
	a := h.build(t, runConf, nil)
	require.NoError(t, a.Start(context.Background()))
	k1 := h.sinks["k1"]
	k1.fail.Store(true)
	require.NoError(t, h.sources["r1"].proc.Process(context.Background(), events("a", "b", "c")))
	done := make(chan error, 1)
	go func() { done <- a.Stop(context.Background()) }()
	select {
	case <-done:
		t.Fatal("stop returned while the memory channel still held events")
	case <-time.After(50 * time.Millisecond):
	}
	k1.fail.Store(false)
	require.NoError(t, <-done)
	require.Equal(t, []string{"a", "b", "c"}, k1.delivered())
}
