package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/node"
)

func newNodeCmd() *cobra.Command {
	var cfg node.Config
	var join, logLevel string
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
			n, err := node.Start(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			<-cmd.Context().Done()
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
	f.Int64Var(&cfg.MinFreeBytes, "min-free-bytes", 64<<20, "free-space floor of the data dir: below it produces and offset commits are refused (retriable) until space is freed; negative disables")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.MarkFlagRequired("id")
	cmd.MarkFlagRequired("data-dir")
	return cmd
}
