// Command sluice is the single Sluice binary: a cluster node, the admin and
// data CLI, agents, benchmarks and the chaos suite.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice:", err)
		os.Exit(exitCode(err))
	}
}

// exitError carries a specific exit status (e.g. the chaos suite's
// "anomalies found").
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	if e, ok := err.(*exitError); ok {
		return e.code
	}
	return 1
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "sluice",
		Short:         "Sluice: a Raft-replicated, partitioned log store with Flume-style agents",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// 127.0.0.1:7071 first; the local cluster's other nodes as fallbacks so
	// the CLI keeps working after scripts/kill-leader.sh kills n1.
	root.PersistentFlags().String("server", envOr("SLUICE_SERVER", "127.0.0.1:7071,127.0.0.1:7072,127.0.0.1:7073"), "RPC addresses of nodes to try, comma-separated (env SLUICE_SERVER)")
	root.PersistentFlags().Duration("timeout", 30*time.Second, "give up an admin command after this long (produce, consume and node run until done)")
	addClientTLSFlags(root)
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if cmd.Annotations[annotationLongRunning] != "" {
			return nil
		}
		d, _ := cmd.Flags().GetDuration("timeout")
		if d > 0 {
			ctx, cancel := context.WithTimeout(cmd.Context(), d)
			cobra.OnFinalize(cancel)
			cmd.SetContext(ctx)
		}
		return nil
	}
	root.AddCommand(
		newNodeCmd(),
		newTopicCmd(),
		newProduceCmd(),
		newConsumeCmd(),
		newClusterCmd(),
		newBenchCmd(),
		newChaosCmd(),
		newAgentCmd(),
		newGroupCmd(),
	)
	return root
}

// annotationLongRunning marks commands that run until their work is done
// or they are interrupted, so --timeout does not apply.
const annotationLongRunning = "long-running"

var longRunning = map[string]string{annotationLongRunning: "true"}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
