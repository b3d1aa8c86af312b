package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/agent"
	"github.com/sluice-io/sluice/agent/config"
	"github.com/sluice-io/sluice/agent/flow"
	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

// agentBenchResult is what `bench agent --json` prints.
type agentBenchResult struct {
	Events          int     `json:"events"`
	EventBytes      int     `json:"event_bytes"`
	AcceptSeconds   float64 `json:"accept_seconds"`
	AcceptedPerSec  float64 `json:"accepted_per_sec"`
	DeliverSeconds  float64 `json:"deliver_seconds"`
	DeliveredPerSec float64 `json:"delivered_per_sec"`
	P50Ms           float64 `json:"latency_p50_ms"`
	P99Ms           float64 `json:"latency_p99_ms"`
	P999Ms          float64 `json:"latency_p999_ms"`
	Duplicates      int     `json:"duplicates"`
}

func newBenchAgentCmd() *cobra.Command {
	var (
		topic, dataDir                      string
		events, size, conns, parts, rf, bsz int
		sinks                               int
		asJSON                              bool
	)
	cmd := &cobra.Command{
		Use:         "agent",
		Annotations: longRunning,
		Short:       "Measure an in-process agent: netcat → file channel → sluice sink (events/s, end-to-end latency)",
		Long: `Runs an agent in this process (netcat source on a free loopback port, file
channel under --data-dir, sluice sink into TOPIC of the cluster at --server)
and pushes --events lines of --size bytes through --conns pipelined netcat
connections. Reports the rate the source accepted them (each acknowledged
after its file channel commit), the rate they reached the topic, and the
end-to-end latency (send → read back by a consumer) percentiles.`,
		Args: cobra.NoArgs,
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			ctx := cmd.Context()
			err := c.CreateTopic(ctx, transport.CreateTopicRequest{Name: topic, Partitions: parts, ReplicationFactor: rf})
			if err != nil && transport.CodeOf(err) != transport.ErrTopicExists {
				return err
			}
			if err := waitForLeaders(ctx, c, topic); err != nil {
				return err
			}
			servers, _ := cmd.Flags().GetString("server")
			tlsCfg, err := clientTLS(cmd)
			if err != nil {
				return err
			}
			res, err := runAgentBench(ctx, c, servers, tlsCfg, agentBenchOpts{
				topic: topic, dataDir: dataDir, events: events, size: size, conns: conns, batch: bsz, sinks: sinks,
			})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d events of %d bytes: accepted %.0f events/s (%.2fs), delivered %.0f events/s (%.2fs)\nend-to-end latency p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms; %d duplicates\n",
				res.Events, res.EventBytes, res.AcceptedPerSec, res.AcceptSeconds, res.DeliveredPerSec, res.DeliverSeconds, res.P50Ms, res.P99Ms, res.P999Ms, res.Duplicates)
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&topic, "topic", "bench-agent", "topic (created when missing)")
	f.StringVar(&dataDir, "data-dir", "", "file channel directory (default: a temporary one, removed afterwards)")
	f.IntVar(&events, "events", 200000, "events to send")
	f.IntVar(&size, "size", 200, "event body bytes")
	f.IntVar(&conns, "conns", 4, "netcat connections")
	f.IntVar(&parts, "partitions", 3, "partitions when creating the topic")
	f.IntVar(&rf, "replicas", 3, "replication factor when creating the topic")
	f.IntVar(&bsz, "batch-size", 1000, "sink batchSize")
	f.IntVar(&sinks, "sinks", 1, "sluice sinks draining the channel")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

type agentBenchOpts struct {
	topic, dataDir                    string
	events, size, conns, batch, sinks int
}

