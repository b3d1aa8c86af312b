package kafka

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/group"
	"github.com/sluice-io/sluice/transport"
)

// stubCluster answers every call with a fixed, small world: one broker,
// topic "orders" with one partition and no data.
type stubCluster struct{}

func (stubCluster) Self() int32       { return 1 }
func (stubCluster) ClusterID() string { return "test" }
func (stubCluster) Brokers() []Broker { return []Broker{{ID: 1, Host: "127.0.0.1", Port: 9092}} }
func (stubCluster) Topics(_ context.Context, names []string, _ bool) []TopicInfo {
	var out []TopicInfo
	for _, n := range names {
		if n != "orders" {
			out = append(out, TopicInfo{Name: n, Err: transport.Errorf(transport.ErrUnknownTopic, "no")})
		}
	}
	return append(out, TopicInfo{Name: "orders", ReplicationFactor: 1, Partitions: []PartitionInfo{{ID: 0, Leader: 1, Replicas: []int32{1}, ISR: []int32{1}}}})
}
func (stubCluster) Produce(context.Context, string, int32, []byte, time.Duration) (int64, error) {
	return 0, nil
}
func (stubCluster) Fetch(_ context.Context, topic string, _ int32, offset int64, _ int) (FetchResult, error) {
	if topic != "orders" {
		return FetchResult{}, transport.Errorf(transport.ErrUnknownTopic, "no")
	}
	if offset != 0 {
		return FetchResult{}, transport.Errorf(transport.ErrOffsetOutOfRange, "no")
	}
	return FetchResult{}, nil
}
func (stubCluster) ListOffset(context.Context, string, int32, int64) (int64, int32, error) {
	return 0, 1, nil
}
func (stubCluster) InitProducerID(context.Context) (int64, error) { return 42, nil }
func (stubCluster) CreateTopic(context.Context, TopicSpec) error  { return nil }
func (stubCluster) DeleteTopic(context.Context, string) error     { return nil }
func (stubCluster) Coordinator(string) (Broker, error) {
	return Broker{ID: 1, Host: "127.0.0.1", Port: 9092}, nil
}
func (stubCluster) CommitOffset(context.Context, string, string, int32, int64, string) error {
	return nil
}
func (stubCluster) FetchOffset(context.Context, string, string, int32) (int64, string, error) {
	return -1, "", nil
}
func (stubCluster) GroupPartitions(context.Context, string) map[string][]int32 { return nil }

func newStubServer(t testing.TB) *Server {
	groups := group.New(group.Config{})
	t.Cleanup(groups.Close)
	s, err := Listen(Config{Addr: "127.0.0.1:0", Cluster: stubCluster{}, Groups: groups})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// FuzzDecodeRequest feeds arbitrary frames to the decoder and, for those
// that decode, to the handlers and the response encoder: nothing may
// panic, whatever the bytes.
func FuzzDecodeRequest(f *testing.F) {
	s := newStubServer(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		hdr, req, err := decodeRequest(frame)
		if err != nil {
			return
		}
		assert.Equal(t, hdr.Key, req.Key())
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if jr, ok := req.(*kmsg.JoinGroupRequest); ok {
			jr.SessionTimeoutMillis = min(jr.SessionTimeoutMillis, 2000) // keep waits short
			jr.RebalanceTimeoutMillis = min(jr.RebalanceTimeoutMillis, 10)
		}
		if fr, ok := req.(*kmsg.FetchRequest); ok {
			fr.MaxWaitMillis = min(fr.MaxWaitMillis, 10)
		}
		resp, err := s.handle(ctx, hdr, req)
		if err == nil && resp != nil {
			out := encodeResponse(hdr.Key, hdr.CorrelationID, resp)
			assert.Equal(t, len(out)-4, int(binary.BigEndian.Uint32(out)))
		}
	})
}

func TestApiVersionsAdvertiseOnlyHandledAPIs(t *testing.T) {
	s := newStubServer(t)
	for key, v := range apiVersions {
		for ver := v[0]; ver <= v[1]; ver++ {
			req := kmsg.RequestForKey(key)
			require.NotNil(t, req)
			require.LessOrEqual(t, ver, req.MaxVersion(), "key %d", key)
			req.SetVersion(ver)
			// Every advertised version round-trips through the decoder and
			// reaches a handler (not the "no handler" error).
			f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("t"))
			frame := f.AppendRequest(nil, req, 9)[4:]
			hdr, dec, err := decodeRequest(frame)
			require.NoError(t, err, "%s v%d", kmsg.NameForKey(key), ver)
			if jr, ok := dec.(*kmsg.JoinGroupRequest); ok {
				jr.SessionTimeoutMillis = 6000
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			_, err = s.handle(ctx, hdr, dec)
			cancel()
			require.NoError(t, err, "%s v%d", kmsg.NameForKey(key), ver)
		}
	}
	// librdkafka's feature checks need these minimums, kafka-python's
	// broker inference needs Metadata v4, and topic-id versions stay out.
	for _, key := range []int16{10, 11, 12, 13, 14, 22} {
		assert.Equal(t, int16(0), apiVersions[key][0], kmsg.NameForKey(key))
	}
	assert.GreaterOrEqual(t, apiVersions[3][1], int16(4))
	assert.Less(t, apiVersions[3][1], int16(10))
	assert.Less(t, apiVersions[0][1], int16(13))
	assert.Less(t, apiVersions[1][1], int16(13))
	for _, txn := range []int16{24, 25, 26, 28} {
		_, ok := apiVersions[txn]
		assert.False(t, ok, "transaction API %s advertised", kmsg.NameForKey(txn))
	}
}

func TestTransactionalProducerRefused(t *testing.T) {
	s := newStubServer(t)
	req := kmsg.NewPtrInitProducerIDRequest()
	id := "txn"
	req.TransactionalID = &id
	resp := s.initProducerID(context.Background(), req).(*kmsg.InitProducerIDResponse)
	assert.Equal(t, kerr.TransactionalIDAuthorizationFailed.Code, resp.ErrorCode)

	req = kmsg.NewPtrInitProducerIDRequest()
	resp = s.initProducerID(context.Background(), req).(*kmsg.InitProducerIDResponse)
	assert.Equal(t, int16(0), resp.ErrorCode)
	assert.Equal(t, int64(42), resp.ProducerID)
}

func TestErrorCodeMapping(t *testing.T) {
	cases := map[error]int16{
		transport.Errorf(transport.ErrNotLeader, "x"):                                 kerr.NotLeaderForPartition.Code,
		transport.Errorf(transport.ErrUnknownTopic, "x"):                              kerr.UnknownTopicOrPartition.Code,
		transport.Errorf(transport.ErrRecordTooLarge, "x"):                            kerr.MessageTooLarge.Code,
		transport.Errorf(transport.ErrCorruptBatch, "x"):                              kerr.CorruptMessage.Code,
		transport.Errorf(transport.ErrOffsetOutOfRange, "x"):                          kerr.OffsetOutOfRange.Code,
		transport.Errorf(transport.ErrInvalidRequest, "out of order sequence: p 1"):   kerr.OutOfOrderSequenceNumber.Code,
		transport.Errorf(transport.ErrInvalidRequest, "producer 1 epoch 0 is fenced"): kerr.InvalidProducerEpoch.Code,
		transport.Errorf(transport.ErrTimeout, "x"):                                   kerr.RequestTimedOut.Code,
		kerr.NotCoordinator: kerr.NotCoordinator.Code,
		nil:                 0,
	}
	for err, want := range cases {
		assert.Equal(t, want, errorCode(err), "%v", err)
	}
}
