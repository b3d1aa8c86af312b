package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/node"
)

func newNodeCmd() *cobra.Command {
	var cfg node.Config
	var join, logLevel string
	var kafkaAutoCreate, autoLeaderRebalance bool
	cmd := &cobra.Command{
		Use:         "node",
		Annotations: longRunning,
		Short:       "Run a cluster node",
		Args:        cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			for _, s := range strings.Split(join, ",") {
				if s = strings.TrimSpace(s); s != "" {
					cfg.Join = append(cfg.Join, s)
				}
			}
			cfg.KafkaNoAutoCreate = !kafkaAutoCreate
			cfg.LeaderRebalanceDisabled = !autoLeaderRebalance
			n, err := node.Start(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			waitForStop(cmd.Context(), n)
			cfg.Logger.Info("signal received, shutting down")
			return n.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.ID, "id", "", "unique node id (required)")
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory for Raft logs, snapshots and partition segments (required)")
	f.StringVar(&cfg.Addr, "addr", "127.0.0.1:7071", "RPC and Raft address (host:port); its host is the source address of every connection the node opens")
	f.StringVar(&cfg.GossipAddr, "gossip-addr", "127.0.0.1:7946", "gossip address (TCP and UDP)")
	f.StringVar(&cfg.HTTPAddr, "http-addr", "127.0.0.1:8081", "HTTP address for /healthz, /v1/status, /metrics (empty disables)")
	f.StringVar(&join, "join", "", "comma-separated gossip addresses of nodes to join")
	f.IntVar(&cfg.BootstrapExpect, "bootstrap-expect", 3, "number of nodes that form the metadata group on first start")
	f.IntVar(&cfg.MaxBatchBytes, "max-batch-bytes", 1<<20, "largest record batch a produce may carry")
	f.StringVar(&cfg.TLSCAFile, "tls-ca", os.Getenv("SLUICE_TLS_CA"), "CA certificate (PEM) that signs every node and client certificate; with --tls-cert and --tls-key, all RPC and Raft traffic is mutual TLS (env SLUICE_TLS_CA)")
	f.StringVar(&cfg.TLSCertFile, "tls-cert", os.Getenv("SLUICE_TLS_CERT"), "this node's certificate (PEM), valid for server and client auth, with its addresses as SANs (env SLUICE_TLS_CERT)")
	f.StringVar(&cfg.TLSKeyFile, "tls-key", os.Getenv("SLUICE_TLS_KEY"), "this node's private key (PEM) (env SLUICE_TLS_KEY)")
	f.StringVar(&cfg.GossipKey, "gossip-key", os.Getenv("SLUICE_GOSSIP_KEY"), "base64 of a 16, 24 or 32-byte key encrypting gossip; the same on every node (env SLUICE_GOSSIP_KEY)")
	f.IntVar(&cfg.MaxConns, "max-connections", 1024, "most client connections open at once; more are closed at once (Raft connections of members do not count)")
	f.Int64Var(&cfg.MaxInFlightBytes, "max-inflight-bytes", 256<<20, "most request bytes read and not yet answered, over all connections; further requests wait")
	f.StringVar(&cfg.KafkaAddr, "kafka-addr", "", "Kafka wire-protocol listener address (host:port); empty disables it")
	f.StringVar(&cfg.KafkaAdvertisedAddr, "kafka-advertised-addr", "", "Kafka address given to clients in metadata (default: the bound --kafka-addr)")
	f.BoolVar(&kafkaAutoCreate, "kafka-auto-create-topics", true, "let Kafka clients create missing topics (Metadata/Produce), as Kafka's auto.create.topics.enable")
	f.IntVar(&cfg.KafkaDefaultPartitions, "kafka-default-partitions", 3, "partitions of a topic auto-created or created without a count by a Kafka client")
	f.DurationVar(&cfg.OffsetsRetention, "offsets-retention", 7*24*time.Hour, "expire a consumer group's offsets this long after its last commit (negative: never)")
	f.DurationVar(&cfg.MaxTimestampAhead, "max-timestamp-ahead", time.Hour, "refuse record batches timestamped further ahead of the leader's clock (negative: no check)")
	f.Int64Var(&cfg.MinFreeBytes, "min-free-bytes", 64<<20, "free-space floor of the data dir: below it produces and offset commits are refused (retriable) until space is freed; negative disables")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&cfg.AgentConfig, "agent-config", "", "Flume properties file of an agent to run in-process (colocated; SIGHUP reloads it)")
	f.StringVar(&cfg.AgentName, "agent-name", "a1", "name of the colocated agent in --agent-config")
	f.DurationVar(&cfg.AgentPoll, "agent-poll-interval", 30*time.Second, "how often --agent-config is checked for changes (negative disables)")
	f.BoolVar(&autoLeaderRebalance, "auto-leader-rebalance", true, "move partition leadership back to preferred replicas (the first replica) periodically, as Kafka's auto.leader.rebalance.enable")
	f.DurationVar(&cfg.LeaderImbalanceCheckInterval, "leader-imbalance-check-interval", 5*time.Minute, "how often the controller checks the leader imbalance")
	f.IntVar(&cfg.LeaderImbalancePerNodePercentage, "leader-imbalance-per-node-percentage", 10, "share of a node's preferred partitions led elsewhere above which the check moves them back (1-100)")
	f.DurationVar(&cfg.ReassignStallTimeout, "reassign-stall-timeout", 2*time.Minute, "roll back a replica move that makes no progress this long while adding replicas (e.g. the new replica's node is down)")
	f.DurationVar(&cfg.ReplaceDeadNodesAfter, "replace-dead-nodes-after", 0, "move the replicas of a node dead this long onto live nodes (0: never, the default)")
	f.IntVar(&cfg.MaxConcurrentMoves, "max-concurrent-moves", 2, "most moves the controller starts at once when replacing dead nodes")
	cmd.MarkFlagRequired("id")
	cmd.MarkFlagRequired("data-dir")
	cmd.AddCommand(newNodeDecommissionCmd(), newNodeRecommissionCmd())
	return cmd
}
