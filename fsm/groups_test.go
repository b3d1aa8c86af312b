package fsm

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/transport"
)

func commitAt(p *Partition, idx uint64, group string, off int64, md string, at time.Time) any {
	return p.Apply(cmdLog(idx, 1, EncodeOffsetCommitAt(group, off, md, at)))
}

func TestOffsetCommitLimits(t *testing.T) {
	p, err := NewPartition(PartitionConfig{Log: LogConfig{Dir: filepath.Join(t.TempDir(), "p")}, Logger: quietLogger(), MaxGroups: 3})
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })

	err, _ = commitAt(p, 1, strings.Repeat("g", MaxGroupNameBytes+1), 1, "", testTime).(error)
	requireCode(t, err, transport.ErrInvalidRequest)
	assert.Contains(t, err.Error(), "exceeds the limit of 255")
	err, _ = commitAt(p, 2, "g", 1, strings.Repeat("m", MaxCommitMetadataBytes+1), testTime).(error)
	requireCode(t, err, transport.ErrRecordTooLarge)
	require.NoError(t, ValidateOffsetCommit(strings.Repeat("g", MaxGroupNameBytes), strings.Repeat("m", MaxCommitMetadataBytes)))

	for i := range 3 {
		require.Nil(t, commitAt(p, uint64(3+i), fmt.Sprint("g", i), 1, "", testTime))
	}
	err, _ = commitAt(p, 6, "g3", 1, "", testTime).(error)
	requireCode(t, err, transport.ErrInvalidRequest)
	assert.Contains(t, err.Error(), "3 consumer groups, the limit")
	require.Nil(t, commitAt(p, 7, "g0", 2, "", testTime), "existing groups still commit")
	_, _, ok := p.GroupOffset("g3")
	assert.False(t, ok)
}

// Expiry follows the timestamps inside the commands, so two replicas that
// apply the same entries, at any local time, keep the same groups.
func TestOffsetExpiryIsDeterministic(t *testing.T) {
	week := DefaultOffsetsRetention
	cmds := []struct {
		group string
		at    time.Time
	}{
		{"old", testTime},
		{"fresh", testTime.Add(week / 2)},
		{"trigger", testTime.Add(week + time.Hour)},
	}
	var snaps [][]byte
	for range 2 {
		p := newTestPartition(t, "", 0)
		for i, c := range cmds {
			require.Nil(t, commitAt(p, uint64(i+1), c.group, int64(i), "", c.at))
		}
		_, _, ok := p.GroupOffset("old")
		assert.False(t, ok, "offsets older than the retention expire")
		_, _, ok = p.GroupOffset("fresh")
		assert.True(t, ok)
		snaps = append(snaps, persist(t, p))
	}
	h0, err := readSnapshotHeader(bytes.NewReader(snaps[0]))
	require.NoError(t, err)
	h1, err := readSnapshotHeader(bytes.NewReader(snaps[1]))
	require.NoError(t, err)
	assert.Equal(t, h0.Groups, h1.Groups)
	assert.Equal(t, testTime.Add(week+time.Hour).UnixMilli(), h0.Clock)

	// The clock survives a snapshot: the restored replica expires the same.
	q := newTestPartition(t, "", 0)
	require.NoError(t, q.Restore(io.NopCloser(bytes.NewReader(snaps[0]))))
	require.Nil(t, commitAt(q, 4, "late", 0, "", testTime.Add(2*week)))
	_, _, ok := q.GroupOffset("fresh")
	assert.False(t, ok)
	_, _, ok = q.GroupOffset("trigger")
	assert.True(t, ok)
}

func TestSnapshotWriterRefusesWhatReaderWould(t *testing.T) {
	p := newTestPartition(t, "", 0)
	for i := range 50 {
		require.Nil(t, commitAt(p, uint64(i+1), fmt.Sprintf("group-%03d", i), 1, strings.Repeat("m", 100), testTime))
	}
	p.maxHeader = 2000
	snap, err := p.Snapshot()
	require.NoError(t, err)
	defer snap.Release()
	var sink memSink
	err = snap.Persist(&sink)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exceeds the limit")
	assert.True(t, sink.cancelled, "a snapshot the reader would refuse is never completed")

	// And the reader enforces the same limit.
	p.maxHeader = maxSnapshotHeaderBytes
	b := persist(t, p)
	q := newTestPartition(t, "", 0)
	q.maxHeader = 2000
	require.ErrorContains(t, q.Restore(io.NopCloser(bytes.NewReader(b))), "exceeds the limit")
}