func runAgentBench(ctx context.Context, c *client.Client, servers string, tlsCfg *tls.Config, o agentBenchOpts) (agentBenchResult, error) {
	res := agentBenchResult{Events: o.events, EventBytes: o.size}
	if o.dataDir == "" {
		d, err := os.MkdirTemp("", "sluice-bench-agent-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(d)
		o.dataDir = d
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	addr := ln.Addr().String()
	ln.Close()
	host, port, _ := net.SplitHostPort(addr)
	var sinkNames []string
	var b strings.Builder
	for i := range o.sinks {
		n := fmt.Sprintf("k%d", i+1)
		sinkNames = append(sinkNames, n)
		fmt.Fprintf(&b, "b.sinks.%s.type = sluice\nb.sinks.%s.topic = %s\nb.sinks.%s.channel = c1\nb.sinks.%s.batchSize = %d\nb.sinks.%s.servers = %s\n", n, n, o.topic, n, n, o.batch, n, servers)
	}
	conf := fmt.Sprintf(`b.sources = r1
b.channels = c1
b.sinks = %s
b.sources.r1.type = netcat
b.sources.r1.bind = %s
b.sources.r1.port = %s
b.sources.r1.max-line-length = %d
b.sources.r1.channels = c1
b.channels.c1.type = file
b.channels.c1.checkpointDir = %s
b.channels.c1.dataDirs = %s
b.channels.c1.transactionCapacity = 10000
%s`, strings.Join(sinkNames, " "), host, port, o.size+64, filepath.Join(o.dataDir, "ckpt"), filepath.Join(o.dataDir, "data"), b.String())
	reg := agent.DefaultRegistry(nil)
	cfg, _, err := config.Load(strings.NewReader(conf), "b", reg.Catalog(), config.Options{})
	if err != nil {
		return res, err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, _, err := agent.Build(cfg, reg, flow.Deps{Logger: logger, TLS: tlsCfg}, agent.Options{}, nil)
	if err != nil {
		return res, err
	}
	if err := a.Start(ctx); err != nil {
		return res, err
	}
	defer a.Stop(context.Background())

	cons, err := c.NewConsumer(ctx, client.ConsumerConfig{Topic: o.topic, Start: transport.OffsetLatest, MaxWait: 100 * time.Millisecond})
	if err != nil {
		return res, err
	}
	var (
		lat      []time.Duration
		seen     = make([]bool, o.events)
		consumed int
		done     = make(chan error, 1)
	)
	go func() {
		for consumed < o.events {
			recs, err := cons.Poll(ctx)
			if err != nil && ctx.Err() != nil {
				done <- err
				return
			}
			now := time.Now()
			for _, r := range recs {
				f := strings.Fields(string(r.Value))
				if len(f) < 2 {
					continue
				}
				i, err1 := strconv.Atoi(f[0])
				ns, err2 := strconv.ParseInt(f[1], 10, 64)
				if err1 != nil || err2 != nil || i < 0 || i >= o.events {
					continue
				}
				if seen[i] {
					res.Duplicates++
					continue
				}
				seen[i] = true
				consumed++
				lat = append(lat, now.Sub(time.Unix(0, ns)))
			}
		}
		done <- nil
	}()

	start := time.Now()
	var wg sync.WaitGroup
	var sendErr atomic.Value
	per := (o.events + o.conns - 1) / o.conns
	for ci := range o.conns {
		from, to := ci*per, min((ci+1)*per, o.events)
		if from >= to {
			continue
		}
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return res, err
		}
		defer conn.Close()
		wg.Add(2)
		go func() { // writer: pipelined lines
			defer wg.Done()
			w := bufio.NewWriterSize(conn, 256<<10)
			pad := strings.Repeat("x", o.size)
			for i := from; i < to; i++ {
				line := fmt.Sprintf("%d %d ", i, time.Now().UnixNano())
				if len(line) < o.size {
					line += pad[:o.size-len(line)]
				}
				w.WriteString(line)
				w.WriteByte('\n')
				if w.Buffered() > 64<<10 {
					if err := w.Flush(); err != nil {
						sendErr.Store(err)
						return
					}
				}
			}
			if err := w.Flush(); err != nil {
				sendErr.Store(err)
			}
		}()
		go func() { // reader: one OK per accepted event
			defer wg.Done()
			r := bufio.NewReader(conn)
			for i := from; i < to; i++ {
				line, err := r.ReadString('\n')
				if err != nil {
					sendErr.Store(err)
					return
				}
				if line != "OK\n" {
					sendErr.Store(fmt.Errorf("netcat source answered %q", strings.TrimSpace(line)))
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := sendErr.Load().(error); err != nil {
		return res, err
	}
	res.AcceptSeconds = time.Since(start).Seconds()
	if err := <-done; err != nil {
		return res, fmt.Errorf("reading back: %w", err)
	}
	res.DeliverSeconds = time.Since(start).Seconds()
	res.AcceptedPerSec = float64(o.events) / res.AcceptSeconds
	res.DeliveredPerSec = float64(o.events) / res.DeliverSeconds
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	res.P50Ms, res.P99Ms, res.P999Ms = pct(0.50), pct(0.99), pct(0.999)
	return res, nil
}
