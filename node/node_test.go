package node

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node test skipped in -short mode")
	}
}

// produceConcurrently sends n unique values from several goroutines to one
// partition and returns the acknowledged values by offset.
func produceConcurrently(t *testing.T, cl *client.Client, topic string, partition int32, prefix string, n, workers int, during func(done int)) map[int64]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var mu sync.Mutex
	acked := map[int64]string{}
	var wg sync.WaitGroup
	per := n / workers
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				v := fmt.Sprintf("%s-%d-%d", prefix, w, i)
				base, err := cl.ProduceBatch(ctx, topic, partition, []client.Record{{Value: []byte(v)}})
				if err != nil {
					t.Errorf("produce %s: %v", v, err)
					return
				}
				mu.Lock()
				_, dup := acked[base]
				acked[base] = v
				done := len(acked)
				mu.Unlock()
				assert.False(t, dup, "offset %d acknowledged twice", base)
				if during != nil {
					during(done)
				}
			}
		}()
	}
	wg.Wait()
	return acked
}

// checkLog asserts that the log holds every acknowledged value exactly
// once, at its acknowledged offset, with dense offsets.
func checkLog(t *testing.T, recs []client.Record, acked map[int64]string) {
	t.Helper()
	seen := map[string]int64{}
	for i, r := range recs {
		require.Equal(t, int64(i), r.Offset, "offsets must be dense from 0")
		if prev, ok := seen[string(r.Value)]; ok {
			t.Fatalf("value %q at offsets %d and %d", r.Value, prev, r.Offset)
		}
		seen[string(r.Value)] = r.Offset
	}
	for off, v := range acked {
		got, ok := seen[v]
		require.True(t, ok, "acknowledged value %q (offset %d) lost", v, off)
		require.Equal(t, off, got, "value %q moved", v)
	}
}

func TestProduceFetchAcrossPartitions(t *testing.T) {
	skipShort(t)
	c := newTestCluster(t, 3, nil)
	cl := c.client()
	c.createTopic(cl, "orders", 3, 3)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := cl.NewProducer(client.ProducerConfig{Topic: "orders"})
	require.NoError(t, err)
	const n = 3000
	var mu sync.Mutex
	got := map[int32][]client.Record{}
	for i := range n {
		p.Send(ctx, client.Record{Key: []byte(fmt.Sprintf("k%d", i%17)), Value: []byte(fmt.Sprintf("v%d", i))}, func(r client.Record, err error) {
			require.NoError(t, err)
			mu.Lock()
			got[r.Partition] = append(got[r.Partition], r)
			mu.Unlock()
		})
	}
	require.NoError(t, p.Close())
	total := 0
	for part := int32(0); part < 3; part++ {
		acked := map[int64]string{}
		for _, r := range got[part] {
			acked[r.Offset] = string(r.Value)
		}
		total += len(acked)
		recs := readAll(t, cl, "", "orders", part)
		checkLog(t, recs, acked)
		// Same key, same partition.
		for _, r := range recs {
			assert.Equal(t, part, keyPartition(t, got, string(r.Key)))
		}
	}
	require.Equal(t, n, total)

	// Leaders are spread: three partitions, three nodes, one each.
	leaders := map[int]bool{}
	for part := int32(0); part < 3; part++ {
		leaders[c.leaderIndex("orders", part)] = true
	}
	assert.Len(t, leaders, 3, "leaders should be spread over the nodes")
}

func keyPartition(t *testing.T, got map[int32][]client.Record, key string) int32 {
	for p, recs := range got {
		for _, r := range recs {
			if string(r.Key) == key {
				return p
			}
		}
	}
	t.Fatalf("key %s not produced", key)
	return -1
}

