package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmarks against a running cluster",
		Long: `Benchmarks against a running cluster, in the spirit of kafka-producer-perf-test,
rpk and nats bench. Every command prints a live progress line on stderr once a
second and a summary on stdout; --json prints the summary as one JSON object on
one line. With --rate the offered load is fixed (open loop): each record has a
scheduled hand-over time and its latency is measured from that time, so the
benchmark's own queueing never hides a stall (no coordinated omission).`,
	}
	cmd.AddCommand(newBenchProduceCmd(), newBenchLatencyCmd(), newBenchConsumeCmd(),
		newBenchFailoverCmd(), newBenchIdleCmd(), newBenchAgentCmd())
	return cmd
}

// clientMaxInFlight is the most batches per partition client.Producer
// keeps in flight (a partition deduplicates the last 5 of a producer).
const clientMaxInFlight = 5

// benchOpts are the flags the produce-side benchmarks share.
type benchOpts struct {
	topic       string
	partitions  int
	replicas    int
	records     int
	recordSize  int
	producers   int
	batchSize   int
	linger      time.Duration
	maxInFlight int
	rate        float64
	asJSON      bool
	quiet       bool
}

func (o *benchOpts) register(f *pflag.FlagSet, topic string, partitions, records, size int) {
	f.StringVar(&o.topic, "topic", topic, "topic to use (created when missing)")
	f.IntVar(&o.partitions, "partitions", partitions, "partitions when creating the topic")
	f.IntVar(&o.replicas, "replicas", 3, "replication factor when creating the topic")
	f.IntVar(&o.records, "records", records, "records to send")
	f.IntVar(&o.recordSize, "record-size", size, "value size in bytes")
	f.IntVar(&o.producers, "producers", 1, "concurrent producers (each a client.Producer on one shared client)")
	f.IntVar(&o.batchSize, "batch-size", 0, "largest batch in bytes (client.ProducerConfig.BatchBytes; 0: the client's default, 1 MiB)")
	f.DurationVar(&o.linger, "linger", 0, "how long a partition waits to fill a batch (0: the client's default, 5ms; negative: send at once)")
	f.IntVar(&o.maxInFlight, "max-in-flight", clientMaxInFlight, "batches in flight per partition (client.ProducerConfig.MaxInFlight, at most 5)")
	f.Float64Var(&o.rate, "rate", 0, "offered load in records/s over all producers, scheduled open-loop (0: as fast as possible)")
	f.BoolVar(&o.asJSON, "json", false, "print the summary as one JSON object on one line")
	f.BoolVar(&o.quiet, "quiet", false, "no progress line on stderr")
}

func (o *benchOpts) producerConfig() client.ProducerConfig {
	return client.ProducerConfig{Topic: o.topic, BatchBytes: o.batchSize, Linger: o.linger, MaxInFlight: min(o.maxInFlight, clientMaxInFlight)}
}

func (o *benchOpts) validate() error {
	switch {
	case o.topic == "":
		return errors.New("--topic must not be empty")
	case o.records <= 0:
		return errors.New("--records must be positive")
	case o.recordSize < 0:
		return errors.New("--record-size must not be negative")
	case o.producers <= 0:
		return errors.New("--producers must be positive")
	case o.rate < 0:
		return errors.New("--rate must not be negative")
	case o.maxInFlight <= 0:
		return errors.New("--max-in-flight must be positive")
	}
	return nil
}

