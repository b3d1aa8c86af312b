package chaos

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/batch"
	"github.com/sluice-io/sluice/chaos/history"
	"github.com/sluice-io/sluice/chaos/workload"
)

// Client kinds of Options.Client.
const (
	ClientNative = "native"
	ClientKafka  = "kafka"
)

// kafkaStore drives the workload through the nodes' Kafka listeners with
// franz-go: sends through kgo's idempotent producer, polls as Kafka Fetch
// requests to the partition's leader, group offsets as OffsetCommit and
// OffsetFetch to the group coordinator. Kafka's protocol has no
// linearizable read and no per-replica read, so the checker's own evidence
// (linearizable and replica reads: the final reads) comes through the
// native client; every operation the workload makes as a client goes
// through Kafka.
type kafkaStore struct {
	cl     *kgo.Client
	native clientStore

	mu      sync.Mutex
	leaders map[int32]int32 // partition → leader broker, from Kafka metadata
}

func openKafkaStore(seeds []string, localHost string, opTimeout time.Duration, native clientStore) (*kafkaStore, error) {
	d := &net.Dialer{Timeout: min(time.Second, opTimeout)}
	if localHost != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localHost)}
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.Dialer(d.DialContext),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
		// A send the workload gave up on must not linger and land later
		// than its operation claims to have ended.
		kgo.RecordDeliveryTimeout(opTimeout),
		kgo.RequestTimeoutOverhead(opTimeout),
		kgo.RetryTimeout(opTimeout),
		kgo.MetadataMinAge(250*time.Millisecond),
	)
	if err != nil {
		return nil, fmt.Errorf("chaos: kafka client: %w", err)
	}
	return &kafkaStore{cl: cl, native: native, leaders: map[int32]int32{}}, nil
}

// kafkaUnknown: any failed Kafka send or commit may have taken effect (kgo
// retries inside; an error may follow a request the broker applied).
func kafkaUnknown(error) bool { return true }

func (s *kafkaStore) Produce(ctx context.Context, topic string, partition int32, key, value string) (int64, error) {
	r := &kgo.Record{Topic: topic, Partition: partition, Key: []byte(key), Value: []byte(value)}
	if err := s.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return -1, fmt.Errorf("kafka produce %s/%d: %w", topic, partition, err)
	}
	return r.Offset, nil
}

// leader returns the partition's leader broker, asking Kafka metadata when
// not known (or refresh is set).
func (s *kafkaStore) leader(ctx context.Context, topic string, partition int32, refresh bool) (int32, error) {
	s.mu.Lock()
	id, ok := s.leaders[partition]
	s.mu.Unlock()
	if ok && !refresh {
		return id, nil
	}
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, s.cl)
	if err != nil {
		return -1, fmt.Errorf("kafka metadata: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, mt := range resp.Topics {
		if err := kerr.ErrorForCode(mt.ErrorCode); err != nil {
			return -1, fmt.Errorf("kafka metadata of %s: %w", topic, err)
		}
		for _, p := range mt.Partitions {
			if p.Leader >= 0 {
				s.leaders[p.Partition] = p.Leader
			}
		}
	}
	id, ok = s.leaders[partition]
	if !ok {
		return -1, fmt.Errorf("kafka metadata: no leader of %s/%d", topic, partition)
	}
	return id, nil
}

// Fetch polls the partition's leader with a Kafka Fetch request. A
// linearizable read (the checker's evidence) goes through the native
// client: Kafka cannot ask for one.
func (s *kafkaStore) Fetch(ctx context.Context, req workload.FetchRequest) (workload.FetchResult, error) {
	if req.Linearizable {
		return s.native.Fetch(ctx, req)
	}
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		leader, err := s.leader(ctx, req.Topic, req.Partition, attempt > 0)
		if err != nil {
			return workload.FetchResult{}, err
		}
		res, err := s.fetchFrom(ctx, leader, req)
		if err == nil {
			return res, nil
		}
		lastErr = err
		if !errors.Is(err, kerr.NotLeaderForPartition) && !errors.Is(err, kerr.FencedLeaderEpoch) && !errors.Is(err, kerr.UnknownTopicOrPartition) {
			break
		}
	}
	return workload.FetchResult{}, lastErr
}

