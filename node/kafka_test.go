package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/client"
)

func newKafkaTestCluster(t *testing.T, size int) *testCluster {
	t.Helper()
	return newTestCluster(t, size, func(c *Config) {
		c.KafkaAddr = "127.0.0.1:0"
	})
}

func (c *testCluster) kafkaAddrs() []string {
	var out []string
	for _, n := range c.nodes {
		if n != nil {
			out = append(out, n.KafkaAddr())
		}
	}
	return out
}

func (c *testCluster) kgo(opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(c.kafkaAddrs()...), kgo.RetryTimeout(30 * time.Second)}, opts...)
	cl, err := kgo.NewClient(opts...)
	require.NoError(c.t, err)
	c.t.Cleanup(cl.Close)
	return cl
}

// consumeN polls until n records arrived (or fails the test).
func consumeN(t *testing.T, cl *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "got %d of %d records", len(out), n)
		fs.EachError(func(topic string, p int32, err error) {
			t.Logf("fetch error %s/%d: %v", topic, p, err)
		})
		out = append(out, fs.Records()...)
	}
	return out
}

func TestKafkaInteropBothWays(t *testing.T) {
	skipShort(t)
	c := newKafkaTestCluster(t, 3)
	native := c.client()
	c.createTopic(native, "interop", 2, 3)
	ts := time.UnixMilli(time.Now().UnixMilli()).Add(-time.Hour)

	// Kafka client (idempotent by default) -> native client.
	// kgo compresses (snappy) by default; the native client decompresses.
	kc := c.kgo(kgo.DefaultProduceTopic("interop"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx := context.Background()
	var sent []*kgo.Record
	for i := range 20 {
		sent = append(sent, &kgo.Record{
			Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("v%d", i)), Partition: 1, Timestamp: ts.Add(time.Duration(i) * time.Millisecond),
			Headers: []kgo.RecordHeader{{Key: "h1", Value: []byte("x")}, {Key: "h2", Value: []byte{0, 1, 2}}},
		})
	}
	require.NoError(t, kc.ProduceSync(ctx, sent...).FirstErr())
	got := readAll(t, native, "", "interop", 1)
	require.Len(t, got, len(sent))
	for i, r := range got {
		assert.Equal(t, int64(i), r.Offset)
		assert.Equal(t, sent[i].Key, r.Key)
		assert.Equal(t, sent[i].Value, r.Value)
		assert.True(t, sent[i].Timestamp.Equal(r.Timestamp), "timestamp %v != %v", sent[i].Timestamp, r.Timestamp)
		require.Len(t, r.Headers, 2)
		assert.Equal(t, client.Header{Key: "h1", Value: []byte("x")}, r.Headers[0])
		assert.Equal(t, client.Header{Key: "h2", Value: []byte{0, 1, 2}}, r.Headers[1])
	}

	// Native client -> Kafka client.
	p, err := native.NewProducer(client.ProducerConfig{Topic: "interop"})
	require.NoError(t, err)
	errs := make(chan error, 10)
	for i := range 10 {
		p.SendTo(ctx, 0, client.Record{Key: []byte(fmt.Sprintf("n%d", i)), Value: []byte("native"), Timestamp: ts, Headers: []client.Header{{Key: "src", Value: []byte("sluice")}}},
			func(_ client.Record, err error) { errs <- err })
	}
	for range 10 {
		require.NoError(t, <-errs)
	}
	require.NoError(t, p.Close())
	consumer := c.kgo(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"interop": {0: kgo.NewOffset().AtStart()}}))
	recs := consumeN(t, consumer, 10)
	for i, r := range recs {
		assert.Equal(t, fmt.Sprintf("n%d", i), string(r.Key))
		assert.Equal(t, "native", string(r.Value))
		assert.True(t, ts.Equal(r.Timestamp))
		assert.Equal(t, []kgo.RecordHeader{{Key: "src", Value: []byte("sluice")}}, r.Headers)
		assert.Equal(t, int64(i), r.Offset)
	}
}

