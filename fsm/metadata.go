package fsm

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/sluice-io/sluice/transport"
)

// Broker is a node as the metadata group knows it.
type Broker struct {
	ID       string `msgpack:"id" json:"id"`
	RPCAddr  string `msgpack:"rpc" json:"rpc_addr"`
	HTTPAddr string `msgpack:"http" json:"http_addr"`
}

// PartitionAssignment places one partition: its replicas (Replicas[0] is
// the preferred leader) and the last leader reported for it.
type PartitionAssignment struct {
	ID         int32    `msgpack:"id" json:"partition"`
	Replicas   []string `msgpack:"replicas" json:"replicas"` // node ids
	Leader     string   `msgpack:"leader" json:"leader"`     // node id, "" when unknown
	LeaderTerm uint64   `msgpack:"term" json:"leader_term"`  // Raft term of the partition group
	// Move is the replica move in progress, nil when none (see moves.go).
	Move *PartitionMove `msgpack:"move,omitempty" json:"move,omitempty"`
}

// Topic is a topic's configuration and placement.
type Topic struct {
	Name string `msgpack:"name" json:"name"`
	// ID is the metadata Raft index of the topic's creation, set by the FSM
	// when it applies the create (whatever the command carried): the same
	// on every node and never reused, so a deleted and re-created topic is
	// a different incarnation everywhere it is named (replica directories,
	// Raft group names). 0 marks a topic created before topics had ids.
	ID                uint64                `msgpack:"tid,omitempty" json:"id"`
	ReplicationFactor int                   `msgpack:"rf" json:"replication_factor"`
	RetentionBytes    int64                 `msgpack:"rbytes" json:"retention_bytes"` // <= 0: unlimited
	RetentionMs       int64                 `msgpack:"rms" json:"retention_ms"`       // <= 0: unlimited
	Partitions        []PartitionAssignment `msgpack:"parts" json:"partitions"`
}

func (t Topic) clone() Topic {
	t.Partitions = slices.Clone(t.Partitions)
	for i := range t.Partitions {
		t.Partitions[i].Replicas = slices.Clone(t.Partitions[i].Replicas)
		t.Partitions[i].Move = t.Partitions[i].Move.clone()
	}
	return t
}

// Raft command types of the metadata group.
const (
	metaRegisterBroker byte = 1
	metaCreateTopic    byte = 2
	metaDeleteTopic    byte = 3
	metaSetLeader      byte = 4
	metaSync           byte = 5
)

// syncCmd is a marker a node commits and then waits to see applied
// locally: once it is, the node's metadata is at least as fresh as the
// leader's was when the marker committed.
type syncCmd struct {
	Node  string `msgpack:"node"`
	Nonce uint64 `msgpack:"nonce"`
}

type deleteTopicCmd struct {
	Name string `msgpack:"name"`
}

type setLeaderCmd struct {
	Topic     string `msgpack:"topic"`
	TopicID   uint64 `msgpack:"tid,omitempty"`
	Partition int32  `msgpack:"partition"`
	Leader    string `msgpack:"leader"`
	Term      uint64 `msgpack:"term"`
}

// EncodeRegisterBroker adds or updates a broker.
func EncodeRegisterBroker(b Broker) []byte { return encodeCommand(metaRegisterBroker, b) }

// EncodeCreateTopic creates a topic whose assignments are already chosen
// (see Assign). Applying it fails with ErrTopicExists if the name is taken.
func EncodeCreateTopic(t Topic) []byte { return encodeCommand(metaCreateTopic, t) }

// EncodeDeleteTopic deletes a topic; applying it fails with ErrUnknownTopic
// if there is none.
func EncodeDeleteTopic(name string) []byte {
	return encodeCommand(metaDeleteTopic, deleteTopicCmd{Name: name})
}

// EncodeSetLeader records the leader of a partition's Raft group. It is
// ignored if term is below the recorded one or the topic is gone, or when
// topicID is not 0 and names another incarnation of the topic.
func EncodeSetLeader(topic string, topicID uint64, partition int32, leader string, term uint64) []byte {
	return encodeCommand(metaSetLeader, setLeaderCmd{Topic: topic, TopicID: topicID, Partition: partition, Leader: leader, Term: term})
}

// EncodeSync is a marker command: see Metadata.Synced.
func EncodeSync(node string, nonce uint64) []byte {
	return encodeCommand(metaSync, syncCmd{Node: node, Nonce: nonce})
}

// Metadata is the Raft FSM of the metadata (controller) group: brokers and
// topics with their partition assignments. Reads may come from any
// goroutine.
type Metadata struct {
	logger *slog.Logger

	mu      sync.RWMutex
	brokers map[string]Broker
	topics  map[string]Topic
	syncs   map[string]uint64 // node id -> nonce of its last sync marker
	// decommissioned are the nodes being drained (moves.go).
	decommissioned map[string]bool
	// groups are consumer-group states of the coordinator (metagroups.go);
	// groupBytes is their bounded total size.
	groups     map[string]StoredGroup
	groupBytes int

	chMu    sync.Mutex
	changed chan struct{}
}

