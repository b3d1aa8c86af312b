package client

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sluice-io/sluice/transport"
)

// movePoll is how often move progress is polled.
const movePoll = 250 * time.Millisecond

// Reassign starts moving a partition to a new replica list (preferred
// leader first). The cluster changes the partition's Raft group one
// member at a time, writes going on meanwhile; it refuses unknown or
// dead nodes, duplicates, a list of another length than the topic's
// replication factor, and a partition that another move is changing. It
// returns once the move is recorded; WaitMove follows it.
func (c *Client) Reassign(ctx context.Context, topic string, partition int32, replicas []string) (*transport.MoveStatus, error) {
	var st transport.MoveStatus
	if _, err := c.callAny(ctx, transport.MethodReassign, &transport.ReassignRequest{Topic: topic, Partition: partition, Replicas: replicas}, &st); err != nil {
		return nil, fmt.Errorf("reassign %s/%d: %w", topic, partition, err)
	}
	c.forget(topic)
	return &st, nil
}

// MoveStatus reports a partition's replicas and move in progress as the
// controller knows them.
func (c *Client) MoveStatus(ctx context.Context, topic string, partition int32) (*transport.MoveStatus, error) {
	var st transport.MoveStatus
	if _, err := c.callAny(ctx, transport.MethodMoveStatus, &transport.MoveStatusRequest{Topic: topic, Partition: partition}, &st); err != nil {
		return nil, fmt.Errorf("move status of %s/%d: %w", topic, partition, err)
	}
	return &st, nil
}

// WaitMove polls until the partition has no move in progress and returns
// its final placement: Replicas equal to the requested list when the move
// finished, the original ones when it rolled back.
func (c *Client) WaitMove(ctx context.Context, topic string, partition int32) (*transport.MoveStatus, error) {
	for {
		st, err := c.MoveStatus(ctx, topic, partition)
		if err != nil {
			return nil, err
		}
		if !st.InProgress {
			c.forget(topic)
			return st, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the move of %s/%d (%s, to %v): %w", topic, partition, st.Phase, st.Target, ctx.Err())
		case <-time.After(movePoll):
		}
	}
}

// PlanMoves asks the controller which moves would spread replicas and
// preferred leaders evenly over the live nodes and drain decommissioned
// ones.
func (c *Client) PlanMoves(ctx context.Context) (*transport.PlanMovesResponse, error) {
	return c.planMoves(ctx, "")
}

func (c *Client) planMoves(ctx context.Context, touching string) (*transport.PlanMovesResponse, error) {
	var resp transport.PlanMovesResponse
	if _, err := c.callAny(ctx, transport.MethodPlanMoves, &transport.PlanMovesRequest{Touching: touching}, &resp); err != nil {
		return nil, fmt.Errorf("plan moves: %w", err)
	}
	return &resp, nil
}

// Decommission marks a node as being decommissioned (undo: clears the
// mark): it gets no new replicas, stops voting in the metadata group, and
// the plan of RunMoves moves its replicas away. It reports what the node
// still holds.
func (c *Client) Decommission(ctx context.Context, node string, undo bool) (*transport.DecommissionResponse, error) {
	var resp transport.DecommissionResponse
	if _, err := c.callAny(ctx, transport.MethodDecommission, &transport.DecommissionRequest{Node: node, Undo: undo}, &resp); err != nil {
		return nil, fmt.Errorf("decommission %s: %w", node, err)
	}
	return &resp, nil
}

// MoveResult is one move RunMoves carried out.
type MoveResult struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	From      []string `json:"from"`
	To        []string `json:"to"`
	// Replicas is the final list; it differs from To when the move rolled
	// back.
	Replicas   []string `json:"replicas"`
	RolledBack bool     `json:"rolled_back"`
}

// RunMovesOptions shape RunMoves.
type RunMovesOptions struct {
	// MaxMoves bounds the moves in progress in the cluster at once [1].
	MaxMoves int
	// Touching, when set, carries out only the moves that take a replica
	// off this node (a decommission).
	Touching string
	// Progress, when set, is told of each move that ended.
	Progress func(MoveResult)
}

// RunMoves carries out the controller's plan (PlanMoves) with at most
// MaxMoves moves in progress in the cluster at once, asking for a fresh
// plan whenever a move ends, until the plan is empty. A partition whose
// move rolls back twice ends the run with an error. Interrupting it
// leaves the moves in progress to finish on their own.
func (c *Client) RunMoves(ctx context.Context, opts RunMovesOptions) ([]MoveResult, error) {
	maxMoves := max(1, opts.MaxMoves)
	progress := opts.Progress
	type key struct {
		topic string
		part  int32
	}
	inflight := map[key]transport.PlannedMove{}
	rollbacks := map[key]int{}
	var done []MoveResult
	for {
		// Moves that ended.
		for k, m := range inflight {
			st, err := c.MoveStatus(ctx, k.topic, k.part)
			if err != nil {
				return done, err
			}
			if st.InProgress {
				continue
			}
			delete(inflight, k)
			r := MoveResult{Topic: k.topic, Partition: k.part, From: m.From, To: m.To, Replicas: st.Replicas, RolledBack: !slices.Equal(st.Replicas, m.To)}
			if r.RolledBack {
				rollbacks[k]++
			}
			done = append(done, r)
			if progress != nil {
				progress(r)
			}
		}
		plan, err := c.planMoves(ctx, opts.Touching)
		if err != nil {
			return done, err
		}
		running := plan.Running
		for _, m := range plan.Moves {
			k := key{m.Topic, m.Partition}
			if _, ok := inflight[k]; ok {
				continue
			}
			if rollbacks[k] >= 2 {
				return done, fmt.Errorf("the move of %s/%d to %v rolled back twice; see the controller's log", m.Topic, m.Partition, m.To)
			}
			if running >= maxMoves {
				break
			}
			if _, err := c.Reassign(ctx, m.Topic, m.Partition, m.To); err != nil {
				if transport.CodeOf(err) == transport.ErrInvalidRequest {
					continue // raced with another move of that partition; the next plan sees it
				}
				return done, err
			}
			inflight[k] = m
			running++
		}
		if len(plan.Moves) == 0 && len(inflight) == 0 {
			return done, nil
		}
		select {
		case <-ctx.Done():
			return done, fmt.Errorf("%d moves in progress, %d planned: %w", len(inflight), len(plan.Moves), ctx.Err())
		case <-time.After(movePoll):
		}
	}
}