// rawConn speaks framed bytes to a Kafka listener.
type rawConn struct {
	t *testing.T
	c net.Conn
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
	return &rawConn{t: t, c: c}
}

func (r *rawConn) send(b []byte) {
	_, err := r.c.Write(b)
	require.NoError(r.t, err)
}

func (r *rawConn) request(req kmsg.Request, corr int32) {
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw-test"))
	r.send(f.AppendRequest(nil, req, corr))
}

// response reads one response frame and checks its correlation id.
func (r *rawConn) response(corr int32) []byte {
	r.t.Helper()
	var size [4]byte
	_, err := io.ReadFull(r.c, size[:])
	require.NoError(r.t, err)
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err = io.ReadFull(r.c, body)
	require.NoError(r.t, err)
	require.Equal(r.t, corr, int32(binary.BigEndian.Uint32(body)))
	return body[4:]
}

// closed reports whether the server closed the connection.
func (r *rawConn) closed() bool {
	var b [1]byte
	_, err := r.c.Read(b[:])
	return err == io.EOF
}

func frame(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func header(key, version int16, corr int32) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	return binary.BigEndian.AppendUint16(b, 0xffff) // null client id
}

func TestKafkaBadInput(t *testing.T) {
	skipShort(t)
	c := newKafkaTestCluster(t, 1)
	native := c.client()
	c.createTopic(native, "bad", 1, 1)
	addr := c.nodes[0].KafkaAddr()

	t.Run("truncated frame", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.send(append(binary.BigEndian.AppendUint32(nil, 100), header(3, 1, 1)...))
		r.c.(*net.TCPConn).CloseWrite()
		assert.True(t, r.closed())
	})
	t.Run("truncated header", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.send(frame([]byte{0, 3, 0}))
		assert.True(t, r.closed())
	})
	t.Run("unknown api key", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.send(frame(header(999, 0, 1)))
		assert.True(t, r.closed())
	})
	t.Run("transaction api not offered", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.send(frame(append(header(24, 0, 1), make([]byte, 32)...))) // AddPartitionsToTxn
		assert.True(t, r.closed())
	})
	t.Run("version out of range", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.send(frame(header(0, 2, 1))) // Produce v2: message sets v0/v1
		assert.True(t, r.closed())
	})
	t.Run("api versions too new answers v0", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.send(frame(header(18, 99, 7)))
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.Version = 0
		require.NoError(t, resp.ReadFrom(r.response(7)))
		assert.Equal(t, kerr.UnsupportedVersion.Code, resp.ErrorCode)
		assert.NotEmpty(t, resp.ApiKeys)
	})
	t.Run("oversized frame", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.send(binary.BigEndian.AppendUint32(nil, 1<<30))
		assert.True(t, r.closed())
	})
	t.Run("malformed body", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.send(frame(append(header(3, 1, 1), 0x7f, 0xff, 0xff, 0xff))) // 2^31-1 topics
		assert.True(t, r.closed())
	})
	t.Run("corrupt crc and pipelining", func(t *testing.T) {
		r := dialRaw(t, addr)
		good := encodeTestBatch([]string{"a", "b"})
		bad := encodeTestBatch([]string{"c"})
		bad[len(bad)-1] ^= 0xff
		produce := func(batch []byte) *kmsg.ProduceRequest {
			req := kmsg.NewPtrProduceRequest()
			req.Version, req.Acks, req.TimeoutMillis = 7, -1, 5000
			req.Topics = []kmsg.ProduceRequestTopic{{Topic: "bad", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: batch}}}}
			return req
		}
		// Three pipelined requests are answered in order.
		r.request(produce(good), 1)
		r.request(produce(bad), 2)
		r.request(produce(good), 3)
		codes := map[int32]int16{}
		offsets := map[int32]int64{}
		for corr := int32(1); corr <= 3; corr++ {
			resp := kmsg.NewPtrProduceResponse()
			resp.Version = 7
			require.NoError(t, resp.ReadFrom(r.response(corr)))
			codes[corr] = resp.Topics[0].Partitions[0].ErrorCode
			offsets[corr] = resp.Topics[0].Partitions[0].BaseOffset
		}
		assert.Equal(t, map[int32]int16{1: 0, 2: kerr.CorruptMessage.Code, 3: 0}, codes)
		assert.Equal(t, int64(0), offsets[1])
		assert.Equal(t, int64(2), offsets[3])
	})
	t.Run("unknown topic without auto-create of bad names", func(t *testing.T) {
		r := dialRaw(t, addr)
		req := kmsg.NewPtrMetadataRequest()
		req.Version = 4
		name := "no such/topic"
		req.Topics = []kmsg.MetadataRequestTopic{{Topic: &name}}
		req.AllowAutoTopicCreation = true
		r.request(req, 1)
		resp := kmsg.NewPtrMetadataResponse()
		resp.Version = 4
		require.NoError(t, resp.ReadFrom(r.response(1)))
		require.Len(t, resp.Topics, 1)
		assert.NotZero(t, resp.Topics[0].ErrorCode)
	})

	// The node still serves a well-behaved client.
	kc := c.kgo(kgo.DefaultProduceTopic("bad"))
	require.NoError(t, kc.ProduceSync(context.Background(), &kgo.Record{Value: []byte("after")}).FirstErr())
	assert.Len(t, readAll(t, native, "", "bad", 0), 5)
}

