package fsm

import (
	"slices"

	"github.com/sluice-io/sluice/transport"
)

// Assign places the partitions of a new topic on distinct live nodes.
//
// Each partition's preferred leader (Replicas[0]) is the live node with the
// fewest preferred leaderships so far, counting existing topics, then the
// fewest replicas, then the smallest id. Its followers are the nodes with
// the fewest replicas, ties going to the nodes that follow the leader in id
// order, so replica sets rotate as they would round-robin. The result only
// depends on the arguments (live is used as a set).
func Assign(live []string, existing []Topic, partitions, replicationFactor int) ([]PartitionAssignment, error) {
	if partitions < 1 {
		return nil, transport.Errorf(transport.ErrInvalidRequest, "a topic needs at least 1 partition, got %d", partitions)
	}
	if replicationFactor < 1 {
		return nil, transport.Errorf(transport.ErrInvalidRequest, "replication factor must be at least 1, got %d", replicationFactor)
	}
	nodes := slices.Clone(live)
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	if len(nodes) > 0 && nodes[0] == "" {
		nodes = nodes[1:]
	}
	if replicationFactor > len(nodes) {
		return nil, transport.Errorf(transport.ErrNotEnoughReplicas, "replication factor %d needs %d live nodes, %d are live", replicationFactor, replicationFactor, len(nodes))
	}

	pos := make(map[string]int, len(nodes))
	for i, n := range nodes {
		pos[n] = i
	}
	leaders := make([]int, len(nodes))
	replicas := make([]int, len(nodes))
	for _, t := range existing {
		for _, p := range t.Partitions {
			for j, r := range p.Replicas {
				i, ok := pos[r]
				if !ok {
					continue
				}
				replicas[i]++
				if j == 0 {
					leaders[i]++
				}
			}
		}
	}

	out := make([]PartitionAssignment, partitions)
	used := make([]bool, len(nodes))
	for p := range out {
		lead := 0
		for i := 1; i < len(nodes); i++ {
			if leaders[i] < leaders[lead] || leaders[i] == leaders[lead] && replicas[i] < replicas[lead] {
				lead = i
			}
		}
		clear(used)
		set := make([]string, 0, replicationFactor)
		pick := func(i int) {
			used[i] = true
			replicas[i]++
			set = append(set, nodes[i])
		}
		leaders[lead]++
		pick(lead)
		for len(set) < replicationFactor {
			best := -1
			for k := 1; k < len(nodes); k++ {
				i := (lead + k) % len(nodes)
				if !used[i] && (best < 0 || replicas[i] < replicas[best]) {
					best = i
				}
			}
			pick(best)
		}
		out[p] = PartitionAssignment{ID: int32(p), Replicas: set}
	}
	return out, nil
}
