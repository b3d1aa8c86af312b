package fsm

import (
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// These tests run the partition FSM under real hashicorp/raft (in-memory
// transport and log store) to check the restart and InstallSnapshot paths
// end to end, with the partition SnapshotStore (frames linked) and with
// hashicorp/raft's file store (frames copied, as older versions did).

type raftNode struct {
	id    raft.ServerID
	addr  raft.ServerAddress
	dir   string
	store *raft.InmemStore
	snaps raft.SnapshotStore
	trans *raft.InmemTransport
	part  *Partition
	r     *raft.Raft
}

func raftConfig(id raft.ServerID) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = id
	c.HeartbeatTimeout = 100 * time.Millisecond
	c.ElectionTimeout = 100 * time.Millisecond
	c.LeaderLeaseTimeout = 50 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.SnapshotThreshold = 1 << 30 // snapshots only when the test asks
	c.SnapshotInterval = time.Hour
	c.TrailingLogs = 5
	c.Logger = hclog.NewNullLogger()
	return c
}

// snapshotStores are the snapshot stores the raft tests run with.
var snapshotStores = []string{"segments", "file"}

func newRaftNode(t *testing.T, root, id, snaps string) *raftNode {
	t.Helper()
	n := &raftNode{id: raft.ServerID(id), dir: filepath.Join(root, id), store: raft.NewInmemStore()}
	var err error
	if snaps == "file" {
		n.snaps, err = raft.NewFileSnapshotStore(n.dir, 2, io.Discard)
	} else {
		n.snaps, err = NewSnapshotStore(filepath.Join(n.dir, SnapshotStoreDir), 2, false, quietLogger())
	}
	require.NoError(t, err)
	n.addr, n.trans = raft.NewInmemTransport(raft.ServerAddress(id))
	n.start(t)
	return n
}

func (n *raftNode) start(t *testing.T) {
	t.Helper()
	var err error
	n.part, err = NewPartition(PartitionConfig{Log: LogConfig{Dir: filepath.Join(n.dir, "log"), SegmentBytes: 4096}, Logger: quietLogger()})
	require.NoError(t, err)
	n.r, err = raft.NewRaft(raftConfig(n.id), n.part, n.store, n.store, n.snaps, n.trans)
	require.NoError(t, err)
}

func (n *raftNode) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, n.r.Shutdown().Error())
	require.NoError(t, n.part.Close())
}

func waitLeader(t *testing.T, nodes ...*raftNode) *raftNode {
	t.Helper()
	var leader *raftNode
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if n.r.State() == raft.Leader {
				leader = n
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond)
	return leader
}

func applyCmd(t *testing.T, r *raft.Raft, cmd []byte) any {
	t.Helper()
	f := r.Apply(cmd, 5*time.Second)
	require.NoError(t, f.Error())
	return f.Response()
}

func TestRaftRestartReplaysWithoutDoubleAppend(t *testing.T) {
	for _, snaps := range snapshotStores {
		t.Run(snaps, func(t *testing.T) { testRaftRestartReplays(t, snaps) })
	}
}

func testRaftRestartReplays(t *testing.T, snaps string) {
	n := newRaftNode(t, t.TempDir(), "n1", snaps)
	require.NoError(t, n.r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: n.id, Address: n.addr}}}).Error())
	waitLeader(t, n)

	cmds := script(t, 80)
	for i, c := range cmds {
		applyCmd(t, n.r, c)
		if i == 39 {
			require.NoError(t, n.r.Snapshot().Error())
		}
	}
	want := partitionBatches(t, n.part)
	wantHW := n.part.HighWatermark()
	lastIndex := n.r.LastIndex()
	n.stop(t)

	// Restart on the same stores: Raft restores the snapshot and replays
	// the 40 entries after it over a log that already holds them.
	n.start(t)
	defer n.stop(t)
	waitLeader(t, n)
	require.Eventually(t, func() bool { return n.part.AppliedIndex() >= lastIndex }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, wantHW, n.part.HighWatermark())
	require.Equal(t, want, partitionBatches(t, n.part))

	// New appends continue from there.
	r := applyCmd(t, n.r, EncodeAppend(plainBatch(t, 2))).(*AppendResult)
	require.Equal(t, wantHW, r.BaseOffset)
}

func TestRaftInstallSnapshotRebuildsFollower(t *testing.T) {
	for _, snaps := range snapshotStores {
		t.Run(snaps, func(t *testing.T) { testRaftInstallSnapshot(t, snaps) })
	}
}

func testRaftInstallSnapshot(t *testing.T, snaps string) {
	root := t.TempDir()
	var nodes []*raftNode
	var servers []raft.Server
	for i := 1; i <= 3; i++ {
		n := newRaftNode(t, root, fmt.Sprintf("n%d", i), snaps)
		nodes = append(nodes, n)
		servers = append(servers, raft.Server{ID: n.id, Address: n.addr})
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.trans.Connect(b.addr, b.trans)
			}
		}
	}
	defer func() {
		for _, n := range nodes {
			n.stop(t)
		}
	}()
	require.NoError(t, nodes[0].r.BootstrapCluster(raft.Configuration{Servers: servers}).Error())
	leader := waitLeader(t, nodes...)

	cmds := script(t, 150)
	for _, c := range cmds[:20] {
		applyCmd(t, leader.r, c)
	}
	// Cut one follower off, move on without it and compact the leader's log.
	var lagging *raftNode
	for _, n := range nodes {
		if n != leader {
			lagging = n
			break
		}
	}
	for _, n := range nodes {
		if n != lagging {
			n.trans.Disconnect(lagging.addr)
			lagging.trans.Disconnect(n.addr)
		}
	}
	for _, c := range cmds[20:] {
		applyCmd(t, leader.r, c)
	}
	require.NoError(t, leader.r.Snapshot().Error())
	for _, n := range nodes {
		if n != lagging {
			n.trans.Connect(lagging.addr, lagging.trans)
			lagging.trans.Connect(n.addr, n.trans)
		}
	}
	// One more entry so every replica converges on the same last index.
	leader = waitLeader(t, nodes...)
	applyCmd(t, leader.r, EncodeAppend(plainBatch(t, 1)))
	last := leader.r.LastIndex()

	require.Eventually(t, func() bool { return lagging.part.AppliedIndex() >= last }, 20*time.Second, 20*time.Millisecond)
	snapIndex, err := strconv.ParseUint(lagging.r.Stats()["last_snapshot_index"], 10, 64)
	require.NoError(t, err)
	require.Positive(t, snapIndex, "the follower caught up through InstallSnapshot")
	for _, n := range nodes {
		if n != leader {
			require.Eventually(t, func() bool { return n.part.AppliedIndex() >= last }, 10*time.Second, 10*time.Millisecond)
			assertSameLog(t, leader.part, n.part)
		}
	}
}
