package node

import (
	"context"
	"crypto/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/client"
)

// BenchmarkProduce measures end-to-end produce throughput of 1 KiB records
// into a 3-node in-process cluster at replication factor 3: each record is
// acknowledged only after a quorum fsynced it. One op is one record.
func BenchmarkProduce(b *testing.B) {
	for _, parts := range []int{1, 3} {
		b.Run(map[int]string{1: "partitions=1", 3: "partitions=3"}[parts], func(b *testing.B) {
			benchProduce(b, parts)
		})
	}
}

func benchProduce(b *testing.B, parts int) {
	c := newTestCluster(b, 3, nil)
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c.createTopic(cl, "bench", parts, 3)

	value := make([]byte, 1024)
	rand.Read(value)
	p, err := cl.NewProducer(client.ProducerConfig{Topic: "bench"})
	require.NoError(b, err)
	b.SetBytes(int64(len(value)))
	b.ResetTimer()
	var failed atomic.Int64
	for range b.N {
		p.Send(ctx, client.Record{Value: value}, func(_ client.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	}
	require.NoError(b, p.Close())
	b.StopTimer()
	require.Zero(b, failed.Load())
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
