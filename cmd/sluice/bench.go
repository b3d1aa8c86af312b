package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Benchmarks against a running cluster"}
	cmd.AddCommand(newBenchProduceCmd(), newBenchAgentCmd())
	return cmd
}

// benchResult is what `bench produce --json` prints.
type benchResult struct {
	Records       int     `json:"records"`
	RecordBytes   int     `json:"record_bytes"`
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
	P50Ms         float64 `json:"ack_p50_ms"`
	P99Ms         float64 `json:"ack_p99_ms"`
	Failed        int64   `json:"failed"`
}

func newBenchProduceCmd() *cobra.Command {
	var topic string
	var records, size, partitions, replicas, producers int
	var asJSON bool
	cmd := &cobra.Command{
		Use:         "produce",
		Annotations: longRunning,
		Short:       "Measure produce throughput (records/s, MB/s) and acknowledgement latency",
		Args:        cobra.NoArgs,
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			ctx := cmd.Context()
			err := c.CreateTopic(ctx, transport.CreateTopicRequest{Name: topic, Partitions: partitions, ReplicationFactor: replicas})
			if err != nil && transport.CodeOf(err) != transport.ErrTopicExists {
				return err
			}
			if err := waitForLeaders(ctx, c, topic); err != nil {
				return err
			}
			res, err := runProduceBench(ctx, c, topic, records, size, producers)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d records of %d bytes in %.2fs: %.0f records/s, %.1f MB/s, ack latency p50 %.1f ms p99 %.1f ms, %d failed\n",
				res.Records, res.RecordBytes, res.Seconds, res.RecordsPerSec, res.MBPerSec, res.P50Ms, res.P99Ms, res.Failed)
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&topic, "topic", "bench", "topic to write (created if missing)")
	f.IntVar(&records, "records", 200000, "records to send")
	f.IntVar(&size, "record-size", 1024, "value size in bytes")
	f.IntVar(&partitions, "partitions", 3, "partitions when creating the topic")
	f.IntVar(&replicas, "replicas", 3, "replication factor when creating the topic")
	f.IntVar(&producers, "producers", 1, "concurrent producers")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func runProduceBench(ctx context.Context, c *client.Client, topic string, records, size, producers int) (benchResult, error) {
	value := make([]byte, size)
	rand.Read(value)
	var failed atomic.Int64
	var mu sync.Mutex
	lat := make([]time.Duration, 0, records)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < producers; w++ {
		p, err := c.NewProducer(client.ProducerConfig{Topic: topic})
		if err != nil {
			return benchResult{}, err
		}
		n := records / producers
		if w == 0 {
			n += records % producers
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.Close()
			for i := 0; i < n && ctx.Err() == nil; i++ {
				sent := time.Now()
				p.Send(ctx, client.Record{Value: value}, func(_ client.Record, err error) {
					if err != nil {
						failed.Add(1)
						return
					}
					d := time.Since(sent)
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				})
			}
			p.Flush(ctx)
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000
	}
	ok := len(lat)
	return benchResult{
		Records:       ok,
		RecordBytes:   size,
		Seconds:       secs,
		RecordsPerSec: float64(ok) / secs,
		MBPerSec:      float64(ok*size) / secs / 1e6,
		P50Ms:         pct(0.5),
		P99Ms:         pct(0.99),
		Failed:        failed.Load(),
	}, ctx.Err()
}
