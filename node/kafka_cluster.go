package node

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"github.com/sluice-io/sluice/fsm"
	"github.com/sluice-io/sluice/kafka"
	"github.com/sluice-io/sluice/transport"
)

// kafkaCluster is the node as the Kafka listener sees it.
type kafkaCluster struct{ n *Node }

var _ kafka.Cluster = (*kafkaCluster)(nil)

func (k *kafkaCluster) Self() int32 { return kafkaBrokerID(k.n.cfg.ID) }

func (k *kafkaCluster) ClusterID() string { return "sluice" }

// kafkaMembers maps node id to Kafka broker for every live node with a
// Kafka listener.
func (k *kafkaCluster) kafkaMembers() map[string]kafka.Broker {
	out := map[string]kafka.Broker{}
	for _, m := range k.n.members.alive() {
		host, port, ok := splitKafkaAddr(m.KafkaAddr)
		if !ok {
			continue
		}
		out[m.ID] = kafka.Broker{ID: kafkaBrokerID(m.ID), Host: host, Port: port}
	}
	return out
}

func (k *kafkaCluster) Brokers() []kafka.Broker {
	var out []kafka.Broker
	for _, b := range k.kafkaMembers() {
		out = append(out, b)
	}
	return out
}

// Coordinator is the metadata leader for every group: it is one node that
// every node agrees on, it moves on failover by Raft election, and the
// offsets it commits live in the partitions' own Raft groups.
func (k *kafkaCluster) Coordinator(string) (kafka.Broker, error) {
	id, _ := k.n.metaLeader()
	if id == "" {
		return kafka.Broker{}, errNoKafkaCoordinator
	}
	b, ok := k.kafkaMembers()[id]
	if !ok {
		return kafka.Broker{}, errNoKafkaCoordinator
	}
	return b, nil
}

func (k *kafkaCluster) Topics(ctx context.Context, names []string, autoCreate bool) []kafka.TopicInfo {
	n := k.n
	var topics []fsm.Topic
	var out []kafka.TopicInfo
	if names == nil {
		topics = n.meta.Topics()
	}
	for _, name := range names {
		t, ok := n.meta.Topic(name)
		if !ok && autoCreate && !n.cfg.KafkaNoAutoCreate {
			err := k.CreateTopic(ctx, kafka.TopicSpec{Name: name})
			if err != nil && transport.CodeOf(err) != transport.ErrTopicExists {
				out = append(out, kafka.TopicInfo{Name: name, Err: err})
				continue
			}
			t, ok = k.waitTopic(ctx, name, 5*time.Second)
		}
		if !ok {
			out = append(out, kafka.TopicInfo{Name: name, Err: transport.Errorf(transport.ErrUnknownTopic, "topic %q does not exist", name)})
			continue
		}
		topics = append(topics, t)
	}
	members := k.kafkaMembers()
	for _, t := range topics {
		ti := kafka.TopicInfo{Name: t.Name, ReplicationFactor: t.ReplicationFactor, RetentionBytes: t.RetentionBytes, RetentionMs: t.RetentionMs}
		for _, p := range t.Partitions {
			ti.Partitions = append(ti.Partitions, k.partitionInfo(t.Name, p, members))
		}
		out = append(out, ti)
	}
	return out
}

func (k *kafkaCluster) partitionInfo(topic string, p fsm.PartitionAssignment, members map[string]kafka.Broker) kafka.PartitionInfo {
	leader, term := p.Leader, p.LeaderTerm
	if r := k.n.replica(topic, p.ID); r != nil {
		// The local Raft group is fresher than the recorded leader.
		if _, id := r.raft().LeaderWithID(); id != "" {
			leader = string(id)
			if string(id) == k.n.cfg.ID {
				term = r.raft().CurrentTerm()
			}
		}
	}
	pi := kafka.PartitionInfo{ID: p.ID, Leader: -1, LeaderEpoch: int32(term)}
	now := time.Now()
	for _, id := range p.Replicas {
		pi.Replicas = append(pi.Replicas, kafkaBrokerID(id))
		// ISR: the live leader, and live followers that kept up with the
		// leader's commits (see isrTracker).
		if _, ok := members[id]; ok && (id == leader || k.n.isr.inSync(partKey{topic, p.ID}, id, now)) {
			pi.ISR = append(pi.ISR, kafkaBrokerID(id))
		}
	}
	if _, ok := members[leader]; ok && leader != "" {
		pi.Leader = kafkaBrokerID(leader)
	} else {
		pi.Err = transport.Errorf(transport.ErrUnavailable, "partition %s/%d has no live leader", topic, p.ID)
	}
	return pi
}

