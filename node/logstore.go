package node

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

// A Raft group keeps its log in hashicorp/raft-wal (dir/wal/: segment files
// with a CRC commit frame per StoreLogs and one fsync each) and its stable
// store (term, vote) in raft-boltdb (dir/raft.db). raft-wal stores a 1 MiB
// entry about 7 times faster than a bolt transaction (BenchmarkStoreLogs),
// and reads an entry back without a B-tree walk and msgpack decode.

// walSegmentBytes is the size a WAL segment is sealed at. Segments are
// sparse files (see sparseFS), so an idle group costs no disk.
const walSegmentBytes = 32 << 20

// walMigrateChunk bounds the entries copied per StoreLogs when moving an
// older data directory's Raft log out of raft.db.
const walMigrateChunk = 64

// openLogStore opens dir/wal, first moving any log entries an older
// version kept in stable (raft.db) into it. noSync skips every fsync of the
// log (the skip-raft-fsync failpoint only).
func openLogStore(dir string, stable *raftboltdb.BoltStore, noSync bool, logger hclog.Logger) (*walLog, error) {
	walDir := filepath.Join(dir, "wal")
	if err := os.MkdirAll(walDir, 0o755); err != nil {
		return nil, fmt.Errorf("wal dir: %w", err)
	}
	vfs := &sparseFS{FS: walfs.New(), noSync: noSync}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(walDir,
		wal.WithSegmentFiler(segment.NewFiler(walDir, vfs)),
		wal.WithSegmentSize(walSegmentBytes),
		wal.WithMetaStore(meta),
		wal.WithLogger(logger.Named("wal")),
	)
	if err != nil {
		meta.Close()
		return nil, fmt.Errorf("open raft log %s: %w", walDir, err)
	}
	l := &walLog{WAL: w, meta: meta, logger: logger}
	if err := migrateBoltLog(stable, l); err != nil {
		l.Close()
		return nil, fmt.Errorf("move raft log from raft.db to %s: %w", walDir, err)
	}
	return l, nil
}

// walLog is a raft-wal log whose Close also closes its metadata database
// (WAL.Close leaves it open, and with it bolt's file lock, which would
// block the next open of the same replica in this process).
type walLog struct {
	*wal.WAL
	meta   *metadb.BoltMetaDB
	logger hclog.Logger
	// damaged counts reads of damaged entries (logcheck.go).
	damaged atomic.Uint64
}

func (l *walLog) Close() error {
	err := l.WAL.Close()
	if merr := l.meta.Close(); merr != nil && err == nil {
		err = merr
	}
	return err
}

// migrateBoltLog moves the entries of an older data directory's Raft log
// from raft.db into the WAL. It is idempotent: a move interrupted by a crash
// continues after the last entry the WAL holds, and raft.db's entries are
// deleted only once the WAL has them all (fsynced).
func migrateBoltLog(from *raftboltdb.BoltStore, to raft.LogStore) error {
	last, err := from.LastIndex()
	if err != nil || last == 0 {
		return err
	}
	first, err := from.FirstIndex()
	if err != nil {
		return err
	}
	have, err := to.LastIndex()
	if err != nil {
		return err
	}
	start := first
	if have >= first {
		start = have + 1
	}
	batch := make([]*raft.Log, 0, walMigrateChunk)
	for i := start; i <= last; i++ {
		l := new(raft.Log)
		if err := from.GetLog(i, l); err != nil {
			return fmt.Errorf("read entry %d: %w", i, err)
		}
		batch = append(batch, l)
		if len(batch) == cap(batch) || i == last {
			if err := to.StoreLogs(batch); err != nil {
				return fmt.Errorf("store entries up to %d: %w", i, err)
			}
			batch = batch[:0]
		}
	}
	return from.DeleteRange(first, last)
}

// sparseFS is raft-wal's file system with segment files created sparse
// (ftruncate) instead of preallocated: a node hosting a thousand replicas
// must not reserve a segment of disk for each. The zeros read from the
// unwritten part are what raft-wal's recovery expects of a preallocated
// file.
type sparseFS struct {
	*walfs.FS
	noSync bool
}

func (s *sparseFS) Create(dir, name string, size uint64) (types.WritableFile, error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if size > 0 {
		if err := f.Truncate(int64(size)); err != nil {
			f.Close()
			return nil, err
		}
	}
	return &segmentFile{File: f, dir: dir, noSync: s.noSync}, nil
}

func (s *sparseFS) OpenWriter(dir, name string) (types.WritableFile, error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	sf := &segmentFile{File: f, dir: dir, noSync: s.noSync}
	sf.dirSynced.Store(true)
	return sf, nil
}

// segmentFile fsyncs its directory with its first Sync, so a new segment's
// directory entry is durable before anything in it is acknowledged.
type segmentFile struct {
	*os.File
	dir       string
	noSync    bool
	dirSynced atomic.Bool
}

func (f *segmentFile) Sync() error {
	if f.noSync {
		return nil
	}
	if err := f.File.Sync(); err != nil {
		return err
	}
	if f.dirSynced.Swap(true) {
		return nil
	}
	if err := syncDir(f.dir); err != nil {
		f.dirSynced.Store(false)
		return err
	}
	return nil
}
