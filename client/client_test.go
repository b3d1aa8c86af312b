package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/transport"
)

func newTestClient(t *testing.T, servers ...string) *Client {
	t.Helper()
	c, err := New(Config{
		Servers:          servers,
		DialTimeout:      time.Second,
		RequestTimeout:   300 * time.Millisecond,
		UnknownTopicWait: -1,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func values(prefix string, n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{Value: fmt.Appendf(nil, "%s%d", prefix, i)}
	}
	return recs
}

func strs(prefix string, from, n int) []string {
	out := make([]string, 0, n)
	for i := from; i < from+n; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

func TestMurmur2KafkaVectors(t *testing.T) {
	// Apache Kafka's UtilsTest.testMurmur2 and values of Utils.murmur2.
	cases := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc":   479470107,
		"1":     -1993445489,
		"12":    126087238,
		"123":   -267702483,
		"1234":  -1614185708,
		"12345": -1188365604,
	}
	for in, want := range cases {
		assert.Equal(t, want, murmur2([]byte(in)), "murmur2(%q)", in)
	}
	// toPositive(h) % n, as Kafka's default partitioner.
	assert.Equal(t, int32((-973932308&0x7fffffff)%7), KeyPartition([]byte("21"), 7))
	assert.Equal(t, int32(479470107%3), KeyPartition([]byte("abc"), 3))
	assert.Equal(t, int32((-58897971&0x7fffffff)%10), KeyPartition([]byte("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), 10))
}

func TestErrorClassification(t *testing.T) {
	noReply := fmt.Errorf("produce: %w: %w", transport.ErrNoReply, context.DeadlineExceeded)
	notSent := fmt.Errorf("dial: %w", transport.ErrNotSent)
	assert.True(t, IsUnknownOutcome(noReply))
	assert.True(t, IsRetriable(noReply))
	assert.False(t, IsUnknownOutcome(notSent))
	assert.True(t, IsRetriable(notSent))
	assert.True(t, IsUnknownOutcome(transport.Errorf(transport.ErrTimeout, "commit")))
	assert.True(t, IsRetriable(&transport.Error{Code: transport.ErrNotLeader}))
	assert.False(t, IsUnknownOutcome(&transport.Error{Code: transport.ErrNotLeader}))
	assert.False(t, IsRetriable(&transport.Error{Code: transport.ErrRecordTooLarge}))
	assert.False(t, IsRetriable(context.Canceled))
	assert.False(t, IsUnknownOutcome(nil))
}

func TestProduceFollowsLeaderChanges(t *testing.T) {
	fc := newFakeCluster(t, 2)
	fc.createTopic("t", 1, 1) // n2 leads; the client only knows n1
	c := newTestClient(t, fc.addr(0))
	ctx := testCtx(t)

	base, err := c.ProduceBatch(ctx, "t", 0, values("a", 3))
	require.NoError(t, err)
	assert.Equal(t, int64(0), base)

	// Leadership moves back to n1: the cached leader answers NotLeader
	// with a hint.
	fc.setLeader("t", 0)
	base, err = c.ProduceBatch(ctx, "t", 0, values("b", 2))
	require.NoError(t, err)
	assert.Equal(t, int64(3), base)

	// Without hints the client must refresh metadata.
	fc.mu.Lock()
	fc.hint = false
	fc.mu.Unlock()
	fc.setLeader("t", 1)
	base, err = c.ProduceBatch(ctx, "t", 0, values("c", 1))
	require.NoError(t, err)
	assert.Equal(t, int64(5), base)

	assert.Equal(t, append(append(strs("a", 0, 3), strs("b", 0, 2)...), "c0"), fc.records("t", 0))
	var nodes []string
	for _, p := range fc.producesSeen() {
		if !p.dup {
			nodes = append(nodes, p.node)
		}
	}
	assert.Equal(t, []string{"n2", "n1", "n2"}, nodes[len(nodes)-3:])

	id, addr, err := c.LeaderAddr(ctx, "t", 0)
	require.NoError(t, err)
	assert.Equal(t, "n2", id)
	assert.Equal(t, fc.addr(1), addr)
}

func TestProduceLeaderNodeDies(t *testing.T) {
	fc := newFakeCluster(t, 2)
	fc.createTopic("t", 1, 0)
	c := newTestClient(t, fc.addr(0), fc.addr(1))
	ctx := testCtx(t)

	_, err := c.ProduceBatch(ctx, "t", 0, values("a", 2))
	require.NoError(t, err)
	// n1 dies; metadata (from n2) names n2 after a moment.
	fc.stop(0)
	go func() {
		time.Sleep(50 * time.Millisecond)
		fc.setLeader("t", 1)
	}()
	fc.mu.Lock()
	fc.hint = false
	fc.mu.Unlock()
	base, err := c.ProduceBatch(ctx, "t", 0, values("b", 2))
	require.NoError(t, err)
	assert.Equal(t, int64(2), base)
	assert.Equal(t, append(strs("a", 0, 2), strs("b", 0, 2)...), fc.records("t", 0))
}

func TestProduceLostReplyRetriedWithSameSequence(t *testing.T) {
	fc := newFakeCluster(t, 2)
	fc.createTopic("t", 1, 0)
	c := newTestClient(t, fc.addr(0))
	ctx := testCtx(t)

	// The first two produce replies arrive after the attempt timeout: the
	// client resends the same batch, which the fake deduplicates.
	fc.slow(2, time.Second)
	base, err := c.ProduceBatch(ctx, "t", 0, values("a", 4))
	require.NoError(t, err)
	assert.Equal(t, int64(0), base)
	base, err = c.ProduceBatch(ctx, "t", 0, values("b", 3))
	require.NoError(t, err)
	assert.Equal(t, int64(4), base)

	assert.Equal(t, append(strs("a", 0, 4), strs("b", 0, 3)...), fc.records("t", 0))
	seen := fc.producesSeen()
	require.GreaterOrEqual(t, len(seen), 3)
	assert.False(t, seen[0].dup)
	assert.True(t, seen[1].dup, "the retry must be recognised as a duplicate")
	assert.Equal(t, seen[0].producerID, seen[1].producerID)
	assert.Equal(t, seen[0].seq, seen[1].seq)
	last := seen[len(seen)-1]
	assert.Equal(t, seen[0].producerID, last.producerID, "the stream goes on after a retried batch")
	assert.Equal(t, int32(4), last.seq)
}

// A server that evicted the producer's state answers the next batch with
// ErrOutOfOrderSequence; the client starts a fresh producer id by itself.
func TestProduceAfterProducerStateEvicted(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.createTopic("t", 1, 0)
	c := newTestClient(t, fc.addr(0))
	ctx := testCtx(t)
	_, err := c.ProduceBatch(ctx, "t", 0, values("a", 2))
	require.NoError(t, err)
	fc.forgetProducers("t", 0)
	base, err := c.ProduceBatch(ctx, "t", 0, values("b", 2))
	require.NoError(t, err)
	assert.Equal(t, int64(2), base)
	assert.Equal(t, append(strs("a", 0, 2), strs("b", 0, 2)...), fc.records("t", 0))
	seen := fc.producesSeen()
	require.Len(t, seen, 3)
	assert.Equal(t, int32(2), seen[1].seq, "the old stream went on first")
	assert.NotEqual(t, seen[0].producerID, seen[2].producerID, "then a fresh producer id")
	assert.Equal(t, int32(0), seen[2].seq)
}

func TestProduceUnknownOutcomeStartsFreshStream(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.createTopic("t", 1, 0)
	c := newTestClient(t, fc.addr(0))

	// Every reply is lost until the caller gives up: the batch was in fact
	// applied, but the client cannot know.
	fc.slow(100, time.Second)
	short, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	_, err := c.ProduceBatch(short, "t", 0, values("a", 2))
	require.Error(t, err)
	assert.True(t, IsUnknownOutcome(err), "err: %v", err)
	assert.False(t, IsRetriable(err))
	fc.slow(0, 0)

	// Had the client kept the stream (and its old sequence), the fake
	// would have taken this batch for a duplicate and dropped it.
	base, err := c.ProduceBatch(testCtx(t), "t", 0, values("b", 2))
	require.NoError(t, err)
	assert.Equal(t, int64(2), base)
	assert.Equal(t, append(strs("a", 0, 2), strs("b", 0, 2)...), fc.records("t", 0))
}

func TestProduceNonRetriableErrors(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.createTopic("t", 1, 0)
	c := newTestClient(t, fc.addr(0))
	ctx := testCtx(t)

	_, err := c.ProduceBatch(ctx, "nope", 0, values("a", 1))
	require.Error(t, err)
	assert.Equal(t, transport.ErrUnknownTopic, transport.CodeOf(err))
	assert.False(t, IsUnknownOutcome(err))

	_, err = c.ProduceBatch(ctx, "t", 5, values("a", 1))
	assert.Equal(t, transport.ErrUnknownPartition, transport.CodeOf(err))

	p, err := c.NewProducer(ProducerConfig{Topic: "nope"})
	require.NoError(t, err)
	_, err = p.SendSync(ctx, Record{Value: []byte("x")})
	assert.Equal(t, transport.ErrUnknownTopic, transport.CodeOf(err))
	assert.False(t, IsUnknownOutcome(err))
	require.NoError(t, p.Close())
}

func TestProducerRecordTooLargeRejectedLocally(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.createTopic("t", 1, 0)
	c := newTestClient(t, fc.addr(0))
	ctx := testCtx(t)
	p, err := c.NewProducer(ProducerConfig{Topic: "t", MaxRecordBytes: 200})
	require.NoError(t, err)
	defer p.Close()

	_, err = p.SendSync(ctx, Record{Value: make([]byte, 200)})
	require.Error(t, err)
	assert.Equal(t, transport.ErrRecordTooLarge, transport.CodeOf(err))
	assert.False(t, IsUnknownOutcome(err))
	r, err := p.SendSync(ctx, Record{Value: make([]byte, 50)})
	require.NoError(t, err)
	assert.Equal(t, int64(0), r.Offset)
	assert.Len(t, fc.producesSeen(), 1, "the big record must never be sent")

	// By default the limit is the server's batch limit, header included: a
	// record that fits 1 MiB only without the batch header is refused here
	// rather than by the server.
	d, err := c.NewProducer(ProducerConfig{Topic: "t"})
	require.NoError(t, err)
	defer d.Close()
	_, err = d.SendSync(ctx, Record{Value: make([]byte, 1<<20-30)})
	assert.Equal(t, transport.ErrRecordTooLarge, transport.CodeOf(err), "%v", err)
	assert.Len(t, fc.producesSeen(), 1)
}

func TestProducerBatchesByLingerAndSize(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.createTopic("t", 1, 0)
	c := newTestClient(t, fc.addr(0))
	ctx := testCtx(t)

	// A long linger gathers everything sent meanwhile into one batch.
	p, err := c.NewProducer(ProducerConfig{Topic: "t", Linger: 200 * time.Millisecond})
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var offsets []int64
	for _, r := range values("a", 5) {
		wg.Add(1)
		p.Send(ctx, r, func(r Record, err error) {
			defer wg.Done()
			assert.NoError(t, err)
			mu.Lock()
			offsets = append(offsets, r.Offset)
			mu.Unlock()
		})
	}
	wg.Wait()
	assert.Equal(t, []int64{0, 1, 2, 3, 4}, offsets, "callbacks in order with offsets")
	seen := fc.producesSeen()
	require.Len(t, seen, 1)
	assert.Equal(t, 5, seen[0].records)
	require.NoError(t, p.Close())

	// Record and byte limits cut batches; Flush sends without lingering.
	p, err = c.NewProducer(ProducerConfig{Topic: "t", Linger: time.Hour, BatchRecords: 3})
	require.NoError(t, err)
	for _, r := range values("b", 7) {
		p.Send(ctx, r, nil)
	}
	require.NoError(t, p.Flush(ctx))
	var sizes []int
	for _, s := range fc.producesSeen()[1:] {
		sizes = append(sizes, s.records)
	}
	assert.Equal(t, []int{3, 3, 1}, sizes)
	require.NoError(t, p.Close())

	before := len(fc.producesSeen())
	rs := recordSize(&Record{Value: make([]byte, 30)})
	p, err = c.NewProducer(ProducerConfig{Topic: "t", Linger: time.Hour, BatchBytes: batchOverhead + 3*rs + rs/2})
	require.NoError(t, err)
	for range 6 {
		p.Send(ctx, Record{Value: make([]byte, 30)}, nil)
	}
	require.NoError(t, p.Close()) // Close flushes
	sizes = nil
	for _, s := range fc.producesSeen()[before:] {
		sizes = append(sizes, s.records)
	}
	assert.Equal(t, []int{3, 3}, sizes)
	assert.Len(t, fc.records("t", 0), 5+7+6)

	p.Send(ctx, Record{Value: []byte("late")}, func(_ Record, err error) { assert.ErrorIs(t, err, ErrClosed) })
}

func TestProducerPartitioning(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.createTopic("t", 4, 0)
	c := newTestClient(t, fc.addr(0))
	ctx := testCtx(t)
	p, err := c.NewProducer(ProducerConfig{Topic: "t", Linger: time.Hour})
	require.NoError(t, err)
	defer p.Close()

	var wg sync.WaitGroup
	for _, k := range []string{"21", "foobar", "abc", "a-little-bit-long-string"} {
		wg.Add(1)
		p.Send(ctx, Record{Key: []byte(k), Value: []byte(k)}, func(r Record, err error) {
			defer wg.Done()
			assert.NoError(t, err)
			assert.Equal(t, KeyPartition([]byte(k), 4), r.Partition, "key %q", k)
		})
	}
	require.NoError(t, p.Flush(ctx))
	wg.Wait()

	// Keyless records stick to one partition per batch, then move on.
	parts := map[int32]int{}
	for round := range 3 {
		for range 5 {
			wg.Add(1)
			p.Send(ctx, Record{Value: []byte("x")}, func(r Record, err error) {
				defer wg.Done()
				assert.NoError(t, err)
				parts[r.Partition]++ // callbacks of one partition run in sequence
			})
		}
		require.NoError(t, p.Flush(ctx))
		wg.Wait()
		assert.Len(t, parts, round+1, "one new partition per batch")
	}

	r, err := (func() (Record, error) {
		pm, err := c.NewProducer(ProducerConfig{Topic: "t", ManualPartition: true, Linger: -1})
		require.NoError(t, err)
		defer pm.Close()
		return pm.SendSync(ctx, Record{Key: []byte("abc"), Value: []byte("m"), Partition: 3})
	})()
	require.NoError(t, err)
	assert.Equal(t, int32(3), r.Partition)
}

// TestProducerOrderAcrossFailovers sends keyed records while leadership
// flips between the nodes and replies get lost: every record must be
// acknowledged, stored exactly once, in send order per partition.
func TestProducerOrderAcrossFailovers(t *testing.T) {
	fc := newFakeCluster(t, 2)
	fc.createTopic("t", 3, 0)
	c := newTestClient(t, fc.addr(0), fc.addr(1))
	ctx := testCtx(t)
	p, err := c.NewProducer(ProducerConfig{Topic: "t", Linger: time.Millisecond, BatchRecords: 20})
	require.NoError(t, err)

	stop := make(chan struct{})
	flipped := make(chan struct{})
	go func() {
		defer close(flipped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(15 * time.Millisecond):
			}
			fc.setLeader("t", i%2)
			// Lose a reply now and then, less often than an attempt
			// times out, so that the producer can make progress.
			if i%30 == 0 {
				fc.slow(1, 400*time.Millisecond)
			}
		}
	}()

	const n = 600
	want := map[int32][]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	acked := map[int32][]int64{}
	for i := range n {
		key := []byte(fmt.Sprint(i % 17))
		val := fmt.Sprintf("v%d", i)
		part := KeyPartition(key, 3)
		want[part] = append(want[part], val)
		wg.Add(1)
		p.Send(ctx, Record{Key: key, Value: []byte(val)}, func(r Record, err error) {
			defer wg.Done()
			assert.NoError(t, err)
			mu.Lock()
			acked[r.Partition] = append(acked[r.Partition], r.Offset)
			mu.Unlock()
		})
		if i%50 == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	require.NoError(t, p.Close())
	wg.Wait()
	close(stop)
	<-flipped
	for part := range int32(3) {
		assert.Equal(t, want[part], fc.records("t", part), "partition %d", part)
		for i, off := range acked[part] {
			assert.Equal(t, int64(i), off, "acks in offset order")
		}
	}
}

func TestSendSyncContextEndsWhileInFlight(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.createTopic("t", 1, 0)
	c := newTestClient(t, fc.addr(0))
	p, err := c.NewProducer(ProducerConfig{Topic: "t", Linger: -1})
	require.NoError(t, err)
	fc.slow(100, time.Second)
	short, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = p.SendSync(short, Record{Value: []byte("x")})
	require.Error(t, err)
	assert.True(t, IsUnknownOutcome(err), "err: %v", err)
	fc.slow(0, 0)
	r, err := p.SendSync(testCtx(t), Record{Value: []byte("y")})
	require.NoError(t, err)
	assert.Equal(t, int64(1), r.Offset)
	require.NoError(t, p.Close())
	assert.Equal(t, []string{"x", "y"}, fc.records("t", 0))
}

func TestFetchTrimsAndLimits(t *testing.T) {
	fc := newFakeCluster(t, 2)
	fc.createTopic("t", 1, 1)
	c := newTestClient(t, fc.addr(0))
	ctx := testCtx(t)
	for i := range 3 {
		_, err := c.ProduceBatch(ctx, "t", 0, values(fmt.Sprintf("b%d-", i), 10))
		require.NoError(t, err)
	}
	res, err := c.Fetch(ctx, transport.FetchRequest{Topic: "t", Partition: 0, Offset: 5, MaxBytes: 1 << 20, MaxRecords: 8})
	require.NoError(t, err)
	require.Len(t, res.Records, 8)
	assert.Equal(t, int64(5), res.Records[0].Offset)
	assert.Equal(t, "b0-5", string(res.Records[0].Value))
	assert.Equal(t, int64(12), res.Records[7].Offset)
	assert.Equal(t, int64(13), res.NextOffset)
	assert.Equal(t, int64(30), res.HighWatermark)
	assert.Equal(t, "t", res.Records[0].Topic)

	// A follower answers with FromReplica.
	res, err = c.FetchFromNode(ctx, "n1", transport.FetchRequest{Topic: "t", Partition: 0, Offset: 25, MaxBytes: 1 << 20})
	require.NoError(t, err)
	assert.Equal(t, strs("b2-", 5, 5), valuesOf(res.Records))

	_, err = c.Fetch(ctx, transport.FetchRequest{Topic: "t", Partition: 0, Offset: 31, MaxBytes: 1 << 20})
	assert.Equal(t, transport.ErrOffsetOutOfRange, transport.CodeOf(err))
}

func valuesOf(recs []Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

func TestConsumerReadsTrimmedAndFollows(t *testing.T) {
	fc := newFakeCluster(t, 2)
	fc.createTopic("t", 2, 0)
	c := newTestClient(t, fc.addr(0), fc.addr(1))
	ctx := testCtx(t)
	for _, p := range []int32{0, 1} {
		_, err := c.ProduceBatch(ctx, "t", p, values(fmt.Sprintf("p%d-", p), 10))
		require.NoError(t, err)
	}

	cn, err := c.NewConsumer(ctx, ConsumerConfig{Topic: "t", Start: 4, MaxWait: 100 * time.Millisecond})
	require.NoError(t, err)
	assert.Equal(t, map[int32]int64{0: 4, 1: 4}, cn.Positions())
	recs, err := cn.Poll(ctx)
	require.NoError(t, err)
	assert.Equal(t, append(strs("p0-", 4, 6), strs("p1-", 4, 6)...), valuesOf(recs))
	assert.Equal(t, map[int32]int64{0: 10, 1: 10}, cn.Positions())
	assert.True(t, cn.AtEnd())

	// Caught up: Poll long-polls and returns once a record arrives, even
	// though the other partition stays idle; it follows a leader change.
	fc.setLeader("t", 1)
	done := make(chan []Record)
	go func() {
		var got []Record
		for len(got) == 0 {
			recs, err := cn.Poll(ctx)
			assert.NoError(t, err)
			got = append(got, recs...)
		}
		done <- got
	}()
	time.Sleep(50 * time.Millisecond)
	_, err = c.ProduceBatch(ctx, "t", 1, []Record{{Value: []byte("late"), Headers: []Header{{Key: "h", Value: []byte("v")}}}})
	require.NoError(t, err)
	got := <-done
	require.Len(t, got, 1)
	assert.Equal(t, "late", string(got[0].Value))
	assert.Equal(t, int32(1), got[0].Partition)
	assert.Equal(t, int64(10), got[0].Offset)
	assert.Equal(t, []Header{{Key: "h", Value: []byte("v")}}, got[0].Headers)
	assert.Equal(t, map[int32]int64{0: 10, 1: 11}, cn.Positions())

	latest, err := c.NewConsumer(ctx, ConsumerConfig{Topic: "t", Partitions: []int32{1}, Start: transport.OffsetLatest})
	require.NoError(t, err)
	assert.Equal(t, map[int32]int64{1: 11}, latest.Positions())
}

func TestConsumerGroupOffsets(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.createTopic("t", 1, 0)
	c := newTestClient(t, fc.addr(0))
	ctx := testCtx(t)
	_, err := c.ProduceBatch(ctx, "t", 0, values("a", 5))
	require.NoError(t, err)

	off, err := c.FetchOffset(ctx, "g", "t", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(-1), off)

	cn, err := c.NewConsumer(ctx, ConsumerConfig{Topic: "t", Group: "g", Start: transport.OffsetEarliest})
	require.NoError(t, err)
	recs, err := cn.Poll(ctx)
	require.NoError(t, err)
	assert.Len(t, recs, 5)
	require.NoError(t, cn.Commit(ctx))

	_, err = c.ProduceBatch(ctx, "t", 0, values("b", 2))
	require.NoError(t, err)
	cn2, err := c.NewConsumer(ctx, ConsumerConfig{Topic: "t", Group: "g", Start: transport.OffsetEarliest})
	require.NoError(t, err)
	recs, err = cn2.Poll(ctx)
	require.NoError(t, err)
	assert.Equal(t, strs("b", 0, 2), valuesOf(recs))
}

func TestConsumerOutOfRange(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.createTopic("t", 1, 0)
	c := newTestClient(t, fc.addr(0))
	ctx := testCtx(t)
	for _, prefix := range []string{"a", "b"} {
		_, err := c.ProduceBatch(ctx, "t", 0, values(prefix, 5))
		require.NoError(t, err)
	}
	earliest, err := c.NewConsumer(ctx, ConsumerConfig{Topic: "t", Start: transport.OffsetEarliest})
	require.NoError(t, err)
	fixed, err := c.NewConsumer(ctx, ConsumerConfig{Topic: "t", Start: 0})
	require.NoError(t, err)
	fc.truncateStart("t", 0, 5) // retention removed the first batch

	var got []Record
	for len(got) < 5 {
		recs, err := earliest.Poll(ctx)
		require.NoError(t, err)
		got = append(got, recs...)
	}
	assert.Equal(t, strs("b", 0, 5), valuesOf(got))

	_, err = fixed.Poll(ctx)
	require.Error(t, err)
	assert.Equal(t, transport.ErrOffsetOutOfRange, transport.CodeOf(err))
}

func TestAdminCalls(t *testing.T) {
	fc := newFakeCluster(t, 2)
	// The first seed is dead: any-node calls move on to the next one.
	dead := fc.addr(0)
	fc.stop(0)
	c := newTestClient(t, dead, fc.addr(1))
	ctx := testCtx(t)

	require.NoError(t, c.CreateTopic(ctx, transport.CreateTopicRequest{Name: "new", Partitions: 3, ReplicationFactor: 1}))
	err := c.CreateTopic(ctx, transport.CreateTopicRequest{Name: "new", Partitions: 3})
	assert.Equal(t, transport.ErrTopicExists, transport.CodeOf(err))
	n, err := c.Partitions(ctx, "new")
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	_, err = c.Partitions(ctx, "missing")
	assert.Equal(t, transport.ErrUnknownTopic, transport.CodeOf(err))

	md, err := c.Metadata(ctx)
	require.NoError(t, err)
	assert.Len(t, md.Brokers, 2)
	require.Len(t, md.Topics, 1)

	st, err := c.Status(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, "n2", st.Node)
	st, err = c.Status(ctx, fc.addr(1))
	require.NoError(t, err)
	assert.Equal(t, "n2", st.Node)
	_, err = c.Status(ctx, dead)
	require.Error(t, err)

	require.NoError(t, c.WaitForLeaders(ctx, "new"))
}

func TestClosedClient(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.createTopic("t", 1, 0)
	c := newTestClient(t, fc.addr(0))
	require.NoError(t, c.Close())
	_, err := c.ProduceBatch(testCtx(t), "t", 0, values("a", 1))
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrClosed), "err: %v", err)
}

func BenchmarkProducer(b *testing.B) {
	fc := newFakeCluster(b, 1)
	fc.createTopic("t", 4, 0)
	c, err := New(Config{Servers: []string{fc.addr(0)}})
	require.NoError(b, err)
	defer c.Close()
	p, err := c.NewProducer(ProducerConfig{Topic: "t"})
	require.NoError(b, err)
	ctx := context.Background()
	val := make([]byte, 100)
	b.SetBytes(int64(len(val)))
	b.ResetTimer()
	for i := range b.N {
		p.Send(ctx, Record{Key: fmt.Append(nil, i), Value: val}, nil)
	}
	require.NoError(b, p.Close())
}

func TestProducerCloseContextGivesUp(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.createTopic("t", 1, 0)
	c := newTestClient(t, fc.addr(0))
	// A small buffer: the second send waits for the first to complete.
	p, err := c.NewProducer(ProducerConfig{Topic: "t", Linger: -1, MaxBufferedBytes: 10})
	require.NoError(t, err)
	fc.slow(1000, time.Second)

	errs := make(chan error, 2)
	p.Send(context.Background(), Record{Value: []byte("first")}, func(_ Record, err error) { errs <- err })
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	p.Send(short, Record{Value: []byte("second")}, func(_ Record, err error) { errs <- err })
	err = <-errs
	assert.ErrorIs(t, err, context.DeadlineExceeded, "blocked on buffer space")
	assert.False(t, IsUnknownOutcome(err))

	closeCtx, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	require.Error(t, p.CloseContext(closeCtx))
	err = <-errs
	assert.True(t, IsUnknownOutcome(err), "in flight when the close gave up: %v", err)
}
