package node

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sluice-io/sluice/transport"
)

// A leader's process that dies (kill -9, crash) leaves its followers
// waiting out a heartbeat timeout and then an election timeout before
// anyone serves its partitions again. Its port, though, refuses
// connections at once. Every node therefore pings every other node often;
// when a peer's port refuses, the groups here whose leader that peer was
// shorten their election timers for a moment (hurry). A peer that merely
// stops answering (a partition, a pause) is left to Raft's own timers:
// only a refused connection proves the process is gone. Shorter timers
// only change when an election starts, never whether a vote is granted,
// so Raft's safety does not depend on this guess.
const (
	livenessInterval = 100 * time.Millisecond
	// hurryFor is how long hurried timers stay short: enough for an
	// election or two, short enough that a slow link is not mistaken for
	// a dead leader afterwards.
	hurryFor = 3 * time.Second
)

// livenessLoop pings the other brokers every livenessInterval.
func (n *Node) livenessLoop() {
	gone := map[string]bool{}
	var mu sync.Mutex
	for n.sleep(livenessInterval) {
		var wg sync.WaitGroup
		for _, b := range n.meta.Brokers() {
			if b.ID == n.cfg.ID || b.RPCAddr == "" {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(n.ctx, 2*livenessInterval)
				err := n.pool.Call(ctx, b.RPCAddr, transport.MethodPing, transport.Empty{}, nil)
				cancel()
				refused := err != nil && errors.Is(err, syscall.ECONNREFUSED)
				mu.Lock()
				was := gone[b.ID]
				gone[b.ID] = refused
				mu.Unlock()
				if refused && !was {
					n.peerGone(b.ID)
				}
			}()
		}
		wg.Wait()
	}
}

// peerGone hurries the election of every group here led by id.
func (n *Node) peerGone(id string) {
	hurried := 0
	if n.metaRG != nil {
		if _, lid := n.metaRG.raft.LeaderWithID(); string(lid) == id && n.metaRG.hurry(n.cfg.LeaderLeaseTimeout, hurryFor) {
			hurried++
		}
	}
	for _, r := range n.replicaList() {
		if _, lid := r.raft().LeaderWithID(); string(lid) == id && r.group.hurry(n.cfg.LeaderLeaseTimeout, hurryFor) {
			hurried++
		}
	}
	n.hurried.Add(uint64(hurried))
	n.logger.Info("peer refuses connections: its process is gone", "peer", id, "groups_hurried", hurried)
}

// hurry shortens the group's heartbeat and election timeouts to d for
// hold, then restores them. It reports false when already hurried or the
// group refused the change (shut down).
func (rg *raftGroup) hurry(d, hold time.Duration) bool {
	if !rg.hurrying.CompareAndSwap(false, true) {
		return false
	}
	short := rg.reload
	short.HeartbeatTimeout, short.ElectionTimeout = d, d
	if err := rg.raft.ReloadConfig(short); err != nil {
		rg.hurrying.Store(false)
		return false
	}
	time.AfterFunc(hold, func() {
		// An error means the group shut down meanwhile: nothing to restore.
		_ = rg.raft.ReloadConfig(rg.reload)
		rg.hurrying.Store(false)
	})
	return true
}

// reloadableConfig is the part of rc that hurry changes and restores.
func reloadableConfig(rc *raft.Config) raft.ReloadableConfig {
	return raft.ReloadableConfig{
		TrailingLogs:      rc.TrailingLogs,
		SnapshotInterval:  rc.SnapshotInterval,
		SnapshotThreshold: rc.SnapshotThreshold,
		HeartbeatTimeout:  rc.HeartbeatTimeout,
		ElectionTimeout:   rc.ElectionTimeout,
	}
}
