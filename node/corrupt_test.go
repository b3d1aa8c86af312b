package node

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/fsm"
)

// Issue #7: bytes flipped in a sealed segment of one replica while its
// node is down. On restart the damage is detected (never served), the log
// is moved aside and rebuilt from Raft, and the replica ends up identical
// to the leader with every acknowledged record.
func TestCorruptSealedSegmentIsRebuilt(t *testing.T) {
	skipShort(t)
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.SnapshotThreshold = 64
		cfg.SnapshotInterval = 200 * time.Millisecond
		cfg.TrailingLogs = 16
		cfg.SegmentBytes = 8 << 10
	})
	cl := c.client()
	_, leaderRecs, down, id := caughtUpFollower(t, c, cl, "c", "v")
	// Let a snapshot cover the data, so the rebuild needs more than the log.
	require.Eventually(t, func() bool {
		snaps, _ := filepath.Glob(filepath.Join(c.cfgs[down].DataDir, "partitions", "*", "snapshots", "*", "meta.json"))
		return len(snaps) > 0
	}, 30*time.Second, 100*time.Millisecond, "no snapshot taken")
	c.stop(down)

	segs, err := filepath.Glob(filepath.Join(c.cfgs[down].DataDir, "partitions", "*", "log", "*.log"))
	require.NoError(t, err)
	require.Greater(t, len(segs), 2, "the test needs sealed segments")
	flipMiddleByte(t, segs[0])
	flipMiddleByte(t, segs[1])

	c.start(down)
	require.Eventually(t, func() bool {
		recs, err := tryReadAll(cl, id, "c", 0)
		if err != nil {
			return false // the damaged range is refused, never served
		}
		requireSamePrefix(t, leaderRecs, recs)
		return len(recs) == len(leaderRecs)
	}, 60*time.Second, 200*time.Millisecond, "damaged replica was not rebuilt")
}

// caughtUpFollower creates a one-partition topic, produces 400 records
// with prefix and waits until a follower holds them all. It returns what
// was acknowledged, the leader's records and the follower's index and id.
func caughtUpFollower(t *testing.T, c *testCluster, cl *client.Client, topic, prefix string) (acked map[int64]string, leaderRecs []client.Record, down int, id string) {
	t.Helper()
	c.createTopic(cl, topic, 1, 3)
	acked = produceConcurrently(t, cl, topic, 0, prefix, 400, 4, nil)
	down = (c.leaderIndex(topic, 0) + 1) % 3
	id = c.cfgs[down].ID
	leaderRecs = readAll(t, cl, "", topic, 0)
	checkLog(t, leaderRecs, acked)
	require.Eventually(t, func() bool { return replicaLen(cl, id, topic, 0) == len(leaderRecs) },
		30*time.Second, 100*time.Millisecond, "replica did not catch up before the test")
	return acked, leaderRecs, down, id
}

// A log that fails to open as corrupt is moved aside and replaced by an
// empty one, for Raft to refill.
func TestOpenPartitionFSMMovesCorruptLogAside(t *testing.T) {
	dir := t.TempDir()
	logDir := filepath.Join(dir, "log")
	cfg := fsm.PartitionConfig{Log: fsm.LogConfig{Dir: logDir}, Logger: testLogger(t)}
	p, err := fsm.NewPartition(cfg)
	require.NoError(t, err)
	require.NoError(t, p.Close())
	require.NoError(t, os.WriteFile(filepath.Join(logDir, "state"), []byte("garbage"), 0o644))

	n := &Node{logger: testLogger(t)}
	p, err = n.openPartitionFSM(dir, cfg)
	require.NoError(t, err)
	require.NoError(t, p.Close())
	_, err = os.Stat(filepath.Join(dir, corruptLogName, "state"))
	require.NoError(t, err, "the damaged log is kept aside")
}

func flipMiddleByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	b[len(b)/2] ^= 0x5a
	require.NoError(t, os.WriteFile(path, b, 0o644))
}

// requireSamePrefix fails if a replica served anything the leader did not.
func requireSamePrefix(t *testing.T, want, got []client.Record) {
	t.Helper()
	require.LessOrEqual(t, len(got), len(want))
	for i := range got {
		require.Equal(t, want[i].Offset, got[i].Offset)
		require.Equal(t, want[i].Value, got[i].Value)
	}
}
