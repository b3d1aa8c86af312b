package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/client"
)

func newTopicAlterCmd() *cobra.Command {
	var partitions int
	var noWait bool
	cmd := &cobra.Command{
		Use:   "alter NAME --partitions N",
		Short: "Raise a topic's partition count",
		Long: `Raises the partition count; the new partitions are placed like a new topic's.
A decrease is refused: it would drop records and break keyed ordering.
Keys are routed by hash modulo the count, so after a raise many keys map to
another partition than before (as in Kafka).`,
		Args: cobra.ExactArgs(1),
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := c.AlterPartitions(cmd.Context(), args[0], partitions); err != nil {
				return err
			}
			if !noWait {
				if err := waitForLeaders(cmd.Context(), c, args[0]); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "topic %s has %d partitions\n", args[0], partitions)
			return nil
		}),
	}
	cmd.Flags().IntVar(&partitions, "partitions", 0, "new partition count (at least the current one)")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return without waiting for the new partitions' leaders")
	cmd.MarkFlagRequired("partitions")
	return cmd
}
