package main

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

func newTopicCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "topic", Short: "Create, list, describe and delete topics"}
	cmd.AddCommand(newTopicCreateCmd(), newTopicListCmd(), newTopicDescribeCmd(), newTopicDeleteCmd(), newTopicLeaderCmd(), newTopicWaitLeaderCmd(), newTopicAlterCmd(), newTopicReassignCmd())
	return cmd
}

func newTopicCreateCmd() *cobra.Command {
	var req transport.CreateTopicRequest
	var retention time.Duration
	var noWait bool
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			req.Name = args[0]
			req.RetentionMs = retention.Milliseconds()
			if err := c.CreateTopic(cmd.Context(), req); err != nil {
				return fmt.Errorf("create topic %s: %w", req.Name, err)
			}
			if !noWait {
				if err := waitForLeaders(cmd.Context(), c, req.Name); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created topic %s (%d partitions, replication factor %d)\n", req.Name, req.Partitions, req.ReplicationFactor)
			return nil
		}),
	}
	f := cmd.Flags()
	f.IntVar(&req.Partitions, "partitions", 1, "number of partitions")
	f.IntVar(&req.ReplicationFactor, "replicas", 3, "replication factor")
	f.Int64Var(&req.RetentionBytes, "retention-bytes", 0, "per-partition size beyond which the oldest segments are deleted (0: unlimited)")
	f.DurationVar(&retention, "retention", 0, "age beyond which segments are deleted, e.g. 168h (0: unlimited)")
	f.BoolVar(&noWait, "no-wait", false, "return without waiting for partition leaders")
	return cmd
}

func newTopicListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List topics",
		Args:  cobra.NoArgs,
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			md, err := c.Metadata(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				type row struct {
					Name              string `json:"name"`
					Partitions        int    `json:"partitions"`
					ReplicationFactor int    `json:"replication_factor"`
				}
				rows := []row{}
				for _, t := range md.Topics {
					rows = append(rows, row{t.Name, len(t.Partitions), t.ReplicationFactor})
				}
				return printJSON(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICATION")
			for _, t := range md.Topics {
				fmt.Fprintf(tw, "%s\t%d\t%d\n", t.Name, len(t.Partitions), t.ReplicationFactor)
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newTopicDescribeCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a topic's partitions: leader, replicas, high watermark",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			t, err := describeTopic(cmd, c, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), t)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "topic %s: %d partitions, replication factor %d, retention bytes %d, retention ms %d\n",
				t.Name, len(t.Partitions), t.ReplicationFactor, t.RetentionBytes, t.RetentionMs)
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PARTITION\tLEADER\tREPLICAS\tHIGH WATERMARK")
			for _, p := range t.Partitions {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d\n", p.ID, p.Leader, strings.Join(p.Replicas, ","), p.HighWatermark)
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// describeTopic fills each partition's high watermark from its leader.
func describeTopic(cmd *cobra.Command, c *client.Client, name string) (transport.TopicMeta, error) {
	md, err := c.Metadata(cmd.Context(), name)
	if err != nil {
		return transport.TopicMeta{}, err
	}
	if len(md.Topics) != 1 {
		return transport.TopicMeta{}, fmt.Errorf("topic %s: not in metadata", name)
	}
	t := md.Topics[0]
	sort.Slice(t.Partitions, func(i, j int) bool { return t.Partitions[i].ID < t.Partitions[j].ID })
	for i, p := range t.Partitions {
		res, err := c.Fetch(cmd.Context(), transport.FetchRequest{Topic: name, Partition: p.ID, Offset: transport.OffsetLatest, MaxBytes: 1})
		if err == nil {
			t.Partitions[i].HighWatermark = res.HighWatermark
		} else {
			t.Partitions[i].HighWatermark = -1
		}
	}
	return t, nil
}

func newTopicDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a topic and its data on every replica",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := c.DeleteTopic(cmd.Context(), args[0]); err != nil {
				return fmt.Errorf("delete topic %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted topic %s\n", args[0])
			return nil
		}),
	}
}