// waitTopic waits until the topic is in the local metadata with a leader
// for every partition, or d passes.
func (k *kafkaCluster) waitTopic(ctx context.Context, name string, d time.Duration) (fsm.Topic, bool) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		changed := k.n.meta.Changed()
		t, ok := k.n.meta.Topic(name)
		if ok {
			all := true
			for _, p := range t.Partitions {
				if p.Leader == "" {
					all = false
				}
			}
			if all {
				return t, true
			}
		}
		select {
		case <-ctx.Done():
			return t, ok
		case <-changed:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (k *kafkaCluster) CreateTopic(ctx context.Context, spec kafka.TopicSpec) error {
	n := k.n
	if spec.Partitions <= 0 {
		spec.Partitions = n.cfg.KafkaDefaultPartitions
	}
	if spec.ReplicationFactor <= 0 {
		spec.ReplicationFactor = min(3, max(1, len(n.members.alive())))
	}
	err := n.createTopic(ctx, transport.CreateTopicRequest{
		Name:              spec.Name,
		Partitions:        spec.Partitions,
		ReplicationFactor: spec.ReplicationFactor,
		RetentionBytes:    spec.RetentionBytes,
		RetentionMs:       spec.RetentionMs,
	})
	if err != nil {
		return err
	}
	n.logger.Info("topic created for a Kafka client", "topic", spec.Name, "partitions", spec.Partitions, "replicas", spec.ReplicationFactor)
	k.waitTopic(ctx, spec.Name, 10*time.Second)
	return nil
}

func (k *kafkaCluster) DeleteTopic(ctx context.Context, name string) error {
	if _, ok := k.n.meta.Topic(name); !ok {
		return transport.Errorf(transport.ErrUnknownTopic, "topic %q does not exist", name)
	}
	return k.n.deleteTopic(ctx, name)
}

func (k *kafkaCluster) Produce(ctx context.Context, topic string, partition int32, batch []byte, timeout time.Duration) (int64, error) {
	n := k.n
	if len(batch) > n.cfg.MaxBatchBytes {
		return 0, transport.Errorf(transport.ErrRecordTooLarge, "batch of %d bytes exceeds the limit of %d bytes", len(batch), n.cfg.MaxBatchBytes)
	}
	r, err := n.leaderReplica(topic, partition, false)
	if err != nil {
		return 0, err
	}
	if err := validateKafkaBatch(batch); err != nil {
		return 0, err
	}
	f := r.raft().Apply(fsm.EncodeAppend(batch), timeout)
	if err := f.Error(); err != nil {
		addr, _ := r.raft().LeaderWithID()
		return 0, raftErr(err, string(addr))
	}
	switch res := f.Response().(type) {
	case *fsm.AppendResult:
		n.metrics.produced(r.key, len(batch))
		return res.BaseOffset, nil
	case error:
		return 0, res
	}
	return 0, transport.Errorf(transport.ErrUnknown, "unexpected apply result %T", f.Response())
}

func (k *kafkaCluster) Fetch(ctx context.Context, topic string, partition int32, offset int64, maxBytes int) (kafka.FetchResult, error) {
	r, err := k.n.leaderReplica(topic, partition, false)
	if err != nil {
		return kafka.FetchResult{}, err
	}
	changed := r.fsm.Changed()
	batches, err := r.fsm.Read(offset, maxBytes, 0)
	if err != nil {
		return kafka.FetchResult{}, err
	}
	size := 0
	for _, b := range batches {
		size += len(b)
	}
	k.n.metrics.fetched(r.key, size)
	return kafka.FetchResult{
		HighWatermark:  r.fsm.HighWatermark(),
		LogStartOffset: r.fsm.StartOffset(),
		Batches:        batches,
		Changed:        changed,
	}, nil
}

func (k *kafkaCluster) ListOffset(ctx context.Context, topic string, partition int32, ts int64) (int64, int32, error) {
	r, err := k.n.leaderReplica(topic, partition, false)
	if err != nil {
		return 0, 0, err
	}
	epoch := int32(r.raft().CurrentTerm())
	switch ts {
	case -1:
		return r.fsm.HighWatermark(), epoch, nil
	case -2:
		return r.fsm.StartOffset(), epoch, nil
	}
	if ts < 0 {
		return 0, 0, transport.Errorf(transport.ErrInvalidRequest, "unsupported list-offsets timestamp %d", ts)
	}
	// No time index: walk the batch headers (max timestamp at byte 35).
	// The answer is the base of the first batch reaching ts, which is at or
	// before the first record that does.
	off := r.fsm.StartOffset()
	for {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		batches, err := r.fsm.Read(off, 4<<20, 0)
		if err != nil {
			return 0, 0, err
		}
		if len(batches) == 0 {
			return r.fsm.HighWatermark(), epoch, nil
		}
		for _, b := range batches {
			base := int64(binary.BigEndian.Uint64(b[0:]))
			if int64(binary.BigEndian.Uint64(b[35:])) >= ts {
				return max(base, r.fsm.StartOffset()), epoch, nil
			}
			off = base + int64(binary.BigEndian.Uint32(b[23:])) + 1
		}
	}
}

func (k *kafkaCluster) InitProducerID(context.Context) (int64, error) { return newProducerID() }

// partitionLeaderAddr is the RPC address of a partition's leader as this
// node knows it, "" when unknown.
func (k *kafkaCluster) partitionLeaderAddr(topic string, partition int32) string {
	if r := k.n.replica(topic, partition); r != nil {
		if addr, _ := r.raft().LeaderWithID(); addr != "" {
			return string(addr)
		}
	}
	t, ok := k.n.meta.Topic(topic)
	if !ok || partition < 0 || int(partition) >= len(t.Partitions) {
		return ""
	}
	return k.n.brokerAddr(t.Partitions[partition].Leader)
}

// onLeader runs local on the partition leader when that is this node, or
// forwards to the leader by RPC, following NOT_LEADER hints for a while.
func (k *kafkaCluster) onLeader(ctx context.Context, topic string, partition int32, local func() error, remote func(ctx context.Context, addr string) error) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var err error
	for attempt := 0; ; attempt++ {
		if r := k.n.replica(topic, partition); r != nil && r.isLeader() {
			err = local()
		} else if addr := k.partitionLeaderAddr(topic, partition); addr != "" && addr != k.n.Addr() && addr != k.n.cfg.rpcAdvertised() {
			err = remote(ctx, addr)
		} else if _, lerr := k.n.leaderReplica(topic, partition, false); lerr != nil {
			err = lerr
		} else {
			err = local()
		}
		c := transport.CodeOf(err)
		if err == nil || !(c.Retriable() || c == transport.ErrTimeout || (c == 0 && !errors.Is(err, context.Canceled))) || attempt >= 20 {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(50*(attempt+1)) * time.Millisecond):
		}
	}
}

