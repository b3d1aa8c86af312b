package node

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/client"
)

// TestHeartbeatsAreCoalesced runs 30 partitions on 3 nodes: their Raft
// heartbeats travel several to a request, the groups
// keep their leaders, and a partition whose leader is killed fails over.
func TestHeartbeatsAreCoalesced(t *testing.T) {
	skipShort(t)
	c := newTestCluster(t, 3, nil)
	cl := c.client()
	c.createTopic(cl, "many", 30, 3)

	var beats, requests uint64
	require.Eventually(t, func() bool {
		beats, requests = 0, 0
		for _, n := range c.nodes {
			if n == nil {
				continue
			}
			beats += n.heartbeats.sentBeats.Load()
			requests += n.heartbeats.sentRequests.Load()
		}
		return beats >= 2000
	}, 30*time.Second, 50*time.Millisecond)
	// About 10 leaders a node, 2 followers each, a heartbeat every 50-100
	// ms: some 130 a second to each node, about 2.3 per 10 ms tick (one
	// request per heartbeat without coalescing).
	require.GreaterOrEqual(t, float64(beats)/float64(requests), 1.7,
		"%d heartbeats in %d requests: not coalesced", beats, requests)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leader := c.leaderIndex("many", 7)
	c.stop(leader)
	_, err := cl.ProduceBatch(ctx, "many", 7, []client.Record{{Value: []byte("after failover")}})
	require.NoError(t, err)
	require.NotEqual(t, leader, c.leaderIndex("many", 7))
}
