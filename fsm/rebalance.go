package fsm

import (
	"slices"

	"github.com/sluice-io/sluice/transport"
)

// PlannedMove is one partition's new replica set, preferred leader first.
type PlannedMove struct {
	Topic     string   `msgpack:"topic" json:"topic"`
	TopicID   uint64   `msgpack:"tid" json:"topic_id"`
	Partition int32    `msgpack:"partition" json:"partition"`
	From      []string `msgpack:"from" json:"from"`
	To        []string `msgpack:"to" json:"to"`
}

// PlanMoves computes the moves that spread replicas, then preferred
// leaders, evenly over the eligible nodes:
//
//  1. every replica on a node of drain is replaced by the eligible node
//     with the fewest replicas that the partition does not have yet;
//  2. while two eligible nodes' replica counts differ by more than one, a
//     replica moves from the fuller to the emptier node (into partitions
//     not changed yet first, so that most moves change one replica);
//  3. while two eligible nodes' preferred-leader counts differ by more
//     than one, a partition holding both swaps their positions (no data
//     moves for that).
//
// Partitions with a move in progress count at their target and are left
// alone, and so are partitions with a replica on a node that is neither
// eligible nor drained (a node that is down: moving around it would
// leave the partition with fewer live replicas meanwhile). The result
// depends on the arguments only. It fails when a drained replica has
// nowhere to go.
func PlanMoves(topics []Topic, eligible, drain []string) ([]PlannedMove, error) {
	nodes := slices.Clone(eligible)
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	nodes = slices.DeleteFunc(nodes, func(n string) bool { return n == "" || slices.Contains(drain, n) })
	isNode := map[string]bool{}
	for _, n := range nodes {
		isNode[n] = true
	}
	replicas := map[string]int{}
	leaders := map[string]int{}

	type cand struct {
		t       Topic
		p       PartitionAssignment
		set     []string
		changed bool
	}
	var cands []*cand
	sorted := slices.Clone(topics)
	slices.SortFunc(sorted, func(a, b Topic) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	for _, t := range sorted {
		for _, p := range t.Partitions {
			set := p.Replicas
			if p.Move != nil {
				set = p.Move.Target
			}
			for i, r := range set {
				replicas[r]++
				if i == 0 {
					leaders[r]++
				}
			}
			if p.Move != nil {
				continue
			}
			ok := true
			for _, r := range set {
				ok = ok && (isNode[r] || slices.Contains(drain, r))
			}
			if ok {
				cands = append(cands, &cand{t: t, p: p, set: slices.Clone(set)})
			}
		}
	}
	if len(nodes) == 0 {
		for _, c := range cands {
			for _, r := range c.set {
				if slices.Contains(drain, r) {
					return nil, transport.Errorf(transport.ErrNotEnoughReplicas, "no eligible node to move %s/%d to", c.t.Name, c.p.ID)
				}
			}
		}
		return nil, nil
	}

	// fewest returns the node with the fewest of count among those pass
	// accepts, ties to the smallest id; "" when none.
	fewest := func(count map[string]int, pass func(string) bool) string {
		best := ""
		for _, n := range nodes {
			if pass(n) && (best == "" || count[n] < count[best]) {
				best = n
			}
		}
		return best
	}

	// 1. Drain.
	for _, c := range cands {
		for i, r := range c.set {
			if isNode[r] {
				continue
			}
			to := fewest(replicas, func(n string) bool { return !slices.Contains(c.set, n) })
			if to == "" {
				return nil, transport.Errorf(transport.ErrNotEnoughReplicas,
					"cannot move %s/%d off %s: every other eligible node already holds one of its %d replicas", c.t.Name, c.p.ID, r, len(c.set))
			}
			replicas[r]--
			replicas[to]++
			if i == 0 {
				leaders[r]--
				leaders[to]++
			}
			c.set[i], c.changed = to, true
		}
	}

	// byCount lists nodes by count, descending when desc, ties by id.
	byCount := func(count map[string]int, desc bool) []string {
		out := slices.Clone(nodes)
		slices.SortStableFunc(out, func(a, b string) int {
			if desc {
				return count[b] - count[a]
			}
			return count[a] - count[b]
		})
		return out
	}

	// 2. Spread replicas. Each step lowers the sum of squared counts, so
	// the loop ends.
	for {
		moved := false
	pairs:
		for _, hi := range byCount(replicas, true) {
			for _, lo := range byCount(replicas, false) {
				if replicas[hi]-replicas[lo] <= 1 {
					break
				}
				for _, changedFirst := range []bool{false, true} {
					for _, c := range cands {
						if c.changed != changedFirst {
							continue
						}
						i := slices.Index(c.set, hi)
						if i < 0 || slices.Contains(c.set, lo) {
							continue
						}
						c.set[i], c.changed = lo, true
						replicas[hi]--
						replicas[lo]++
						if i == 0 {
							leaders[hi]--
							leaders[lo]++
						}
						moved = true
						break pairs
					}
				}
			}
		}
		if !moved {
			break
		}
	}

	// 3. Spread preferred leaders by reordering sets.
	for {
		moved := false
	lpairs:
		for _, hi := range byCount(leaders, true) {
			for _, lo := range byCount(leaders, false) {
				if leaders[hi]-leaders[lo] <= 1 {
					break
				}
				for _, changedFirst := range []bool{true, false} {
					for _, c := range cands {
						if c.changed != changedFirst || c.set[0] != hi {
							continue
						}
						j := slices.Index(c.set, lo)
						if j < 0 {
							continue
						}
						c.set[0], c.set[j], c.changed = lo, hi, true
						leaders[hi]--
						leaders[lo]++
						moved = true
						break lpairs
					}
				}
			}
		}
		if !moved {
			break
		}
	}

	var out []PlannedMove
	for _, c := range cands {
		if slices.Equal(c.set, c.p.Replicas) {
			continue
		}
		out = append(out, PlannedMove{Topic: c.t.Name, TopicID: c.t.ID, Partition: c.p.ID, From: slices.Clone(c.p.Replicas), To: c.set})
	}
	return out, nil
}
