package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

// idleResult is what `bench idle --json` prints.
type idleResult struct {
	Mode       string `json:"mode"`
	Partitions int    `json:"partitions"`
	Replicas   int    `json:"replicas"`
	Topics     int    `json:"topics"`
	// Created counts the partitions this run created (existing topics are
	// kept and not timed).
	Created       int     `json:"created"`
	CreateSeconds float64 `json:"create_seconds"`
	// CreateMaxTopicSeconds is the slowest topic (create + every partition led).
	CreateMaxTopicSeconds float64 `json:"create_max_topic_seconds"`
	// CPUPct is the nodes' CPU use with no traffic, in % of one core,
	// summed over the nodes; RSSMB their resident memory, summed.
	CPUPct          float64              `json:"cpu_pct"`
	RSSMB           float64              `json:"rss_mb"`
	BaselineCPUPct  float64              `json:"baseline_cpu_pct"`
	BaselineRSSMB   float64              `json:"baseline_rss_mb"`
	IntervalSeconds float64              `json:"interval_seconds"`
	Nodes           map[string]cpuSample `json:"nodes"`
	Stopped         string               `json:"stopped,omitempty"`
}

func newBenchIdleCmd() *cobra.Command {
	var partitions, perTopic, replicas int
	var prefix, pidDir string
	var settle, interval, baseline, topicTimeout time.Duration
	var maxRSSMB float64
	var asJSON bool
	cmd := &cobra.Command{
		Use:         "idle",
		Annotations: longRunning,
		Short:       "Create many partitions, then measure the nodes' CPU and RSS with no traffic",
		Long: `Samples the CPU (% of one core, from /proc/<pid>/stat utime+stime) and RSS
(/proc/<pid>/status VmRSS) of the node processes named by the pid files in
--pid-dir over --baseline; creates --partitions partitions in topics of
--per-topic (<prefix>-0, <prefix>-1, ...; one after another, each waited for
until every partition has a leader) and times it; waits --settle; then
samples again over --interval. Creation stops early, and says why, when a
topic fails or the nodes' RSS together exceeds --max-rss-mb, so that a
cluster in trouble does not take the machine down with it.`,
		Args: cobra.NoArgs,
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if partitions <= 0 || perTopic <= 0 || replicas <= 0 {
				return fmt.Errorf("--partitions, --per-topic and --replicas must be positive")
			}
			ctx := cmd.Context()
			stderr := cmd.ErrOrStderr()
			pids, err := nodePids(pidDir)
			if err != nil {
				return err
			}
			res := idleResult{Mode: "idle", Partitions: partitions, Replicas: replicas, IntervalSeconds: interval.Seconds()}
			sleep := func(d time.Duration) error { return sleepCtx(ctx, d) }
			if baseline > 0 {
				fmt.Fprintf(stderr, "idle: sampling %d nodes for %s before creating partitions\n", len(pids), baseline)
				s, err := sampleProcs(pids, baseline, sleep)
				if err != nil {
					return err
				}
				res.BaselineCPUPct, res.BaselineRSSMB = sumSamples(s)
			}
			start := time.Now()
			for t, left := 0, partitions; left > 0; t, left = t+1, left-perTopic {
				name := fmt.Sprintf("%s-%d", prefix, t)
				n := min(perTopic, left)
				t0 := time.Now()
				tctx, cancel := context.WithTimeout(ctx, topicTimeout)
				err := c.CreateTopic(tctx, transport.CreateTopicRequest{Name: name, Partitions: n, ReplicationFactor: replicas})
				existed := transport.CodeOf(err) == transport.ErrTopicExists
				if err == nil || existed {
					err = waitForLeaders(tctx, c, name)
				}
				cancel()
				if err != nil {
					res.Stopped = fmt.Sprintf("topic %s: %v", name, err)
					break
				}
				res.Topics++
				if !existed {
					res.Created += n
					res.CreateMaxTopicSeconds = max(res.CreateMaxTopicSeconds, time.Since(t0).Seconds())
				}
				rss := 0.0
				for id, pid := range pids {
					b, err := procRSS(pid)
					if err != nil {
						res.Stopped = fmt.Sprintf("node %s: %v", id, err)
					}
					rss += float64(b) / (1 << 20)
				}
				fmt.Fprintf(stderr, "idle %4.0fs: topic %s (%d partitions) ready in %.1fs, %d partitions so far, nodes' RSS %.0f MiB\n",
					time.Since(start).Seconds(), name, n, time.Since(t0).Seconds(), res.Created, rss)
				if res.Stopped == "" && rss > maxRSSMB {
					res.Stopped = fmt.Sprintf("the nodes' RSS together (%.0f MiB) exceeds --max-rss-mb %.0f", rss, maxRSSMB)
				}
				if res.Stopped != "" {
					break
				}
			}
			res.CreateSeconds = time.Since(start).Seconds()
			if res.Stopped != "" {
				fmt.Fprintln(stderr, "idle: stopped creating:", res.Stopped)
			}
			fmt.Fprintf(stderr, "idle: settling for %s, then sampling for %s\n", settle, interval)
			if err := sleepCtx(ctx, settle); err != nil {
				return err
			}
			s, err := sampleProcs(pids, interval, sleep)
			if err != nil {
				return err
			}
			res.Nodes = s
			res.CPUPct, res.RSSMB = sumSamples(s)
			if asJSON {
				return printJSONLine(cmd.OutOrStdout(), res)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "idle: %d partitions (R=%d) in %d topics; created %d in %.1fs (slowest topic %.1fs)\n",
				res.Created, replicas, res.Topics, res.Created, res.CreateSeconds, res.CreateMaxTopicSeconds)
			fmt.Fprintf(w, "%d nodes with no traffic over %s: %.1f%% of one core, %.0f MiB RSS together (before creating: %.1f%%, %.0f MiB)\n",
				len(s), interval, res.CPUPct, res.RSSMB, res.BaselineCPUPct, res.BaselineRSSMB)
			for _, id := range sortedIDs(pids) {
				fmt.Fprintf(w, "  %s: %.1f%% of one core, %.0f MiB\n", id, s[id].CPUPct, s[id].RSSMB)
			}
			if res.Stopped != "" {
				fmt.Fprintln(w, "stopped creating early:", res.Stopped)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.IntVar(&partitions, "partitions", 1000, "partitions to host")
	f.IntVar(&perTopic, "per-topic", 100, "partitions per topic")
	f.IntVar(&replicas, "replicas", 3, "replication factor")
	f.StringVar(&prefix, "topic-prefix", "idle", "topic names: PREFIX-0, PREFIX-1, ...")
	f.StringVar(&pidDir, "pid-dir", defaultPidDir(), "directory of the nodes' pid files <node id>.pid (env SLUICE_DATA, as scripts/cluster.sh)")
	f.DurationVar(&baseline, "baseline", 10*time.Second, "sample this long before creating (0: skip)")
	f.DurationVar(&settle, "settle", 10*time.Second, "wait after creating, before sampling")
	f.DurationVar(&interval, "interval", 30*time.Second, "CPU sampling interval")
	f.DurationVar(&topicTimeout, "topic-timeout", 2*time.Minute, "give up creating a topic (and stop) after this long")
	f.Float64Var(&maxRSSMB, "max-rss-mb", 8192, "stop creating once the nodes' RSS together exceeds this (MiB)")
	f.BoolVar(&asJSON, "json", false, "print the summary as one JSON object on one line")
	return cmd
}

func sumSamples(s map[string]cpuSample) (cpu, rss float64) {
	for _, v := range s {
		cpu += v.CPUPct
		rss += v.RSSMB
	}
	return cpu, rss
}
