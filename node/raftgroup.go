package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/sluice-io/sluice/fsm"
	"github.com/sluice-io/sluice/internal/failpoint"
)

// raftGroup is one hashicorp/raft instance with its stores and transport.
type raftGroup struct {
	name   string
	raft   *raft.Raft
	store  *walLog               // the Raft log (logstore.go)
	stable *raftboltdb.BoltStore // term and vote
	trans  *groupTransport
	// reload is the group's own reloadable config; hurrying is set while
	// liveness.go has shortened its timers.
	reload   raft.ReloadableConfig
	hurrying atomic.Bool
}

type raftGroupOptions struct {
	name  string // group name on the mux
	dir   string
	fsm   raft.FSM
	local raft.ServerID
	// maxEntryBytes is the largest command the group commits; it sets how
	// many entries one AppendEntries may carry.
	maxEntryBytes int
	// commitTimeout overrides hashicorp/raft's CommitTimeout when non-zero.
	commitTimeout time.Duration
	// snapshotThreshold and interval override the node defaults when non-zero.
	snapshotThreshold uint64
	snapshotInterval  time.Duration
}

// openRaftGroup opens (or creates) the stores under dir and starts Raft
// with its transport registered on the mux under the group's name.
func (n *Node) openRaftGroup(o raftGroupOptions) (*raftGroup, error) {
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return nil, fmt.Errorf("raft dir: %w", err)
	}
	noSync := failpoint.Enabled(failpoint.SkipRaftFsync)
	stable, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(o.dir, "raft.db"), NoSync: noSync})
	if err != nil {
		return nil, fmt.Errorf("open raft store: %w", err)
	}
	hl := hclog.New(&hclog.LoggerOptions{
		Name:        "raft." + o.name,
		Level:       hclog.Warn,
		Output:      &slogWriter{logger: n.logger},
		DisableTime: true,
	})
	// The log store fsyncs every StoreLogs call: an entry is durable
	// before this node counts toward its commit.
	store, err := openLogStore(o.dir, stable, noSync, hl)
	if err != nil {
		stable.Close()
		return nil, err
	}
	closeStores := func() {
		store.Close()
		stable.Close()
	}
	// Snapshots link the partition's segment files instead of copying
	// them (fsm.SnapshotStore); the directory is where hashicorp/raft's
	// file store kept them, whose snapshots it still reads.
	snaps, err := fsm.NewSnapshotStore(filepath.Join(o.dir, fsm.SnapshotStoreDir), 2, noSync, n.logger.With("raft_group", o.name))
	if err != nil {
		closeStores()
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	layer, err := n.mux.RaftLayer(o.name)
	if err != nil {
		closeStores()
		return nil, fmt.Errorf("register raft group %s: %w", o.name, err)
	}
	// The network transport carries snapshots only (see groupTransport):
	// one pooled connection per peer is plenty.
	trans := newGroupTransport(raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: 1,
		Timeout: raftIOTimeout,
		Logger:  hl,
	}), o.name, n.heartbeats, n.callRaft)
	rc := raft.DefaultConfig()
	rc.LocalID = o.local
	rc.Logger = hl
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	rc.SnapshotInterval = n.cfg.SnapshotInterval
	if o.snapshotThreshold != 0 {
		rc.SnapshotThreshold = o.snapshotThreshold
	}
	if o.snapshotInterval != 0 {
		rc.SnapshotInterval = o.snapshotInterval
	}
	if o.commitTimeout != 0 {
		rc.CommitTimeout = o.commitTimeout
	}
	rc.TrailingLogs = n.cfg.TrailingLogs
	// Group many client batches into one fsync of the Raft log.
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = maxAppendEntries(n.cfg.MaxAppendBytes, o.maxEntryBytes)
	var logs raft.LogStore = newLogCache(store, logCacheBytes)
	if n.cfg.wrapLogStore != nil {
		logs = n.cfg.wrapLogStore(o.name, logs)
		if _, ok := logs.(raft.MonotonicLogStore); !ok {
			logs = monotonicLog{logs}
		}
	}
	recoverTo, err := n.checkRaftLog(o.name, o.dir, store, snaps)
	if err != nil {
		trans.Close()
		closeStores()
		return nil, err
	}
	trans.abstain.Store(recoverTo > 0)
	r, err := raft.NewRaft(rc, o.fsm, logs, stable, snaps, trans)
	if err != nil {
		trans.Close()
		closeStores()
		return nil, fmt.Errorf("start raft group %s: %w", o.name, err)
	}
	rg := &raftGroup{name: o.name, raft: r, store: store, stable: stable, trans: trans, reload: reloadableConfig(rc)}
	if recoverTo > 0 {
		go n.watchRecovery(rg, o.dir, recoverTo)
	}
	return rg, nil
}

// raftIOTimeout is the transport's deadline for one Raft message (dial,
// write, reply). With the default 16 MiB message budget a link must carry
// about 1.6 MiB/s for a full catch-up message to make it; slower links need
// a smaller --max-batch-bytes or MaxAppendBytes.
const raftIOTimeout = 10 * time.Second

// maxAppendEntries turns the byte budget of one AppendEntries message into
// hashicorp/raft's entry count: count × largest entry stays within budget.
// The count also caps how many applies share one fsync (BatchApplyCh), so
// it never drops below 1 nor exceeds 256.
func maxAppendEntries(budget, maxEntry int) int {
	if maxEntry <= 0 {
		return 64
	}
	return max(1, min(256, budget/maxEntry))
}

// appendEntryOverhead is what a partition command adds to its batch.
const appendEntryOverhead = 64

// metaMaxEntryBytes sizes the metadata group's entries for its count:
// commands are small (the largest, a create of 10000 partitions, is a few
// hundred KiB).
const metaMaxEntryBytes = 256 << 10

// bootstrap writes the initial configuration unless the group has state.
func (g *raftGroup) bootstrap(servers []raft.Server) error {
	err := g.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap %s: %w", g.name, err)
	}
	return nil
}

// hasState reports whether the group has any log, snapshot or term yet.
func (g *raftGroup) hasState() bool {
	return g.raft.LastIndex() > 0
}

func (g *raftGroup) shutdown() error {
	g.trans.stop()
	err := g.raft.Shutdown().Error()
	if cerr := g.trans.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if cerr := g.store.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if cerr := g.stable.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}
