package node

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/agent"
	"github.com/sluice-io/sluice/agent/channel"
	"github.com/sluice-io/sluice/agent/config"
	"github.com/sluice-io/sluice/agent/flow"
	"github.com/sluice-io/sluice/agent/sink"
	"github.com/sluice-io/sluice/client"
)

// pushSource lets a test hand batches to the agent's channel processor.
type pushSource struct {
	name string
	proc flow.Processor
	c    *flow.Counters
}

func (s *pushSource) Start(context.Context) error { return nil }
func (s *pushSource) Stop(context.Context) error  { return nil }
func (s *pushSource) Name() string                { return s.name }
func (s *pushSource) Counters() *flow.Counters    { return s.c }

const sinkConf = `
a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = push
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.channels.c1.capacity = 100000
a1.channels.c1.transactionCapacity = 1000
a1.sinks.k1.type = sluice
a1.sinks.k1.topic = logs
a1.sinks.k1.channel = c1
a1.sinks.k1.batchSize = 50
a1.sinks.k1.requestTimeout = 60000
`

// startTestAgent builds sinkConf over reg and returns the push source.
func startTestAgent(t *testing.T, reg agent.Registry, servers []string) (*agent.Agent, *pushSource) {
	t.Helper()
	var src *pushSource
	reg.Sources["push"] = func(name string, p *flow.Props, proc flow.Processor, d flow.Deps) (flow.Source, error) {
		src = &pushSource{name: name, proc: proc, c: flow.NewCounters(flow.KindSource, name)}
		return src, nil
	}
	cfg, probs, err := config.Load(strings.NewReader(sinkConf), "a1", reg.Catalog(), config.Options{})
	require.NoError(t, err)
	require.Empty(t, probs)
	a, _, err := agent.Build(cfg, reg, flow.Deps{Logger: testLogger(t), Servers: servers},
		agent.Options{BackoffStep: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, ErrorBackoff: 100 * time.Millisecond}, nil)
	require.NoError(t, err)
	require.NoError(t, a.Start(context.Background()))
	t.Cleanup(func() { a.Stop(context.Background()) })
	return a, src
}

// pushEvents sends n numbered events in batches of 10 while during runs.
func pushEvents(t *testing.T, src *pushSource, from, n int) {
	t.Helper()
	for i := from; i < from+n; i += 10 {
		var evs []flow.Event
		for j := i; j < min(i+10, from+n); j++ {
			evs = append(evs, flow.Event{Headers: map[string]string{"seq": strconv.Itoa(j), "host": "web1"}, Body: []byte(strconv.Itoa(j))})
		}
		require.NoError(t, src.proc.Process(context.Background(), evs))
	}
}

// checkDelivered reads partition 0 of logs and checks that every event
// 0..n-1 is there and that first occurrences are in order; it returns the
// number of duplicates (at-least-once retries).
func checkDelivered(t *testing.T, c *testCluster, cl *client.Client, n int) int {
	t.Helper()
	var recs []client.Record
	require.Eventually(t, func() bool {
		r, err := tryReadAll(cl, "", "logs", 0)
		if err != nil {
			return false
		}
		recs = r
		seen := map[string]bool{}
		for _, x := range r {
			seen[string(x.Value)] = true
		}
		return len(seen) >= n
	}, 60*time.Second, 100*time.Millisecond, "events missing")
	seen := map[int]bool{}
	last, dups := -1, 0
	for _, r := range recs {
		v, err := strconv.Atoi(string(r.Value))
		require.NoError(t, err)
		if seen[v] {
			dups++
			continue
		}
		seen[v] = true
		require.Equal(t, last+1, v, "per-partition order of first occurrences")
		last = v
		var host string
		for _, h := range r.Headers {
			if h.Key == "host" {
				host = string(h.Value)
			}
		}
		require.Equal(t, "web1", host, "event headers become record headers")
	}
	require.Equal(t, n-1, last)
	t.Logf("%d events delivered, %d duplicates", n, dups)
	return dups
}

func TestStandaloneSluiceSinkFollowsLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	c := newTestCluster(t, 3, nil)
	cl := c.client()
	c.createTopic(cl, "logs", 1, 3)
	_, src := startTestAgent(t, agent.DefaultRegistry(nil), c.addrs())
	pushEvents(t, src, 0, 300)
	require.Eventually(t, func() bool { return replicaLen(cl, "", "logs", 0) >= 100 }, 30*time.Second, 20*time.Millisecond)
	c.stop(c.leaderIndex("logs", 0))
	pushEvents(t, src, 300, 300)
	checkDelivered(t, c, cl, 600)
}

