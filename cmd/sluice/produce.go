package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/client"
)

func newProduceCmd() *cobra.Command {
	var key, keySep string
	var partition int32
	var cfg client.ProducerConfig
	cmd := &cobra.Command{
		Use:         "produce TOPIC",
		Annotations: longRunning,
		Short:       "Append one record per line of standard input",
		Long: `Reads standard input and appends one record per line. Records with a key
go to the key's partition (Kafka's murmur2 hash); without a key, batches
are spread round-robin. Prints a summary and exits non-zero if any record
was not acknowledged.`,
		Args: cobra.ExactArgs(1),
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			cfg.Topic = args[0]
			p, err := c.NewProducer(cfg)
			if err != nil {
				return err
			}
			var sum produceSummary
			start := time.Now()
			err = produceLines(cmd, p, cmd.InOrStdin(), key, keySep, partition, &sum)
			if cerr := p.Close(); err == nil && cerr != nil {
				err = cerr
			}
			sum.print(cmd.OutOrStdout(), cfg.Topic, time.Since(start))
			if err != nil {
				return err
			}
			if sum.failed > 0 {
				return fmt.Errorf("%d records were not acknowledged (first error: %v)", sum.failed, sum.firstErr)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&key, "key", "", "key for every record")
	f.StringVar(&keySep, "key-separator", "", "split each line at the first separator into key and value (like kafka-console-producer's parse.key)")
	f.Int32Var(&partition, "partition", -1, "send every record to this partition")
	f.IntVar(&cfg.BatchBytes, "batch-bytes", 1<<20, "largest batch per partition")
	f.DurationVar(&cfg.Linger, "linger", 5*time.Millisecond, "how long a batch waits for more records")
	return cmd
}

func produceLines(cmd *cobra.Command, p *client.Producer, in io.Reader, key, keySep string, partition int32, sum *produceSummary) error {
	ctx := cmd.Context()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	done := func(r client.Record, err error) { sum.add(r, err) }
	for sc.Scan() {
		line := sc.Bytes()
		rec := client.Record{Value: bytes.Clone(line), Timestamp: time.Now()}
		if key != "" {
			rec.Key = []byte(key)
		}
		if keySep != "" {
			if k, v, ok := bytes.Cut(line, []byte(keySep)); ok {
				rec.Key, rec.Value = bytes.Clone(k), bytes.Clone(v)
			}
		}
		if partition >= 0 {
			p.SendTo(ctx, partition, rec, done)
		} else {
			p.Send(ctx, rec, done)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	return p.Flush(ctx)
}

// produceSummary tallies acknowledgements per partition.
type produceSummary struct {
	mu       sync.Mutex
	ok       int
	bytes    int
	failed   int
	firstErr error
	ranges   map[int32][2]int64
}

func (s *produceSummary) add(r client.Record, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.failed++
		if s.firstErr == nil {
			s.firstErr = err
		}
		return
	}
	s.ok++
	s.bytes += len(r.Value) + len(r.Key)
	if s.ranges == nil {
		s.ranges = map[int32][2]int64{}
	}
	rg, ok := s.ranges[r.Partition]
	if !ok {
		rg = [2]int64{r.Offset, r.Offset}
	}
	rg[0], rg[1] = min(rg[0], r.Offset), max(rg[1], r.Offset)
	s.ranges[r.Partition] = rg
}

func (s *produceSummary) print(w io.Writer, topic string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rate := float64(s.ok) / max(d.Seconds(), 1e-9)
	fmt.Fprintf(w, "produced %d records (%d bytes) to %s in %s (%.0f records/s)", s.ok, s.bytes, topic, d.Round(time.Millisecond), rate)
	if s.failed > 0 {
		fmt.Fprintf(w, ", %d FAILED", s.failed)
	}
	fmt.Fprintln(w)
	parts := make([]int32, 0, len(s.ranges))
	for p := range s.ranges {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	for _, p := range parts {
		fmt.Fprintf(w, "  partition %d: offsets %d..%d\n", p, s.ranges[p][0], s.ranges[p][1])
	}
}
