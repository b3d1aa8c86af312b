package fsm

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

func newTestSnapStore(t *testing.T, retain int) *SnapshotStore {
	t.Helper()
	s, err := NewSnapshotStore(filepath.Join(t.TempDir(), SnapshotStoreDir), retain, false, quietLogger())
	require.NoError(t, err)
	return s
}

func readSnapshot(t *testing.T, s *SnapshotStore, id string) (*raft.SnapshotMeta, []byte, error) {
	t.Helper()
	meta, rc, err := s.Open(id)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return meta, b, err
}

// TestSnapshotStoreLinksRanges writes a snapshot of written parts and a
// linked range: its stream is their concatenation, and stays so when the
// linked file grows afterwards or is deleted (retention) before Open.
func TestSnapshotStoreLinksRanges(t *testing.T) {
	s := newTestSnapStore(t, 2)
	seg := filepath.Join(t.TempDir(), "00000000000000000000.log")
	require.NoError(t, os.WriteFile(seg, []byte("0123456789abcdef"), 0o644))

	sink, err := s.Create(1, 10, 2, raft.Configuration{}, 1, nil)
	require.NoError(t, err)
	_, err = sink.Write([]byte("HEAD"))
	require.NoError(t, err)
	require.NoError(t, sink.(SegmentLinker).LinkRange(seg, 4, 8))
	_, err = sink.Write([]byte("TAIL"))
	require.NoError(t, err)
	require.NoError(t, sink.Close())

	f, err := os.OpenFile(seg, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("appended later")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, os.Remove(seg))

	metas, err := s.List()
	require.NoError(t, err)
	require.Len(t, metas, 1)
	require.Equal(t, uint64(10), metas[0].Index)
	meta, b, err := readSnapshot(t, s, metas[0].ID)
	require.NoError(t, err)
	require.Equal(t, "HEAD456789abTAIL", string(b))
	require.Equal(t, int64(len(b)), meta.Size)
}

// TestSnapshotStoreReadsFileStoreSnapshots opens a snapshot directory
// hashicorp/raft's FileSnapshotStore wrote (older versions of Sluice).
func TestSnapshotStoreReadsFileStoreSnapshots(t *testing.T) {
	dir := t.TempDir()
	fs, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	require.NoError(t, err)
	_, trans := raft.NewInmemTransport("a")
	sink, err := fs.Create(1, 7, 3, raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: "a"}}}, 1, trans)
	require.NoError(t, err)
	_, err = sink.Write([]byte("legacy snapshot stream"))
	require.NoError(t, err)
	require.NoError(t, sink.Close())

	s, err := NewSnapshotStore(filepath.Join(dir, SnapshotStoreDir), 2, false, quietLogger())
	require.NoError(t, err)
	metas, err := s.List()
	require.NoError(t, err)
	require.Len(t, metas, 1)
	meta, b, err := readSnapshot(t, s, metas[0].ID)
	require.NoError(t, err)
	require.Equal(t, "legacy snapshot stream", string(b))
	require.Equal(t, uint64(7), meta.Index)
	require.Equal(t, raft.ServerID("n1"), meta.Configuration.Servers[0].ID)
}

// TestSnapshotStoreDetectsDamage: a written part that changed on disk fails
// its CRC when read; a meta whose parts do not add up is not listed.
func TestSnapshotStoreDetectsDamage(t *testing.T) {
	s := newTestSnapStore(t, 2)
	sink, err := s.Create(1, 5, 1, raft.Configuration{}, 1, nil)
	require.NoError(t, err)
	_, err = sink.Write(bytes.Repeat([]byte("x"), 1000))
	require.NoError(t, err)
	require.NoError(t, sink.Close())
	id := sink.ID()

	part := filepath.Join(s.dir, id, "part-0")
	b, err := os.ReadFile(part)
	require.NoError(t, err)
	b[500] = 'y'
	require.NoError(t, os.WriteFile(part, b, 0o644))
	_, _, err = readSnapshot(t, s, id)
	require.ErrorIs(t, err, ErrCorruptLog)

	mb, err := os.ReadFile(filepath.Join(s.dir, id, snapMetaFile))
	require.NoError(t, err)
	var m snapMeta
	require.NoError(t, json.Unmarshal(mb, &m))
	m.Size++
	mb, err = json.Marshal(&m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(s.dir, id, snapMetaFile), mb, 0o644))
	metas, err := s.List()
	require.NoError(t, err)
	require.Empty(t, metas)
}

// TestSnapshotStoreRetainsAndCleansUp keeps the newest snapshots only,
// drops a cancelled one, and removes unfinished ones on open.
func TestSnapshotStoreRetainsAndCleansUp(t *testing.T) {
	s := newTestSnapStore(t, 2)
	for i := uint64(1); i <= 4; i++ {
		sink, err := s.Create(1, i*10, 1, raft.Configuration{}, 1, nil)
		require.NoError(t, err)
		_, err = sink.Write([]byte{byte(i)})
		require.NoError(t, err)
		require.NoError(t, sink.Close())
	}
	cancelled, err := s.Create(1, 99, 1, raft.Configuration{}, 1, nil)
	require.NoError(t, err)
	require.NoError(t, cancelled.Cancel())
	unfinished, err := s.Create(1, 100, 1, raft.Configuration{}, 1, nil)
	require.NoError(t, err)
	_, err = unfinished.Write([]byte("crash before close"))
	require.NoError(t, err)

	metas, err := s.List()
	require.NoError(t, err)
	require.Len(t, metas, 2)
	require.Equal(t, uint64(40), metas[0].Index)
	require.Equal(t, uint64(30), metas[1].Index)
	entries, err := os.ReadDir(s.dir)
	require.NoError(t, err)
	require.Len(t, entries, 3, "two snapshots and the unfinished one")

	s2, err := NewSnapshotStore(s.dir, 2, false, quietLogger())
	require.NoError(t, err)
	entries, err = os.ReadDir(s2.dir)
	require.NoError(t, err)
	require.Len(t, entries, 2, "the unfinished snapshot is removed on open")
}
