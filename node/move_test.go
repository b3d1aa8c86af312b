package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/client"
)

// addNode starts one more node that joins the running cluster (it does
// not take part in bootstrapping) and returns its index.
func (c *testCluster) addNode(tweak func(*Config)) int {
	c.t.Helper()
	used := map[int]bool{}
	var join []string
	for _, cfg := range c.cfgs {
		join = append(join, cfg.GossipAddr)
	}
	i := len(c.cfgs)
	cfg := Config{
		ID:              fmt.Sprintf("n%d", i+1),
		DataDir:         filepath.Join(c.t.TempDir(), fmt.Sprintf("n%d", i+1)),
		Addr:            "127.0.0.1:" + strconv.Itoa(freePort(c.t, used)),
		GossipAddr:      "127.0.0.1:" + strconv.Itoa(freePort(c.t, used)),
		Join:            join,
		BootstrapExpect: c.cfgs[0].BootstrapExpect,
		Logger:          testLogger(c.t).With("test-node", i+1),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	c.mu.Lock()
	c.cfgs = append(c.cfgs, cfg)
	c.nodes = append(c.nodes, nil)
	c.mu.Unlock()
	c.start(i)
	return i
}

// steadyLoad produces numbered values to every partition of a topic, one
// record per call, about rate calls a second per partition, and keeps
// what was acknowledged and the longest time a partition went without an
// acknowledgement.
type steadyLoad struct {
	mu      sync.Mutex
	acked   map[int32][]string
	unknown map[int32][]string // failed with an unknown outcome: may be stored
	longest time.Duration
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func startSteadyLoad(cl *client.Client, topic string, partitions int, rate int) *steadyLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &steadyLoad{acked: map[int32][]string{}, unknown: map[int32][]string{}, cancel: cancel}
	for p := range int32(partitions) {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tick := time.NewTicker(time.Second / time.Duration(rate))
			defer tick.Stop()
			last := time.Now()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				v := fmt.Sprintf("%d-%d", p, i)
				pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
				_, err := cl.ProduceBatch(pctx, topic, p, []client.Record{{Value: []byte(v)}})
				pcancel()
				now := time.Now()
				l.mu.Lock()
				if err == nil {
					l.acked[p] = append(l.acked[p], v)
					l.longest = max(l.longest, now.Sub(last))
					last = now
				} else {
					l.unknown[p] = append(l.unknown[p], v)
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *steadyLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

func (l *steadyLoad) count(p int32) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked[p])
}

// checkReplicas waits until every replica of every partition serves the
// same log, then checks that it holds each acknowledged value exactly
// once, in order, and nothing but acknowledged or unknown-outcome values.
func (c *testCluster) checkReplicas(cl *client.Client, topic string, l *steadyLoad) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := cl.Metadata(ctx, topic)
	require.NoError(c.t, err)
	for _, p := range md.Topics[0].Partitions {
		require.Empty(c.t, p.MoveTarget, "a move of %s/%d is still in progress", topic, p.ID)
		var logs [][]string
		require.Eventually(c.t, func() bool {
			logs = logs[:0]
			for _, id := range p.Replicas {
				recs, err := tryReadAll(cl, id, topic, p.ID)
				if err != nil {
					return false
				}
				var vals []string
				for _, r := range recs {
					vals = append(vals, string(r.Value))
				}
				if len(logs) > 0 && !slices.Equal(logs[0], vals) {
					return false
				}
				logs = append(logs, vals)
			}
			return true
		}, 30*time.Second, 100*time.Millisecond, "replicas %v of %s/%d do not agree", p.Replicas, topic, p.ID)
		got := logs[0]
		seen := map[string]bool{}
		for _, v := range got {
			require.False(c.t, seen[v], "%s/%d holds %q twice", topic, p.ID, v)
			seen[v] = true
		}
		acked := l.acked[p.ID]
		var onlyAcked []string
		for _, v := range got {
			if slices.Contains(acked, v) {
				onlyAcked = append(onlyAcked, v)
			} else {
				require.Contains(c.t, l.unknown[p.ID], v, "%s/%d holds %q, never sent", topic, p.ID, v)
			}
		}
		require.Equal(c.t, acked, onlyAcked, "%s/%d: acknowledged records lost or out of order", topic, p.ID)
	}
}

// hosts reports the partitions node i hosts as replicas (open groups).
func (c *testCluster) hosts(i int, topic string) []int32 {
	c.mu.Lock()
	n := c.nodes[i]
	c.mu.Unlock()
	var out []int32
	if n == nil {
		return nil
	}
	for _, r := range n.replicaList() {
		if r.key.topic == topic {
			out = append(out, r.key.partition)
		}
	}
	slices.Sort(out)
	return out
}

// TestReplicaMovesUnderLoad grows a 3-node cluster by a fourth node and
// rebalances, reassigns a partition by hand and decommissions a node, all
// under a steady produce load: the load never stalls for longer than a
// failover, and every final replica holds every acknowledged record
// exactly once, in order.
func TestReplicaMovesUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node test skipped in -short mode")
	}
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.LeaderImbalanceCheckInterval = time.Hour })
	cl := c.client()
	c.createTopic(cl, "mv", 3, 3)
	load := startSteadyLoad(cl, "mv", 3, 50)
	defer load.stop()
	waitAcks := func(n int) {
		t.Helper()
		target := make([]int, 3)
		for p := range int32(3) {
			target[p] = load.count(p) + n
		}
		require.Eventually(t, func() bool {
			for p := range int32(3) {
				if load.count(p) < target[p] {
					return false
				}
			}
			return true
		}, 30*time.Second, 20*time.Millisecond, "the load stalled")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	waitAcks(20)

	// A fourth node joins and gets replicas by rebalance.
	four := c.addNode(func(cfg *Config) { cfg.LeaderImbalanceCheckInterval = time.Hour })
	require.Eventually(t, func() bool {
		plan, err := cl.PlanMoves(ctx)
		return err == nil && slices.Contains(plan.Nodes, "n4")
	}, 30*time.Second, 50*time.Millisecond, "n4 never became eligible")
	moves, err := cl.RunMoves(ctx, client.RunMovesOptions{MaxMoves: 2})
	require.NoError(t, err)
	require.NotEmpty(t, moves)
	for _, m := range moves {
		require.False(t, m.RolledBack, "%+v", m)
	}
	require.Eventually(t, func() bool { return len(c.hosts(four, "mv")) >= 2 }, 30*time.Second, 50*time.Millisecond, "n4 hosts %v", c.hosts(four, "mv"))
	plan, err := cl.PlanMoves(ctx)
	require.NoError(t, err)
	require.Empty(t, plan.Moves, "balanced after the rebalance")
	waitAcks(20)

	// A partition moved by hand: swap a replica for the node without one.
	st, err := cl.MoveStatus(ctx, "mv", 0)
	require.NoError(t, err)
	var outside string
	for _, id := range []string{"n1", "n2", "n3", "n4"} {
		if !slices.Contains(st.Replicas, id) {
			outside = id
		}
	}
	target := append([]string{outside}, st.Replicas[1:]...) // the preferred leader leaves
	_, err = cl.Reassign(ctx, "mv", 0, target)
	require.NoError(t, err)
	// Another move of the same partition is refused meanwhile (unless
	// the first already finished).
	if _, err := cl.Reassign(ctx, "mv", 0, st.Replicas); err != nil {
		require.Contains(t, err.Error(), "in progress")
	}
	final, err := cl.WaitMove(ctx, "mv", 0)
	require.NoError(t, err)
	require.Equal(t, target, final.Replicas)
	waitAcks(20)

	// n2 is decommissioned: its replicas and leaderships go elsewhere.
	_, err = cl.Decommission(ctx, "n2", false)
	require.NoError(t, err)
	_, err = cl.RunMoves(ctx, client.RunMovesOptions{MaxMoves: 2, Touching: "n2"})
	require.NoError(t, err)
	left, err := cl.Decommission(ctx, "n2", false)
	require.NoError(t, err)
	require.Empty(t, left.Replicas)
	require.Empty(t, left.Leads)
	require.False(t, left.MetadataVoter)
	require.Eventually(t, func() bool { return len(c.hosts(1, "mv")) == 0 }, 30*time.Second, 50*time.Millisecond, "n2 still hosts %v", c.hosts(1, "mv"))
	waitAcks(20)

	load.stop()
	c.checkReplicas(cl, "mv", load)
	t.Logf("longest time without an acknowledgement on a partition: %s", load.longest)
	require.Less(t, load.longest, 15*time.Second, "the produce stalled for longer than a failover")
}

