package node

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sluice-io/sluice/fsm"
)

type partKey struct {
	topic     string
	partition int32
}

func (k partKey) String() string { return k.topic + "/" + strconv.Itoa(int(k.partition)) }

// replica is this node's copy of one partition: a Raft group over the
// partition FSM (segment log, group offsets, producer state).
type replica struct {
	key      partKey
	dir      string
	replicas []string
	group    *raftGroup
	fsm      *fsm.Partition
	done     chan struct{}
}

func (r *replica) raft() *raft.Raft { return r.group.raft }

func (r *replica) isLeader() bool { return r.group.raft.State() == raft.Leader }

func (r *replica) close() error {
	close(r.done)
	err := r.group.shutdown()
	if cerr := r.fsm.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close replica %s: %w", r.key, err)
	}
	return nil
}

func (n *Node) replica(topic string, partition int32) *replica {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.replicas[partKey{topic, partition}]
}

func (n *Node) replicaList() []*replica {
	n.mu.RLock()
	defer n.mu.RUnlock()
	out := make([]*replica, 0, len(n.replicas))
	for _, r := range n.replicas {
		out = append(out, r)
	}
	return out
}

func (n *Node) partitionDir(k partKey) string {
	return filepath.Join(n.cfg.DataDir, "partitions", fmt.Sprintf("%s-%d", k.topic, k.partition))
}

// reconcileLoop makes the hosted replicas follow the metadata: start the
// ones assigned here, stop and delete the ones whose topic is gone.
func (n *Node) reconcileLoop() {
	for {
		changed := n.meta.Changed()
		n.reconcileReplicas()
		if !n.sleep(2*time.Second, changed) {
			return
		}
	}
}

func (n *Node) reconcileReplicas() {
	want := map[partKey]fsm.PartitionAssignment{}
	retention := map[string]fsm.Topic{}
	for _, t := range n.meta.Topics() {
		retention[t.Name] = t
		for _, p := range t.Partitions {
			for _, id := range p.Replicas {
				if id == n.cfg.ID {
					want[partKey{t.Name, p.ID}] = p
				}
			}
		}
	}
	for _, r := range n.replicaList() {
		if err := r.fsm.Err(); err != nil {
			// The partition stopped after a failed disk write. Reopen it:
			// the log recovers to its last good batch and Raft replays
			// the rest.
			n.logger.Error("partition failed; reopening", "partition", r.key.String(), "err", err)
			n.mu.Lock()
			delete(n.replicas, r.key)
			n.mu.Unlock()
			if cerr := r.close(); cerr != nil {
				n.logger.Warn("close failed replica", "err", cerr)
			}
			n.replicaFailed(r, err)
			continue
		}
		if _, ok := want[r.key]; ok {
			continue
		}
		n.mu.Lock()
		delete(n.replicas, r.key)
		n.mu.Unlock()
		n.logger.Info("removing replica of deleted topic", "partition", r.key.String())
		if err := r.close(); err != nil {
			n.logger.Warn("close replica", "err", err)
		}
		if err := os.RemoveAll(r.dir); err != nil {
			n.logger.Warn("remove replica data", "dir", r.dir, "err", err)
		}
	}
	for k, p := range want {
		if n.replica(k.topic, k.partition) != nil {
			continue
		}
		if err := n.openReplica(k, p, retention[k.topic]); err != nil {
			n.logger.Error("open replica", "partition", k.String(), "err", err)
		}
	}
}