func (s *kafkaStore) fetchFrom(ctx context.Context, broker int32, req workload.FetchRequest) (workload.FetchResult, error) {
	fr := kmsg.NewPtrFetchRequest()
	fr.ReplicaID = -1
	fr.MaxWaitMillis = int32(req.MaxWait.Milliseconds())
	fr.MinBytes = 1
	fr.MaxBytes = 8 << 20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = req.Topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition = req.Partition
	fp.FetchOffset = req.Offset
	fp.PartitionMaxBytes = 8 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fr.Topics = append(fr.Topics, ft)
	resp, err := fr.RequestWith(ctx, s.cl.Broker(int(broker)))
	if err != nil {
		return workload.FetchResult{}, fmt.Errorf("kafka fetch %s/%d from broker %d: %w", req.Topic, req.Partition, broker, err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return workload.FetchResult{}, fmt.Errorf("kafka fetch: %w", err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.Partition != req.Partition {
				continue
			}
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return workload.FetchResult{}, fmt.Errorf("kafka fetch %s/%d from broker %d: %w", req.Topic, req.Partition, broker, err)
			}
			out := workload.FetchResult{HighWatermark: p.HighWatermark}
			recs, err := decodeBatches(p.RecordBatches, req.Offset, req.MaxRecords)
			if err != nil {
				return workload.FetchResult{}, fmt.Errorf("kafka fetch %s/%d: %w", req.Topic, req.Partition, err)
			}
			out.Records = recs
			return out, nil
		}
	}
	return workload.FetchResult{}, fmt.Errorf("kafka fetch %s/%d: partition missing from the response", req.Topic, req.Partition)
}

// decodeBatches walks the record batches of a fetch response (a partial
// batch at the end, which brokers may send, is dropped) and returns the
// records from offset on, at most max.
func decodeBatches(b []byte, from int64, max int) ([]history.Record, error) {
	var out []history.Record
	for len(b) >= 12 {
		size := 12 + int64(int32(binary.BigEndian.Uint32(b[8:12])))
		if size < 12 || size > int64(len(b)) {
			break // partial last batch
		}
		raw := b[:size]
		b = b[size:]
		h, err := batch.ParseHeader(raw)
		if err != nil {
			return nil, err
		}
		if h.Attributes.Control() {
			continue
		}
		_, err = batch.Walk(raw, 0, func(r batch.Record) error {
			off := h.BaseOffset + int64(r.OffsetDelta)
			if off >= from && (max <= 0 || len(out) < max) {
				out = append(out, history.Record{Offset: off, Key: string(r.Key), Value: string(r.Value)})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *kafkaStore) FetchFromNode(ctx context.Context, node string, req workload.FetchRequest) (workload.FetchResult, error) {
	return s.native.FetchFromNode(ctx, node, req)
}

// CommitOffset commits as a standalone consumer (generation -1, no member
// id), which Kafka accepts for a group without members.
func (s *kafkaStore) CommitOffset(ctx context.Context, group, topic string, partition int32, offset int64) error {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group = group
	req.Generation = -1
	t := kmsg.NewOffsetCommitRequestTopic()
	t.Topic = topic
	p := kmsg.NewOffsetCommitRequestTopicPartition()
	p.Partition = partition
	p.Offset = offset
	p.LeaderEpoch = -1
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, s.cl)
	if err != nil {
		return fmt.Errorf("kafka offset commit: %w", err)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return fmt.Errorf("kafka offset commit %s/%d: %w", topic, partition, err)
			}
		}
	}
	return nil
}

func (s *kafkaStore) FetchOffset(ctx context.Context, group, topic string, partition int32) (int64, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	t := kmsg.NewOffsetFetchRequestTopic()
	t.Topic = topic
	t.Partitions = []int32{partition}
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, s.cl)
	if err != nil {
		return -1, fmt.Errorf("kafka offset fetch: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return -1, fmt.Errorf("kafka offset fetch: %w", err)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.Partition != partition {
				continue
			}
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return -1, fmt.Errorf("kafka offset fetch %s/%d: %w", topic, partition, err)
			}
			return rp.Offset, nil
		}
	}
	return -1, fmt.Errorf("kafka offset fetch %s/%d: partition missing from the response", topic, partition)
}

func (s *kafkaStore) Replicas(ctx context.Context, topic string) (map[int32][]string, error) {
	return s.native.Replicas(ctx, topic)
}

func (s *kafkaStore) Close() error {
	s.cl.Close()
	return s.native.Close()
}
