package node

import (
	"context"
	"sync"
	"time"

	"github.com/sluice-io/sluice/transport"
)

// defaultISRLagMax is how long a follower may go without having every
// entry its leader had committed before it leaves the ISR (Kafka's
// replica.lag.time.max.ms, 10 s before Kafka 2.5).
const defaultISRLagMax = 10 * time.Second

// isrTracker decides which replicas are in sync for the Kafka listener's
// Metadata. hashicorp/raft keeps the leader's match index per follower
// private, so the tracker samples every live node's status (the RPC the
// status page uses) and compares each follower's applied Raft index with
// the commit index its leader reported one sample earlier: a follower that
// has applied that much had every entry committed by then, so it is at
// most one sample interval plus its own lag behind. A follower that has not
// been caught up in this sense for lagMax is out of the ISR, as in Kafka.
type isrTracker struct {
	lagMax time.Duration

	mu    sync.Mutex
	parts map[partKey]*isrState
}

type isrState struct {
	first    time.Time            // first sample of the partition
	commit   uint64               // leader's commit index at the previous sample
	caughtUp map[string]time.Time // node → last sample it had applied commit
}

func newISRTracker(lagMax time.Duration) *isrTracker {
	if lagMax <= 0 {
		lagMax = defaultISRLagMax
	}
	return &isrTracker{lagMax: lagMax, parts: map[partKey]*isrState{}}
}

// interval is how often the tracker samples: often enough that one
// sample's delay is small next to lagMax.
func (t *isrTracker) interval() time.Duration { return min(time.Second, t.lagMax/4) }

// observe takes one round of statuses (node id → its status), sampled at
// now. A node missing from statuses did not answer: its replicas are not
// caught up this round.
func (t *isrTracker) observe(now time.Time, statuses map[string]*transport.StatusResponse) {
	type report struct {
		node string
		ps   transport.PartitionStatus
	}
	byPart := map[partKey][]report{}
	for node, st := range statuses {
		for _, p := range st.Partitions {
			k := partKey{p.Topic, p.Partition}
			byPart[k] = append(byPart[k], report{node, p})
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, reps := range byPart {
		var lead *report
		for i := range reps {
			// Two nodes may both believe they lead for a moment: the
			// higher term is the real one.
			if r := &reps[i]; r.ps.Role == "leader" && (lead == nil || r.ps.Term > lead.ps.Term) {
				lead = r
			}
		}
		if lead == nil {
			continue // no leader, nothing to measure against: keep the old state
		}
		st := t.parts[k]
		if st != nil && lead.ps.CommitIndex < st.commit {
			st = nil // the commit index went back: a re-created topic's new group
		}
		if st == nil {
			st = &isrState{first: now, commit: lead.ps.CommitIndex, caughtUp: map[string]time.Time{}}
			t.parts[k] = st
		}
		for _, r := range reps {
			if r.node == lead.node || r.ps.AppliedIndex >= st.commit {
				st.caughtUp[r.node] = now
			}
		}
		st.commit = lead.ps.CommitIndex
	}
}

// inSync reports whether node's replica of k counts as in sync at now.
// A partition the tracker has not watched for lagMax yet (just started, or
// never sampled) gives every replica the benefit of the doubt, as Kafka
// starts with every replica in the ISR.
func (t *isrTracker) inSync(k partKey, node string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.parts[k]
	if st == nil || now.Sub(st.first) < t.lagMax {
		return true
	}
	at, ok := st.caughtUp[node]
	return ok && now.Sub(at) <= t.lagMax
}

// forget drops the partitions no status mentions any more.
func (t *isrTracker) forget(keep map[partKey]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.parts {
		if !keep[k] {
			delete(t.parts, k)
		}
	}
}

// isrLoop samples the cluster's statuses for the tracker while the node
// runs.
func (n *Node) isrLoop() {
	for n.sleep(n.isr.interval()) {
		ctx, cancel := context.WithTimeout(n.ctx, clusterStatusTimeout)
		statuses, _ := n.memberStatuses(ctx)
		cancel()
		now := time.Now()
		n.isr.observe(now, statuses)
		keep := map[partKey]bool{}
		for _, st := range statuses {
			for _, p := range st.Partitions {
				keep[partKey{p.Topic, p.Partition}] = true
			}
		}
		n.isr.forget(keep)
	}
}
