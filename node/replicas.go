package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
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
	topicID  uint64 // the topic incarnation this replica belongs to
	dir      string
	replicas []string
	group    *raftGroup
	fsm      *fsm.Partition
	done     chan struct{}
	ready    readiness // barrier of the current term, before a leader serves reads
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

// replica returns the hosted replica of the topic's current incarnation.
// One of a deleted incarnation that the reconcile loop has not closed yet
// is not returned: it must serve nothing.
func (n *Node) replica(topic string, partition int32) *replica {
	n.mu.RLock()
	r := n.replicas[partKey{topic, partition}]
	n.mu.RUnlock()
	if r == nil {
		return nil
	}
	if id, ok := n.meta.TopicID(topic); !ok || id != r.topicID {
		return nil
	}
	return r
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

func (n *Node) partitionDir(k partKey, topicID uint64) string {
	return filepath.Join(n.cfg.DataDir, partitionsDirName, replicaDirName(k.topic, topicID, k.partition))
}

// reconcileLoop makes the hosted replicas follow the metadata: start the
// ones assigned here, stop and delete the ones whose topic (incarnation)
// is gone. It starts only once the local metadata has caught up with the
// leader's, so a stale view never opens or deletes anything.
func (n *Node) reconcileLoop() {
	if !n.waitMetaCaughtUp() {
		return
	}
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
	topics := map[string]fsm.Topic{}
	keep := map[string]bool{} // directory names of wanted replicas
	for _, t := range n.meta.Topics() {
		topics[t.Name] = t
		for _, p := range t.Partitions {
			// Replicas, and the target of a move in progress: a replica
			// leaving in a move is kept until the move has finished.
			if p.Hosts(n.cfg.ID) {
				want[partKey{t.Name, p.ID}] = p
				keep[replicaDirName(t.Name, t.ID, p.ID)] = true
			}
		}
	}
	for _, r := range n.replicaList() {
		if err := r.fsm.Err(); err != nil {
			// The partition stopped after a failed disk write. Reopen it:
			// the log recovers to its last good batch and Raft replays
			// the rest. Not while the disk is (nearly) full: the replay
			// would fail again, and each reopen of a leader moves the
			// leadership around for nothing.
			if n.diskLow() {
				n.logger.Warn("partition failed and the data dir is below the free-space floor; reopening once space is back", "partition", r.key.String(), "err", err)
				continue
			}
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
		if _, ok := want[r.key]; ok && topics[r.key.topic].ID == r.topicID {
			continue
		}
		n.mu.Lock()
		delete(n.replicas, r.key)
		n.mu.Unlock()
		n.logger.Info("removing replica no longer assigned here (topic deleted or replica moved)", "partition", r.key.String(), "topic_id", r.topicID)
		if err := r.close(); err != nil {
			n.logger.Warn("close replica", "err", err)
		}
		if err := removeReplicaDir(r.dir); err != nil {
			n.logger.Warn("remove replica data", "dir", r.dir, "err", err)
		}
	}
	// Replicas of topics this node no longer knows, including those deleted
	// while it was down: nothing may ever read them again.
	unknown, err := unknownReplicaDirs(n.cfg.DataDir, keep)
	if err != nil {
		n.logger.Warn("list replica dirs", "err", err)
	}
	for _, dir := range unknown {
		n.logger.Info("removing replica the metadata does not know", "dir", dir)
		if err := removeReplicaDir(dir); err != nil {
			n.logger.Warn("remove replica data", "dir", dir, "err", err)
		}
	}
	// Open the missing replicas a few at a time: each waits on fsyncs,
	// and a node that hosts a thousand must not take minutes to have them
	// all, while the groups it has not opened yet cannot elect.
	sem := make(chan struct{}, replicaOpeners)
	var wg sync.WaitGroup
	for k, p := range want {
		n.mu.RLock()
		_, open := n.replicas[k]
		n.mu.RUnlock()
		if open {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := n.openReplica(k, p, topics[k.topic]); err != nil {
				n.logger.Error("open replica", "partition", k.String(), "err", err)
			}
		}()
	}
	wg.Wait()
}

// replicaOpeners is how many replicas the reconcile loop opens at once.
const replicaOpeners = 4

// makeReplicaDir creates a replica's directory durably: a new raft.db in
// a directory entry that a power loss takes away would be a replica that
// forgot what it acknowledged.
func (n *Node) makeReplicaDir(dir string) error {
	parts := filepath.Dir(dir)
	if _, err := os.Stat(parts); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(parts, 0o755); err != nil {
			return fmt.Errorf("partitions dir: %w", err)
		}
		if err := syncDir(filepath.Dir(parts)); err != nil {
			return err
		}
	}
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("replica dir: %w", err)
	}
	return syncDir(parts)
}

func (n *Node) openReplica(k partKey, p fsm.PartitionAssignment, t fsm.Topic) error {
	n.mu.RLock()
	closed := n.closed
	n.mu.RUnlock()
	if closed {
		return nil
	}
	dir := n.partitionDir(k, t.ID)
	if err := n.makeReplicaDir(dir); err != nil {
		return err
	}
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
		Repair:            &peerFrames{n: n, key: k, topicID: t.ID},
	})
	if err != nil {
		return fmt.Errorf("open partition log: %w", err)
	}
	var rf raft.FSM = pf
	if n.cfg.wrapPartitionFSM != nil {
		rf = n.cfg.wrapPartitionFSM(k.topic, pf)
	}
	g, err := n.openRaftGroup(raftGroupOptions{
		name:  "p/" + k.topic + "@" + strconv.FormatUint(t.ID, 10) + "/" + strconv.Itoa(int(k.partition)),
		dir:   dir,
		fsm:   rf,
		local: raft.ServerID(n.cfg.ID),
		// One entry holds at most one produce batch.
		maxEntryBytes: n.cfg.MaxBatchBytes + appendEntryOverhead,
		commitTimeout: n.cfg.PartitionCommitTimeout,
	})
	if err != nil {
		pf.Close()
		return err
	}
	// The stores created raft.db, snapshots/ and log/ in dir.
	if err := syncDir(dir); err != nil {
		g.shutdown()
		pf.Close()
		return err
	}
	r := &replica{key: k, topicID: t.ID, dir: dir, replicas: p.Replicas, group: g, fsm: pf, done: make(chan struct{})}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return r.close()
	}
	n.replicas[k] = r
	n.mu.Unlock()
	n.logger.Info("hosting replica", "partition", k.String(), "replicas", p.Replicas)

	// A replica joining through a move gets its configuration from the
	// leader (it is added as a non-voter); bootstrapping it would make a
	// group of its own.
	if !g.hasState() && slices.Contains(p.Replicas, n.cfg.ID) {
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
			if isLeader {
				r.startReady(r.raft().CurrentTerm()) // so the first fetch finds it done
			}
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
			if !ok || t.ID != r.topicID || int(r.key.partition) >= len(t.Partitions) {
				continue
			}
			p := t.Partitions[r.key.partition]
			if p.Leader == n.cfg.ID && p.LeaderTerm >= term {
				continue
			}
			cmd := fsm.EncodeSetLeader(r.key.topic, r.topicID, r.key.partition, n.cfg.ID, term)
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