// benchResult is the summary of a produce, latency or consume run, the
// object --json prints.
type benchResult struct {
	Mode        string  `json:"mode"`
	Topic       string  `json:"topic"`
	Partitions  int     `json:"partitions"`
	Replicas    int     `json:"replicas"`
	Producers   int     `json:"producers,omitempty"`
	Records     int64   `json:"records"`
	Failed      int64   `json:"failed"`
	RecordBytes int     `json:"record_bytes"`
	Seconds     float64 `json:"seconds"`
	// RecordsPerSec and MBPerSec count acknowledged (or, for consume, read)
	// records and their value bytes; MB is 10^6 bytes.
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
	// Latency of a record from its hand-over (its scheduled time with
	// --rate) to its acknowledgement; for consume, of one fetch.
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
	MeanMs float64 `json:"mean_ms"`
	// OfferedRate is --rate (records/s), 0 for as fast as possible.
	OfferedRate float64 `json:"offered_rate"`
	BatchBytes  int     `json:"batch_bytes,omitempty"`
	LingerMs    float64 `json:"linger_ms,omitempty"`
	// MaxInFlight is the --max-in-flight asked for; EffectiveMaxInFlight
	// what the client applies (at most 5 per partition).
	MaxInFlight          int    `json:"max_in_flight,omitempty"`
	EffectiveMaxInFlight int    `json:"effective_max_in_flight,omitempty"`
	Note                 string `json:"note,omitempty"`
}

func (r *benchResult) fill(s *loadStats, secs float64) {
	r.Records = s.acked.Load()
	r.Failed = s.failed.Load()
	r.Seconds = secs
	if secs > 0 {
		r.RecordsPerSec = float64(r.Records) / secs
		r.MBPerSec = float64(s.bytes.Load()) / secs / 1e6
	}
	r.P50Ms = s.lat.quantile(0.5)
	r.P99Ms = s.lat.quantile(0.99)
	r.P999Ms = s.lat.quantile(0.999)
	r.MaxMs = s.lat.maxMs()
	r.MeanMs = s.lat.meanMs()
}

func (r *benchResult) setProducer(o *benchOpts) {
	r.Topic, r.Partitions, r.Replicas, r.Producers = o.topic, o.partitions, o.replicas, o.producers
	r.RecordBytes, r.OfferedRate, r.BatchBytes = o.recordSize, o.rate, o.batchSize
	r.LingerMs = float64(o.linger.Microseconds()) / 1000
	r.MaxInFlight, r.EffectiveMaxInFlight = o.maxInFlight, min(o.maxInFlight, clientMaxInFlight)
	if o.maxInFlight > clientMaxInFlight {
		r.Note = fmt.Sprintf("--max-in-flight %d capped at %d: a partition deduplicates the last %d batches of a producer", o.maxInFlight, clientMaxInFlight, clientMaxInFlight)
	}
}

// print writes the summary: one JSON line, or a few lines of text.
func (r *benchResult) print(w io.Writer, asJSON bool) error {
	if asJSON {
		return printJSONLine(w, r)
	}
	fmt.Fprintf(w, "%s %s: %d records of %d bytes in %.2fs: %.0f records/s, %.2f MB/s, %d failed\n",
		r.Mode, r.Topic, r.Records, r.RecordBytes, r.Seconds, r.RecordsPerSec, r.MBPerSec, r.Failed)
	what := "latency"
	if r.Mode == "consume" {
		what = "fetch latency"
	}
	fmt.Fprintf(w, "%s ms: p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  mean %.2f\n", what, r.P50Ms, r.P99Ms, r.P999Ms, r.MaxMs, r.MeanMs)
	if r.Mode != "consume" {
		rate := "as fast as possible"
		if r.OfferedRate > 0 {
			rate = fmt.Sprintf("%.0f records/s offered (open loop)", r.OfferedRate)
		}
		fmt.Fprintf(w, "%d partitions, R=%d, %d producers, %s, max in flight %d per partition\n",
			r.Partitions, r.Replicas, r.Producers, rate, r.EffectiveMaxInFlight)
	}
	if r.Note != "" {
		fmt.Fprintln(w, "note:", r.Note)
	}
	return nil
}

func printJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// ensureTopic creates topic when missing and waits for its leaders.
func ensureTopic(ctx context.Context, c *client.Client, topic string, partitions, replicas int) error {
	err := c.CreateTopic(ctx, transport.CreateTopicRequest{Name: topic, Partitions: partitions, ReplicationFactor: replicas})
	if err != nil && transport.CodeOf(err) != transport.ErrTopicExists {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return waitForLeaders(ctx, c, topic)
}

func newBenchProduceCmd() *cobra.Command {
	var o benchOpts
	cmd := &cobra.Command{
		Use:         "produce",
		Annotations: longRunning,
		Short:       "Measure produce throughput (records/s, MB/s) and acknowledgement latency",
		Long: `Sends --records records of --record-size bytes through --producers producers
and reports records/s, MB/s and the latency from hand-over to acknowledgement
(every acknowledgement follows a quorum fsync). Without --rate the producers
send as fast as the client accepts records, so latency includes the time a
record waits in the client's buffer; with --rate it is measured from each
record's scheduled time.`,
		Args: cobra.NoArgs,
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			ctx := cmd.Context()
			if err := ensureTopic(ctx, c, o.topic, o.partitions, o.replicas); err != nil {
				return err
			}
			res := benchResult{Mode: "produce"}
			res.setProducer(&o)
			if n, err := c.Partitions(ctx, o.topic); err == nil {
				res.Partitions = n
			}
			var s loadStats
			stop := startProgress(cmd.ErrOrStderr(), "produce", &s, int64(o.records), o.quiet)
			secs, err := runLoad(ctx, c, loadSpec{opts: &o, cfg: o.producerConfig(), part: -1}, &s)
			stop()
			if err != nil {
				return err
			}
			res.fill(&s, secs)
			if res.Records == 0 {
				return fmt.Errorf("bench produce: no record acknowledged (%d failed)", res.Failed)
			}
			return res.print(cmd.OutOrStdout(), o.asJSON)
		}),
	}
	o.register(cmd.Flags(), "bench", 1, 200000, 1024)
	return cmd
}

// loadStats accumulate over a run; safe for concurrent use.
type loadStats struct {
	lat    latencyHist
	acked  atomic.Int64
	failed atomic.Int64
	bytes  atomic.Int64
	// onAck, when set, sees every acknowledged record's hand-over time and
	// acknowledgement time (the failover benchmark watches for the first
	// acknowledgement after a kill).
	onAck func(handed, acked time.Time)
	// lastErr is the latest failure, for the progress line.
	lastErr atomic.Pointer[string]
}

func (s *loadStats) ack(handed time.Time, n int) {
	now := time.Now()
	s.lat.record(now.Sub(handed))
	s.acked.Add(1)
	s.bytes.Add(int64(n))
	if s.onAck != nil {
		s.onAck(handed, now)
	}
}

func (s *loadStats) fail(err error) {
	s.failed.Add(1)
	msg := err.Error()
	s.lastErr.Store(&msg)
}

// loadSpec says what runLoad sends.
type loadSpec struct {
	opts *benchOpts
	cfg  client.ProducerConfig
	// part >= 0 sends every record to that partition.
	part int32
	// records overrides opts.records when non-zero; negative runs until
	// ctx ends.
	records int
}