// TestStalledMoveRollsBack: the joining node stops before it has caught
// up; the controller gives up after the stall timeout, takes the new
// replica out of the Raft group and restores the original replicas; the
// node's replica is deleted when it comes back.
func TestStalledMoveRollsBack(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node test skipped in -short mode")
	}
	tweak := func(cfg *Config) { cfg.ReassignStallTimeout = 2 * time.Second }
	c := newTestCluster(t, 3, tweak)
	cl := c.client()
	c.createTopic(cl, "rb", 1, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range 20 {
		_, err := cl.ProduceBatch(ctx, "rb", 0, []client.Record{{Value: []byte(strconv.Itoa(i))}})
		require.NoError(t, err)
	}
	st, err := cl.MoveStatus(ctx, "rb", 0)
	require.NoError(t, err)
	origin := st.Replicas
	var joinerIdx int
	var joiner string
	for i, id := range []string{"n1", "n2", "n3"} {
		if !slices.Contains(origin, id) {
			joinerIdx, joiner = i, id
		}
	}
	// Stop the joiner right after the move is recorded: it cannot
	// catch up, nor even be added, while it is down.
	_, err = cl.Reassign(ctx, "rb", 0, []string{origin[0], joiner})
	require.NoError(t, err)
	c.stop(joinerIdx)
	final, err := cl.WaitMove(ctx, "rb", 0)
	require.NoError(t, err)
	if slices.Equal(final.Replicas, origin) {
		t.Log("rolled back")
	} else {
		t.Log("the move finished before the joiner stopped")
		require.Equal(t, []string{origin[0], joiner}, final.Replicas)
	}
	_, err = cl.ProduceBatch(ctx, "rb", 0, []client.Record{{Value: []byte("after")}})
	require.NoError(t, err)
	c.start(joinerIdx)
	if slices.Equal(final.Replicas, origin) {
		tid, ok := c.nodes[0].meta.TopicID("rb")
		require.True(t, ok)
		dir := c.nodes[joinerIdx].partitionDir(partKey{"rb", 0}, tid)
		require.Eventually(t, func() bool {
			_, err := os.Stat(dir)
			return len(c.hosts(joinerIdx, "rb")) == 0 && errors.Is(err, os.ErrNotExist)
		}, 30*time.Second, 50*time.Millisecond, "the rolled-back replica was not deleted")
	}
	recs := readAll(t, cl, "", "rb", 0)
	require.Len(t, recs, 21)
}
