package source_test

// An external test package: node imports the agent runtime, which imports
// this package, so an in-package test could not import node.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/agent/flow"
	"github.com/sluice-io/sluice/agent/source"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/node"
	"github.com/sluice-io/sluice/transport"
)

// freePort asks the kernel for a port free for TCP and UDP (gossip needs
// both).
func freePort(t *testing.T) string {
	t.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			u.Close()
			return "127.0.0.1:" + strconv.Itoa(port)
		}
	}
}

// startNode runs a one-node Sluice cluster in the test process.
func startNode(t *testing.T) string {
	t.Helper()
	gossip := freePort(t)
	cfg := node.Config{
		ID: "n1", DataDir: filepath.Join(t.TempDir(), "n1"), Addr: freePort(t),
		GossipAddr: gossip, Join: []string{gossip}, BootstrapExpect: 1,
		Logger: slog.New(slog.DiscardHandler),
	}
	n, err := node.Start(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { n.Close() })
	return cfg.Addr
}

// channel collects committed batches, or refuses them while full.
type channel struct {
	mu      sync.Mutex
	evs     []flow.Event
	full    bool
	refused int
}

func (c *channel) Process(_ context.Context, evs []flow.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.full {
		c.refused++
		return fmt.Errorf("test channel: %w", flow.ErrChannelFull)
	}
	c.evs = append(c.evs, evs...)
	return nil
}

func (c *channel) setFull(v bool) { c.mu.Lock(); c.full = v; c.mu.Unlock() }

func (c *channel) refusals() int { c.mu.Lock(); defer c.mu.Unlock(); return c.refused }

func (c *channel) events() []flow.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]flow.Event(nil), c.evs...)
}

func (c *channel) waitEvents(t *testing.T, n int) []flow.Event {
	t.Helper()
	require.Eventually(t, func() bool { return len(c.events()) >= n }, 20*time.Second, 5*time.Millisecond)
	return c.events()
}

func startSluiceSource(t *testing.T, typ string, props map[string]string, proc flow.Processor) flow.Source {
	t.Helper()
	s, err := source.Builders()[typ]("r1", flow.NewProps("a1.sources.r1", props), proc, flow.Deps{Agent: "a1"})
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_ = s.Stop(ctx)
	})
	return s
}

func TestSluiceSourceCommitsOffsetsAfterTheChannel(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	addr := startNode(t)
	cl, err := client.New(client.Config{Servers: []string{addr}, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.Eventually(t, func() bool {
		err := cl.CreateTopic(ctx, transport.CreateTopicRequest{Name: "logs", Partitions: 2, ReplicationFactor: 1})
		return err == nil || transport.CodeOf(err) == transport.ErrTopicExists
	}, 30*time.Second, 50*time.Millisecond)
	require.NoError(t, cl.WaitForLeaders(ctx, "logs"))
	produce := func(from, n int) {
		for p := range int32(2) {
			var recs []client.Record
			for i := from; i < from+n; i++ {
				recs = append(recs, client.Record{
					Key: []byte("k" + strconv.Itoa(i)), Value: []byte("v" + strconv.Itoa(i)),
					Headers: []client.Header{{Key: "host", Value: []byte("web1")}},
				})
			}
			_, err := cl.ProduceBatch(ctx, "logs", p, recs)
			require.NoError(t, err)
		}
	}
	produce(0, 10)

	props := map[string]string{
		"kafka.bootstrap.servers": addr, "kafka.topics": "logs", "batchSize": "4", "batchDurationMillis": "200",
		"kafka.consumer.auto.offset.reset": "earliest",
	}
	proc := &channel{}
	s := startSluiceSource(t, "org.apache.flume.source.kafka.KafkaSource", props, proc)
	evs := proc.waitEvents(t, 20)
	ev := evs[0]
	assert.Equal(t, "web1", ev.Headers["host"])
	assert.Equal(t, "logs", ev.Headers["topic"])
	assert.Contains(t, []string{"0", "1"}, ev.Headers["partition"])
	assert.Equal(t, "k"+ev.Headers["offset"], ev.Headers["key"])
	assert.NotEmpty(t, ev.Headers["timestamp"])
	committed := func(p int32) int64 {
		off, err := cl.FetchOffset(ctx, "flume", "logs", p)
		require.NoError(t, err)
		return off
	}
	require.Eventually(t, func() bool { return committed(0) == 10 && committed(1) == 10 }, 20*time.Second, 20*time.Millisecond)

	// The channel refuses: the source keeps the records, and the group's
	// offsets do not move.
	proc.setFull(true)
	produce(10, 3)
	require.Eventually(t, func() bool { return proc.refusals() >= 2 }, 20*time.Second, 5*time.Millisecond)
	// The channel never drains: Stop gives up on the batch at its deadline.
	sctx, scancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer scancel()
	assert.Error(t, s.Stop(sctx))
	assert.EqualValues(t, 10, committed(0))
	assert.EqualValues(t, 10, committed(1))
	assert.Len(t, proc.events(), 20)

	// A new agent with the same group reads exactly what was not committed.
	proc2 := &channel{}
	startSluiceSource(t, "sluice", map[string]string{"servers": addr, "topic": "logs", "batchDurationMillis": "200"}, proc2)
	got := proc2.waitEvents(t, 6)
	for _, e := range got {
		n, err := strconv.Atoi(string(e.Body[1:]))
		require.NoError(t, err)
		assert.GreaterOrEqual(t, n, 10, "already committed records are not read again")
	}
	require.Eventually(t, func() bool { return committed(0) == 13 && committed(1) == 13 }, 20*time.Second, 20*time.Millisecond)
	assert.EqualValues(t, 6, len(proc2.events()))
}
