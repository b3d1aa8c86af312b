package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluice-io/sluice/fsm"
)

// corruptLogName is where a replica's damaged partition log is moved
// (the previous one, if any, is dropped), kept for inspection.
const corruptLogName = "log.corrupt"

// openPartitionFSM opens a replica's partition state machine. When its log
// fails its checks (fsm.ErrCorruptLog), the log is moved aside and an empty
// one opened instead: Raft then refills it from the replica's own snapshot
// and log, or the leader sends a snapshot, so the damaged range is never
// served and nothing acknowledged depends on it.
func (n *Node) openPartitionFSM(dir string, cfg fsm.PartitionConfig) (*fsm.Partition, error) {
	pf, err := fsm.NewPartition(cfg)
	if err == nil || !errors.Is(err, fsm.ErrCorruptLog) {
		return pf, err
	}
	n.logger.Error("partition log is corrupt; moving it aside and rebuilding from Raft", "dir", cfg.Log.Dir, "err", err)
	if qerr := quarantineLog(dir, cfg.Log.Dir); qerr != nil {
		return nil, errors.Join(err, qerr)
	}
	return fsm.NewPartition(cfg)
}

// replicaFailed is called after a failed replica was closed: a corrupt log
// is moved aside so the reopen rebuilds it.
func (n *Node) replicaFailed(r *replica, err error) {
	if !errors.Is(err, fsm.ErrCorruptLog) {
		return
	}
	logDir := filepath.Join(r.dir, "log")
	n.logger.Error("partition log is corrupt; moving it aside and rebuilding from Raft", "dir", logDir, "err", err)
	if qerr := quarantineLog(r.dir, logDir); qerr != nil {
		n.logger.Error("move corrupt partition log aside", "err", qerr)
	}
}

func quarantineLog(replicaDir, logDir string) error {
	dst := filepath.Join(replicaDir, corruptLogName)
	if err := os.RemoveAll(dst); err != nil {
		return fmt.Errorf("remove old %s: %w", dst, err)
	}
	if err := os.Rename(logDir, dst); err != nil {
		return fmt.Errorf("move corrupt log aside: %w", err)
	}
	d, err := os.Open(replicaDir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
