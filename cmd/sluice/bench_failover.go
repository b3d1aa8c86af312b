package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

// failoverResult is what `bench failover --json` prints. The latency
// fields describe the steady load over the whole run.
type failoverResult struct {
	benchResult
	Rounds int `json:"rounds"`
	// OutageMs[i] is, for round i, the time from the SIGKILL of the
	// partition leader to the first acknowledgement of a record handed
	// over after the process was gone.
	OutageMs       []float64 `json:"outage_ms"`
	OutageMedianMs float64   `json:"outage_median_ms"`
	OutageMaxMs    float64   `json:"outage_max_ms"`
	Killed         []string  `json:"killed"`
}

func newBenchFailoverCmd() *cobra.Command {
	var o benchOpts
	var rounds int
	var pidDir, restart string
	var settle, roundTimeout time.Duration
	cmd := &cobra.Command{
		Use:         "failover",
		Annotations: longRunning,
		Short:       "Kill -9 a partition leader under a steady load; time until writes are acknowledged again",
		Long: `Runs a steady open-loop load (--rate records/s) into partition 0 of --topic and,
--rounds times: finds the partition's leader, kill -9s its process (pid from
<pid-dir>/<node id>.pid, as scripts/cluster.sh writes them), and measures the
time from the kill to the first acknowledgement of a record handed over
after the process was gone. It then restarts the node with --restart (run by
sh -c in the current directory, with this environment: SLUICE_DATA,
SLUICE_PORT_OFFSET and SLUICE_BIN pass through to scripts/cluster.sh) and
waits until the restarted replica has caught up (the killed node's pid file is
removed first: a zombie not yet reaped would look alive to cluster.sh) before the next round.
Reports the median and maximum outage.`,
		Args: cobra.NoArgs,
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			if rounds <= 0 || o.rate <= 0 {
				return fmt.Errorf("--rounds and --rate must be positive")
			}
			ctx := cmd.Context()
			if err := ensureTopic(ctx, c, o.topic, o.partitions, o.replicas); err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			res := failoverResult{Rounds: rounds}
			res.Mode = "failover"
			res.setProducer(&o)

			// killedAt is the time the leader was seen gone (unix ns);
			// firstAck the first acknowledgement of a record handed over
			// after it.
			var killedAt, firstAck atomic.Int64
			var s loadStats
			s.onAck = func(handed, acked time.Time) {
				k := killedAt.Load()
				if k != 0 && handed.UnixNano() >= k {
					firstAck.CompareAndSwap(0, acked.UnixNano())
				}
			}
			loadCtx, stopLoad := context.WithCancel(ctx)
			defer stopLoad()
			var wg sync.WaitGroup
			var loadSecs float64
			wg.Add(1)
			go func() {
				defer wg.Done()
				loadSecs, _ = runLoad(loadCtx, c, loadSpec{opts: &o, cfg: o.producerConfig(), part: 0, records: -1}, &s)
			}()
			stopProgress := startProgress(stderr, "failover load", &s, 0, o.quiet)
			err := func() error {
				for r := 1; r <= rounds; r++ {
					if err := waitAcking(ctx, &s, settle); err != nil {
						return fmt.Errorf("round %d: %w", r, err)
					}
					id, _, err := c.LeaderAddr(ctx, o.topic, 0)
					if err != nil {
						return fmt.Errorf("round %d: leader of %s/0: %w", r, o.topic, err)
					}
					pid, err := readPidFile(pidDir, id)
					if err != nil {
						return fmt.Errorf("round %d: %w", r, err)
					}
					firstAck.Store(0)
					kill := time.Now()
					if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
						return fmt.Errorf("round %d: kill -9 %s (pid %d): %w", r, id, pid, err)
					}
					for !procGone(pid) {
						time.Sleep(time.Millisecond)
					}
					killedAt.Store(time.Now().UnixNano())
					deadline := time.Now().Add(roundTimeout)
					for firstAck.Load() == 0 {
						if time.Now().After(deadline) {
							return fmt.Errorf("round %d: no write acknowledged within %s of killing %s", r, roundTimeout, id)
						}
						if err := sleepCtx(ctx, time.Millisecond); err != nil {
							return err
						}
					}
					killedAt.Store(0)
					outage := time.Duration(firstAck.Load() - kill.UnixNano())
					ms := float64(outage.Microseconds()) / 1000
					res.OutageMs = append(res.OutageMs, ms)
					res.Killed = append(res.Killed, id)
					fmt.Fprintf(stderr, "failover round %d/%d: killed leader %s (pid %d), writes acknowledged again after %.0f ms\n", r, rounds, id, pid, ms)
					// A killed process may linger as a zombie until its
					// parent reaps it, and cluster.sh would take it for a
					// running node: drop the pid file it left.
					if err := removePidFile(pidDir, id, pid); err != nil {
						return fmt.Errorf("round %d: %w", r, err)
					}
					if err := restartNode(ctx, restart, stderr); err != nil {
						return fmt.Errorf("round %d: restart %s: %w", r, id, err)
					}
					if err := waitCaughtUp(ctx, c, o.topic, id, roundTimeout); err != nil {
						return fmt.Errorf("round %d: %w", r, err)
					}
				}
				return nil
			}()
			stopLoad()
			wg.Wait()
			stopProgress()
			if err != nil {
				return err
			}
			res.fill(&s, loadSecs)
			sorted := slices.Clone(res.OutageMs)
			slices.Sort(sorted)
			res.OutageMedianMs = median(sorted)
			res.OutageMaxMs = sorted[len(sorted)-1]
			if o.asJSON {
				return printJSONLine(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "failover %s: %d rounds, writes acknowledged again after median %.0f ms, max %.0f ms (each: %v ms)\n",
				o.topic, rounds, res.OutageMedianMs, res.OutageMaxMs, res.OutageMs)
			return res.benchResult.print(cmd.OutOrStdout(), false)
		}),
	}
	o.register(cmd.Flags(), "bench-failover", 1, 1, 100)
	f := cmd.Flags()
	f.Lookup("records").Usage = "unused: the load runs until the last round ends"
	f.Lookup("rate").DefValue = "1000"
	o.rate = 1000
	f.Lookup("linger").DefValue = "-1ns"
	o.linger = -1
	f.IntVar(&rounds, "rounds", 10, "kills to measure")
	f.StringVar(&pidDir, "pid-dir", defaultPidDir(), "directory of the nodes' pid files <node id>.pid (env SLUICE_DATA, as scripts/cluster.sh)")
	f.StringVar(&restart, "restart", "scripts/cluster.sh start", "shell command that restarts the killed node (starts the nodes not running)")
	f.DurationVar(&settle, "settle", 3*time.Second, "steady acknowledgements before each kill")
	f.DurationVar(&roundTimeout, "round-timeout", 60*time.Second, "give up a round (recovery or catch-up) after this long")
	return cmd
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitAcking waits for d during which acknowledgements keep coming.
func waitAcking(ctx context.Context, s *loadStats, d time.Duration) error {
	before := s.acked.Load()
	if err := sleepCtx(ctx, d); err != nil {
		return err
	}
	for i := 0; s.acked.Load() == before; i++ {
		if i > 600 {
			return fmt.Errorf("the load gets no acknowledgements")
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

func restartNode(ctx context.Context, command string, stderr interface{ Write([]byte) (int, error) }) error {
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.Env = os.Environ()
	return cmd.Run()
}

// waitCaughtUp waits until node id's replica of topic/0 has applied
// everything its leader had committed when the wait began.
func waitCaughtUp(ctx context.Context, c *client.Client, topic, id string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	target := int64(-1)
	for {
		if target < 0 {
			if res, err := c.Fetch(ctx, fetchProbe(topic)); err == nil {
				target = res.HighWatermark
			}
		}
		if target >= 0 {
			if res, err := c.FetchFromNode(ctx, id, fetchProbe(topic)); err == nil && res.HighWatermark >= target {
				return nil
			}
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("replica of %s/0 on %s did not catch up: %w", topic, id, err)
		}
	}
}

// fetchProbe asks for (almost) nothing: only the high watermark matters.
func fetchProbe(topic string) transport.FetchRequest {
	return transport.FetchRequest{Topic: topic, Partition: 0, Offset: 0, MaxBytes: 1, MaxRecords: 1}
}
