package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"time"

	"github.com/sluice-io/sluice/fsm"
)

// waitMetaCaughtUp blocks until this node's metadata FSM is at least as
// fresh as the metadata leader's was at some moment after the call began:
// it commits a sync marker with a fresh nonce (through the leader) and
// waits to apply it locally. Until then the local view may be stale (a
// node back from a crash or a partition can still list a topic that was
// deleted and re-created), so nothing may be opened or deleted on it.
// False when the node stops first.
func (n *Node) waitMetaCaughtUp() bool {
	var b [8]byte
	_, _ = rand.Read(b[:])
	nonce := binary.LittleEndian.Uint64(b[:])
	cmd := fsm.EncodeSync(n.cfg.ID, nonce)
	backoff := 100 * time.Millisecond
	for {
		changed := n.meta.Changed()
		if n.meta.Synced(n.cfg.ID, nonce) {
			n.logger.Info("metadata caught up with the leader")
			return true
		}
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		err := n.applyMeta(ctx, cmd)
		cancel()
		if err != nil {
			n.logger.Debug("metadata sync marker", "err", err)
		}
		// Committed or not, wait a while for it to arrive; resend after.
		deadline := time.After(backoff)
		for !n.meta.Synced(n.cfg.ID, nonce) {
			select {
			case <-n.ctx.Done():
				return false
			case <-changed:
				changed = n.meta.Changed()
				continue
			case <-deadline:
			}
			break
		}
		backoff = min(backoff*2, 500*time.Millisecond)
	}
}
