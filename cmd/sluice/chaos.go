package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/chaos"
	"github.com/sluice-io/sluice/chaos/checker"
	"github.com/sluice-io/sluice/chaos/nemesis"
	"github.com/sluice-io/sluice/internal/failpoint"
)

// Exit statuses of `sluice chaos` beyond 0 (pass) and 1 (harness error).
const (
	exitChaosAnomalies    = 2
	exitChaosInconclusive = 3
)

func newChaosCmd() *cobra.Command {
	var opts chaos.Options
	var nemeses, failpoints, failpointNode string
	cmd := &cobra.Command{
		Use:         "chaos",
		Annotations: longRunning,
		Short:       "Run the Jepsen-style chaos suite against a local cluster",
		Long: `Starts a local cluster of sluice node processes on 127.0.0.11, .12, ...,
drives it with producers and consumers while faults are injected (kill -9,
SIGSTOP, iptables partitions and packet loss, whole-cluster restarts),
heals everything, reads every partition back from every replica and
checks the history for lost, duplicated or reordered records, divergence,
committed-offset regressions and linearizability (Porcupine).

Results go to STORE/NAME/<timestamp>/: history.jsonl, the nodes' logs,
results.json and index.html with plots.

Nemesis families: kill, pause, partition, restart, combo, all, none; or
kinds: ` + strings.Join(nemesis.AllKinds(), ", ") + `.
Partitions need root and iptables (scripts/ensure-iptables.sh); without them
only the other faults run. Power-loss faults (power-loss: one node,
power-loss-all: every node at once) kill -9 and discard what the node wrote
without fsyncing: the harness mounts a FUSE filesystem that forgets unsynced
writes (chaos/lazyfs) over each node's data directory, which needs root and
/dev/fuse; without them those faults are reported as SKIPPED.

With --docker the nodes run as Docker containers instead (an engine must
answer 'docker info', else the command fails): an image FROM scratch holding
a static sluice binary is built locally (nothing is pulled; a dynamically
linked --binary is replaced by a CGO_ENABLED=0 build of the Sluice source
the command runs in), every node gets a fixed address on a bridge network of
the run's own (172.28.X.0/24) with its data bind-mounted from the run
folder, and the harness talks to the containers from the host. Faults: kill
= docker kill -s KILL then docker start, pause = docker pause/unpause,
partitions = iptables rules in a chain of the run's own jumped to from
DOCKER-USER (bridge netfilter is turned on if needed), or with
--docker-partitions disconnect (also the fallback when iptables cannot be
used) docker network disconnect/connect, which isolates single nodes only.
Containers, network and chain are removed at the end, also on ^C; the image
(sluice-chaos:<hash of the binary>, label io.sluice.chaos) is kept for the
next run.

Exit status: 0 pass, 2 anomalies found, 3 inconclusive (e.g. the
linearizability check timed out or a final read failed), 1 harness error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Binary == "" {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("chaos: --binary not given and own executable unknown: %w", err)
				}
				opts.Binary = exe
			}
			if failpoints != "" {
				key := "*"
				if failpointNode != "" {
					key = failpointNode
				}
				opts.NodeEnv = map[string][]string{key: {failpoint.EnvVar + "=" + failpoints}}
			}
			opts.Nemeses = splitList(nemeses)
			if opts.Nemeses == nil {
				opts.Nemeses = []string{"none"}
			}
			res, err := chaos.Run(cmd.Context(), opts)
			if res != nil {
				fmt.Fprint(cmd.OutOrStdout(), res.Summary())
			}
			switch {
			case res == nil:
				return err
			case res.Verdict == checker.Fail:
				return &exitError{code: exitChaosAnomalies, err: fmt.Errorf("chaos: %d anomalies found (see %s)", res.AnomalyCount(), res.Dir)}
			case err != nil:
				return err
			case res.Verdict == checker.Inconclusive:
				return &exitError{code: exitChaosInconclusive, err: errors.New("chaos: inconclusive (see " + res.Dir + ")")}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Name, "name", "sluice", "test name (results go to STORE/NAME/<timestamp>)")
	f.StringVar(&opts.Store, "store", "store", "results folder")
	f.StringVar(&opts.Binary, "binary", "", "sluice binary that runs the nodes (default: this executable)")
	f.IntVar(&opts.Nodes, "nodes", 5, "number of nodes")
	f.DurationVar(&opts.TimeLimit, "time-limit", 300*time.Second, "how long to inject faults under load")
	f.DurationVar(&opts.Recovery, "recovery", 10*time.Second, "load on the healed cluster before the final reads")
	f.StringVar(&nemeses, "nemesis", "partition,kill,pause", "comma-separated fault families or kinds")
	f.DurationVar(&opts.Interval, "interval", 10*time.Second, "time between a fault and its heal, and between a heal and the next fault")
	f.Float64Var(&opts.Rate, "rate", 500, "target sends per second over all producers")
	f.StringVar(&opts.Client, "client", "native", "how the workload reaches the cluster: native (the Go client) or kafka (franz-go through the nodes' Kafka listeners)")
	f.StringVar(&opts.Topic, "topic", "chaos", "topic the workload uses")
	f.IntVar(&opts.Partitions, "partitions", 4, "partitions of the topic")
	f.IntVar(&opts.ReplicationFactor, "replication-factor", 0, "replication factor (default min(3, nodes))")
	f.IntVar(&opts.Producers, "producers", 0, "producer workers, spread over the partitions (default 2 × partitions)")
	f.DurationVar(&opts.OpTimeout, "op-timeout", 5*time.Second, "timeout of each client operation")
	f.DurationVar(&opts.LinearizabilityTimeout, "linearizability-timeout", 60*time.Second, "Porcupine time budget per partition (a timeout is inconclusive)")
	f.Int64Var(&opts.Seed, "seed", 0, "random seed of the fault choices (default: time-based)")
	f.IntVar(&opts.BaseHost, "base-host", 11, "node i listens on 127.0.0.(BASE+i-1) (process mode)")
	f.BoolVar(&opts.KeepData, "keep-data", false, "keep the nodes' data directories of a passing run")
	f.IntVar(&opts.Faults, "faults", 0, "soak: run this many fault/heal cycles (sets --time-limit to (2×N+1)×interval)")
	f.IntVar(&opts.WindowFaults, "window-faults", 10, "soak: check the history in windows of this many fault cycles, the workload pausing briefly between windows (negative: check it as one)")
	f.StringVar(&failpoints, "failpoints", "", "failpoints to switch on in the nodes (a -tags failpoints --binary): "+strings.Join(failpoint.Names, ", "))
	f.StringVar(&failpointNode, "failpoint-node", "", "switch the failpoints on in this node only (n1, n2, ...; default every node)")
	f.BoolVar(&opts.TornWrites, "torn-writes", false, "power loss keeps a random prefix of each file's last unsynced write")
	f.BoolVar(&opts.StrictDirs, "strict-dirs", false, "power loss keeps only directory entries whose directory was fsynced (default: any fsync commits them, as ext4)")
	f.BoolVar(&opts.Docker, "docker", false, "run the nodes as Docker containers (image FROM scratch, network of the run's own) instead of processes")
	f.StringVar(&opts.DockerPartitions, "docker-partitions", "auto", "with --docker, how to partition: auto, iptables or disconnect")
	return cmd
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
