package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

func newConsumeCmd() *cobra.Command {
	var (
		fromBeginning, end, asJSON, printKey, headers bool
		offset                                        int64
		partition                                     int32
		group                                         string
		maxRecords                                    int
		wait                                          time.Duration
	)
	cmd := &cobra.Command{
		Use:         "consume TOPIC",
		Annotations: longRunning,
		Short:       "Print records, one value per line",
		Long: `Prints records of a topic, one value per line (or one JSON object per line
with --json). Starts at the end unless --from-beginning or --offset is
given; with --group it resumes from the group's committed offsets and
commits what it printed. --end exits once every partition's end is reached.`,
		Args: cobra.ExactArgs(1),
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			ctx := cmd.Context()
			topic := args[0]
			cfg := client.ConsumerConfig{Topic: topic, Group: group, Start: transport.OffsetLatest, MaxWait: wait}
			if fromBeginning {
				cfg.Start = transport.OffsetEarliest
			}
			if cmd.Flags().Changed("offset") {
				if offset < 0 {
					return fmt.Errorf("--offset must be >= 0, got %d", offset)
				}
				cfg.Start = offset
			}
			if partition >= 0 {
				cfg.Partitions = []int32{partition}
			}
			// With --group (and no --partition) this process is a group
			// member: several share the partitions and rebalance.
			var cons interface {
				Poll(context.Context) ([]client.Record, error)
				AtEnd() bool
			}
			if group != "" && partition < 0 {
				gc, err := c.NewGroupConsumer(ctx, client.GroupConsumerConfig{Group: group, Topic: topic, ClientID: "sluice-consume", Start: cfg.Start, MaxWait: wait})
				if err != nil {
					return err
				}
				defer func() {
					cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					gc.Close(cctx)
				}()
				cons = gc
			} else {
				pc, err := c.NewConsumer(ctx, cfg)
				if err != nil {
					return err
				}
				cons = pc
			}
			out := bufio.NewWriterSize(cmd.OutOrStdout(), 64*1024)
			defer out.Flush()
			enc := json.NewEncoder(out)
			printed := 0
			for maxRecords <= 0 || printed < maxRecords {
				recs, err := cons.Poll(ctx)
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					return err
				}
				next := map[int32]int64{}
				for i, r := range recs {
					if maxRecords > 0 && printed >= maxRecords {
						// Rewind to what was not printed, so the group
						// member's own commit (on close, before a
						// rebalance) does not skip it.
						rewindUnprinted(cons, recs[i:])
						break
					}
					if asJSON {
						enc.Encode(jsonRecord(r))
					} else {
						if headers {
							writeHeaders(out, r.Headers)
							out.WriteByte('\t')
						}
						if printKey {
							out.Write(r.Key)
							out.WriteByte('\t')
						}
						out.Write(r.Value)
						out.WriteByte('\n')
					}
					next[r.Partition] = r.Offset + 1
					printed++
				}
				if err := out.Flush(); err != nil {
					return err
				}
				if group != "" && len(next) > 0 {
					if err := commitPrinted(cmd, c, group, topic, next); err != nil {
						return err
					}
				}
				if end && cons.AtEnd() {
					break
				}
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&fromBeginning, "from-beginning", false, "start at the earliest offset (when the group has no committed offset)")
	f.Int64Var(&offset, "offset", 0, "start at this offset")
	f.Int32Var(&partition, "partition", -1, "read only this partition")
	f.StringVar(&group, "group", "", "consumer group: resume from and commit to its offsets")
	f.IntVar(&maxRecords, "max", 0, "exit after this many records (0: no limit)")
	f.BoolVar(&end, "end", false, "exit once the end of every partition is reached (like kcat -e)")
	f.BoolVar(&asJSON, "json", false, "print each record as a JSON object")
	f.BoolVar(&printKey, "print-key", false, "print key<TAB>value")
	f.BoolVar(&headers, "headers", false, "print the record headers as {k=v, ...}<TAB> before the value (agents store event headers there)")
	f.DurationVar(&wait, "wait", 500*time.Millisecond, "long-poll wait per fetch")
	return cmd
}

// commitPrinted commits, per partition, the offset after the last printed
// record, so a resumed group neither skips nor repeats.
func commitPrinted(cmd *cobra.Command, c *client.Client, group, topic string, next map[int32]int64) error {
	for p, off := range next {
		if err := c.CommitOffset(cmd.Context(), group, topic, p, off); err != nil {
			return fmt.Errorf("commit offset of group %s, partition %d: %w", group, p, err)
		}
	}
	return nil
}

type recordJSON struct {
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Timestamp time.Time         `json:"timestamp"`
	Key       string            `json:"key,omitempty"`
	Value     string            `json:"value"`
	Headers   map[string]string `json:"headers,omitempty"`
}

func jsonRecord(r client.Record) recordJSON {
	j := recordJSON{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp, Key: string(r.Key), Value: string(r.Value)}
	for _, h := range r.Headers {
		if j.Headers == nil {
			j.Headers = map[string]string{}
		}
		j.Headers[h.Key] = string(h.Value)
	}
	return j
}

// writeHeaders prints headers as {k=v, k=v}, in record order.
func writeHeaders(w *bufio.Writer, hs []client.Header) {
	w.WriteByte('{')
	for i, h := range hs {
		if i > 0 {
			w.WriteString(", ")
		}
		w.WriteString(h.Key)
		w.WriteByte('=')
		w.Write(h.Value)
	}
	w.WriteByte('}')
}

// rewindUnprinted seeks every partition back to its first record in
// unprinted, when the consumer can seek.
func rewindUnprinted(cons any, unprinted []client.Record) {
	s, ok := cons.(interface {
		Seek(partition int32, offset int64) error
	})
	if !ok {
		return
	}
	first := map[int32]int64{}
	for _, r := range unprinted {
		if _, seen := first[r.Partition]; !seen {
			first[r.Partition] = r.Offset
		}
	}
	for p, off := range first {
		_ = s.Seek(p, off)
	}
}