// runLoad sends records through opts.producers producers, open-loop at
// opts.rate when set, and waits for every acknowledgement. It returns the
// seconds from the first hand-over to the last acknowledgement.
func runLoad(ctx context.Context, c *client.Client, spec loadSpec, s *loadStats) (float64, error) {
	o := spec.opts
	value := make([]byte, o.recordSize)
	rand.Read(value)
	records := o.records
	if spec.records != 0 {
		records = spec.records
	}
	cfg := spec.cfg
	if spec.part >= 0 {
		cfg.ManualPartition = true
	}
	producers := make([]*client.Producer, o.producers)
	for i := range producers {
		p, err := c.NewProducer(cfg)
		if err != nil {
			return 0, err
		}
		producers[i] = p
	}
	// Each producer sends its share at rate/producers; record i of a
	// producer is due at start + i*interval.
	var interval time.Duration
	if o.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(o.producers) / o.rate)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w, p := range producers {
		n := -1
		if records > 0 {
			n = records / o.producers
			if w < records%o.producers {
				n++
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.Close()
			for i := 0; (n < 0 || i < n) && ctx.Err() == nil; i++ {
				handed := time.Now()
				if interval > 0 {
					due := start.Add(time.Duration(i) * interval)
					// Sleep only when well ahead: timers are coarse, and
					// a record sent early still counts from its due time.
					if d := time.Until(due); d > 200*time.Microsecond {
						select {
						case <-time.After(d):
						case <-ctx.Done():
							return
						}
					}
					handed = due
				}
				rec := client.Record{Value: value, Partition: spec.part}
				p.Send(ctx, rec, func(_ client.Record, err error) {
					if err != nil {
						s.fail(err)
						return
					}
					s.ack(handed, len(value))
				})
			}
			p.Flush(ctx)
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if records < 0 {
		return secs, nil // ran until ctx ended, as asked
	}
	return secs, ctx.Err()
}

// startProgress prints a progress line on w once a second until the
// returned stop is called.
func startProgress(w io.Writer, what string, s *loadStats, total int64, quiet bool) (stop func()) {
	if quiet {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		start := time.Now()
		last, lastBytes, lastAt := int64(0), int64(0), start
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				n, b := s.acked.Load(), s.bytes.Load()
				dt := now.Sub(lastAt).Seconds()
				of := ""
				if total > 0 {
					of = fmt.Sprintf("/%d", total)
				}
				line := fmt.Sprintf("%s %4.0fs: %d%s records, %.0f records/s, %.2f MB/s, p50 %.2f ms p99 %.2f ms max %.2f ms, %d failed",
					what, now.Sub(start).Seconds(), n, of, float64(n-last)/dt, float64(b-lastBytes)/dt/1e6,
					s.lat.quantile(0.5), s.lat.quantile(0.99), s.lat.maxMs(), s.failed.Load())
				if e := s.lastErr.Load(); e != nil {
					line += " (last error: " + *e + ")"
				}
				fmt.Fprintln(w, line)
				last, lastBytes, lastAt = n, b, now
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func newBenchLatencyCmd() *cobra.Command {
	var o benchOpts
	cmd := &cobra.Command{
		Use:         "latency",
		Annotations: longRunning,
		Short:       "Measure produce latency: one record at a time, or at a fixed --rate",
		Long: `Without --rate, sends one record at a time and waits for its acknowledgement
before the next (the latency of a lone write: leader fsync, replication, a
follower's fsync). With --rate, offers that many records/s open-loop and
measures each record from its scheduled time; batching then happens only
while a batch is in flight (--linger defaults to "send at once" here).`,
		Args: cobra.NoArgs,
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			ctx := cmd.Context()
			if err := ensureTopic(ctx, c, o.topic, o.partitions, o.replicas); err != nil {
				return err
			}
			if !cmd.Flags().Changed("linger") {
				o.linger = -1
			}
			res := benchResult{Mode: "latency"}
			res.setProducer(&o)
			var s loadStats
			stop := startProgress(cmd.ErrOrStderr(), "latency", &s, int64(o.records), o.quiet)
			var secs float64
			var err error
			if o.rate > 0 {
				secs, err = runLoad(ctx, c, loadSpec{opts: &o, cfg: o.producerConfig(), part: -1}, &s)
			} else {
				res.Mode = "latency-sequential"
				res.Producers = 1
				secs, err = runSequential(ctx, c, &o, &s)
			}
			stop()
			if err != nil {
				return err
			}
			res.fill(&s, secs)
			if res.Records == 0 {
				return fmt.Errorf("bench latency: no record acknowledged (%d failed)", res.Failed)
			}
			return res.print(cmd.OutOrStdout(), o.asJSON)
		}),
	}
	o.register(cmd.Flags(), "bench-latency", 1, 5000, 1024)
	return cmd
}

// runSequential sends one record at a time, each after the previous one's
// acknowledgement.
func runSequential(ctx context.Context, c *client.Client, o *benchOpts, s *loadStats) (float64, error) {
	value := make([]byte, o.recordSize)
	rand.Read(value)
	p, err := c.NewProducer(o.producerConfig())
	if err != nil {
		return 0, err
	}
	defer p.Close()
	start := time.Now()
	for i := 0; i < o.records && ctx.Err() == nil; i++ {
		handed := time.Now()
		if _, err := p.SendSync(ctx, client.Record{Value: value}); err != nil {
			s.fail(err)
			continue
		}
		s.ack(handed, len(value))
	}
	return time.Since(start).Seconds(), ctx.Err()
}
