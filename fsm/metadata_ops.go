package fsm

import (
	"slices"

	"github.com/sluice-io/sluice/transport"
)

// Metadata commands of cluster operations. Their numbers leave room after
// the core commands in metadata.go.
const (
	metaAddPartitions byte = 20
)

type addPartitionsCmd struct {
	Topic   string `msgpack:"topic"`
	TopicID uint64 `msgpack:"tid"`
	// Partitions are the new ones, placed (see Assign), numbered from the
	// topic's current count on.
	Partitions []PartitionAssignment `msgpack:"parts"`
}

// EncodeAddPartitions appends partitions to a topic's incarnation topicID.
// Applying it fails unless the new partitions continue the numbering,
// which makes a retried command harmless.
func EncodeAddPartitions(topic string, topicID uint64, parts []PartitionAssignment) []byte {
	return encodeCommand(metaAddPartitions, addPartitionsCmd{Topic: topic, TopicID: topicID, Partitions: parts})
}

// applyOps applies the commands of this file; ok is false for any other type.
func (m *Metadata) applyOps(typ byte, payload []byte) (ok, changed bool, err error) {
	switch typ {
	case metaAddPartitions:
		var c addPartitionsCmd
		if err := decodeCmd(payload, &c); err != nil {
			return true, false, err
		}
		changed, err := m.addPartitions(c)
		return true, changed, err
	}
	return false, false, nil
}

func (m *Metadata) addPartitions(c addPartitionsCmd) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.topics[c.Topic]
	if !ok || t.ID != c.TopicID {
		return false, transport.Errorf(transport.ErrUnknownTopic, "topic %q (id %d) does not exist", c.Topic, c.TopicID)
	}
	if len(c.Partitions) == 0 {
		return false, transport.Errorf(transport.ErrInvalidRequest, "topic %q: no partitions to add", c.Topic)
	}
	for i, p := range c.Partitions {
		want := int32(len(t.Partitions) + i)
		if p.ID != want {
			return false, transport.Errorf(transport.ErrInvalidRequest, "topic %q: new partition %d should be %d (the topic has %d)", c.Topic, p.ID, want, len(t.Partitions))
		}
		if len(p.Replicas) != t.ReplicationFactor {
			return false, transport.Errorf(transport.ErrInvalidRequest, "topic %q: partition %d has %d replicas, replication factor is %d", c.Topic, p.ID, len(p.Replicas), t.ReplicationFactor)
		}
		for j, r := range p.Replicas {
			if r == "" || slices.Contains(p.Replicas[:j], r) {
				return false, transport.Errorf(transport.ErrInvalidRequest, "topic %q: partition %d has an empty or repeated replica %q", c.Topic, p.ID, r)
			}
		}
	}
	t = t.clone()
	for _, p := range c.Partitions {
		p.Replicas = slices.Clone(p.Replicas)
		p.Leader, p.LeaderTerm = "", 0
		t.Partitions = append(t.Partitions, p)
	}
	m.topics[c.Topic] = t
	return true, nil
}
