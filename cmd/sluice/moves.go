package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

// Replica movement commands: topic reassign, cluster rebalance, cluster
// moves, node decommission and recommission.

// waitContext bounds a command that waits for moves by --wait-timeout
// (these are long-running: --timeout does not apply).
func waitContext(cmd *cobra.Command, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(cmd.Context())
	}
	return context.WithTimeout(cmd.Context(), d)
}

func splitIDs(s string) []string {
	var out []string
	for _, id := range strings.Split(s, ",") {
		if id = strings.TrimSpace(id); id != "" {
			out = append(out, id)
		}
	}
	return out
}

func newTopicReassignCmd() *cobra.Command {
	var replicas string
	var noWait, asJSON bool
	var waitTimeout time.Duration
	cmd := &cobra.Command{
		Use:         "reassign TOPIC PARTITION --replicas n1,n3,n4",
		Short:       "Move a partition to another replica list (the first is the preferred leader)",
		Annotations: longRunning,
		Long: `Changes a partition's replicas through Raft membership changes: each new
replica joins as a non-voter, is promoted once it has caught up, the
leadership leaves replicas that go, and the old replicas are removed. Writes
go on meanwhile. The list keeps the topic's replication factor; its first
node becomes the preferred leader. Without --no-wait the command waits for
the move to finish (or roll back: a move that makes no progress for the
nodes' --reassign-stall-timeout while adding replicas is undone).`,
		Args: cobra.ExactArgs(2),
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			part, err := strconv.ParseInt(args[1], 10, 32)
			if err != nil {
				return fmt.Errorf("partition %q: %w", args[1], err)
			}
			target := splitIDs(replicas)
			if len(target) == 0 {
				return fmt.Errorf("--replicas needs a comma-separated list of node ids")
			}
			ctx, cancel := waitContext(cmd, waitTimeout)
			defer cancel()
			st, err := c.Reassign(ctx, args[0], int32(part), target)
			if err != nil {
				return err
			}
			if !noWait {
				if st, err = c.WaitMove(ctx, args[0], int32(part)); err != nil {
					return err
				}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), st)
			}
			w := cmd.OutOrStdout()
			switch {
			case st.InProgress:
				fmt.Fprintf(w, "%s/%d: moving from %s to %s (%s)\n", args[0], part, strings.Join(st.Replicas, ","), strings.Join(st.Target, ","), st.Phase)
			case slices.Equal(st.Replicas, target):
				fmt.Fprintf(w, "%s/%d: replicas %s\n", args[0], part, strings.Join(st.Replicas, ","))
			default:
				return fmt.Errorf("%s/%d: the move to %s rolled back; replicas are %s (see the controller's log)", args[0], part, strings.Join(target, ","), strings.Join(st.Replicas, ","))
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&replicas, "replicas", "", "new replica list, comma-separated node ids, preferred leader first")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the move is recorded")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&waitTimeout, "wait-timeout", 10*time.Minute, "give up waiting after this long (the move goes on)")
	cmd.MarkFlagRequired("replicas")
	return cmd
}

// movesReport is what rebalance and decommission print with --json.
type movesReport struct {
	Planned []transport.PlannedMove         `json:"planned,omitempty"`
	Moves   []client.MoveResult             `json:"moves"`
	Node    *transport.DecommissionResponse `json:"node,omitempty"`
}

func printMoves(w io.Writer, moves []client.MoveResult) error {
	if len(moves) == 0 {
		fmt.Fprintln(w, "nothing to move: replicas and preferred leaders are spread evenly")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tFROM\tTO\tRESULT")
	for _, m := range moves {
		res := "moved"
		if m.RolledBack {
			res = "rolled back"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", m.Topic, m.Partition, strings.Join(m.From, ","), strings.Join(m.To, ","), res)
	}
	return tw.Flush()
}

// progressLine prints each finished move on stderr while the run goes on.
func progressLine(cmd *cobra.Command) func(client.MoveResult) {
	return func(m client.MoveResult) {
		res := "moved"
		if m.RolledBack {
			res = "rolled back"
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "%s/%d %s -> %s: %s\n", m.Topic, m.Partition, strings.Join(m.From, ","), strings.Join(m.To, ","), res)
	}
}

func newClusterRebalanceCmd() *cobra.Command {
	var maxMoves int
	var dryRun, asJSON bool
	var waitTimeout time.Duration
	cmd := &cobra.Command{
		Use:         "rebalance",
		Short:       "Spread replicas and preferred leaders evenly over the live nodes",
		Annotations: longRunning,
		Long: `Asks the controller for a plan that spreads replicas, then preferred leaders,
evenly over the live nodes (and drains decommissioned ones), and carries it
out with at most --max-moves moves at a time, writes going on throughout.
Partitions with a replica on a node that is down are left alone. The
leadership moves to the new preferred replicas as each move ends.`,
		Args: cobra.NoArgs,
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			ctx, cancel := waitContext(cmd, waitTimeout)
			defer cancel()
			if dryRun {
				plan, err := c.PlanMoves(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), movesReport{Planned: plan.Moves, Moves: []client.MoveResult{}})
				}
				return printPlan(cmd.OutOrStdout(), plan)
			}
			moves, err := c.RunMoves(ctx, client.RunMovesOptions{MaxMoves: maxMoves, Progress: progressLine(cmd)})
			if err != nil {
				return err
			}
			if moves == nil {
				moves = []client.MoveResult{}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), movesReport{Moves: moves})
			}
			return printMoves(cmd.OutOrStdout(), moves)
		}),
	}
	cmd.Flags().IntVar(&maxMoves, "max-moves", 2, "most partition moves in progress at once")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan without moving anything")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&waitTimeout, "wait-timeout", 30*time.Minute, "give up after this long (moves in progress go on)")
	return cmd
}

