package kafka

import (
	"errors"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/transport"
)

const apiVersionsKey = 18

// apiVersions is every API and version range served, each correct at every
// version listed. Minimum 0 for the group APIs and InitProducerId
// (librdkafka's feature checks), Metadata v4 and Fetch up to 11 (so
// kafka-python infers a broker >= 0.11 and sends record batches v2),
// below the versions that switch to topic ids, and no transaction APIs.
var apiVersions = map[int16][2]int16{
	0:  {3, 7},  // Produce: record batches v2 only
	1:  {4, 11}, // Fetch
	2:  {0, 4},  // ListOffsets
	3:  {0, 9},  // Metadata (v10 adds topic ids)
	8:  {0, 7},  // OffsetCommit
	9:  {0, 7},  // OffsetFetch
	10: {0, 2},  // FindCoordinator
	11: {0, 5},  // JoinGroup
	12: {0, 3},  // Heartbeat
	13: {0, 1},  // LeaveGroup
	14: {0, 3},  // SyncGroup
	15: {0, 4},  // DescribeGroups
	16: {0, 3},  // ListGroups
	18: {0, 3},  // ApiVersions
	19: {0, 4},  // CreateTopics
	20: {0, 3},  // DeleteTopics
	22: {0, 4},  // InitProducerId
	32: {0, 2},  // DescribeConfigs
}

func supportedVersions(key int16) (lo, hi int16, ok bool) {
	v, ok := apiVersions[key]
	return v[0], v[1], ok
}

func apiKeys() []kmsg.ApiVersionsResponseApiKey {
	keys := make([]kmsg.ApiVersionsResponseApiKey, 0, len(apiVersions))
	for k, v := range apiVersions {
		keys = append(keys, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: v[0], MaxVersion: v[1]})
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].ApiKey < keys[j].ApiKey })
	return keys
}

func (s *Server) apiVersions(req *kmsg.ApiVersionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	resp.ApiKeys = apiKeys()
	return resp
}

// unsupportedApiVersions answers an ApiVersions request above our range at
// v0 with UNSUPPORTED_VERSION and our ranges; clients retry with a version
// we list.
func unsupportedApiVersions() kmsg.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	resp.ApiKeys = apiKeys()
	return resp
}

// errorCode maps a node or coordinator error to a Kafka error code.
func errorCode(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	if errors.Is(err, errUnknownTopicOrPartition) {
		return kerr.UnknownTopicOrPartition.Code
	}
	var te *transport.Error
	if !errors.As(err, &te) {
		return kerr.UnknownServerError.Code
	}
	switch te.Code {
	case transport.ErrNotLeader, transport.ErrShuttingDown:
		return kerr.NotLeaderForPartition.Code
	case transport.ErrUnavailable:
		return kerr.LeaderNotAvailable.Code
	case transport.ErrUnknownTopic, transport.ErrUnknownPartition:
		return kerr.UnknownTopicOrPartition.Code
	case transport.ErrInvalidTopic:
		return kerr.InvalidTopicException.Code
	case transport.ErrTopicExists:
		return kerr.TopicAlreadyExists.Code
	case transport.ErrOffsetOutOfRange:
		return kerr.OffsetOutOfRange.Code
	case transport.ErrRecordTooLarge:
		return kerr.MessageTooLarge.Code
	case transport.ErrNotEnoughReplicas:
		return kerr.NotEnoughReplicas.Code
	case transport.ErrTimeout:
		return kerr.RequestTimedOut.Code
	case transport.ErrCorruptBatch:
		return kerr.CorruptMessage.Code
	case transport.ErrInvalidRequest:
		// The partition FSM's idempotence checks (the same state the
		// native path uses) report these as invalid requests.
		switch {
		case strings.Contains(te.Message, "out of order sequence"):
			return kerr.OutOfOrderSequenceNumber.Code
		case strings.Contains(te.Message, "is fenced"):
			return kerr.InvalidProducerEpoch.Code
		case strings.Contains(te.Message, "replication factor"), strings.Contains(te.Message, "partitions must be"):
			return kerr.InvalidReplicationFactor.Code
		}
		return kerr.InvalidRequest.Code
	}
	return kerr.UnknownServerError.Code
}

var errUnknownTopicOrPartition = errors.New("unknown topic or partition")

func errMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}
