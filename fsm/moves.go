package fsm

import (
	"slices"

	"github.com/sluice-io/sluice/transport"
)

// Replica movement. A move changes one partition's replica set through
// Raft membership changes of the partition's group, driven by the
// controller (node/move.go). The metadata records the move so that a new
// controller resumes it, and so that every node knows which replicas to
// host meanwhile: the union of the current replicas and the target.
// Replicas changes only when the move finishes.

// Move phases. A move starts Adding (new replicas join as non-voters,
// catch up and are promoted); it switches to Removing before the first
// old replica leaves the Raft configuration, after which it only goes
// forward; it may switch from Adding to RollingBack, which takes the new
// replicas out again and ends with the original set.
const (
	MoveAdding      = "adding"
	MoveRemoving    = "removing"
	MoveRollingBack = "rolling-back"
)

// PartitionMove is a replica move in progress.
type PartitionMove struct {
	// ID is the metadata Raft index of the command that started the move:
	// commands about a move name it, so a late command of an earlier move
	// changes nothing.
	ID     uint64   `msgpack:"id" json:"id"`
	Target []string `msgpack:"target" json:"target"` // the replica set wanted, preferred leader first
	Origin []string `msgpack:"origin" json:"origin"` // the replica set when the move started
	Phase  string   `msgpack:"phase" json:"phase"`
}

func (mv *PartitionMove) clone() *PartitionMove {
	if mv == nil {
		return nil
	}
	c := *mv
	c.Target = slices.Clone(mv.Target)
	c.Origin = slices.Clone(mv.Origin)
	return &c
}

// Hosts reports whether node must host a replica of the partition: it is
// a replica, or the target of a move in progress names it.
func (p PartitionAssignment) Hosts(node string) bool {
	return slices.Contains(p.Replicas, node) || p.Move != nil && slices.Contains(p.Move.Target, node)
}

// Metadata commands of replica movement and decommissioning.
const (
	metaStartMove       byte = 21
	metaMovePhase       byte = 22
	metaFinishMove      byte = 23
	metaDecommissioning byte = 24
)

type startMoveCmd struct {
	Topic     string   `msgpack:"topic"`
	TopicID   uint64   `msgpack:"tid"`
	Partition int32    `msgpack:"partition"`
	Target    []string `msgpack:"target"`
}

type movePhaseCmd struct {
	Topic     string `msgpack:"topic"`
	TopicID   uint64 `msgpack:"tid"`
	Partition int32  `msgpack:"partition"`
	MoveID    uint64 `msgpack:"move"`
	Phase     string `msgpack:"phase"`
}

type finishMoveCmd struct {
	Topic     string `msgpack:"topic"`
	TopicID   uint64 `msgpack:"tid"`
	Partition int32  `msgpack:"partition"`
	MoveID    uint64 `msgpack:"move"`
}

type decommissionCmd struct {
	Node string `msgpack:"node"`
	On   bool   `msgpack:"on"`
}

// EncodeStartMove starts moving a partition of the topic incarnation
// topicID to target. Applying it fails when another move of the partition
// is in progress; the same move again, or a target equal to the current
// replicas, changes nothing (a retried command is harmless).
func EncodeStartMove(topic string, topicID uint64, partition int32, target []string) []byte {
	return encodeCommand(metaStartMove, startMoveCmd{Topic: topic, TopicID: topicID, Partition: partition, Target: target})
}

// EncodeMovePhase sets the phase of move moveID. Going back from Removing,
// or anywhere from RollingBack, is refused.
func EncodeMovePhase(topic string, topicID uint64, partition int32, moveID uint64, phase string) []byte {
	return encodeCommand(metaMovePhase, movePhaseCmd{Topic: topic, TopicID: topicID, Partition: partition, MoveID: moveID, Phase: phase})
}