func (n *Node) openReplica(k partKey, p fsm.PartitionAssignment, t fsm.Topic) error {
	n.mu.RLock()
	closed := n.closed
	n.mu.RUnlock()
	if closed {
		return nil
	}
	dir := n.partitionDir(k)
	pf, err := n.openPartitionFSM(dir, fsm.PartitionConfig{
		Log: fsm.LogConfig{
			Dir:            filepath.Join(dir, "log"),
			SegmentBytes:   n.cfg.SegmentBytes,
			RetentionBytes: t.RetentionBytes,
			RetentionAge:   time.Duration(t.RetentionMs) * time.Millisecond,
			Logger:         n.logger.With("partition", k.String()),
		},
		Logger:            n.logger.With("partition", k.String()),
		OffsetsRetention:  n.cfg.OffsetsRetention,
		MaxTimestampAhead: n.cfg.MaxTimestampAhead,
	})
	if err != nil {
		return fmt.Errorf("open partition log: %w", err)
	}
	g, err := n.openRaftGroup(raftGroupOptions{
		name:  "p/" + k.String(),
		dir:   dir,
		fsm:   pf,
		local: raft.ServerID(n.cfg.ID),
	})
	if err != nil {
		pf.Close()
		return err
	}
	r := &replica{key: k, dir: dir, replicas: p.Replicas, group: g, fsm: pf, done: make(chan struct{})}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return r.close()
	}
	n.replicas[k] = r
	n.mu.Unlock()
	n.logger.Info("hosting replica", "partition", k.String(), "replicas", p.Replicas)

	if !g.hasState() {
		n.goLoop("bootstrap "+k.String(), func() { n.bootstrapReplica(r) })
	}
	n.goLoop("leader-watch "+k.String(), func() { n.watchLeadership(r) })
	return nil
}

// bootstrapReplica gives a new partition group its configuration. The
// preferred leader (first replica) bootstraps at once and so usually wins
// the first election, which spreads leaders as placement intended; the
// others bootstrap with the same configuration only if they have heard
// nothing after a while (the preferred replica may be down).
func (n *Node) bootstrapReplica(r *replica) {
	servers := make([]raft.Server, 0, len(r.replicas))
	for _, id := range r.replicas {
		addr := n.brokerAddr(id)
		if addr == "" {
			n.logger.Error("replica has no known address", "partition", r.key.String(), "node", id)
			return
		}
		servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(addr)})
	}
	if len(r.replicas) > 0 && r.replicas[0] != n.cfg.ID {
		select {
		case <-r.done:
			return
		case <-n.ctx.Done():
			return
		case <-time.After(3 * time.Second):
		}
		if r.group.hasState() {
			return
		}
	}
	if err := r.group.bootstrap(servers); err != nil {
		n.logger.Error("bootstrap replica", "partition", r.key.String(), "err", err)
	}
}

func (n *Node) brokerAddr(id string) string {
	for _, b := range n.meta.Brokers() {
		if b.ID == id {
			return b.RPCAddr
		}
	}
	return ""
}

// watchLeadership wakes the leader reporter whenever this replica gains
// or loses leadership.
func (n *Node) watchLeadership(r *replica) {
	ch := r.raft().LeaderCh()
	for {
		select {
		case <-r.done:
			return
		case <-n.ctx.Done():
			return
		case isLeader := <-ch:
			n.logger.Info("partition leadership changed", "partition", r.key.String(), "leader", isLeader, "term", r.raft().CurrentTerm())
			n.metrics.leaderChanges.Inc()
			select {
			case n.leaderKick <- struct{}{}:
			default:
			}
		}
	}
}

// leaderReportLoop keeps the metadata's leader of each partition this node
// leads current, so nodes that do not host it can route clients.
func (n *Node) leaderReportLoop() {
	for {
		for _, r := range n.replicaList() {
			if !r.isLeader() {
				continue
			}
			term := r.raft().CurrentTerm()
			t, ok := n.meta.Topic(r.key.topic)
			if !ok || int(r.key.partition) >= len(t.Partitions) {
				continue
			}
			p := t.Partitions[r.key.partition]
			if p.Leader == n.cfg.ID && p.LeaderTerm >= term {
				continue
			}
			cmd := fsm.EncodeSetLeader(r.key.topic, r.key.partition, n.cfg.ID, term)
			if err := n.applyMeta(n.ctx, cmd); err != nil && n.ctx.Err() == nil {
				n.logger.Debug("report partition leader", "partition", r.key.String(), "err", err)
			}
		}
		select {
		case <-n.ctx.Done():
			return
		case <-n.leaderKick:
		case <-time.After(time.Second):
		}
	}
}

func (n *Node) retentionLoop() {
	for n.sleep(n.cfg.RetentionInterval) {
		for _, r := range n.replicaList() {
			if err := r.fsm.ApplyRetention(); err != nil {
				n.logger.Warn("retention", "partition", r.key.String(), "err", err)
			}
		}
	}
}
