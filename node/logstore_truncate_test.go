package node

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/stretchr/testify/require"
)

// TestLogStoreReopensAfterTailTruncation: a deposed leader's uncommitted
// tail is removed (Raft's DeleteRange of the log's suffix) and the node
// restarts. raft-wal before v0.4.1 marked the truncated segment sealed
// without writing its index block, and the reopen failed with "sealed
// segment has no index block" (hashicorp/raft-wal#31), which made
// hashicorp/raft panic at start; the chaos self-test's clean run found it
// (a leader partition, then power-loss-all).
func TestLogStoreReopensAfterTailTruncation(t *testing.T) {
	dir := t.TempDir()
	open := func() (*walLog, *raftboltdb.BoltStore) {
		stable, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
		require.NoError(t, err)
		w, err := openLogStore(dir, stable, false, hclog.NewNullLogger())
		require.NoError(t, err)
		return w, stable
	}
	w, stable := open()
	var logs []*raft.Log
	for i := uint64(1); i <= 20; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: fmt.Appendf(nil, "entry %d", i)})
	}
	require.NoError(t, w.StoreLogs(logs))
	require.NoError(t, w.DeleteRange(16, 20)) // the uncommitted tail
	require.NoError(t, w.StoreLogs([]*raft.Log{{Index: 16, Term: 2, Type: raft.LogCommand, Data: []byte("new 16")}}))
	require.NoError(t, w.Close())
	require.NoError(t, stable.Close())

	w, stable = open()
	defer stable.Close()
	defer w.Close()
	last, err := w.LastIndex()
	require.NoError(t, err)
	require.Equal(t, uint64(16), last)
	for i := uint64(1); i <= 16; i++ {
		var l raft.Log
		require.NoError(t, w.GetLog(i, &l), "entry %d", i)
	}
	var l raft.Log
	require.NoError(t, w.GetLog(16, &l))
	require.Equal(t, "new 16", string(l.Data))
}
