package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

func newGroupCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "group", Short: "List, describe and delete consumer groups (native and Kafka clients share them)"}
	cmd.AddCommand(newGroupListCmd(), newGroupDescribeCmd(), newGroupDeleteCmd())
	return cmd
}

func newGroupListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List consumer groups: state, protocol type, members",
		Args:  cobra.NoArgs,
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			groups, err := c.ListGroups(cmd.Context())
			if err != nil {
				return fmt.Errorf("list groups: %w", err)
			}
			if asJSON {
				if groups == nil {
					groups = []transport.GroupSummary{}
				}
				return printJSON(cmd.OutOrStdout(), groups)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "GROUP\tSTATE\tTYPE\tMEMBERS")
			for _, g := range groups {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", g.Group, g.State, g.ProtocolType, g.Members)
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newGroupDescribeCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show a group's members, their assignments, committed offsets and lag",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			d, err := c.DescribeGroup(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("describe group %s: %w", args[0], err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), d)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "group %s: %s, protocol %s/%s, generation %d, leader %s\n", d.Group, d.State, d.ProtocolType, d.Protocol, d.Generation, d.Leader)
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MEMBER\tCLIENT\tHOST\tASSIGNMENT")
			for _, m := range d.Members {
				var parts []string
				for _, tp := range m.Assignment {
					parts = append(parts, fmt.Sprintf("%s%v", tp.Topic, tp.Partitions))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.ID, m.ClientID, m.ClientHost, strings.Join(parts, " "))
			}
			tw.Flush()
			tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tHIGH-WATERMARK\tLAG")
			for _, o := range d.Offsets {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", o.Topic, o.Partition, o.Committed, o.HighWatermark, o.Lag)
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newGroupDeleteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete GROUP",
		Short: "Forget an empty group's membership (refused while it has members)",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := c.DeleteGroup(cmd.Context(), args[0]); err != nil {
				return fmt.Errorf("delete group %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted group %s\n", args[0])
			return nil
		}),
	}
	return cmd
}
