package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/fsm"
)

// TestRecreatedTopicWhileReplicaDown deletes a topic while one of its
// replicas is down and re-creates it with that node among the replicas
// (placed by hand: the controller would skip a dead node, but a node that is
// partitioned rather than down looks alive to it). The returning node must
// not serve the old incarnation's records nor let its old Raft state mix
// with the new group's.
func TestRecreatedTopicWhileReplicaDown(t *testing.T) {
	skipShort(t)
	c := newTestCluster(t, 3, nil)
	cl := c.client()
	c.createTopic(cl, "life", 1, 3)
	// The old incarnation is longer than the new one will be, so its Raft
	// log holds every index the new group writes.
	old := produceConcurrently(t, cl, "life", 0, "old", 300, 4, nil)
	require.Len(t, old, 300)

	// The node that goes down is neither the metadata leader (the test
	// deletes and creates through it) nor the partition leader.
	down := -1
	pl := c.leaderIndex("life", 0)
	for i, n := range c.nodes {
		if !n.isMetaLeader() && i != pl {
			down = i
		}
	}
	require.GreaterOrEqual(t, down, 0)
	id := c.cfgs[down].ID
	for i := range c.nodes {
		if i == down {
			continue
		}
		require.Eventually(t, func() bool { return replicaLen(cl, c.cfgs[i].ID, "life", 0) == 300 }, 20*time.Second, 50*time.Millisecond)
	}
	require.Eventually(t, func() bool { return replicaLen(cl, id, "life", 0) == 300 }, 20*time.Second, 50*time.Millisecond)
	c.stop(down)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, cl.DeleteTopic(ctx, "life"))
	var leader *Node
	for _, n := range c.nodes {
		if n != nil && n.isMetaLeader() {
			leader = n
		}
	}
	require.NotNil(t, leader)
	require.Eventually(t, func() bool {
		_, ok := leader.meta.Topic("life")
		return !ok
	}, 10*time.Second, 20*time.Millisecond)
	recreated := fsm.Topic{Name: "life", ReplicationFactor: 3, Partitions: []fsm.PartitionAssignment{{ID: 0, Replicas: []string{c.cfgs[(down+1)%3].ID, c.cfgs[(down+2)%3].ID, id}}}}
	require.NoError(t, leader.applyMeta(ctx, fsm.EncodeCreateTopic(recreated)))
	c.leaderIndex("life", 0)

	acked := produceConcurrently(t, cl, "life", 0, "new", 100, 4, nil)
	require.Len(t, acked, 100)

	c.start(down)
	// More writes once the node is back: these are the ones a stale
	// replica would truncate if it won an election.
	for k, v := range produceConcurrently(t, cl, "life", 0, "back", 100, 4, nil) {
		acked[k] = v
	}
	recs := readAll(t, cl, "", "life", 0)
	checkLog(t, recs, acked)
	require.Len(t, recs, 200)
	for _, cfg := range c.cfgs {
		require.Eventually(t, func() bool {
			got, err := tryReadAll(cl, cfg.ID, "life", 0)
			if err != nil || len(got) != len(recs) {
				return false
			}
			for i := range got {
				if string(got[i].Value) != string(recs[i].Value) || got[i].Offset != recs[i].Offset {
					return false
				}
			}
			return true
		}, 30*time.Second, 100*time.Millisecond, "replica %s differs from the leader", cfg.ID)
		for _, r := range readAll(t, cl, cfg.ID, "life", 0) {
			require.False(t, strings.HasPrefix(string(r.Value), "old-"), "replica %s serves %q of the deleted topic", cfg.ID, r.Value)
		}
	}
}