// EncodeFinishMove ends move moveID: the replicas become its target, or
// its origin when it was rolling back.
func EncodeFinishMove(topic string, topicID uint64, partition int32, moveID uint64) []byte {
	return encodeCommand(metaFinishMove, finishMoveCmd{Topic: topic, TopicID: topicID, Partition: partition, MoveID: moveID})
}

// EncodeDecommission marks a node as being decommissioned (on) or clears
// the mark. Placement puts no new replicas on a marked node.
func EncodeDecommission(node string, on bool) []byte {
	return encodeCommand(metaDecommissioning, decommissionCmd{Node: node, On: on})
}

// applyMoves applies the commands of this file; ok is false for any other
// type.
func (m *Metadata) applyMoves(index uint64, typ byte, payload []byte) (ok, changed bool, err error) {
	switch typ {
	case metaStartMove:
		var c startMoveCmd
		if err := decodeCmd(payload, &c); err != nil {
			return true, false, err
		}
		changed, err := m.startMove(index, c)
		return true, changed, err
	case metaMovePhase:
		var c movePhaseCmd
		if err := decodeCmd(payload, &c); err != nil {
			return true, false, err
		}
		changed, err := m.setMovePhase(c)
		return true, changed, err
	case metaFinishMove:
		var c finishMoveCmd
		if err := decodeCmd(payload, &c); err != nil {
			return true, false, err
		}
		changed, err := m.finishMove(c)
		return true, changed, err
	case metaDecommissioning:
		var c decommissionCmd
		if err := decodeCmd(payload, &c); err != nil {
			return true, false, err
		}
		if c.Node == "" {
			return true, false, transport.Errorf(transport.ErrInvalidRequest, "decommission without a node id")
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.decommissioned[c.Node] == c.On {
			return true, false, nil
		}
		if c.On {
			m.decommissioned[c.Node] = true
		} else {
			delete(m.decommissioned, c.Node)
		}
		return true, true, nil
	}
	return false, false, nil
}

// partitionLocked finds a partition of the named incarnation; the caller
// holds m.mu.
func (m *Metadata) partitionLocked(topic string, topicID uint64, partition int32) (Topic, *PartitionAssignment, error) {
	t, ok := m.topics[topic]
	if !ok || t.ID != topicID {
		return Topic{}, nil, transport.Errorf(transport.ErrUnknownTopic, "topic %q (id %d) does not exist", topic, topicID)
	}
	if partition < 0 || int(partition) >= len(t.Partitions) {
		return Topic{}, nil, transport.Errorf(transport.ErrUnknownPartition, "topic %q has partitions 0..%d, not %d", topic, len(t.Partitions)-1, partition)
	}
	t = t.clone()
	m.topics[topic] = t
	return t, &t.Partitions[partition], nil
}

// ValidateReplicaSet checks a replica list a move would install: rf
// entries, none empty, none repeated.
func ValidateReplicaSet(replicas []string, rf int) error {
	if len(replicas) != rf {
		return transport.Errorf(transport.ErrInvalidRequest, "%d replicas given; the topic's replication factor is %d (a move keeps it)", len(replicas), rf)
	}
	for i, r := range replicas {
		if r == "" {
			return transport.Errorf(transport.ErrInvalidRequest, "empty node id in the replica list")
		}
		if slices.Contains(replicas[:i], r) {
			return transport.Errorf(transport.ErrInvalidRequest, "node %s is listed twice", r)
		}
	}
	return nil
}

func (m *Metadata) startMove(index uint64, c startMoveCmd) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.topics[c.Topic]
	if !ok || t.ID != c.TopicID {
		return false, transport.Errorf(transport.ErrUnknownTopic, "topic %q (id %d) does not exist", c.Topic, c.TopicID)
	}
	if c.Partition < 0 || int(c.Partition) >= len(t.Partitions) {
		return false, transport.Errorf(transport.ErrUnknownPartition, "topic %q has partitions 0..%d, not %d", c.Topic, len(t.Partitions)-1, c.Partition)
	}
	if err := ValidateReplicaSet(c.Target, t.ReplicationFactor); err != nil {
		return false, err
	}
	cur := t.Partitions[c.Partition]
	if cur.Move != nil {
		if slices.Equal(cur.Move.Target, c.Target) && cur.Move.Phase != MoveRollingBack {
			return false, nil // this very move: a retry
		}
		return false, transport.Errorf(transport.ErrInvalidRequest, "a move of %s/%d to %v is in progress (%s); wait for it to finish", c.Topic, c.Partition, cur.Move.Target, cur.Move.Phase)
	}
	if slices.Equal(cur.Replicas, c.Target) {
		return false, nil
	}
	_, p, err := m.partitionLocked(c.Topic, c.TopicID, c.Partition)
	if err != nil {
		return false, err
	}
	p.Move = &PartitionMove{ID: index, Target: slices.Clone(c.Target), Origin: slices.Clone(p.Replicas), Phase: MoveAdding}
	return true, nil
}

