package main

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Inspect the cluster"}
	cmd.AddCommand(newClusterStatusCmd(), newClusterWaitCmd())
	return cmd
}

// clusterStatus is what `cluster status --json` prints.
type clusterStatus struct {
	Node           string             `json:"node"`
	MetadataLeader string             `json:"metadata_leader"`
	Members        []transport.Broker `json:"members"`
	Partitions     []partitionLeader  `json:"partitions"`
}

type partitionLeader struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Leader    string   `json:"leader"`
	Replicas  []string `json:"replicas"`
}

func newClusterStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Members (alive/suspect/dead), metadata leader and partition leaders",
		Args:  cobra.NoArgs,
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			st, err := c.Status(cmd.Context(), "")
			if err != nil {
				return err
			}
			md, err := c.Metadata(cmd.Context())
			if err != nil {
				return err
			}
			out := clusterStatus{Node: st.Node, MetadataLeader: md.MetadataLeader, Members: st.Members}
			for _, t := range md.Topics {
				for _, p := range t.Partitions {
					out.Partitions = append(out.Partitions, partitionLeader{t.Name, p.ID, p.Leader, p.Replicas})
				}
			}
			sort.Slice(out.Partitions, func(i, j int) bool {
				a, b := out.Partitions[i], out.Partitions[j]
				if a.Topic != b.Topic {
					return a.Topic < b.Topic
				}
				return a.Partition < b.Partition
			})
			if asJSON {
				return printJSON(cmd.OutOrStdout(), out)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "answered by node %s; metadata leader: %s\n\n", out.Node, orNone(out.MetadataLeader))
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MEMBER\tSTATE\tRPC\tHTTP")
			for _, m := range out.Members {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.ID, m.State, m.RPCAddr, m.HTTPAddr)
			}
			tw.Flush()
			if len(out.Partitions) > 0 {
				fmt.Fprintln(w)
				fmt.Fprintln(tw, "TOPIC\tPARTITION\tLEADER\tREPLICAS")
				for _, p := range out.Partitions {
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", p.Topic, p.Partition, orNone(p.Leader), strings.Join(p.Replicas, ","))
				}
				tw.Flush()
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
