package node

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/stretchr/testify/require"
)

// TestLogStoreMigratesBoltLog opens a replica directory of the layout before
// raft-wal, whose raft.db holds the Raft log: the entries move into the WAL
// (also when an earlier move was interrupted halfway), raft.db keeps only
// the stable store, and the term survives.
func TestLogStoreMigratesBoltLog(t *testing.T) {
	for _, interrupted := range []bool{false, true} {
		t.Run(fmt.Sprintf("interrupted=%v", interrupted), func(t *testing.T) {
			dir := t.TempDir()
			old, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
			require.NoError(t, err)
			var logs []*raft.Log
			for i := uint64(5); i <= 300; i++ {
				logs = append(logs, &raft.Log{Index: i, Term: 3, Type: raft.LogCommand, Data: fmt.Appendf(nil, "entry %d", i)})
			}
			require.NoError(t, old.StoreLogs(logs))
			require.NoError(t, old.SetUint64([]byte("CurrentTerm"), 3))
			require.NoError(t, old.Close())

			if interrupted {
				// A crash after the WAL took the first 100 entries and before
				// raft.db's were deleted.
				w, err := openLogStoreNoMigrate(dir)
				require.NoError(t, err)
				require.NoError(t, w.StoreLogs(logs[:100]))
				require.NoError(t, w.Close())
			}

			stable, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
			require.NoError(t, err)
			defer stable.Close()
			w, err := openLogStore(dir, stable, false, hclog.NewNullLogger())
			require.NoError(t, err)
			defer w.Close()

			first, err := w.FirstIndex()
			require.NoError(t, err)
			last, err := w.LastIndex()
			require.NoError(t, err)
			require.Equal(t, uint64(5), first)
			require.Equal(t, uint64(300), last)
			for i := first; i <= last; i++ {
				var l raft.Log
				require.NoError(t, w.GetLog(i, &l))
				require.Equal(t, fmt.Sprintf("entry %d", i), string(l.Data))
				require.Equal(t, uint64(3), l.Term)
			}
			boltLast, err := stable.LastIndex()
			require.NoError(t, err)
			require.Zero(t, boltLast, "raft.db still holds log entries")
			term, err := stable.GetUint64([]byte("CurrentTerm"))
			require.NoError(t, err)
			require.Equal(t, uint64(3), term)
		})
	}
}

// openLogStoreNoMigrate opens dir's WAL without looking at raft.db.
func openLogStoreNoMigrate(dir string) (interface {
	StoreLogs([]*raft.Log) error
	Close() error
}, error) {
	empty, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "empty.db")})
	if err != nil {
		return nil, err
	}
	defer os.Remove(filepath.Join(dir, "empty.db"))
	defer empty.Close()
	return openLogStore(dir, empty, false, hclog.NewNullLogger())
}

// TestLogStoreSegmentsAreSparse checks that a new group does not reserve
// a segment's worth of disk.
func TestLogStoreSegmentsAreSparse(t *testing.T) {
	dir := t.TempDir()
	stable, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	require.NoError(t, err)
	defer stable.Close()
	w, err := openLogStore(dir, stable, false, hclog.NewNullLogger())
	require.NoError(t, err)
	require.NoError(t, w.StoreLogs([]*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte("x")}}))
	require.NoError(t, w.Close())

	used := diskUsage(t, filepath.Join(dir, "wal"))
	require.Less(t, used, int64(1<<20), "the WAL directory occupies %d bytes of disk", used)

	// And the entry is still there after a reopen.
	w, err = openLogStore(dir, stable, false, hclog.NewNullLogger())
	require.NoError(t, err)
	defer w.Close()
	var l raft.Log
	require.NoError(t, w.GetLog(1, &l))
	require.Equal(t, "x", string(l.Data))
}

// diskUsage is the disk space the files under dir occupy (not their sizes).
func diskUsage(t *testing.T, dir string) int64 {
	t.Helper()
	var used int64
	require.NoError(t, filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			used += st.Blocks * 512
		}
		return nil
	}))
	return used
}

// TestLogStoreReopensAfterTailTruncation truncates the log's tail, as a
// follower does when its log conflicts with a new leader's, keeps
// appending, and reopens: every entry must read back. raft-wal v0.4.0
// marked the truncated segment sealed without writing its index block,
// and the reopened log failed ("sealed segment has no index block",
// which hashicorp/raft turns into a panic at start).
func TestLogStoreReopensAfterTailTruncation(t *testing.T) {
	dir := t.TempDir()
	stable, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	require.NoError(t, err)
	defer stable.Close()
	w, err := openLogStore(dir, stable, false, hclog.NewNullLogger())
	require.NoError(t, err)
	entry := func(i, term uint64) *raft.Log {
		return &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: fmt.Appendf(nil, "entry %d term %d", i, term)}
	}
	for i := uint64(1); i <= 10; i++ {
		require.NoError(t, w.StoreLogs([]*raft.Log{entry(i, 1)}))
	}
	require.NoError(t, w.DeleteRange(8, 10))
	for i := uint64(8); i <= 12; i++ {
		require.NoError(t, w.StoreLogs([]*raft.Log{entry(i, 2)}))
	}
	require.NoError(t, w.Close())

	w, err = openLogStore(dir, stable, false, hclog.NewNullLogger())
	require.NoError(t, err)
	defer w.Close()
	last, err := w.LastIndex()
	require.NoError(t, err)
	require.Equal(t, uint64(12), last)
	for i := uint64(1); i <= 12; i++ {
		var l raft.Log
		require.NoError(t, w.GetLog(i, &l), "entry %d", i)
		term := uint64(1)
		if i >= 8 {
			term = 2
		}
		require.Equal(t, fmt.Sprintf("entry %d term %d", i, term), string(l.Data))
	}
}
