package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Inspect the cluster"}
	cmd.AddCommand(newClusterStatusCmd(), newClusterWaitCmd(), newClusterRebalanceLeadersCmd(), newClusterRebalanceCmd(), newClusterMovesCmd())
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
				// The status page's JSON (/v1/cluster, with every replica's
				// lag) when the answering node serves HTTP; else the view
				// built from RPCs above.
				if view, err := fetchClusterView(cmd.Context(), st); err == nil {
					return printJSON(cmd.OutOrStdout(), view)
				}
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
				lags := partitionLags(cmd.Context(), st)
				fmt.Fprintln(tw, "TOPIC\tPARTITION\tLEADER\tREPLICAS\tLAG (records)")
				for _, p := range out.Partitions {
					lag, ok := lags[lagKey(p.Topic, p.Partition)]
					if !ok {
						lag = "?"
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", p.Topic, p.Partition, orNone(p.Leader), strings.Join(p.Replicas, ","), lag)
				}
				tw.Flush()
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// fetchClusterView reads GET /v1/cluster from the HTTP address the
// answering node advertises.
func fetchClusterView(ctx context.Context, st *transport.StatusResponse) (json.RawMessage, error) {
	var httpAddr string
	for _, m := range st.Members {
		if m.ID == st.Node {
			httpAddr = m.HTTPAddr
		}
	}
	if httpAddr == "" {
		return nil, errors.New("the node serves no HTTP")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/v1/cluster", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/cluster: %s", resp.Status)
	}
	var raw json.RawMessage
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&raw); err != nil {
		return nil, fmt.Errorf("GET /v1/cluster: %w", err)
	}
	return raw, nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
