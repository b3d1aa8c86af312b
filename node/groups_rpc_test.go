package node

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

func TestNativeGroupMembersShareAndRebalance(t *testing.T) {
	skipShort(t)
	c := newTestCluster(t, 3, nil) // no Kafka listener: native groups need none
	cl := c.client()
	c.createTopic(cl, "ng", 4, 3)
	ctx := context.Background()
	p, err := cl.NewProducer(client.ProducerConfig{Topic: "ng"})
	require.NoError(t, err)
	errs := make(chan error, 40)
	for i := range 40 {
		p.SendTo(ctx, int32(i%4), client.Record{Value: []byte(fmt.Sprint(i))}, func(_ client.Record, err error) { errs <- err })
	}
	for range 40 {
		require.NoError(t, <-errs)
	}
	require.NoError(t, p.Close())

	cfg := client.GroupConsumerConfig{Group: "ng", Topic: "ng", Start: transport.OffsetEarliest, SessionTimeout: 2 * time.Second, MaxWait: 100 * time.Millisecond}
	a, err := cl.NewGroupConsumer(ctx, cfg)
	require.NoError(t, err)
	assert.Equal(t, []int32{0, 1, 2, 3}, a.Assigned())

	// A second member: both poll, the group rebalances to two each.
	bErr := make(chan error, 1)
	var b *client.GroupConsumer
	go func() {
		var err error
		b, err = cl.NewGroupConsumer(ctx, cfg)
		bErr <- err
	}()
	seen := map[string]bool{}
	require.Eventually(t, func() bool {
		recs, err := a.Poll(ctx)
		require.NoError(t, err)
		for _, r := range recs {
			seen[string(r.Value)] = true
		}
		return len(a.Assigned()) == 2
	}, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, <-bErr)
	got := append(a.Assigned(), b.Assigned()...)
	slices.Sort(got)
	assert.Equal(t, []int32{0, 1, 2, 3}, got, "each partition owned exactly once")
	require.NoError(t, a.Commit(ctx))

	d, err := cl.DescribeGroup(ctx, "ng")
	require.NoError(t, err)
	assert.Equal(t, "Stable", d.State)
	assert.Len(t, d.Members, 2)
	groups, err := cl.ListGroups(ctx)
	require.NoError(t, err)
	require.Len(t, groups, 1)
	assert.Equal(t, 2, groups[0].Members)

	// b leaves: a gets everything back and reads what b had not.
	require.NoError(t, b.Close(ctx))
	require.Eventually(t, func() bool {
		recs, err := a.Poll(ctx)
		require.NoError(t, err)
		for _, r := range recs {
			seen[string(r.Value)] = true
		}
		return len(a.Assigned()) == 4 && len(seen) == 40
	}, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, a.Close(ctx))

	d, err = cl.DescribeGroup(ctx, "ng")
	require.NoError(t, err)
	assert.Equal(t, "Empty", d.State)
	var committed int64
	for _, o := range d.Offsets {
		committed += o.Committed
		assert.Zero(t, o.Lag)
	}
	assert.Equal(t, int64(40), committed)
	require.NoError(t, cl.DeleteGroup(ctx, "ng"))
}