func TestColocatedSinkInProcessFollowsLeadership(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	c := newTestCluster(t, 3, nil)
	cl := c.client()
	c.createTopic(cl, "logs", 1, 3)
	home := c.nodes[c.leaderIndex("logs", 0)]
	w := &localWriter{n: home, c: cl, streams: map[partKey]*localStream{}}
	require.Equal(t, []int32{0}, w.LocalPartitions("logs"))
	_, src := startTestAgent(t, agent.DefaultRegistry(w), nil)
	pushEvents(t, src, 0, 200)
	require.Eventually(t, func() bool { return replicaLen(cl, "", "logs", 0) >= 100 }, 30*time.Second, 20*time.Millisecond)
	// Leadership moves away from the agent's node: the sink follows over
	// the network; then the new leader is killed.
	require.NoError(t, home.replica("logs", 0).raft().LeadershipTransfer().Error())
	pushEvents(t, src, 200, 200)
	idx := c.leaderIndex("logs", 0)
	if c.nodes[idx] != home {
		c.stop(idx)
	}
	pushEvents(t, src, 400, 200)
	checkDelivered(t, c, cl, 600)
}

func TestColocatedAgentFromConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	dir := t.TempDir()
	path := dir + "/colocated.properties"
	require.NoError(t, writeFile(path, `
a1.channels = c1
a1.sinks = k1
a1.channels.c1.type = memory
a1.sinks.k1.type = sluice
a1.sinks.k1.topic = logs
a1.sinks.k1.channel = c1
`))
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.AgentConfig = path; cfg.HTTPAddr = "127.0.0.1:0" })
	for _, n := range c.nodes {
		b, err := httpGet("http://" + n.HTTPAddr() + "/v1/agents")
		require.NoError(t, err)
		require.Contains(t, b, `"CHANNEL.c1":{`)
		m, err := httpGet("http://" + n.HTTPAddr() + "/metrics")
		require.NoError(t, err)
		require.Contains(t, m, `sluice_agent_channel_capacity{agent="a1",component="c1",kind="CHANNEL"} 100`)
	}
}

func TestSluiceChannelIsATopic(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	c := newTestCluster(t, 3, nil)
	cl := c.client()
	c.createTopic(cl, "chan", 2, 3)
	open := func() flow.Channel {
		ch, err := channel.NewSluice("c1", flow.NewProps("a1.channels.c1", map[string]string{
			"kafka.topic": "chan", "kafka.bootstrap.servers": strings.Join(c.addrs(), ","), "pollTimeout": "100",
		}), flow.Deps{Logger: testLogger(t)})
		require.NoError(t, err)
		require.NoError(t, ch.Start(context.Background()))
		return ch
	}
	put := func(ch flow.Channel, from, n int) {
		tx, err := ch.Begin()
		require.NoError(t, err)
		for i := from; i < from+n; i++ {
			require.NoError(t, tx.Put(flow.Event{Headers: map[string]string{"seq": strconv.Itoa(i)}, Body: []byte(strconv.Itoa(i))}))
		}
		require.NoError(t, tx.Commit())
	}
	take := func(ch flow.Channel, max int, commit bool) []string {
		tx, err := ch.Begin()
		require.NoError(t, err)
		var out []string
		for empty := 0; len(out) < max && empty < 5; {
			ev, ok, err := tx.Take()
			require.NoError(t, err)
			if !ok {
				empty++
				continue
			}
			require.Equal(t, string(ev.Body), ev.Headers["seq"])
			out = append(out, string(ev.Body))
		}
		if commit {
			require.NoError(t, tx.Commit())
		} else {
			require.NoError(t, tx.Rollback())
		}
		return out
	}
	ch := open()
	put(ch, 0, 10)
	put(ch, 10, 10)
	first := take(ch, 5, false)
	require.Len(t, first, 5)
	require.Equal(t, first, take(ch, 5, true), "rolled-back takes come back first, in order")
	// The agent "dies" with 5 taken and not committed: another instance
	// of the channel (same group) gets them again, and nothing committed.
	require.Len(t, take(ch, 5, false), 5)
	take(ch, 5, false)
	require.NoError(t, ch.Stop(context.Background()))
	ch = open()
	defer ch.Stop(context.Background())
	rest := take(ch, 100, true)
	require.Len(t, rest, 15)
	got := map[string]bool{}
	for _, v := range append(first, rest...) {
		got[v] = true
	}
	require.Len(t, got, 20, "every event put is taken exactly once across the restart")
	put(ch, 20, 3)
	require.ElementsMatch(t, []string{"20", "21", "22"}, take(ch, 100, true))
}

// BenchmarkSinkWriter compares the colocated agent's in-process path
// (batches applied on the local leader) with the network path (the
// client over loopback RPC) for batches of 100 records of 200 bytes.
func BenchmarkSinkWriter(b *testing.B) {
	c := newTestCluster(b, 3, nil)
	cl := c.client()
	c.createTopic(cl, "bench", 1, 3)
	home := c.nodes[c.leaderIndex("bench", 0)]
	recs := make([]client.Record, 100)
	for i := range recs {
		recs[i] = client.Record{Value: make([]byte, 200), Headers: []client.Header{{Key: "host", Value: []byte("web1")}}}
	}
	for _, tc := range []struct {
		name string
		w    sink.Writer
	}{
		{"in-process", &localWriter{n: home, c: cl, streams: map[partKey]*localStream{}}},
		{"network", sink.ClientWriter{C: cl}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			b.SetBytes(int64(len(recs) * 200))
			for b.Loop() {
				if err := tc.w.Write(ctx, "bench", 0, recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
		})
	}
}
