package node

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/client"
)

// sizeLogStore records the largest StoreLogs call in bytes: on a follower
// one call is one AppendEntries message.
type sizeLogStore struct {
	raft.LogStore
	mu  *sync.Mutex
	max *int
}

func (s sizeLogStore) StoreLogs(logs []*raft.Log) error {
	size := 0
	for _, l := range logs {
		size += len(l.Data)
	}
	s.mu.Lock()
	*s.max = max(*s.max, size)
	s.mu.Unlock()
	return s.LogStore.StoreLogs(logs)
}

func (s sizeLogStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// TestLaggingFollowerCatchesUpInBoundedMessages lets a follower fall behind
// by many large entries and checks that it catches up through Raft
// messages no larger than the byte budget (the defaults scaled down: 64 KiB
// batches, 1 MiB messages).
func TestLaggingFollowerCatchesUpInBoundedMessages(t *testing.T) {
	skipShort(t)
	const batch, budget = 64 << 10, 1 << 20
	var mu sync.Mutex
	largest := map[string]*int{}
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.MaxBatchBytes = batch
		cfg.MaxAppendBytes = budget
		id := cfg.ID
		cfg.wrapLogStore = func(group string, s raft.LogStore) raft.LogStore {
			if !strings.HasPrefix(group, "p/") {
				return s
			}
			mu.Lock()
			defer mu.Unlock()
			if largest[id] == nil {
				largest[id] = new(int)
			}
			return sizeLogStore{LogStore: s, mu: &mu, max: largest[id]}
		}
	})
	cl := c.client()
	c.createTopic(cl, "big", 1, 3)
	leader := c.leaderIndex("big", 0)
	down := (leader + 1) % 3
	c.stop(down)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	value := make([]byte, batch-1024)
	const n = 40 // 2.5 MiB behind: several messages
	for range n {
		_, err := cl.ProduceBatch(ctx, "big", 0, []client.Record{{Value: value}})
		require.NoError(t, err)
	}
	mu.Lock()
	*largest[c.cfgs[down].ID] = 0
	mu.Unlock()
	c.start(down)
	id := c.cfgs[down].ID
	require.Eventually(t, func() bool { return replicaLen(cl, id, "big", 0) == n }, 30*time.Second, 100*time.Millisecond)
	mu.Lock()
	got := *largest[id]
	mu.Unlock()
	require.Greater(t, got, 0)
	require.LessOrEqual(t, got, budget, "an AppendEntries message carried %d bytes", got)
}

func TestMaxAppendEntries(t *testing.T) {
	require.Equal(t, 16, maxAppendEntries(16<<20, 1<<20))
	require.Equal(t, 15, maxAppendEntries(16<<20, 1<<20+appendEntryOverhead))
	require.Equal(t, 1, maxAppendEntries(1<<20, 16<<20), "never below one entry")
	require.Equal(t, 256, maxAppendEntries(16<<20, 100), "never above 256")
	require.Equal(t, 64, maxAppendEntries(16<<20, metaMaxEntryBytes))
}
