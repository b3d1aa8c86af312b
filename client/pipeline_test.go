package client

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProducerPipelinesBatches holds every produce reply and checks that a
// partition keeps MaxInFlight batches in flight, no more, and that the
// records complete in order once the replies come.
func TestProducerPipelinesBatches(t *testing.T) {
	for _, limit := range []int{1, 3, 5} {
		t.Run(fmt.Sprintf("max=%d", limit), func(t *testing.T) {
			fc := newFakeCluster(t, 1)
			fc.createTopic("t", 1, 0)
			hold := make(chan struct{})
			var release sync.Once
			t.Cleanup(func() { release.Do(func() { close(hold) }) }) // before the fake's nodes close
			fc.mu.Lock()
			fc.hold = hold
			fc.mu.Unlock()
			c := newTestClient(t, fc.addr(0))
			c.cfg.RequestTimeout = 10 * time.Second // replies are held on purpose
			ctx := testCtx(t)
			p, err := c.NewProducer(ProducerConfig{Topic: "t", BatchRecords: 1, Linger: -1, MaxInFlight: limit})
			require.NoError(t, err)

			var mu sync.Mutex
			var offsets []int64
			var wg sync.WaitGroup
			for _, r := range values("v", 12) {
				wg.Add(1)
				p.Send(ctx, r, func(r Record, err error) {
					defer wg.Done()
					assert.NoError(t, err)
					mu.Lock()
					offsets = append(offsets, r.Offset)
					mu.Unlock()
				})
			}
			require.Eventually(t, func() bool {
				fc.mu.Lock()
				defer fc.mu.Unlock()
				return fc.held == limit
			}, 5*time.Second, time.Millisecond, "batches in flight")
			release.Do(func() { close(hold) })
			wg.Wait()
			require.NoError(t, p.Close())
			fc.mu.Lock()
			assert.Equal(t, limit, fc.maxHeld, "never more than MaxInFlight in flight")
			fc.mu.Unlock()
			want := make([]int64, 12)
			for i := range want {
				want[i] = int64(i)
			}
			assert.Equal(t, want, offsets, "callbacks in order")
			assert.Equal(t, strs("v", 0, 12), fc.records("t", 0))
		})
	}
}

// TestProducerPipelineOnUnorderedServer runs the pipeline against nodes
// that take a connection's produces in any order (as a node without
// ordered methods would): batches arrive out of sequence and are refused,
// and the producer's in-order retries must still store every record once,
// in order, across leader changes.
func TestProducerPipelineOnUnorderedServer(t *testing.T) {
	fc := newFakeClusterOpts(t, 2, true)
	fc.createTopic("t", 2, 0)
	c := newTestClient(t, fc.addr(0), fc.addr(1))
	ctx := testCtx(t)
	p, err := c.NewProducer(ProducerConfig{Topic: "t", Linger: -1, BatchRecords: 3})
	require.NoError(t, err)

	stop := make(chan struct{})
	flipped := make(chan struct{})
	go func() {
		defer close(flipped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			fc.setLeader("t", i%2)
		}
	}()
	const n = 400
	want := map[int32][]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	acked := map[int32][]int64{}
	for i := range n {
		part := int32(i % 2)
		val := fmt.Sprintf("v%d", i)
		want[part] = append(want[part], val)
		wg.Add(1)
		p.SendTo(ctx, part, Record{Value: []byte(val)}, func(r Record, err error) {
			defer wg.Done()
			assert.NoError(t, err)
			mu.Lock()
			acked[r.Partition] = append(acked[r.Partition], r.Offset)
			mu.Unlock()
		})
	}
	require.NoError(t, p.Close())
	wg.Wait()
	close(stop)
	<-flipped
	for part := range int32(2) {
		assert.Equal(t, want[part], fc.records("t", part), "partition %d", part)
		for i, off := range acked[part] {
			assert.Equal(t, int64(i), off, "acks in offset order")
		}
	}
	refused := 0
	for _, s := range fc.producesSeen() {
		if s.refused {
			refused++
		}
	}
	assert.Positive(t, refused, "no batch arrived out of order: the test did not exercise the retries")
}

// TestPendingQueueKeepsOrder pushes and takes through several compactions.
func TestPendingQueueKeepsOrder(t *testing.T) {
	var q pendingQueue
	next, want := 0, 0
	for round := range 50 {
		for range 97 + round*13 {
			q.push(pending{size: next})
			next++
		}
		n := min(q.len(), 61+round*17)
		for _, pd := range q.take(n) {
			require.Equal(t, want, pd.size)
			want++
		}
		if q.len() > 0 {
			require.Equal(t, want, q.at(0).size)
		}
	}
	for _, pd := range q.drain() {
		require.Equal(t, want, pd.size)
		want++
	}
	require.Equal(t, next, want)
	require.Zero(t, q.len())
}
