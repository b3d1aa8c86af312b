package node

import (
	"sync"

	"github.com/hashicorp/raft"
)

// logCache keeps a Raft group's most recently stored entries in memory, up
// to a byte budget, in front of its log store: the leader reads each entry
// back right after storing it to replicate it (and the one before, for
// the consistency check), and followers look at the previous entry of
// every AppendEntries. hashicorp/raft's LogCache bounds entries by count,
// which for 1 MiB produce batches is no bound at all.
type logCache struct {
	store  raft.LogStore
	budget int

	mu      sync.Mutex
	entries []*raft.Log // consecutive indexes, oldest first
	bytes   int
}

// logCacheBytes is the budget of one group's cache: a few produce
// batches, enough for the entries a pipelined leader has in flight.
const logCacheBytes = 4 << 20

func newLogCache(store raft.LogStore, budget int) *logCache {
	return &logCache{store: store, budget: budget}
}

func (c *logCache) FirstIndex() (uint64, error) { return c.store.FirstIndex() }
func (c *logCache) LastIndex() (uint64, error)  { return c.store.LastIndex() }

func (c *logCache) GetLog(index uint64, out *raft.Log) error {
	c.mu.Lock()
	if n := len(c.entries); n > 0 {
		first := c.entries[0].Index
		if index >= first && index < first+uint64(n) {
			*out = *c.entries[index-first]
			c.mu.Unlock()
			return nil
		}
	}
	c.mu.Unlock()
	return c.store.GetLog(index, out)
}

func (c *logCache) StoreLog(l *raft.Log) error { return c.StoreLogs([]*raft.Log{l}) }

func (c *logCache) StoreLogs(logs []*raft.Log) error {
	err := c.store.StoreLogs(logs)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.reset() // the store may hold some of them, or none
		return err
	}
	for _, l := range logs {
		if n := len(c.entries); n > 0 && c.entries[n-1].Index+1 != l.Index {
			c.reset()
		}
		size := len(l.Data) + len(l.Extensions)
		if size > c.budget {
			c.reset()
			continue
		}
		c.entries = append(c.entries, l)
		c.bytes += size
		for c.bytes > c.budget {
			old := c.entries[0]
			c.entries[0] = nil
			c.entries = c.entries[1:]
			c.bytes -= len(old.Data) + len(old.Extensions)
		}
	}
	return nil
}

func (c *logCache) DeleteRange(min, max uint64) error {
	c.mu.Lock()
	c.reset()
	c.mu.Unlock()
	return c.store.DeleteRange(min, max)
}

// IsMonotonic passes on the store's promise (raft-wal: no gaps), which
// changes how hashicorp/raft clears the log after restoring a snapshot.
func (c *logCache) IsMonotonic() bool {
	m, ok := c.store.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

func (c *logCache) reset() {
	clear(c.entries)
	c.entries, c.bytes = c.entries[:0], 0
}

// monotonicLog marks a wrapped log store (a test's wrapper) as monotonic
// when the store under it is.
type monotonicLog struct{ raft.LogStore }

func (monotonicLog) IsMonotonic() bool { return true }
