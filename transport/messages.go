package transport

import (
	"errors"
	"fmt"
)

// Method names one client RPC. The numbers are part of the wire format:
// never renumber, only append.
type Method uint8

const (
	MethodMetadata     Method = 1 // MetadataRequest -> MetadataResponse
	MethodCreateTopic  Method = 2 // CreateTopicRequest -> Empty
	MethodDeleteTopic  Method = 3 // DeleteTopicRequest -> Empty
	MethodProduce      Method = 4 // ProduceRequest -> ProduceResponse
	MethodFetch        Method = 5 // FetchRequest -> FetchResponse
	MethodOffsetCommit Method = 6 // OffsetCommitRequest -> Empty
	MethodOffsetFetch  Method = 7 // OffsetFetchRequest -> OffsetFetchResponse
	MethodStatus       Method = 8 // Empty -> StatusResponse
	// MethodMetaApply is node-to-node: a metadata command forwarded to the
	// metadata (controller) leader.
	MethodMetaApply Method = 9 // MetaApplyRequest -> Empty
)

func (m Method) String() string {
	switch m {
	case MethodMetadata:
		return "metadata"
	case MethodCreateTopic:
		return "create_topic"
	case MethodDeleteTopic:
		return "delete_topic"
	case MethodProduce:
		return "produce"
	case MethodFetch:
		return "fetch"
	case MethodOffsetCommit:
		return "offset_commit"
	case MethodOffsetFetch:
		return "offset_fetch"
	case MethodStatus:
		return "status"
	case MethodMetaApply:
		return "meta_apply"
	}
	if s, ok := opsMethodName(m); ok {
		return s
	}
	return fmt.Sprintf("method(%d)", uint8(m))
}

// ErrorCode classifies a failed RPC so clients can decide whether to retry.
type ErrorCode uint16

const (
	ErrUnknown           ErrorCode = 1
	ErrNotLeader         ErrorCode = 2 // retriable: Error.Leader names the leader's RPC address if known
	ErrUnknownTopic      ErrorCode = 3
	ErrUnknownPartition  ErrorCode = 4
	ErrInvalidTopic      ErrorCode = 5
	ErrTopicExists       ErrorCode = 6
	ErrOffsetOutOfRange  ErrorCode = 7
	ErrRecordTooLarge    ErrorCode = 8
	ErrInvalidRequest    ErrorCode = 9
	ErrNotEnoughReplicas ErrorCode = 10
	ErrTimeout           ErrorCode = 11 // outcome unknown: the command may still commit
	ErrCorruptBatch      ErrorCode = 12
	ErrUnavailable       ErrorCode = 13 // retriable: no leader / no controller yet
	ErrShuttingDown      ErrorCode = 14 // retriable
	// ErrOutOfOrderSequence: an idempotent batch's sequence does not
	// continue what the partition knows of its producer (state evicted or
	// never seen, or a gap). Nothing was appended; the client restarts with
	// a fresh producer id. Numbered as Kafka's OUT_OF_ORDER_SEQUENCE_NUMBER.
	ErrOutOfOrderSequence ErrorCode = 45
)

var codeNames = map[ErrorCode]string{
	ErrUnknown:            "unknown error",
	ErrNotLeader:          "not leader",
	ErrUnknownTopic:       "unknown topic",
	ErrUnknownPartition:   "unknown partition",
	ErrInvalidTopic:       "invalid topic",
	ErrTopicExists:        "topic already exists",
	ErrOffsetOutOfRange:   "offset out of range",
	ErrRecordTooLarge:     "record too large",
	ErrInvalidRequest:     "invalid request",
	ErrNotEnoughReplicas:  "not enough replicas",
	ErrTimeout:            "timeout",
	ErrCorruptBatch:       "corrupt batch",
	ErrUnavailable:        "unavailable",
	ErrShuttingDown:       "shutting down",
	ErrOutOfOrderSequence: "out of order sequence",
}

func (c ErrorCode) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("error(%d)", uint16(c))
}

// Retriable reports whether the same request may succeed after a metadata
// refresh or a short wait.
func (c ErrorCode) Retriable() bool {
	switch c {
	case ErrNotLeader, ErrUnavailable, ErrShuttingDown:
		return true
	}
	return false
}

