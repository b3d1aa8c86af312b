package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/node"
	"github.com/sluice-io/sluice/transport"
)

func newClusterRebalanceLeadersCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rebalance-leaders",
		Short: "Move partition leadership to the preferred replicas now",
		Long: `Moves the leadership of every partition not led by its preferred replica
(the first in its replica list) back to it, with Raft leadership transfer.
A preferred replica that is not alive or is behind the leader is skipped.`,
		Args: cobra.NoArgs,
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			resp, err := c.RebalanceLeaders(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			w := cmd.OutOrStdout()
			if len(resp.Moves) == 0 {
				fmt.Fprintln(w, "every partition is led by its preferred replica")
				return nil
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TOPIC\tPARTITION\tFROM\tTO\tRESULT")
			for _, m := range resp.Moves {
				res := "moved"
				if !m.Moved {
					res = "skipped: " + m.Reason
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", m.Topic, m.Partition, orNone(m.From), m.To, res)
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// partitionLags reads each partition's follower lag from the status page's
// JSON (GET /v1/cluster on the answering node), formatted per follower as
// node:records; nil when the node serves no HTTP.
func partitionLags(ctx context.Context, st *transport.StatusResponse) map[string]string {
	raw, err := fetchClusterView(ctx, st)
	if err != nil {
		return nil
	}
	var view node.ClusterView
	if err := json.Unmarshal(raw, &view); err != nil {
		return nil
	}
	out := map[string]string{}
	for _, t := range view.Topics {
		for _, p := range t.Partitions {
			var parts []string
			for _, r := range p.Status {
				switch {
				case r.Node == p.Leader:
				case !r.Reachable:
					parts = append(parts, r.Node+":?")
				default:
					parts = append(parts, fmt.Sprintf("%s:%d", r.Node, r.LagRecords))
				}
			}
			out[lagKey(t.Name, p.Partition)] = strings.Join(parts, " ")
		}
	}
	return out
}

func lagKey(topic string, partition int32) string { return fmt.Sprintf("%s/%d", topic, partition) }
