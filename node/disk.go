package node

import (
	"fmt"
	"syscall"

	"github.com/sluice-io/sluice/transport"
)

// freeSpace returns the bytes available to this process on the data
// dir's filesystem.
func freeSpace(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// checkFreeSpace refuses a write when the data dir's filesystem is below
// the floor (Flume's minimumRequiredSpace): the write would be logged by
// Raft and then fail in the FSM, or fill the disk for the replicas that
// serve reads. The error is retriable: writes resume by themselves once
// space is freed. One statfs per write costs microseconds next to the
// fsync the write needs anyway.
func (n *Node) checkFreeSpace() error {
	if n.cfg.MinFreeBytes < 0 {
		return nil
	}
	free, err := freeSpace(n.cfg.DataDir)
	if err != nil {
		n.logger.Warn("free space check", "err", err)
		return nil // cannot tell: do not refuse on that alone
	}
	if free < n.cfg.MinFreeBytes {
		n.metrics.diskFull.Inc()
		return transport.Errorf(transport.ErrUnavailable,
			"node %s refuses writes: %d bytes free on its data dir, below the floor of %d (--min-free-bytes); free some space and writes resume",
			n.cfg.ID, free, n.cfg.MinFreeBytes)
	}
	return nil
}

// diskLow reports whether the data dir is below the free-space floor.
func (n *Node) diskLow() bool {
	if n.cfg.MinFreeBytes < 0 {
		return false
	}
	free, err := freeSpace(n.cfg.DataDir)
	return err == nil && free < n.cfg.MinFreeBytes
}