// Error is the error carried in an RPC reply.
type Error struct {
	Code    ErrorCode `msgpack:"code"`
	Message string    `msgpack:"msg"`
	// Leader is the RPC address of the current leader, set with ErrNotLeader
	// when the node knows it.
	Leader string `msgpack:"leader,omitempty"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code.String()
	}
	return e.Code.String() + ": " + e.Message
}

// Errorf builds an *Error with a formatted message.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of an *Error anywhere in err's chain, or 0.
func CodeOf(err error) ErrorCode {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// Empty is the body of requests and replies that carry nothing.
type Empty struct{}

// Broker is one node as clients see it.
type Broker struct {
	ID       string `msgpack:"id" json:"id"`
	RPCAddr  string `msgpack:"rpc" json:"rpc_addr"`
	HTTPAddr string `msgpack:"http" json:"http_addr"`
	// State is the gossip view of the answering node: alive, suspect, dead
	// or left; empty when unknown.
	State string `msgpack:"state" json:"state"`
}

type PartitionMeta struct {
	ID       int32    `msgpack:"id" json:"partition"`
	Leader   string   `msgpack:"leader" json:"leader"` // node id, "" when unknown
	Replicas []string `msgpack:"replicas" json:"replicas"`
	// HighWatermark is filled by `topic describe` from the leaders; -1 when unknown.
	HighWatermark int64 `msgpack:"hw" json:"high_watermark"`
	// MoveTarget and MovePhase describe a replica move in progress.
	MoveTarget []string `msgpack:"move_target,omitempty" json:"move_target,omitempty"`
	MovePhase  string   `msgpack:"move_phase,omitempty" json:"move_phase,omitempty"`
}

type TopicMeta struct {
	Name              string          `msgpack:"name" json:"name"`
	ReplicationFactor int             `msgpack:"rf" json:"replication_factor"`
	RetentionBytes    int64           `msgpack:"rbytes" json:"retention_bytes"`
	RetentionMs       int64           `msgpack:"rms" json:"retention_ms"`
	Partitions        []PartitionMeta `msgpack:"parts" json:"partitions"`
}

// MetadataRequest asks for topics (all when Topics is empty).
type MetadataRequest struct {
	Topics []string `msgpack:"topics"`
}

type MetadataResponse struct {
	Brokers        []Broker    `msgpack:"brokers"`
	Topics         []TopicMeta `msgpack:"topics"`
	MetadataLeader string      `msgpack:"meta_leader"` // node id
}

type CreateTopicRequest struct {
	Name              string `msgpack:"name"`
	Partitions        int    `msgpack:"partitions"`
	ReplicationFactor int    `msgpack:"rf"`
	RetentionBytes    int64  `msgpack:"rbytes"` // <= 0: unlimited
	RetentionMs       int64  `msgpack:"rms"`    // <= 0: unlimited
}

type DeleteTopicRequest struct {
	Name string `msgpack:"name"`
}

// ProduceRequest appends one Kafka record batch (v2, magic 2) to a partition.
// The batch's base offset is ignored; the partition assigns offsets.
type ProduceRequest struct {
	Topic     string `msgpack:"topic"`
	Partition int32  `msgpack:"partition"`
	Batch     []byte `msgpack:"batch"`
	TimeoutMs int64  `msgpack:"timeout_ms"`
}

type ProduceResponse struct {
	BaseOffset int64 `msgpack:"base"`
	LastOffset int64 `msgpack:"last"`
}

// Special fetch offsets, as in Kafka's ListOffsets.
const (
	OffsetLatest   int64 = -1
	OffsetEarliest int64 = -2
)

type FetchRequest struct {
	Topic      string `msgpack:"topic"`
	Partition  int32  `msgpack:"partition"`
	Offset     int64  `msgpack:"offset"`
	MaxBytes   int32  `msgpack:"max_bytes"`
	MaxRecords int32  `msgpack:"max_records"` // 0: no limit beyond MaxBytes
	MaxWaitMs  int64  `msgpack:"max_wait_ms"` // long-poll when no data at Offset
	// FromReplica lets a follower answer from its own committed log (used to
	// compare replicas); normally only the leader serves fetches.
	FromReplica bool `msgpack:"from_replica"`
	// Linearizable makes the leader confirm its leadership and apply every
	// committed entry before answering (a read-to-end that sees all acks).
	Linearizable bool `msgpack:"linearizable"`
}

type FetchResponse struct {
	HighWatermark  int64 `msgpack:"hw"`
	LogStartOffset int64 `msgpack:"start"`
	// Batches are stored Kafka record batches, untouched, in offset order.
	// The first may begin before the requested offset.
	Batches [][]byte `msgpack:"batches"`
}

type OffsetCommitRequest struct {
	Group     string `msgpack:"group"`
	Topic     string `msgpack:"topic"`
	Partition int32  `msgpack:"partition"`
	Offset    int64  `msgpack:"offset"` // the next offset to consume
	Metadata  string `msgpack:"metadata"`
}

type OffsetFetchRequest struct {
	Group     string `msgpack:"group"`
	Topic     string `msgpack:"topic"`
	Partition int32  `msgpack:"partition"`
}

type OffsetFetchResponse struct {
	Offset   int64  `msgpack:"offset"` // -1 when the group has committed nothing
	Metadata string `msgpack:"metadata"`
}

type PartitionStatus struct {
	Topic         string `msgpack:"topic" json:"topic"`
	Partition     int32  `msgpack:"partition" json:"partition"`
	Role          string `msgpack:"role" json:"role"` // leader, follower, candidate, shutdown
	Leader        string `msgpack:"leader" json:"leader"`
	Term          uint64 `msgpack:"term" json:"term"`
	CommitIndex   uint64 `msgpack:"commit" json:"commit_index"`
	AppliedIndex  uint64 `msgpack:"applied" json:"applied_index"`
	HighWatermark int64  `msgpack:"hw" json:"high_watermark"`
	StartOffset   int64  `msgpack:"start" json:"log_start_offset"`
	// Bytes is the size of the replica's retained log.
	Bytes int64 `msgpack:"bytes,omitempty" json:"bytes"`
}

type StatusResponse struct {
	Node           string            `msgpack:"node" json:"node"`
	Members        []Broker          `msgpack:"members" json:"members"`
	MetadataLeader string            `msgpack:"meta_leader" json:"metadata_leader"`
	Partitions     []PartitionStatus `msgpack:"partitions" json:"partitions"`
}

// MetaApplyRequest carries an encoded metadata command to the controller.
type MetaApplyRequest struct {
	Command []byte `msgpack:"cmd"`
}
