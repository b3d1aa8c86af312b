package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluice-io/sluice/transport"
)

// A replica restoring its own snapshot may find the frames in it damaged:
// snapshots link the segment files (fsm.SnapshotStore), so a damaged sealed
// segment damages the snapshot too. The partition then reads the frames
// from another replica (fsm.FrameSource), which stores the same frames for
// the same offsets: same Raft indexes, same batch bytes.

// peerFrames reads a partition's frames from its other replicas.
type peerFrames struct {
	n       *Node
	key     partKey
	topicID uint64
}

// peers lists the partition's other replicas, the recorded leader first,
// as the metadata has them now.
func (p *peerFrames) peers() []string {
	t, ok := p.n.meta.Topic(p.key.topic)
	if !ok || t.ID != p.topicID || int(p.key.partition) >= len(t.Partitions) {
		return nil
	}
	pa := t.Partitions[p.key.partition]
	var ids []string
	if pa.Leader != "" && pa.Leader != p.n.cfg.ID {
		ids = append(ids, pa.Leader)
	}
	for _, id := range pa.Replicas {
		if id != p.n.cfg.ID && id != pa.Leader {
			ids = append(ids, id)
		}
	}
	return ids
}

func (p *peerFrames) ReadFrames(ctx context.Context, offset int64, maxBytes int) ([][]byte, error) {
	req := transport.ReadFramesRequest{Topic: p.key.topic, TopicID: p.topicID, Partition: p.key.partition, Offset: offset, MaxBytes: maxBytes}
	var errs []error
	for _, id := range p.peers() {
		addr := p.n.brokerAddr(id)
		if addr == "" {
			errs = append(errs, fmt.Errorf("%s: no address", id))
			continue
		}
		var resp transport.ReadFramesResponse
		if err := p.n.pool.Call(ctx, addr, transport.MethodReadFrames, &req, &resp); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
			continue
		}
		return resp.Frames, nil
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("no other replica of %s is known", p.key)
	}
	return nil, fmt.Errorf("no replica of %s served its frames: %w", p.key, errors.Join(errs...))
}

// readFrames serves another replica's repair from the local one.
func (n *Node) readFrames(ctx context.Context, req transport.ReadFramesRequest) (*transport.ReadFramesResponse, error) {
	if !n.callerIsPeer(ctx) {
		return nil, transport.Errorf(transport.ErrInvalidRequest, "read_frames is accepted from cluster nodes only")
	}
	k := partKey{req.Topic, req.Partition}
	n.mu.RLock()
	r := n.replicas[k]
	n.mu.RUnlock()
	if r == nil || r.topicID != req.TopicID {
		return nil, transport.Errorf(transport.ErrUnknownPartition, "no replica of %s (topic id %d) here", k, req.TopicID)
	}
	if err := r.fsm.Err(); err != nil {
		return nil, transport.Errorf(transport.ErrUnavailable, "replica of %s failed: %v", k, err)
	}
	maxBytes := req.MaxBytes
	if maxBytes <= 0 || maxBytes > n.cfg.MaxFrameBytes/2 {
		maxBytes = n.cfg.MaxFrameBytes / 2
	}
	frames, err := r.fsm.ReadFrames(req.Offset, maxBytes)
	if err != nil {
		return nil, err
	}
	return &transport.ReadFramesResponse{Frames: frames}, nil
}
