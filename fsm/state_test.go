package fsm

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Issue #7 defect 7: retention deleted every sealed segment and the
// active one lost its only (never fsynced) batch in a crash. The reopened
// log must still know the Raft index it had applied durably.
func TestLogKeepsRaftIndexWhenRetentionDeletedEverything(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	l, err := OpenLog(LogConfig{Dir: dir, SegmentBytes: 1, RetentionBytes: 1, Logger: quietLogger()})
	require.NoError(t, err)
	fill(t, l, 5, 2) // one batch per segment: raft 1..5
	require.Len(t, l.segs, 5)
	next := l.NextOffset()
	activeBase := l.segs[4].base
	removed, err := l.ApplyRetention()
	require.NoError(t, err)
	require.Equal(t, 4, removed)
	require.NoError(t, l.Close())
	// The crash: the active segment's batch (raft 5) was never fsynced.
	require.NoError(t, os.Truncate(segmentPath(dir, activeBase, logSuffix), 10))

	l2 := openTestLog(t, LogConfig{Dir: dir})
	assert.Equal(t, uint64(4), l2.LastRaftIndex(), "raft 1..4 were durable in sealed segments")
	assert.Equal(t, activeBase, l2.NextOffset())
	assert.Equal(t, activeBase, l2.StartOffset())
	assert.Less(t, l2.NextOffset(), next)
	require.NoError(t, l2.Close())

	p := newTestPartition(t, dir, 1)
	assert.Equal(t, uint64(4), p.AppliedIndex())
	// Raft re-applies entry 5 at the offset it had.
	r := mustAppend(t, p, 5, 1, plainBatch(t, 1))
	assert.Equal(t, activeBase, r.BaseOffset)
}

func TestLogStateFileMigrationAndDamage(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, LogConfig{Dir: dir, SegmentBytes: 1024})
	fill(t, l, 20, 2)
	require.NoError(t, l.Close())
	statePath := filepath.Join(dir, stateFileName)

	// A directory from before the state file: derived, then written.
	require.NoError(t, os.Remove(statePath))
	l2 := openTestLog(t, LogConfig{Dir: dir})
	assert.Equal(t, uint64(20), l2.LastRaftIndex())
	require.NoError(t, l2.Close())
	st, ok, err := readState(dir)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, uint64(20), st.lastRaft)
	assert.Equal(t, int64(0), st.start)

	// A damaged state file is refused, never half-read.
	b, err := os.ReadFile(statePath)
	require.NoError(t, err)
	b[22] ^= 1
	require.NoError(t, os.WriteFile(statePath, b, 0o644))
	_, err = OpenLog(LogConfig{Dir: dir, Logger: quietLogger()})
	require.ErrorIs(t, err, errCorruptState)
	require.NoError(t, os.WriteFile(statePath, b[:20], 0o644))
	_, err = OpenLog(LogConfig{Dir: dir, Logger: quietLogger()})
	require.ErrorIs(t, err, errCorruptState)
}

// A crash after retention recorded the new start but before it deleted
// the segments: open finishes the delete.
func TestLogFinishesInterruptedRetention(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, LogConfig{Dir: dir, SegmentBytes: 1})
	fill(t, l, 4, 1)
	second := l.segs[2].base
	require.NoError(t, l.Close())
	require.NoError(t, writeState(dir, logState{start: second, lastRaft: 3, next: second}))

	l2 := openTestLog(t, LogConfig{Dir: dir})
	assert.Equal(t, second, l2.StartOffset())
	assert.Len(t, segmentFiles(t, dir, logSuffix), 2)
	assert.Equal(t, uint64(4), l2.LastRaftIndex())
}

// A snapshot of a log that holds no batches but has applied Raft entries
// (retention removed them) restores with its Raft index.
func TestSnapshotOfEmptiedLogRestores(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	l, err := OpenLog(LogConfig{Dir: dir, SegmentBytes: 1, RetentionBytes: 1, Logger: quietLogger()})
	require.NoError(t, err)
	fill(t, l, 3, 1)
	activeBase := l.segs[2].base
	_, err = l.ApplyRetention()
	require.NoError(t, err)
	require.NoError(t, l.Close())
	require.NoError(t, os.Truncate(segmentPath(dir, activeBase, logSuffix), 0))

	p := newTestPartition(t, dir, 1)
	require.Equal(t, uint64(2), p.AppliedIndex())
	snap := persist(t, p)
	q := newTestPartition(t, "", 0)
	require.NoError(t, q.Restore(io.NopCloser(bytes.NewReader(snap))))
	assert.Equal(t, activeBase, q.HighWatermark())
	assert.Equal(t, uint64(2), q.currentLog().LastRaftIndex())
	r := mustAppend(t, q, 3, 1, plainBatch(t, 1))
	assert.Equal(t, activeBase, r.BaseOffset)
}