func (k *kafkaCluster) CommitOffset(ctx context.Context, groupID, topic string, partition int32, offset int64, metadata string) error {
	req := transport.OffsetCommitRequest{Group: groupID, Topic: topic, Partition: partition, Offset: offset, Metadata: metadata}
	return k.onLeader(ctx, topic, partition,
		func() error { return k.n.offsetCommit(req) },
		func(ctx context.Context, addr string) error {
			return k.n.pool.Call(ctx, addr, transport.MethodOffsetCommit, req, nil)
		})
}

func (k *kafkaCluster) FetchOffset(ctx context.Context, groupID, topic string, partition int32) (int64, string, error) {
	req := transport.OffsetFetchRequest{Group: groupID, Topic: topic, Partition: partition}
	var resp *transport.OffsetFetchResponse
	err := k.onLeader(ctx, topic, partition,
		func() error {
			var err error
			resp, err = k.n.offsetFetch(req)
			return err
		},
		func(ctx context.Context, addr string) error {
			resp = &transport.OffsetFetchResponse{}
			return k.n.pool.Call(ctx, addr, transport.MethodOffsetFetch, req, resp)
		})
	if err != nil {
		return -1, "", err
	}
	return resp.Offset, resp.Metadata, nil
}

// GroupPartitions asks every partition's leader for the group's offset;
// partition FSMs do not index groups across partitions.
func (k *kafkaCluster) GroupPartitions(ctx context.Context, groupID string) map[string][]int32 {
	type tp struct {
		topic string
		p     int32
	}
	var all []tp
	for _, t := range k.n.meta.Topics() {
		for _, p := range t.Partitions {
			all = append(all, tp{t.Name, p.ID})
		}
	}
	var mu sync.Mutex
	out := map[string][]int32{}
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, x := range all {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			off, _, err := k.FetchOffset(ctx, groupID, x.topic, x.p)
			if err == nil && off >= 0 {
				mu.Lock()
				out[x.topic] = append(out[x.topic], x.p)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// validateKafkaBatch checks a produced batch before it enters the Raft
// log, exactly as the native produce path does (header, CRC, records
// walked and counted after decompression); compressed batches are stored
// compressed, as they came.
func validateKafkaBatch(b []byte) error { return fsm.ValidateProduce(b) }
