package kafka

import (
	"context"
	"time"
)

// Broker is a live node with a Kafka listener.
type Broker struct {
	ID   int32
	Host string
	Port int32
}

// PartitionInfo is one partition as Metadata reports it.
type PartitionInfo struct {
	ID          int32
	Leader      int32 // Kafka broker id, -1 when there is none
	LeaderEpoch int32 // the partition group's Raft term
	Replicas    []int32
	ISR         []int32
	Err         error // per-partition error, nil when fine
}

// TopicInfo is one topic as Metadata reports it; Err is set (and the rest
// empty) when the topic does not exist or could not be created.
type TopicInfo struct {
	Name              string
	Partitions        []PartitionInfo
	ReplicationFactor int
	RetentionBytes    int64
	RetentionMs       int64
	Err               error
}

// FetchResult is one partition read.
type FetchResult struct {
	HighWatermark  int64
	LogStartOffset int64
	Batches        [][]byte // stored record batches, untouched
	// Changed is closed at the partition's next append; it was taken
	// before the read, so no append between the read and a wait is missed.
	Changed <-chan struct{}
}

// TopicSpec is a topic to create.
type TopicSpec struct {
	Name              string
	Partitions        int // <= 0: the cluster default
	ReplicationFactor int // <= 0: the cluster default
	RetentionBytes    int64
	RetentionMs       int64
}

// Cluster is what the listener needs from the node. Errors are
// *transport.Error or *kerr.Error values; the listener maps them to Kafka
// error codes.
type Cluster interface {
	// Self is this node's Kafka broker id.
	Self() int32
	// Brokers lists the live nodes that have a Kafka listener.
	Brokers() []Broker
	// ClusterID names the cluster.
	ClusterID() string
	// Topics describes the named topics (all when names is nil), creating
	// missing ones when autoCreate is set and the node allows it.
	Topics(ctx context.Context, names []string, autoCreate bool) []TopicInfo
	// Produce appends one validated record batch through Raft and returns
	// its base offset once committed (a duplicate from an idempotent
	// producer returns the original offset).
	Produce(ctx context.Context, topic string, partition int32, batch []byte, timeout time.Duration) (int64, error)
	// Fetch reads whole batches from offset on the partition leader.
	Fetch(ctx context.Context, topic string, partition int32, offset int64, maxBytes int) (FetchResult, error)
	// ListOffset returns the first offset whose batch has a timestamp at
	// or after ts, or the log start (-2) or the high watermark (-1).
	ListOffset(ctx context.Context, topic string, partition int32, ts int64) (offset int64, leaderEpoch int32, err error)
	// InitProducerID allocates a producer id unique in the cluster.
	InitProducerID(ctx context.Context) (int64, error)
	CreateTopic(ctx context.Context, spec TopicSpec) error
	DeleteTopic(ctx context.Context, name string) error
	// Coordinator is the broker that coordinates group (the same for every
	// group and every node that agrees on the metadata leader).
	Coordinator(group string) (Broker, error)
	// CommitOffset stores a group's offset in the partition's Raft group.
	CommitOffset(ctx context.Context, group, topic string, partition int32, offset int64, metadata string) error
	// FetchOffset returns a group's committed offset, -1 when none.
	FetchOffset(ctx context.Context, group, topic string, partition int32) (int64, string, error)
	// GroupPartitions lists the partitions a group has committed offsets for.
	GroupPartitions(ctx context.Context, group string) map[string][]int32
}
