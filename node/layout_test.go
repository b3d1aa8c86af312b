package node

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReplicaDirNames(t *testing.T) {
	for _, c := range []struct {
		topic string
		id    uint64
		p     int32
	}{{"orders", 12, 0}, {"a-1", 7, 3}, {"x.y_z-0", 0, 11}} {
		topic, id, p, ok := parseReplicaDirName(replicaDirName(c.topic, c.id, c.p))
		require.True(t, ok)
		assert.Equal(t, c.topic, topic)
		assert.Equal(t, c.id, id)
		assert.Equal(t, c.p, p)
	}
	for _, bad := range []string{"orders-0", "@1-0", "a@x-0", "a@1-", "a@1-x", "a@1--1", "sp ace@1-0", ".trash"} {
		_, _, _, ok := parseReplicaDirName(bad)
		assert.False(t, ok, bad)
	}
}

func TestPrepareLayoutMigratesLegacyDirs(t *testing.T) {
	data := t.TempDir()
	parts := filepath.Join(data, partitionsDirName)
	require.NoError(t, os.MkdirAll(filepath.Join(parts, "orders-2", "log"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(parts, "orders-2", "raft.db"), []byte("x"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(parts, "a-b-10"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(parts, "new@5-0"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(parts, trashDirName, "old@1-0.123"), 0o755))

	require.NoError(t, prepareLayout(data))
	var names []string
	entries, err := os.ReadDir(parts)
	require.NoError(t, err)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"orders@0-2", "a-b@0-10", "new@5-0"}, names, "legacy dirs renamed, the trash emptied")
	_, err = os.Stat(filepath.Join(parts, "orders@0-2", "raft.db"))
	require.NoError(t, err, "contents move with the directory")
	require.NoError(t, prepareLayout(data), "idempotent")

	// A name it cannot place is refused with what to do, untouched.
	require.NoError(t, os.WriteFile(filepath.Join(parts, "notes.txt"), nil, 0o644))
	err = prepareLayout(data)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "move it out")
	require.NoError(t, os.Remove(filepath.Join(parts, "notes.txt")))
	// Both layouts of one replica: refuse rather than pick one.
	require.NoError(t, os.MkdirAll(filepath.Join(parts, "new-0"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(parts, "new@0-0"), 0o755))
	err = prepareLayout(data)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "remove the one")
}

func TestRemoveReplicaDir(t *testing.T) {
	data := t.TempDir()
	dir := filepath.Join(data, partitionsDirName, "t@3-0")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "log"), 0o755))
	require.NoError(t, removeReplicaDir(dir))
	_, err := os.Stat(dir)
	assert.True(t, os.IsNotExist(err))
	unknown, err := unknownReplicaDirs(data, nil)
	require.NoError(t, err)
	assert.Empty(t, unknown, "the trash is no replica")
	require.NoError(t, removeReplicaDir(dir), "removing twice is fine")
}
