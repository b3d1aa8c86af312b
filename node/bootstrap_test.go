package node

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// oneMetadataGroup waits until every running node follows the same
// metadata leader, whose configuration holds want servers.
func (c *testCluster) oneMetadataGroup(want int) {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		leader := ""
		for _, n := range c.nodes {
			if n == nil {
				continue
			}
			id, _ := n.metaLeader()
			if id == "" || leader != "" && id != leader {
				return false
			}
			leader = id
		}
		for _, n := range c.nodes {
			if n != nil && n.ID() == leader {
				cf := n.metaRG.raft.GetConfiguration()
				return cf.Error() == nil && len(cf.Configuration().Servers) == want
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond, "nodes do not share one metadata group of %d", want)
}

func TestBootstrapMoreNodesThanExpected(t *testing.T) {
	skipShort(t)
	c := newTestCluster(t, 5, func(cfg *Config) { cfg.BootstrapExpect = 3 })
	c.oneMetadataGroup(5)
	var boot []string
	for _, n := range c.nodes {
		if n.bootstrapped.Load() {
			boot = append(boot, n.ID())
		}
	}
	// Once one chosen voter has bootstrapped, the others see its Raft
	// state and join instead, so some but not all may have bootstrapped.
	require.NotEmpty(t, boot)
	for _, id := range boot {
		assert.True(t, slices.Contains([]string{"n1", "n2", "n3"}, id), "%s bootstrapped; only the lowest ids may", id)
	}
}

func TestWipedNodeJoinsInsteadOfBootstrapping(t *testing.T) {
	skipShort(t)
	c := newTestCluster(t, 3, nil)
	cl := c.client()
	c.createTopic(cl, "kept", 1, 3)
	wiped := 2
	for i, n := range c.nodes {
		if n.isMetaLeader() && i == wiped {
			wiped = 1
		}
	}
	c.stop(wiped)
	require.NoError(t, os.RemoveAll(c.cfgs[wiped].DataDir))
	// Expecting one node, the old code bootstrapped a cluster of its own
	// at once.
	c.cfgs[wiped].BootstrapExpect = 1
	c.start(wiped)
	n := c.nodes[wiped]
	require.Eventually(t, func() bool {
		_, ok := n.meta.Topic("kept")
		return ok
	}, 30*time.Second, 50*time.Millisecond, "the wiped node did not receive the cluster's metadata")
	c.oneMetadataGroup(3)
	// Log matching: its first entry is the cluster's, not a configuration
	// of its own (hashicorp/raft would not notice the difference).
	var leader *Node
	for _, m := range c.nodes {
		if m.isMetaLeader() {
			leader = m
		}
	}
	require.NotNil(t, leader)
	var mine, theirs raft.Log
	require.Eventually(t, func() bool { return n.metaRG.store.GetLog(1, &mine) == nil }, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, leader.metaRG.store.GetLog(1, &theirs))
	assert.Equal(t, theirs.Data, mine.Data, "first metadata log entry differs from the leader's")
	assert.False(t, n.bootstrapped.Load(), "a node must not bootstrap while a cluster exists")
	require.Eventually(t, func() bool { return replicaLen(cl, c.cfgs[wiped].ID, "kept", 0) == 0 }, 30*time.Second, 50*time.Millisecond)
}
