package node

import (
	"context"
	"time"

	"github.com/sluice-io/sluice/fsm"
	"github.com/sluice-io/sluice/transport"
)

// alterPartitions raises a topic's partition count on the controller.
// The new partitions are placed as a new topic's are; the reconcile loop
// then starts their Raft groups. A decrease is refused: the records of a
// removed partition would have nowhere to go, and keys would stop mapping
// to the partition that holds their earlier records.
func (n *Node) alterPartitions(ctx context.Context, req transport.AlterPartitionsRequest) error {
	if req.Partitions < 1 || req.Partitions > 10000 {
		return transport.Errorf(transport.ErrInvalidRequest, "partitions must be between 1 and 10000, got %d", req.Partitions)
	}
	if !n.isMetaLeader() {
		_, addr := n.metaLeader()
		if addr == "" {
			return transport.Errorf(transport.ErrUnavailable, "no metadata leader")
		}
		return forwardErr(n.pool.Call(ctx, addr, transport.MethodAlterPartitions, req, nil))
	}
	if err := n.metaRG.raft.Barrier(5 * time.Second).Error(); err != nil {
		return raftErr(err, n.metaLeaderHint())
	}
	t, ok := n.meta.Topic(req.Name)
	if !ok {
		return transport.Errorf(transport.ErrUnknownTopic, "topic %q does not exist", req.Name)
	}
	have := len(t.Partitions)
	switch {
	case req.Partitions < have:
		return transport.Errorf(transport.ErrInvalidRequest,
			"topic %q has %d partitions; the count can only grow: removing partitions would drop their records and break keyed ordering (a key's records must stay in one partition)", req.Name, have)
	case req.Partitions == have:
		return nil // already done (e.g. a retry whose first reply was lost)
	}
	// Alive, registered and not being decommissioned.
	live := n.eligibleNodes()
	parts, err := fsm.Assign(live, n.meta.Topics(), req.Partitions-have, t.ReplicationFactor)
	if err != nil {
		return err
	}
	for i := range parts {
		parts[i].ID = int32(have + i)
	}
	return n.applyMetaLocal(fsm.EncodeAddPartitions(t.Name, t.ID, parts))
}
