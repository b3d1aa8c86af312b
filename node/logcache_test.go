package node

import (
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// countingStore is an in-memory log store that counts reads.
type countingStore struct {
	*raft.InmemStore
	reads int
}

func (s *countingStore) GetLog(i uint64, out *raft.Log) error {
	s.reads++
	return s.InmemStore.GetLog(i, out)
}

func TestLogCacheServesRecentEntriesWithinBudget(t *testing.T) {
	store := &countingStore{InmemStore: raft.NewInmemStore()}
	c := newLogCache(store, 100)
	entry := func(i uint64, size int) *raft.Log {
		return &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: make([]byte, size)}
	}
	require.NoError(t, c.StoreLogs([]*raft.Log{entry(1, 40), entry(2, 40), entry(3, 40)}))
	var l raft.Log
	require.NoError(t, c.GetLog(3, &l))
	require.NoError(t, c.GetLog(2, &l))
	require.Zero(t, store.reads, "recent entries come from memory")
	require.NoError(t, c.GetLog(1, &l)) // evicted: over the budget
	require.Equal(t, 1, store.reads)
	require.Equal(t, uint64(1), l.Index)

	// An entry over the budget is not kept; a gap or a delete resets.
	require.NoError(t, c.StoreLog(entry(4, 500)))
	require.NoError(t, c.GetLog(4, &l))
	require.Equal(t, 2, store.reads)
	require.NoError(t, c.StoreLog(entry(5, 10)))
	require.NoError(t, c.DeleteRange(5, 5))
	require.Error(t, c.GetLog(5, &l), "a deleted entry is gone, not served from the cache")
	require.NoError(t, c.StoreLog(entry(5, 10)))
	require.NoError(t, c.GetLog(5, &l))
	require.Equal(t, 3, store.reads)
}