func printPlan(w io.Writer, plan *transport.PlanMovesResponse) error {
	if len(plan.Moves) == 0 {
		fmt.Fprintf(w, "nothing to move over %s\n", strings.Join(plan.Nodes, ","))
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tFROM\tTO")
	for _, m := range plan.Moves {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", m.Topic, m.Partition, strings.Join(m.From, ","), strings.Join(m.To, ","))
	}
	return tw.Flush()
}

// moveRow is one move in progress as `cluster moves` lists it.
type moveRow struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Replicas  []string `json:"replicas"`
	Target    []string `json:"target"`
	Phase     string   `json:"phase"`
	Leader    string   `json:"leader"`
}

func newClusterMovesCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "moves",
		Short: "List the replica moves in progress",
		Args:  cobra.NoArgs,
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			md, err := c.Metadata(cmd.Context())
			if err != nil {
				return err
			}
			rows := []moveRow{}
			for _, t := range md.Topics {
				for _, p := range t.Partitions {
					if len(p.MoveTarget) > 0 {
						rows = append(rows, moveRow{t.Name, p.ID, p.Replicas, p.MoveTarget, p.MovePhase, p.Leader})
					}
				}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), rows)
			}
			if len(rows) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no moves in progress")
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TOPIC\tPARTITION\tREPLICAS\tTARGET\tPHASE\tLEADER")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", r.Topic, r.Partition, strings.Join(r.Replicas, ","), strings.Join(r.Target, ","), r.Phase, orNone(r.Leader))
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newNodeDecommissionCmd() *cobra.Command {
	var maxMoves int
	var asJSON bool
	var waitTimeout time.Duration
	cmd := &cobra.Command{
		Use:         "decommission NODE",
		Short:       "Move every replica and leadership off a node, so it can be stopped",
		Annotations: longRunning,
		Long: `Marks the node as being decommissioned (it gets no new replicas and stops
voting in the metadata group), then moves each of its replicas to the
least loaded other node, at most --max-moves at a time, writes going on;
nothing else moves ('sluice cluster rebalance' evens out the rest).
When it returns the node hosts nothing and leads nothing: it can be
stopped. 'sluice node recommission NODE' clears the mark.`,
		Args: cobra.ExactArgs(1),
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			ctx, cancel := waitContext(cmd, waitTimeout)
			defer cancel()
			node := args[0]
			if _, err := c.Decommission(ctx, node, false); err != nil {
				return err
			}
			moves, err := c.RunMoves(ctx, client.RunMovesOptions{MaxMoves: maxMoves, Touching: node, Progress: progressLine(cmd)})
			if err != nil {
				return err
			}
			left, err := c.Decommission(ctx, node, false)
			if err != nil {
				return err
			}
			if moves == nil {
				moves = []client.MoveResult{}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), movesReport{Moves: moves, Node: left})
			}
			if err := printMoves(cmd.OutOrStdout(), moves); err != nil {
				return err
			}
			if len(left.Replicas) > 0 || len(left.Leads) > 0 || left.MetadataVoter {
				return fmt.Errorf("%s still hosts %v and leads %v (metadata voter: %v); run the command again", node, left.Replicas, left.Leads, left.MetadataVoter)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s hosts no replicas and leads nothing: it can be stopped\n", node)
			return nil
		}),
	}
	cmd.Flags().IntVar(&maxMoves, "max-moves", 2, "most partition moves in progress at once")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&waitTimeout, "wait-timeout", 30*time.Minute, "give up after this long (moves in progress go on)")
	return cmd
}

func newNodeRecommissionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "recommission NODE",
		Short: "Clear a node's decommissioning mark: it may get replicas again (sluice cluster rebalance)",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if _, err := c.Decommission(cmd.Context(), args[0], true); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s may get replicas again; run 'sluice cluster rebalance' to give it some\n", args[0])
			return nil
		}),
	}
}
