package fsm

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/transport"
)

// applyPlan returns topics with the planned sets installed.
func applyPlan(topics []Topic, plan []PlannedMove) []Topic {
	out := make([]Topic, len(topics))
	for i, t := range topics {
		out[i] = t.clone()
		for _, m := range plan {
			if m.Topic == t.Name {
				out[i].Partitions[m.Partition].Replicas = slices.Clone(m.To)
			}
		}
	}
	return out
}

func counts(topics []Topic) (replicas, leaders map[string]int) {
	replicas, leaders = map[string]int{}, map[string]int{}
	for _, t := range topics {
		for _, p := range t.Partitions {
			for i, r := range p.Replicas {
				replicas[r]++
				if i == 0 {
					leaders[r]++
				}
			}
		}
	}
	return replicas, leaders
}

func spread(m map[string]int, nodes []string) int {
	lo, hi := 1<<30, 0
	for _, n := range nodes {
		lo, hi = min(lo, m[n]), max(hi, m[n])
	}
	return hi - lo
}

func threeNodeTopics(t *testing.T) []Topic {
	a, err := Assign([]string{"n1", "n2", "n3"}, nil, 3, 3)
	require.NoError(t, err)
	b, err := Assign([]string{"n1", "n2", "n3"}, nil, 4, 2)
	require.NoError(t, err)
	return []Topic{{Name: "a", ID: 7, ReplicationFactor: 3, Partitions: a}, {Name: "b", ID: 9, ReplicationFactor: 2, Partitions: b}}
}

func TestPlanMovesSpreadsOntoANewNode(t *testing.T) {
	topics := threeNodeTopics(t)
	nodes := []string{"n1", "n2", "n3", "n4"}
	plan, err := PlanMoves(topics, nodes, nil)
	require.NoError(t, err)
	require.NotEmpty(t, plan)
	for _, m := range plan {
		require.NoError(t, ValidateReplicaSet(m.To, len(m.From)))
		added := 0
		for _, r := range m.To {
			if !slices.Contains(m.From, r) {
				added++
			}
		}
		require.LessOrEqual(t, added, 1, "one replica per move: %+v", m)
	}
	after := applyPlan(topics, plan)
	reps, leads := counts(after)
	require.LessOrEqual(t, spread(reps, nodes), 1, "replicas %v", reps)
	require.LessOrEqual(t, spread(leads, nodes), 1, "leaders %v", leads)
	again, err := PlanMoves(after, nodes, nil)
	require.NoError(t, err)
	require.Empty(t, again, "a balanced cluster needs no moves")

	// Same input, same plan.
	plan2, err := PlanMoves(topics, []string{"n4", "n3", "n2", "n1"}, nil)
	require.NoError(t, err)
	require.Equal(t, plan, plan2)
}

func TestPlanMovesDrains(t *testing.T) {
	topics := threeNodeTopics(t)
	plan, err := PlanMoves(topics, []string{"n1", "n2", "n3", "n4"}, []string{"n2"})
	require.NoError(t, err)
	after := applyPlan(topics, plan)
	reps, _ := counts(after)
	require.Zero(t, reps["n2"])
	require.LessOrEqual(t, spread(reps, []string{"n1", "n3", "n4"}), 1, "replicas %v", reps)

	// RF 3 on three nodes: nowhere to go.
	_, err = PlanMoves(topics, []string{"n1", "n2", "n3"}, []string{"n2"})
	require.Equal(t, transport.ErrNotEnoughReplicas, transport.CodeOf(err))
}

func TestPlanMovesLeavesMovingAndDegradedPartitionsAlone(t *testing.T) {
	topics := []Topic{{Name: "x", ReplicationFactor: 2, Partitions: []PartitionAssignment{
		{ID: 0, Replicas: []string{"n1", "n2"}, Move: &PartitionMove{ID: 1, Target: []string{"n1", "n3"}, Origin: []string{"n1", "n2"}, Phase: MoveAdding}},
		{ID: 1, Replicas: []string{"n1", "n9"}}, // n9 is down
		{ID: 2, Replicas: []string{"n1", "n2"}},
		{ID: 3, Replicas: []string{"n1", "n2"}},
	}}}
	plan, err := PlanMoves(topics, []string{"n1", "n2", "n3"}, nil)
	require.NoError(t, err)
	for _, m := range plan {
		require.NotContains(t, []int32{0, 1}, m.Partition)
	}
	require.NotEmpty(t, plan, "n3 holds one replica, n1 three")
}
