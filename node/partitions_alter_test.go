package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

func TestAlterPartitions(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	cl := c.client()
	c.createTopic(cl, "grow", 2, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	err := cl.AlterPartitions(ctx, "grow", 1)
	require.Equal(t, transport.ErrInvalidRequest, transport.CodeOf(err))
	require.ErrorContains(t, err, "keyed ordering")

	require.NoError(t, cl.AlterPartitions(ctx, "grow", 4))
	require.NoError(t, cl.AlterPartitions(ctx, "grow", 4), "the same count again is a no-op")
	require.Eventually(t, func() bool {
		md, err := cl.Metadata(ctx, "grow")
		if err != nil || len(md.Topics) != 1 || len(md.Topics[0].Partitions) != 4 {
			return false
		}
		for _, p := range md.Topics[0].Partitions {
			if p.Leader == "" || len(p.Replicas) != 3 {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "new partitions got no leaders")

	// Keyed records go to hash % the new count: as in Kafka, adding
	// partitions remaps keys (documented), so some keys change partition.
	remapped := 0
	for k := range 20 {
		key := []byte(fmt.Sprintf("key-%d", k))
		p := client.KeyPartition(key, 4)
		if p != client.KeyPartition(key, 2) {
			remapped++
		}
		_, err := cl.ProduceBatch(ctx, "grow", p, []client.Record{{Key: key, Value: key}})
		require.NoError(t, err)
	}
	require.Positive(t, remapped, "some keys map to another partition after the raise")
	total := 0
	for p := range int32(4) {
		for _, r := range readAll(t, cl, "", "grow", p) {
			require.Equal(t, client.KeyPartition(r.Key, 4), p)
			total++
		}
	}
	require.Equal(t, 20, total)
}
