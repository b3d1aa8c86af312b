package node

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEntryChecksumDetectsDamage(t *testing.T) {
	l := &raft.Log{Index: 7, Term: 3, Type: raft.LogCommand, Data: []byte("payload")}
	s := sealed(l)
	require.Empty(t, l.Extensions, "the caller's entry is not modified")
	require.NoError(t, checkEntry(s))
	for _, damage := range []func(*raft.Log){
		func(e *raft.Log) { e.Data = []byte("paYload") },
		func(e *raft.Log) { e.Index++ },
		func(e *raft.Log) { e.Term++ },
		func(e *raft.Log) { e.Type = raft.LogNoop },
	} {
		d := *s
		damage(&d)
		assert.ErrorIs(t, checkEntry(&d), errDamagedEntry)
	}
	// Entries of older versions carry no checksum and pass.
	assert.NoError(t, checkEntry(l))
}

// Issue #7: bytes flipped in a replica's Raft log while its node is down.
// raft-wal does not check records of sealed segments, and hashicorp/raft
// panics on an entry it cannot read. On restart the damage is found, the
// log truncated there, and the replica (abstaining from elections until
// then) gets the entries again from its leader: nothing acknowledged is
// lost and the replica ends identical to the leader.
func TestDamagedRaftLogIsRecoveredFromLeader(t *testing.T) {
	skipShort(t)
	c := newTestCluster(t, 3, func(cfg *Config) {
		// No snapshot: every entry is one Raft applies again at start.
		cfg.SnapshotThreshold = 1 << 40
		cfg.SnapshotInterval = time.Hour
	})
	cl := c.client()
	acked, _, down, id := caughtUpFollower(t, c, cl, "rl", "damage-me")
	c.stop(down)

	// Flip a byte of a record value in the middle of the replica's WAL.
	segs, err := filepath.Glob(filepath.Join(c.cfgs[down].DataDir, "partitions", "rl*", "wal", "*.wal"))
	require.NoError(t, err)
	require.NotEmpty(t, segs)
	flipped := false
	for _, seg := range segs {
		b, err := os.ReadFile(seg)
		require.NoError(t, err)
		var at []int
		for i := 0; ; {
			j := bytes.Index(b[i:], []byte("damage-me"))
			if j < 0 {
				break
			}
			at = append(at, i+j)
			i += j + 1
		}
		if len(at) < 10 {
			continue
		}
		b[at[len(at)/2]] ^= 0x20
		require.NoError(t, os.WriteFile(seg, b, 0o644))
		flipped = true
		break
	}
	require.True(t, flipped, "no record values found in the WAL")

	c.start(down)
	n := c.nodes[down]
	// Replicas open in the background after the node starts.
	require.Eventually(t, func() bool { return n.damagedLogs.Load() > 0 }, 30*time.Second, 20*time.Millisecond, "the damaged log was not detected")
	more := produceConcurrently(t, cl, "rl", 0, "after", 40, 2, nil)
	for off, v := range more {
		acked[off] = v
	}
	require.Eventually(t, func() bool {
		r := n.replica("rl", 0)
		return r != nil && !r.group.trans.abstain.Load()
	}, 60*time.Second, 100*time.Millisecond, "the replica never ended its recovery")
	final := readAll(t, cl, "", "rl", 0)
	checkLog(t, final, acked)
	require.Eventually(t, func() bool {
		recs, err := tryReadAll(cl, id, "rl", 0)
		if err != nil {
			return false
		}
		requireSamePrefix(t, final, recs)
		return len(recs) == len(final)
	}, 60*time.Second, 200*time.Millisecond, "recovered replica differs from the leader")
	marker, _ := filepath.Glob(filepath.Join(c.cfgs[down].DataDir, "partitions", "rl*", recoveringFile))
	assert.Empty(t, marker, "the recovery marker was not removed")
}
