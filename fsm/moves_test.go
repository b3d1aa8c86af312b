package fsm

import (
	"bytes"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/transport"
)

func movePart(t *testing.T, h *metaHarness, topic string, p int32) PartitionAssignment {
	t.Helper()
	tp, ok := h.m.Topic(topic)
	require.True(t, ok)
	return tp.Partitions[p]
}

func TestMetadataMoveForward(t *testing.T) {
	h := newMetaHarness(t)
	require.NoError(t, h.apply(EncodeCreateTopic(Topic{Name: "m", ReplicationFactor: 3, Partitions: []PartitionAssignment{{ID: 0, Replicas: []string{"n1", "n2", "n3"}}}})))
	id, _ := h.m.TopicID("m")
	require.NoError(t, h.apply(EncodeSetLeader("m", id, 0, "n1", 2)))

	target := []string{"n4", "n2", "n3"}
	require.NoError(t, h.apply(EncodeStartMove("m", id, 0, target)))
	p := movePart(t, h, "m", 0)
	require.NotNil(t, p.Move)
	moveID := p.Move.ID
	require.Equal(t, MoveAdding, p.Move.Phase)
	require.Equal(t, []string{"n1", "n2", "n3"}, p.Move.Origin)
	require.Equal(t, []string{"n1", "n2", "n3"}, p.Replicas, "replicas change only when the move ends")
	require.True(t, p.Hosts("n4") && p.Hosts("n1"))

	// The same move again is a retry; another one is refused while it runs.
	require.NoError(t, h.apply(EncodeStartMove("m", id, 0, target)))
	require.Equal(t, moveID, movePart(t, h, "m", 0).Move.ID)
	err := h.apply(EncodeStartMove("m", id, 0, []string{"n1", "n2", "n4"}))
	requireCode(t, err, transport.ErrInvalidRequest)
	require.Contains(t, err.Error(), "in progress")

	// A new replica may report leadership during the move.
	require.NoError(t, h.apply(EncodeSetLeader("m", id, 0, "n4", 3)))
	requireCode(t, h.apply(EncodeSetLeader("m", id, 0, "n9", 4)), transport.ErrInvalidRequest)

	require.NoError(t, h.apply(EncodeMovePhase("m", id, 0, moveID, MoveRemoving)))
	// Removing only goes forward.
	requireCode(t, h.apply(EncodeMovePhase("m", id, 0, moveID, MoveRollingBack)), transport.ErrInvalidRequest)
	// Commands of another move change nothing.
	requireCode(t, h.apply(EncodeMovePhase("m", id, 0, moveID+1, MoveRemoving)), transport.ErrInvalidRequest)
	require.NoError(t, h.apply(EncodeFinishMove("m", id, 0, moveID+1)))
	require.NotNil(t, movePart(t, h, "m", 0).Move)

	require.NoError(t, h.apply(EncodeFinishMove("m", id, 0, moveID)))
	p = movePart(t, h, "m", 0)
	require.Nil(t, p.Move)
	require.Equal(t, target, p.Replicas)
	require.Equal(t, "n4", p.Leader)
	require.False(t, p.Hosts("n1"))
	require.NoError(t, h.apply(EncodeFinishMove("m", id, 0, moveID)), "a retried finish is harmless")
}

func TestMetadataMoveRollbackAndValidation(t *testing.T) {
	h := newMetaHarness(t)
	require.NoError(t, h.apply(EncodeCreateTopic(Topic{Name: "m", ReplicationFactor: 2, Partitions: []PartitionAssignment{{ID: 0, Replicas: []string{"n1", "n2"}}}})))
	id, _ := h.m.TopicID("m")
	requireCode(t, h.apply(EncodeStartMove("m", id, 0, []string{"n1", "n1"})), transport.ErrInvalidRequest)
	requireCode(t, h.apply(EncodeStartMove("m", id, 0, []string{"n1"})), transport.ErrInvalidRequest)
	requireCode(t, h.apply(EncodeStartMove("m", id, 0, []string{"n1", ""})), transport.ErrInvalidRequest)
	requireCode(t, h.apply(EncodeStartMove("m", id, 1, []string{"n1", "n3"})), transport.ErrUnknownPartition)
	requireCode(t, h.apply(EncodeStartMove("m", id+1, 0, []string{"n1", "n3"})), transport.ErrUnknownTopic)
	require.NoError(t, h.apply(EncodeStartMove("m", id, 0, []string{"n1", "n2"})), "no change: nothing to do")
	require.Nil(t, movePart(t, h, "m", 0).Move)

	require.NoError(t, h.apply(EncodeSetLeader("m", id, 0, "n1", 1)))
	require.NoError(t, h.apply(EncodeStartMove("m", id, 0, []string{"n3", "n2"})))
	moveID := movePart(t, h, "m", 0).Move.ID
	require.NoError(t, h.apply(EncodeSetLeader("m", id, 0, "n3", 2)))
	require.NoError(t, h.apply(EncodeMovePhase("m", id, 0, moveID, MoveRollingBack)))
	// A rolling-back move is not the move a retried start asks for.
	requireCode(t, h.apply(EncodeStartMove("m", id, 0, []string{"n3", "n2"})), transport.ErrInvalidRequest)

	// Snapshots keep moves and decommissioning marks.
	require.NoError(t, h.apply(EncodeDecommission("n2", true)))
	other := newMetaHarness(t)
	require.NoError(t, other.m.Restore(io.NopCloser(bytes.NewReader(persist(t, h.m)))))
	require.Equal(t, h.m.Topics(), other.m.Topics())
	require.True(t, other.m.Decommissioning("n2"))
	require.Equal(t, []string{"n2"}, other.m.DecommissionedNodes())

	require.NoError(t, h.apply(EncodeFinishMove("m", id, 0, moveID)))
	p := movePart(t, h, "m", 0)
	require.Equal(t, []string{"n1", "n2"}, p.Replicas, "a rollback restores the origin")
	require.Empty(t, p.Leader, "the leader is no longer a replica")
	require.Nil(t, p.Move)

	require.NoError(t, h.apply(EncodeDecommission("n2", false)))
	require.False(t, h.m.Decommissioning("n2"))
}
