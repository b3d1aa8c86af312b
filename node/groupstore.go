package node

import (
	"context"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sluice-io/sluice/fsm"
	"github.com/sluice-io/sluice/group"
	"github.com/sluice-io/sluice/transport"
)

// groupStore keeps the coordinator's group state in the metadata group:
// the coordinator is the metadata leader, so the state is replicated by
// the same Raft group that picks the next coordinator.
type groupStore struct{ n *Node }

func (s groupStore) LoadGroups() ([]group.State, error) {
	stored := s.n.meta.StoredGroups()
	out := make([]group.State, 0, len(stored))
	for _, g := range stored {
		var st group.State
		if err := msgpack.Unmarshal(g.State, &st); err != nil || st.Group != g.Group {
			// Members of this group rejoin; the others are taken over.
			s.n.logger.Warn("unreadable stored consumer-group state skipped", "group", g.Group, "err", err)
			continue
		}
		out = append(out, st)
	}
	return out, nil
}

func (s groupStore) SaveGroup(_ context.Context, st group.State) error {
	if !s.n.isMetaLeader() {
		return transport.Errorf(transport.ErrNotLeader, "no longer the metadata leader")
	}
	var data []byte
	if len(st.Members) > 0 {
		var err error
		if data, err = msgpack.Marshal(&st); err != nil {
			return fmt.Errorf("encode group %q: %w", st.Group, err)
		}
	}
	return s.n.applyMetaLocal(fsm.EncodeGroupState(fsm.StoredGroup{Group: st.Group, Generation: st.Generation, State: data}))
}
