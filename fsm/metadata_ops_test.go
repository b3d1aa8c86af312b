package fsm

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/transport"
)

func TestMetadataAddPartitions(t *testing.T) {
	h := newMetaHarness(t)
	require.NoError(t, h.apply(EncodeCreateTopic(testTopic(t, "orders", 2, 2))))
	id, ok := h.m.TopicID("orders")
	require.True(t, ok)
	more := []PartitionAssignment{{ID: 2, Replicas: []string{"n3", "n1"}}, {ID: 3, Replicas: []string{"n1", "n2"}}}
	require.NoError(t, h.apply(EncodeAddPartitions("orders", id, more)))
	tp, _ := h.m.Topic("orders")
	require.Len(t, tp.Partitions, 4)
	require.Equal(t, []string{"n3", "n1"}, tp.Partitions[2].Replicas)

	// A retry of the same command does not continue the numbering.
	require.Equal(t, transport.ErrInvalidRequest, transport.CodeOf(h.apply(EncodeAddPartitions("orders", id, more))))
	// Another incarnation, wrong replica count, repeated replica.
	require.Equal(t, transport.ErrUnknownTopic, transport.CodeOf(h.apply(EncodeAddPartitions("orders", id+1, []PartitionAssignment{{ID: 4, Replicas: []string{"n1", "n2"}}}))))
	require.Equal(t, transport.ErrInvalidRequest, transport.CodeOf(h.apply(EncodeAddPartitions("orders", id, []PartitionAssignment{{ID: 4, Replicas: []string{"n1"}}}))))
	require.Equal(t, transport.ErrInvalidRequest, transport.CodeOf(h.apply(EncodeAddPartitions("orders", id, []PartitionAssignment{{ID: 4, Replicas: []string{"n1", "n1"}}}))))
	tp, _ = h.m.Topic("orders")
	require.Len(t, tp.Partitions, 4)
}
