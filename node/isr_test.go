package node

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

func isrStatus(node string, role string, commit, applied uint64) *transport.StatusResponse {
	return &transport.StatusResponse{Node: node, Partitions: []transport.PartitionStatus{
		{Topic: "t", Partition: 0, Role: role, Term: 2, CommitIndex: commit, AppliedIndex: applied},
	}}
}

func TestISRTrackerFollowsTheLeadersCommits(t *testing.T) {
	tr := newISRTracker(10 * time.Second)
	k := partKey{"t", 0}
	t0 := time.Unix(1000, 0)
	round := func(at time.Duration, commit, n2, n3 uint64) {
		tr.observe(t0.Add(at), map[string]*transport.StatusResponse{
			"n1": isrStatus("n1", "leader", commit, commit),
			"n2": isrStatus("n2", "follower", commit, n2),
			"n3": isrStatus("n3", "follower", commit, n3),
		})
	}
	// Not watched for lagMax yet: everyone gets the benefit of the doubt.
	round(0, 100, 100, 40)
	require.True(t, tr.inSync(k, "n3", t0.Add(time.Second)))

	// n2 keeps up with the previous round's commit index; n3 is stuck.
	for s := 1; s <= 12; s++ {
		c := uint64(100 + 10*s)
		round(time.Duration(s)*time.Second, c, c-5, 40)
	}
	now := t0.Add(12 * time.Second)
	require.True(t, tr.inSync(k, "n1", now), "the leader")
	require.True(t, tr.inSync(k, "n2", now), "a follower a few entries behind the latest commit")
	require.False(t, tr.inSync(k, "n3", now), "a follower stuck far behind")

	// n3 catches up: back in the ISR at the next round.
	round(13*time.Second, 300, 300, 300)
	require.True(t, tr.inSync(k, "n3", t0.Add(13*time.Second)))

	// A node that stops answering drops out after lagMax.
	for s := 14; s <= 25; s++ {
		c := uint64(300 + s)
		tr.observe(t0.Add(time.Duration(s)*time.Second), map[string]*transport.StatusResponse{
			"n1": isrStatus("n1", "leader", c, c),
			"n2": isrStatus("n2", "follower", c, c),
		})
	}
	now = t0.Add(25 * time.Second)
	require.False(t, tr.inSync(k, "n3", now))
	require.True(t, tr.inSync(k, "n2", now))

	// A re-created topic (commit index back to the start) is watched anew.
	tr.observe(t0.Add(26*time.Second), map[string]*transport.StatusResponse{"n1": isrStatus("n1", "leader", 3, 3)})
	require.True(t, tr.inSync(k, "n3", t0.Add(27*time.Second)))

	tr.forget(map[partKey]bool{})
	require.Empty(t, tr.parts)
}

func TestISRTrackerTakesTheHigherTermsLeader(t *testing.T) {
	tr := newISRTracker(time.Second)
	k := partKey{"t", 0}
	t0 := time.Unix(1000, 0)
	for s := 0; s < 4; s++ {
		c := uint64(50 + 10*s)
		old := isrStatus("n1", "leader", 20, 20) // deposed, cut off: still thinks it leads
		old.Partitions[0].Term = 1
		tr.observe(t0.Add(time.Duration(s)*time.Second), map[string]*transport.StatusResponse{
			"n1": old,
			"n2": isrStatus("n2", "leader", c, c),
			"n3": isrStatus("n3", "follower", c, c),
		})
	}
	now := t0.Add(3 * time.Second)
	require.False(t, tr.inSync(k, "n1", now))
	require.True(t, tr.inSync(k, "n3", now))
}

// TestKafkaMetadataISRLeavesOutALaggingFollower: a follower whose Raft
// group has stopped (its node is alive and gossiping) falls behind while
// writes go on, and Kafka Metadata drops it from the ISR but keeps it among
// the replicas.
func TestKafkaMetadataISRLeavesOutALaggingFollower(t *testing.T) {
	skipShort(t)
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.KafkaAddr = "127.0.0.1:0"
		cfg.KafkaISRLagMax = time.Second
	})
	native := c.client()
	c.createTopic(native, "isr", 1, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	metadata := func(addr string) kmsg.MetadataResponseTopicPartition {
		t.Helper()
		conn := dialRaw(t, addr)
		defer conn.c.Close()
		req := kmsg.NewPtrMetadataRequest()
		req.SetVersion(5)
		name := "isr"
		req.Topics = []kmsg.MetadataRequestTopic{{Topic: &name}}
		conn.request(req, 1)
		resp := kmsg.NewPtrMetadataResponse()
		resp.SetVersion(5)
		require.NoError(t, resp.ReadFrom(conn.response(1)))
		require.Len(t, resp.Topics, 1)
		require.Len(t, resp.Topics[0].Partitions, 1)
		return resp.Topics[0].Partitions[0]
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case <-ctx.Done():
				t.Fatalf("timed out waiting for %s", what)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	waitFor("every replica in the ISR", func() bool { return len(metadata(c.kafkaAddrs()[0]).ISR) == 3 })

	leader := c.leaderIndex("isr", 0)
	lag := (leader + 1) % 3
	lagID := kafkaBrokerID(c.cfgs[lag].ID)
	r := c.nodes[lag].replica("isr", 0)
	require.NotNil(t, r)
	require.NoError(t, r.raft().Shutdown().Error())

	// Writes go on with the other two; the stopped follower falls behind.
	writes, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for i := 0; writes.Err() == nil; i++ {
			_, _ = native.ProduceBatch(writes, "isr", 0, []client.Record{{Value: []byte(fmt.Sprint(i))}})
		}
	}()
	for i, addr := range c.kafkaAddrs() {
		waitFor(fmt.Sprintf("node %d to leave the lagging follower out", i+1), func() bool {
			p := metadata(addr)
			return len(p.ISR) == 2 && !slices.Contains(p.ISR, lagID) && len(p.Replicas) == 3 && slices.Contains(p.Replicas, lagID)
		})
	}
}