func (m *Metadata) setMovePhase(c movePhaseCmd) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.Phase != MoveRemoving && c.Phase != MoveRollingBack {
		return false, transport.Errorf(transport.ErrInvalidRequest, "unknown move phase %q", c.Phase)
	}
	t, ok := m.topics[c.Topic]
	if !ok || t.ID != c.TopicID || c.Partition < 0 || int(c.Partition) >= len(t.Partitions) {
		return false, transport.Errorf(transport.ErrUnknownTopic, "topic %q (id %d) partition %d does not exist", c.Topic, c.TopicID, c.Partition)
	}
	mv := t.Partitions[c.Partition].Move
	if mv == nil || mv.ID != c.MoveID {
		return false, transport.Errorf(transport.ErrInvalidRequest, "move %d of %s/%d is not in progress", c.MoveID, c.Topic, c.Partition)
	}
	if mv.Phase == c.Phase {
		return false, nil
	}
	// Only forward from Adding: once old replicas may have left the Raft
	// configuration, the origin set can no longer be restored.
	if mv.Phase != MoveAdding {
		return false, transport.Errorf(transport.ErrInvalidRequest, "move %d of %s/%d is %s; it cannot become %s", c.MoveID, c.Topic, c.Partition, mv.Phase, c.Phase)
	}
	_, p, err := m.partitionLocked(c.Topic, c.TopicID, c.Partition)
	if err != nil {
		return false, err
	}
	p.Move.Phase = c.Phase
	return true, nil
}

func (m *Metadata) finishMove(c finishMoveCmd) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.topics[c.Topic]
	if !ok || t.ID != c.TopicID || c.Partition < 0 || int(c.Partition) >= len(t.Partitions) {
		return false, transport.Errorf(transport.ErrUnknownTopic, "topic %q (id %d) partition %d does not exist", c.Topic, c.TopicID, c.Partition)
	}
	mv := t.Partitions[c.Partition].Move
	if mv == nil || mv.ID != c.MoveID {
		return false, nil // already finished: a retry
	}
	_, p, err := m.partitionLocked(c.Topic, c.TopicID, c.Partition)
	if err != nil {
		return false, err
	}
	if mv.Phase == MoveRollingBack {
		p.Replicas = slices.Clone(mv.Origin)
	} else {
		p.Replicas = slices.Clone(mv.Target)
	}
	p.Move = nil
	if !slices.Contains(p.Replicas, p.Leader) {
		// The term stays: a report of that term from a remaining replica
		// is still taken, an older one is not.
		p.Leader = ""
	}
	return true, nil
}

// Decommissioning reports whether node is marked as being decommissioned.
func (m *Metadata) Decommissioning(node string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.decommissioned[node]
}

// DecommissionedNodes lists the marked nodes, sorted.
func (m *Metadata) DecommissionedNodes() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.decommissioned))
	for id := range m.decommissioned {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}
