package node

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

// gatedFSM holds every Apply while its gate is closed, as a slow disk or a
// long apply queue would: a replica in that state knows the log but not
// yet the state.
type gatedFSM struct {
	inner raft.FSM
	mu    sync.Mutex
	gate  chan struct{} // nil: open
}

func (g *gatedFSM) close() {
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedFSM) open() {
	g.mu.Lock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
	g.mu.Unlock()
}

func (g *gatedFSM) Apply(l *raft.Log) any {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return g.inner.Apply(l)
}
func (g *gatedFSM) Snapshot() (raft.FSMSnapshot, error) { return g.inner.Snapshot() }
func (g *gatedFSM) Restore(rc io.ReadCloser) error      { return g.inner.Restore(rc) }

// TestNewLeaderServesOnlyWhenCurrent moves a partition's leadership to a
// replica whose FSM lags its log, under produce and consume. Until it has
// applied its predecessor's entries it must answer fetches with a
// retriable error, never OffsetOutOfRange, and the consumer never sees a
// fatal error.
func TestNewLeaderServesOnlyWhenCurrent(t *testing.T) {
	skipShort(t)
	var gmu sync.Mutex
	gates := map[string]*gatedFSM{}
	c := newTestCluster(t, 3, func(cfg *Config) {
		id := cfg.ID
		cfg.wrapPartitionFSM = func(topic string, f raft.FSM) raft.FSM {
			g := &gatedFSM{inner: f}
			gmu.Lock()
			gates[id] = g
			gmu.Unlock()
			return g
		}
	})
	cl := c.client()
	c.createTopic(cl, "fo", 1, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	produce := func(prefix string, n int) {
		for i := range n {
			_, err := cl.ProduceBatch(ctx, "fo", 0, []client.Record{{Value: []byte(fmt.Sprintf("%s-%d", prefix, i))}})
			require.NoError(t, err)
		}
	}
	cn, err := cl.NewConsumer(ctx, client.ConsumerConfig{Topic: "fo", Start: transport.OffsetEarliest, MaxWait: 100 * time.Millisecond})
	require.NoError(t, err)
	consumed := 0
	consumeTo := func(n int) {
		for consumed < n {
			recs, err := cn.Poll(ctx)
			if err != nil {
				require.True(t, client.IsRetriable(err), "consumer saw a fatal error: %v", err)
			}
			for _, r := range recs {
				require.Equal(t, int64(consumed), r.Offset)
				consumed++
			}
		}
	}
	produce("a", 20)
	consumeTo(20)

	leader := c.leaderIndex("fo", 0)
	next := (leader + 1) % 3
	nextID := c.cfgs[next].ID
	gmu.Lock()
	g := gates[nextID]
	gmu.Unlock()
	require.NotNil(t, g)
	g.close()
	defer g.open()
	// Committed by the leader and the third replica, in next's log but
	// not in its state.
	produce("b", 20)
	consumeTo(40)

	lr := c.nodes[leader].replica("fo", 0)
	require.NoError(t, lr.raft().LeadershipTransferToServer(raft.ServerID(nextID), raft.ServerAddress(c.cfgs[next].Addr)).Error())
	nr := c.nodes[next].replica("fo", 0)
	require.Eventually(t, nr.isLeader, 20*time.Second, 10*time.Millisecond)

	var resp transport.FetchResponse
	fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
	err = c.nodes[next].pool.Call(fctx, c.cfgs[next].Addr, transport.MethodFetch,
		transport.FetchRequest{Topic: "fo", Partition: 0, Offset: 40, MaxBytes: 1 << 20}, &resp)
	fcancel()
	require.Error(t, err, "a leader that has not applied its predecessor's entries must not serve")
	require.True(t, transport.CodeOf(err).Retriable(), "want a retriable error, got %v", err)

	// The consumer keeps going through the change without a fatal error.
	done := make(chan struct{})
	go func() {
		defer close(done)
		produce("c", 20)
	}()
	g.open()
	consumeTo(60)
	<-done
}