// encodeTestBatch builds an uncompressed record batch v2 with kmsg.
func encodeTestBatch(values []string) []byte {
	var recs []byte
	for i, v := range values {
		r := kmsg.Record{OffsetDelta: int32(i), Value: []byte(v)}
		body := r.AppendTo(nil)
		// AppendTo wrote a zero length; prefix the real one.
		recs = binary.AppendVarint(recs, int64(len(body)-1))
		recs = append(recs, body[1:]...)
	}
	rb := kmsg.RecordBatch{
		Magic: 2, LastOffsetDelta: int32(len(values) - 1), FirstTimestamp: time.Now().UnixMilli(), MaxTimestamp: time.Now().UnixMilli(),
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(values)), Records: recs,
	}
	rb.Length = int32(49 + len(recs))
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func TestKafkaCompressedBatchesStoredAsSent(t *testing.T) {
	skipShort(t)
	c := newKafkaTestCluster(t, 1)
	c.createTopic(c.client(), "zip", 1, 1)
	codecs := map[string]kgo.CompressionCodec{"gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()}
	names := []string{"gzip", "snappy", "lz4", "zstd"}
	for _, name := range names {
		kc := c.kgo(kgo.DefaultProduceTopic("zip"), kgo.ProducerBatchCompression(codecs[name]))
		var recs []*kgo.Record
		for i := range 50 {
			recs = append(recs, &kgo.Record{Key: []byte(name), Value: []byte(fmt.Sprintf("%s-%d-%s", name, i, "padding padding padding padding"))})
		}
		require.NoError(t, kc.ProduceSync(context.Background(), recs...).FirstErr(), name)
	}
	// Stored compressed: the attributes of every stored batch name a codec.
	r := c.nodes[0].replica("zip", 0)
	batches, err := r.fsm.Read(0, 1<<20, 0)
	require.NoError(t, err)
	require.NotEmpty(t, batches)
	for _, b := range batches {
		assert.NotZero(t, binary.BigEndian.Uint16(b[21:])&7, "batch stored uncompressed")
	}
	consumer := c.kgo(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"zip": {0: kgo.NewOffset().AtStart()}}))
	got := consumeN(t, consumer, 200)
	for i, rec := range got {
		name := names[i/50]
		assert.Equal(t, fmt.Sprintf("%s-%d-%s", name, i%50, "padding padding padding padding"), string(rec.Value))
		assert.Equal(t, int64(i), rec.Offset)
	}
}