// NewMetadata returns an empty metadata state machine.
func NewMetadata(logger *slog.Logger) *Metadata {
	if logger == nil {
		logger = slog.Default()
	}
	return &Metadata{
		logger:  logger,
		brokers: map[string]Broker{},
		topics:  map[string]Topic{},
		syncs:   map[string]uint64{},
		changed: make(chan struct{}),

		decommissioned: map[string]bool{},
		groups:         map[string]StoredGroup{},
	}
}

// Changed returns a channel closed at the next applied change (or
// restore); call it again afterwards for the one after.
func (m *Metadata) Changed() <-chan struct{} {
	m.chMu.Lock()
	defer m.chMu.Unlock()
	return m.changed
}

func (m *Metadata) notify() {
	m.chMu.Lock()
	close(m.changed)
	m.changed = make(chan struct{})
	m.chMu.Unlock()
}

// Apply applies one committed command deterministically. It returns nil or
// an error (*transport.Error).
func (m *Metadata) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	if len(l.Data) == 0 {
		return transport.Errorf(transport.ErrInvalidRequest, "empty metadata command")
	}
	changed, err := m.apply(l.Index, l.Data[0], l.Data[1:])
	if changed {
		m.notify()
	}
	if err != nil {
		return err
	}
	return nil
}

func decodeCmd(payload []byte, v any) error {
	if err := msgpack.Unmarshal(payload, v); err != nil {
		return transport.Errorf(transport.ErrInvalidRequest, "decode metadata command: %v", err)
	}
	return nil
}

