package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

// newClusterWaitCmd waits until the cluster accepts writes: a metadata
// leader, the expected members alive, and every partition led.
func newClusterWaitCmd() *cobra.Command {
	var nodes int
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait",
		Short: "Wait until the cluster accepts writes",
		Args:  cobra.NoArgs,
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			var last string
			for {
				last = clusterReadiness(ctx, c, nodes)
				if last == "" {
					return nil
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("cluster not ready after %s: %s", timeout, last)
				case <-time.After(250 * time.Millisecond):
				}
			}
		}),
	}
	cmd.Flags().IntVar(&nodes, "nodes", 3, "members that must be alive")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "give up after this long")
	return cmd
}

// clusterReadiness returns "" when ready, else what is missing.
func clusterReadiness(ctx context.Context, c *client.Client, nodes int) string {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	md, err := c.Metadata(rctx)
	if err != nil {
		return err.Error()
	}
	if md.MetadataLeader == "" {
		return "no metadata leader"
	}
	alive := 0
	for _, b := range md.Brokers {
		if b.State == "alive" {
			alive++
		}
	}
	if alive < nodes {
		return fmt.Sprintf("%d of %d nodes registered and alive", alive, nodes)
	}
	for _, t := range md.Topics {
		for _, p := range t.Partitions {
			if p.Leader == "" {
				return fmt.Sprintf("partition %s/%d has no leader", t.Name, p.ID)
			}
		}
	}
	return ""
}

func newTopicLeaderCmd() *cobra.Command {
	var partition int32
	cmd := &cobra.Command{
		Use:   "leader TOPIC",
		Short: "Print the node id of a partition's leader",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			id, _, err := c.LeaderAddr(cmd.Context(), args[0], partition)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			return nil
		}),
	}
	cmd.Flags().Int32Var(&partition, "partition", 0, "partition")
	return cmd
}

// newTopicWaitLeaderCmd waits until a partition has a leader other than
// --not that commits a Raft barrier, and reports how long that took.
func newTopicWaitLeaderCmd() *cobra.Command {
	var partition int32
	var not string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait-leader TOPIC",
		Short: "Wait for a partition leader (other than --not) that accepts writes; print it and the time taken",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			start := time.Now()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			for {
				actx, acancel := context.WithTimeout(ctx, time.Second)
				if _, err := c.Metadata(actx, args[0]); err == nil {
					id, _, lerr := c.LeaderAddr(actx, args[0], partition)
					if lerr == nil && id != "" && id != not {
						// A linearizable read commits a barrier in the new
						// term: the leader has a quorum and accepts writes.
						_, ferr := c.Fetch(actx, transport.FetchRequest{Topic: args[0], Partition: partition, Offset: transport.OffsetLatest, MaxBytes: 1, Linearizable: true})
						if ferr == nil {
							acancel()
							fmt.Fprintf(cmd.OutOrStdout(), "new leader of %s/%d is %s; accepting writes after %s\n", args[0], partition, id, time.Since(start).Round(time.Millisecond))
							return nil
						}
					}
				}
				acancel()
				select {
				case <-ctx.Done():
					return fmt.Errorf("no new leader for %s/%d after %s", args[0], partition, timeout)
				case <-time.After(50 * time.Millisecond):
				}
			}
		}),
	}
	cmd.Flags().Int32Var(&partition, "partition", 0, "partition")
	cmd.Flags().StringVar(&not, "not", "", "node id that must not be the leader (e.g. the one just killed)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	return cmd
}