func TestKafkaConsumerGroupSharesAndSurvivesCoordinatorLoss(t *testing.T) {
	skipShort(t)
	c := newKafkaTestCluster(t, 3)
	native := c.client()
	c.createTopic(native, "grp", 4, 3)
	producer := c.kgo(kgo.DefaultProduceTopic("grp"))
	produce := func(from, n int) {
		var recs []*kgo.Record
		for i := from; i < from+n; i++ {
			recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))})
		}
		require.NoError(t, producer.ProduceSync(context.Background(), recs...).FirstErr())
	}
	produce(0, 200)

	var mu sync.Mutex
	owner := map[int32]string{} // partition -> consumer holding it
	seen := map[string]int{}
	var overlap []string
	assigns := 0 // OnPartitionsAssigned calls: one per member per rebalance
	member := func(name string) *kgo.Client {
		release := func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			mu.Lock()
			defer mu.Unlock()
			for _, p := range m["grp"] {
				if owner[p] == name {
					delete(owner, p)
				}
			}
		}
		return c.kgo(
			kgo.ConsumerGroup("billing"), kgo.ConsumeTopics("grp"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(300*time.Millisecond),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				assigns++
				for _, p := range m["grp"] {
					if o, ok := owner[p]; ok && o != name {
						overlap = append(overlap, fmt.Sprintf("partition %d given to %s while %s holds it", p, name, o))
					}
					owner[p] = name
				}
			}),
			kgo.OnPartitionsRevoked(release),
			kgo.OnPartitionsLost(release),
		)
	}
	poll := func(cl *kgo.Client, stop <-chan struct{}, wg *sync.WaitGroup) {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			fs := cl.PollFetches(ctx)
			cancel()
			mu.Lock()
			for _, r := range fs.Records() {
				seen[string(r.Value)]++
			}
			mu.Unlock()
		}
	}
	a, b := member("a"), member("b")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go poll(a, stop, &wg)
	go poll(b, stop, &wg)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		// Shared out: both members own partitions, every record consumed.
		owners := map[string]bool{}
		for _, o := range owner {
			owners[o] = true
		}
		return len(seen) == 200 && len(owners) == 2 && len(owner) == 4
	}, 60*time.Second, 50*time.Millisecond, "group did not share the partitions and consume everything")

	// Lose the coordinator (the metadata leader).
	coord := -1
	for i, n := range c.nodes {
		if n != nil && n.isMetaLeader() {
			coord = i
		}
	}
	require.GreaterOrEqual(t, coord, 0)
	require.NoError(t, a.CommitUncommittedOffsets(context.Background()))
	require.NoError(t, b.CommitUncommittedOffsets(context.Background()))
	before, err := native.DescribeGroup(context.Background(), "billing")
	require.NoError(t, err)
	mu.Lock()
	assignsBefore := assigns
	mu.Unlock()
	c.stop(coord)
	produce(200, 100)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 300
	}, 60*time.Second, 50*time.Millisecond, "records after the coordinator loss were not consumed")
	require.NoError(t, a.CommitUncommittedOffsets(context.Background()))
	require.NoError(t, b.CommitUncommittedOffsets(context.Background()))
	// The new coordinator continued the stored generation: no rebalance.
	after, err := native.DescribeGroup(context.Background(), "billing")
	require.NoError(t, err)
	assert.Equal(t, before.Generation, after.Generation, "the group rebalanced after the coordinator failover")
	assert.Len(t, after.Members, 2)
	close(stop)
	wg.Wait()
	mu.Lock()
	assert.Empty(t, overlap)
	assert.Equal(t, assignsBefore, assigns, "members were given partitions again after the coordinator failover")
	mu.Unlock()

	// The committed offsets survive: every partition is committed at its end.
	ctx := context.Background()
	total := int64(0)
	for p := range int32(4) {
		off, err := native.FetchOffset(ctx, "billing", "grp", p)
		require.NoError(t, err)
		total += off
	}
	assert.Equal(t, int64(300), total)
}
