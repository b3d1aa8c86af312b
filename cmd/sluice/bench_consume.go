package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

func newBenchConsumeCmd() *cobra.Command {
	var o benchOpts
	var partition int32
	var fetchBytes int32
	cmd := &cobra.Command{
		Use:         "consume",
		Annotations: longRunning,
		Short:       "Measure reading a partition from its start (records/s, MB/s, fetch latency)",
		Long: `Reads --records records from offset 0 of --partition with sequential fetches of
--fetch-bytes from its leader, decoding every record as a consumer does.
A partition shorter than --records is filled first (as fast as possible,
with --producers, --batch-size and --linger), so running it again reuses the
data. MB/s counts value bytes, like bench produce.`,
		Args: cobra.NoArgs,
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			ctx := cmd.Context()
			if err := ensureTopic(ctx, c, o.topic, o.partitions, o.replicas); err != nil {
				return err
			}
			first, err := c.Fetch(ctx, transport.FetchRequest{Topic: o.topic, Partition: partition, Offset: 0, MaxRecords: 1})
			if err != nil {
				return fmt.Errorf("read %s/%d: %w", o.topic, partition, err)
			}
			if first.LogStartOffset > 0 {
				return fmt.Errorf("%s/%d starts at offset %d (retention): use a fresh topic", o.topic, partition, first.LogStartOffset)
			}
			if missing := int64(o.records) - first.HighWatermark; missing > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "filling %s/%d with %d records of %d bytes\n", o.topic, partition, missing, o.recordSize)
				var fill loadStats
				stop := startProgress(cmd.ErrOrStderr(), "fill", &fill, missing, o.quiet)
				fo := o
				fo.rate = 0
				_, err := runLoad(ctx, c, loadSpec{opts: &fo, cfg: o.producerConfig(), part: partition, records: int(missing)}, &fill)
				stop()
				if err != nil {
					return err
				}
				if f := fill.failed.Load(); f > 0 {
					return fmt.Errorf("filling %s/%d: %d records failed", o.topic, partition, f)
				}
			}
			res := benchResult{Mode: "consume", Topic: o.topic, Partitions: 1, Replicas: o.replicas}
			var s loadStats
			stop := startProgress(cmd.ErrOrStderr(), "consume", &s, int64(o.records), o.quiet)
			secs, size, err := runConsume(ctx, c, o.topic, partition, int64(o.records), fetchBytes, &s)
			stop()
			if err != nil {
				return err
			}
			res.fill(&s, secs)
			res.RecordBytes = size
			return res.print(cmd.OutOrStdout(), o.asJSON)
		}),
	}
	o.register(cmd.Flags(), "bench-consume", 1, 200000, 1024)
	cmd.Flags().Int32Var(&partition, "partition", 0, "partition to read")
	cmd.Flags().Int32Var(&fetchBytes, "fetch-bytes", 4<<20, "bytes asked for by one fetch")
	return cmd
}

// runConsume reads records [0, n) of the partition; each fetch's latency
// goes into s. It returns the seconds taken and the size of the last value.
func runConsume(ctx context.Context, c *client.Client, topic string, part int32, n int64, fetchBytes int32, s *loadStats) (float64, int, error) {
	start := time.Now()
	off, size := int64(0), 0
	for off < n {
		t := time.Now()
		res, err := c.Fetch(ctx, transport.FetchRequest{Topic: topic, Partition: part, Offset: off, MaxBytes: fetchBytes})
		if err != nil {
			return 0, 0, fmt.Errorf("fetch %s/%d at %d: %w", topic, part, off, err)
		}
		s.lat.record(time.Since(t))
		if len(res.Records) == 0 {
			if res.HighWatermark <= off {
				return 0, 0, fmt.Errorf("%s/%d ends at %d, before %d records", topic, part, res.HighWatermark, n)
			}
			if res.NextOffset <= off {
				return 0, 0, fmt.Errorf("fetch %s/%d at %d: no records and no progress (high watermark %d)", topic, part, off, res.HighWatermark)
			}
			off = res.NextOffset
			continue
		}
		for _, r := range res.Records {
			if r.Offset >= n {
				break
			}
			size = len(r.Value)
			s.acked.Add(1)
			s.bytes.Add(int64(len(r.Value) + len(r.Key)))
		}
		off = max(res.Records[len(res.Records)-1].Offset+1, res.NextOffset)
	}
	return time.Since(start).Seconds(), size, nil
}
