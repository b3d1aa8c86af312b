package node

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDeadLeaderNodeHurriesElection stops the node leading a partition
// (its port then refuses connections, as after kill -9): the followers
// notice through liveness pings, hurry the partition's election instead
// of waiting out the heartbeat timeout, and a new leader serves.
func TestDeadLeaderNodeHurriesElection(t *testing.T) {
	skipShort(t)
	c := newTestCluster(t, 3, nil)
	cl := c.client()
	c.createTopic(cl, "hurry", 1, 3)
	leader := c.leaderIndex("hurry", 0)
	c.stop(leader)

	require.Eventually(t, func() bool {
		for i, n := range c.nodes {
			if n == nil || i == leader {
				continue
			}
			if r := n.replica("hurry", 0); r != nil && r.isLeader() {
				return true
			}
		}
		return false
	}, 30*time.Second, 10*time.Millisecond, "no new leader")
	var hurried uint64
	for _, n := range c.nodes {
		if n != nil {
			hurried += n.hurried.Load()
		}
	}
	assert.Positive(t, hurried, "no follower hurried the election")

	// The shortened timers are restored afterwards.
	for _, n := range c.nodes {
		if n == nil {
			continue
		}
		r := n.replica("hurry", 0)
		require.NotNil(t, r)
		require.Eventually(t, func() bool { return !r.group.hurrying.Load() }, 30*time.Second, 10*time.Millisecond)
		assert.Equal(t, n.cfg.HeartbeatTimeout, r.raft().ReloadableConfig().HeartbeatTimeout)
	}
}