func TestLeaderFailoverLosesNothing(t *testing.T) {
	skipShort(t)
	c := newTestCluster(t, 3, nil)
	cl := c.client()
	c.createTopic(cl, "events", 1, 3)

	leader := c.leaderIndex("events", 0)
	var once sync.Once
	acked := produceConcurrently(t, cl, "events", 0, "a", 4000, 8, func(done int) {
		if done == 1500 {
			once.Do(func() { go c.stop(leader) })
		}
	})
	require.Len(t, acked, 4000)
	newLeader := c.leaderIndex("events", 0)
	require.NotEqual(t, leader, newLeader)

	// The old leader comes back and catches up; then every replica holds
	// every acknowledged record exactly once, in the same order.
	c.start(leader)
	hw := readAll(t, cl, "", "events", 0)
	checkLog(t, hw, acked)
	for _, cfg := range c.cfgs {
		require.Eventually(t, func() bool {
			return replicaLen(cl, cfg.ID, "events", 0) == len(hw)
		}, 30*time.Second, 100*time.Millisecond, "replica %s did not catch up", cfg.ID)
		checkLog(t, readAll(t, cl, cfg.ID, "events", 0), acked)
	}
}

func TestRestartedReplicaCatchesUpBySnapshot(t *testing.T) {
	skipShort(t)
	c := newTestCluster(t, 3, func(cfg *Config) {
		// Snapshot and compact often, so a replica that was down must be
		// rebuilt from a snapshot rather than from the Raft log.
		cfg.SnapshotThreshold = 64
		cfg.SnapshotInterval = 200 * time.Millisecond
		cfg.TrailingLogs = 16
		cfg.SegmentBytes = 16 << 10
	})
	cl := c.client()
	c.createTopic(cl, "logs", 1, 3)
	acked := produceConcurrently(t, cl, "logs", 0, "before", 200, 4, nil)

	leader := c.leaderIndex("logs", 0)
	down := (leader + 1) % 3
	c.stop(down)
	for k, v := range produceConcurrently(t, cl, "logs", 0, "during", 1200, 4, nil) {
		acked[k] = v
	}
	c.start(down)
	leaderRecs := readAll(t, cl, "", "logs", 0)
	checkLog(t, leaderRecs, acked)
	id := c.cfgs[down].ID
	require.Eventually(t, func() bool {
		return replicaLen(cl, id, "logs", 0) == len(leaderRecs)
	}, 60*time.Second, 200*time.Millisecond, "restarted replica did not catch up")
	got := readAll(t, cl, id, "logs", 0)
	for i := range got {
		require.Equal(t, leaderRecs[i].Offset, got[i].Offset)
		require.Equal(t, leaderRecs[i].Value, got[i].Value)
	}
}