func (m *Metadata) apply(index uint64, typ byte, payload []byte) (changed bool, err error) {
	switch typ {
	case metaRegisterBroker:
		var b Broker
		if err := decodeCmd(payload, &b); err != nil {
			return false, err
		}
		if b.ID == "" {
			return false, transport.Errorf(transport.ErrInvalidRequest, "broker without an id")
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if old, ok := m.brokers[b.ID]; ok && old == b {
			return false, nil
		}
		m.brokers[b.ID] = b
		return true, nil

	case metaCreateTopic:
		var t Topic
		if err := decodeCmd(payload, &t); err != nil {
			return false, err
		}
		if err := validateTopic(t); err != nil {
			return false, err
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if _, ok := m.topics[t.Name]; ok {
			return false, transport.Errorf(transport.ErrTopicExists, "topic %q already exists", t.Name)
		}
		t.ID = index
		m.topics[t.Name] = t.clone()
		return true, nil

	case metaDeleteTopic:
		var c deleteTopicCmd
		if err := decodeCmd(payload, &c); err != nil {
			return false, err
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if _, ok := m.topics[c.Name]; !ok {
			return false, transport.Errorf(transport.ErrUnknownTopic, "topic %q does not exist", c.Name)
		}
		delete(m.topics, c.Name)
		return true, nil

	case metaSetLeader:
		var c setLeaderCmd
		if err := decodeCmd(payload, &c); err != nil {
			return false, err
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		t, ok := m.topics[c.Topic]
		if !ok || c.Partition < 0 || int(c.Partition) >= len(t.Partitions) || c.TopicID != 0 && c.TopicID != t.ID {
			return false, nil // the topic (or this incarnation) went away meanwhile: nothing to record
		}
		p := &t.Partitions[c.Partition]
		if c.Term < p.LeaderTerm || (c.Term == p.LeaderTerm && c.Leader == p.Leader) {
			return false, nil // stale or already known
		}
		// During a move a new replica may lead (leadership moves off a
		// replica before it is removed).
		if c.Leader != "" && !p.Hosts(c.Leader) {
			return false, transport.Errorf(transport.ErrInvalidRequest, "%s is not a replica of %s/%d", c.Leader, c.Topic, c.Partition)
		}
		p.Leader, p.LeaderTerm = c.Leader, c.Term
		return true, nil

	case metaSync:
		var c syncCmd
		if err := decodeCmd(payload, &c); err != nil {
			return false, err
		}
		if c.Node == "" {
			return false, transport.Errorf(transport.ErrInvalidRequest, "sync marker without a node id")
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		m.syncs[c.Node] = c.Nonce
		return true, nil
	}
	if ok, changed, err := m.applyOps(typ, payload); ok {
		return changed, err
	}
	if ok, changed, err := m.applyMoves(index, typ, payload); ok {
		return changed, err
	}
	if ok, changed, err := m.applyGroups(typ, payload); ok {
		return changed, err
	}
	return false, transport.Errorf(transport.ErrInvalidRequest, "unknown metadata command type %d", typ)
}

// validateTopic checks a create command: everything that makes it
// applicable is decided by the command and the state alone.
func validateTopic(t Topic) error {
	if err := ValidateTopicName(t.Name); err != nil {
		return err
	}
	if len(t.Partitions) == 0 {
		return transport.Errorf(transport.ErrInvalidRequest, "topic %q has no partitions", t.Name)
	}
	if t.ReplicationFactor < 1 {
		return transport.Errorf(transport.ErrInvalidRequest, "topic %q: replication factor must be at least 1, got %d", t.Name, t.ReplicationFactor)
	}
	for i, p := range t.Partitions {
		if p.ID != int32(i) {
			return transport.Errorf(transport.ErrInvalidRequest, "topic %q: partition %d has id %d", t.Name, i, p.ID)
		}
		if len(p.Replicas) != t.ReplicationFactor {
			return transport.Errorf(transport.ErrInvalidRequest, "topic %q: partition %d has %d replicas, replication factor is %d", t.Name, i, len(p.Replicas), t.ReplicationFactor)
		}
		for j, r := range p.Replicas {
			if r == "" || slices.Contains(p.Replicas[:j], r) {
				return transport.Errorf(transport.ErrInvalidRequest, "topic %q: partition %d has an empty or repeated replica %q", t.Name, i, r)
			}
		}
		if p.Leader != "" && !slices.Contains(p.Replicas, p.Leader) {
			return transport.Errorf(transport.ErrInvalidRequest, "topic %q: partition %d leader %q is not a replica", t.Name, i, p.Leader)
		}
	}
	return nil
}

// Brokers returns every registered broker, sorted by id.
func (m *Metadata) Brokers() []Broker {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Broker, 0, len(m.brokers))
	for _, b := range m.brokers {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b Broker) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Synced reports whether the sync marker with this nonce from node has
// been applied (it stays so until the node commits another).
func (m *Metadata) Synced(node string, nonce uint64) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	got, ok := m.syncs[node]
	return ok && got == nonce
}

// TopicID returns the id of the topic's current incarnation.
func (m *Metadata) TopicID(name string) (uint64, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	t, ok := m.topics[name]
	return t.ID, ok
}

// Broker returns one registered broker.
func (m *Metadata) Broker(id string) (Broker, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	b, ok := m.brokers[id]
	return b, ok
}

// Topics returns deep copies of every topic, sorted by name.
func (m *Metadata) Topics() []Topic {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.sortedTopicsLocked()
}

func (m *Metadata) sortedTopicsLocked() []Topic {
	out := make([]Topic, 0, len(m.topics))
	for _, t := range m.topics {
		out = append(out, t.clone())
	}
	slices.SortFunc(out, func(a, b Topic) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Topic returns a deep copy of one topic.
func (m *Metadata) Topic(name string) (Topic, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	t, ok := m.topics[name]
	if !ok {
		return Topic{}, false
	}
	return t.clone(), true
}

type metadataState struct {
	Brokers []Broker          `msgpack:"brokers"`
	Topics  []Topic           `msgpack:"topics"`
	Syncs   map[string]uint64 `msgpack:"syncs,omitempty"`
	Decom   []string          `msgpack:"decom,omitempty"`
	Groups  []StoredGroup     `msgpack:"groups,omitempty"`
}

// Snapshot encodes the whole state (it is small) right away.
func (m *Metadata) Snapshot() (raft.FSMSnapshot, error) {
	m.mu.RLock()
	st := metadataState{Topics: m.sortedTopicsLocked(), Syncs: maps.Clone(m.syncs)}
	for id := range m.decommissioned {
		st.Decom = append(st.Decom, id)
	}
	slices.Sort(st.Decom)
	for _, g := range m.groups {
		st.Groups = append(st.Groups, g)
	}
	for _, b := range m.brokers {
		st.Brokers = append(st.Brokers, b)
	}
	m.mu.RUnlock()
	slices.SortFunc(st.Brokers, func(a, b Broker) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(st.Groups, func(a, b StoredGroup) int { return strings.Compare(a.Group, b.Group) })
	data, err := msgpack.Marshal(&st)
	if err != nil {
		return nil, fmt.Errorf("encode metadata snapshot: %w", err)
	}
	return metadataSnapshot(data), nil
}

type metadataSnapshot []byte

func (s metadataSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist metadata snapshot: %w", err)
	}
	return sink.Close()
}

func (s metadataSnapshot) Release() {}

// Restore replaces the whole state with a snapshot's.
func (m *Metadata) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("read metadata snapshot: %w", err)
	}
	var st metadataState
	if err := msgpack.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("decode metadata snapshot: %w", err)
	}
	brokers := make(map[string]Broker, len(st.Brokers))
	for _, b := range st.Brokers {
		brokers[b.ID] = b
	}
	topics := make(map[string]Topic, len(st.Topics))
	for _, t := range st.Topics {
		topics[t.Name] = t
	}
	syncs := st.Syncs
	if syncs == nil {
		syncs = map[string]uint64{}
	}
	decom := map[string]bool{}
	for _, id := range st.Decom {
		decom[id] = true
	}
	m.mu.Lock()
	m.brokers, m.topics, m.syncs, m.decommissioned = brokers, topics, syncs, decom
	m.restoreGroupsLocked(st.Groups)
	m.mu.Unlock()
	m.notify()
	return nil
}