func TestConsumerGroupOffsets(t *testing.T) {
	skipShort(t)
	c := newTestCluster(t, 3, nil)
	cl := c.client()
	c.createTopic(cl, "billing-in", 2, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	off, err := cl.FetchOffset(ctx, "billing", "billing-in", 1)
	require.NoError(t, err)
	require.Equal(t, int64(-1), off)
	require.NoError(t, cl.CommitOffset(ctx, "billing", "billing-in", 1, 42))
	// Survives a leader change: the offset is in the partition's Raft log.
	leader := c.leaderIndex("billing-in", 1)
	c.stop(leader)
	require.Eventually(t, func() bool {
		off, err = cl.FetchOffset(ctx, "billing", "billing-in", 1)
		return err == nil
	}, 20*time.Second, 100*time.Millisecond)
	require.Equal(t, int64(42), off)
}

func TestBadInput(t *testing.T) {
	skipShort(t)
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.MaxBatchBytes = 64 << 10 })
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("invalid topic names", func(t *testing.T) {
		for _, name := range []string{"", ".", "..", "has space", "slash/no", strings.Repeat("x", 250), "ünïcode"} {
			err := cl.CreateTopic(ctx, transport.CreateTopicRequest{Name: name, Partitions: 1, ReplicationFactor: 1})
			require.Error(t, err, "name %q", name)
			assert.Equal(t, transport.ErrInvalidTopic, transport.CodeOf(err), "name %q: %v", name, err)
		}
	})
	t.Run("replication factor above live nodes", func(t *testing.T) {
		err := cl.CreateTopic(ctx, transport.CreateTopicRequest{Name: "toomany", Partitions: 1, ReplicationFactor: 4})
		require.Error(t, err)
		assert.Equal(t, transport.ErrNotEnoughReplicas, transport.CodeOf(err), "%v", err)
	})
	c.createTopic(cl, "ok", 1, 3)
	t.Run("duplicate topic", func(t *testing.T) {
		err := cl.CreateTopic(ctx, transport.CreateTopicRequest{Name: "ok", Partitions: 1, ReplicationFactor: 3})
		assert.Equal(t, transport.ErrTopicExists, transport.CodeOf(err), "%v", err)
	})
	t.Run("unknown topic", func(t *testing.T) {
		_, err := cl.Fetch(ctx, transport.FetchRequest{Topic: "nope", Partition: 0})
		assert.Equal(t, transport.ErrUnknownTopic, transport.CodeOf(err), "%v", err)
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		defer scancel()
		_, err = cl.ProduceBatch(sctx, "nope", 0, []client.Record{{Value: []byte("x")}})
		assert.Equal(t, transport.ErrUnknownTopic, transport.CodeOf(err), "%v", err)
	})
	t.Run("unknown partition", func(t *testing.T) {
		_, err := cl.Fetch(ctx, transport.FetchRequest{Topic: "ok", Partition: 7})
		assert.Equal(t, transport.ErrUnknownPartition, transport.CodeOf(err), "%v", err)
	})
	t.Run("offset out of range says the range", func(t *testing.T) {
		_, err := cl.Fetch(ctx, transport.FetchRequest{Topic: "ok", Partition: 0, Offset: 1000})
		require.Error(t, err)
		assert.Equal(t, transport.ErrOffsetOutOfRange, transport.CodeOf(err))
		assert.Contains(t, err.Error(), "0")
	})
	t.Run("too large batch", func(t *testing.T) {
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		defer scancel()
		_, err := cl.ProduceBatch(sctx, "ok", 0, []client.Record{{Value: make([]byte, 100<<10)}})
		require.Error(t, err)
		assert.Equal(t, transport.ErrRecordTooLarge, transport.CodeOf(err), "%v", err)
	})
	t.Run("corrupt batch", func(t *testing.T) {
		var resp transport.ProduceResponse
		leader := c.nodes[c.leaderIndex("ok", 0)]
		err := leader.pool.Call(ctx, leader.Addr(), transport.MethodProduce,
			transport.ProduceRequest{Topic: "ok", Partition: 0, Batch: []byte("definitely not a record batch")}, &resp)
		assert.Equal(t, transport.ErrCorruptBatch, transport.CodeOf(err), "%v", err)
	})
	t.Run("malformed frames and disconnects", func(t *testing.T) {
		addr := c.cfgs[0].Addr
		for _, junk := range [][]byte{
			[]byte("GET / HTTP/1.1\r\n\r\n"),
			{'C', 0xff, 0xff, 0xff, 0xff, 1, 2, 3},
			{'C', 0, 0, 0, 3, 0xc1, 0xc1, 0xc1},
			{'R', 0, 5, 'n', 'o', 'p', 'e', '!'},
		} {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			require.NoError(t, err)
			conn.Write(junk)
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = bufio.NewReader(conn).ReadByte()
			assert.Error(t, err, "connection should be closed after %q", junk)
			conn.Close()
		}
		// A client that hangs up in the middle of a long poll.
		conn, err := transport.DialConn(ctx, addr, transport.DialOptions{})
		require.NoError(t, err)
		go conn.Call(ctx, transport.MethodFetch, transport.FetchRequest{Topic: "ok", Partition: 0, Offset: transport.OffsetLatest, MaxWaitMs: 10000}, nil)
		time.Sleep(100 * time.Millisecond)
		conn.Close()
		// The node still serves.
		_, err = cl.ProduceBatch(ctx, "ok", 0, []client.Record{{Value: []byte("still alive")}})
		require.NoError(t, err)
		md, err := cl.Metadata(ctx)
		require.NoError(t, err)
		require.Len(t, md.Brokers, 3)
	})
}

func TestDeleteTopicRemovesReplicas(t *testing.T) {
	skipShort(t)
	c := newTestCluster(t, 3, nil)
	cl := c.client()
	c.createTopic(cl, "tmp", 2, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, cl.DeleteTopic(ctx, "tmp"))
	require.Eventually(t, func() bool {
		for _, n := range c.nodes {
			if len(n.replicaList()) != 0 {
				return false
			}
		}
		return true
	}, 20*time.Second, 50*time.Millisecond)
	err := cl.DeleteTopic(ctx, "tmp")
	assert.Equal(t, transport.ErrUnknownTopic, transport.CodeOf(err), "%v", err)
}
