package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// raft-wal checks a CRC of each commit only when it recovers the tail
// segment: bytes flipped later in a sealed segment are read back as they
// are, and hashicorp/raft panics when it cannot read an entry it must
// apply. So every entry gets a checksum of its own (in raft.Log's
// Extensions, which hashicorp/raft stores and replicates without looking
// at it), checked on every read. A damaged entry reads as missing
// (raft.ErrLogNotFound), which makes a leader send a snapshot instead; at
// start every entry after the last snapshot, the ones Raft will apply
// again, is checked, and a damaged one truncates the log there (see
// recoverDamagedLog).

// entrySumTag marks Extensions that hold an entry checksum: one tag byte
// and a CRC-32C. Entries of older versions carry no Extensions and are
// not checked.
const entrySumTag byte = 0xC5

const entrySumLen = 5

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errDamagedEntry is a Raft log entry whose checksum does not match.
var errDamagedEntry = errors.New("raft log entry damaged (checksum mismatch)")

// entrySum is the checksum of what identifies and carries an entry: a
// damaged byte, or an entry read from the wrong place, changes it.
func entrySum(l *raft.Log) uint32 {
	var hdr [17]byte
	binary.BigEndian.PutUint64(hdr[0:8], l.Index)
	binary.BigEndian.PutUint64(hdr[8:16], l.Term)
	hdr[16] = byte(l.Type)
	return crc32.Update(crc32.Checksum(hdr[:], castagnoli), castagnoli, l.Data)
}

// sealed returns l with its checksum in Extensions (a copy: the caller's
// entry is shared with Raft's other goroutines). Entries whose Extensions
// someone else uses are left alone.
func sealed(l *raft.Log) *raft.Log {
	if len(l.Extensions) != 0 {
		return l
	}
	c := *l
	ext := make([]byte, entrySumLen)
	ext[0] = entrySumTag
	binary.BigEndian.PutUint32(ext[1:], entrySum(l))
	c.Extensions = ext
	return &c
}

// checkEntry verifies an entry's checksum when it carries one.
func checkEntry(l *raft.Log) error {
	ext := l.Extensions
	if len(ext) != entrySumLen || ext[0] != entrySumTag {
		return nil
	}
	if binary.BigEndian.Uint32(ext[1:]) != entrySum(l) {
		return fmt.Errorf("%w: index %d", errDamagedEntry, l.Index)
	}
	return nil
}

// recoveringFile holds, while a replica recovers a damaged Raft log, the
// last index its log had before it was truncated.
const recoveringFile = "raft-recovering"

// readRecovering returns the index a recovering group must reach again,
// or 0.
func readRecovering(dir string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, recoveringFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", recoveringFile, err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", recoveringFile, err)
	}
	return v, nil
}

// writeRecovering records target durably before the log is truncated: a
// crash during recovery must not forget that this replica lost entries
// it may have acknowledged.
func writeRecovering(dir string, target uint64) error {
	path := filepath.Join(dir, recoveringFile)
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write %s: %w", recoveringFile, err)
	}
	_, err = f.WriteString(strconv.FormatUint(target, 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", recoveringFile, err)
	}
	return nil
}

func clearRecovering(dir string) error {
	if err := os.Remove(filepath.Join(dir, recoveringFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syncDir(dir)
}

// checkLogTail reads every entry after the last snapshot (from) and
// returns the index of the first damaged one, or 0.
func checkLogTail(store *walLog, from uint64) (uint64, error) {
	first, err := store.FirstIndex()
	if err != nil {
		return 0, err
	}
	last, err := store.LastIndex()
	if err != nil {
		return 0, err
	}
	if last == 0 {
		return 0, nil
	}
	var l raft.Log
	for i := max(first, from); i <= last; i++ {
		if err := store.getChecked(i, &l); err != nil {
			if errors.Is(err, errDamagedEntry) || !errors.Is(err, raft.ErrLogNotFound) {
				return i, nil
			}
			return 0, fmt.Errorf("read raft log entry %d: %w", i, err)
		}
	}
	return 0, nil
}

// StoreLog stores one entry with its checksum.
func (l *walLog) StoreLog(e *raft.Log) error { return l.WAL.StoreLog(sealed(e)) }

// StoreLogs stores entries with their checksums.
func (l *walLog) StoreLogs(es []*raft.Log) error {
	out := make([]*raft.Log, len(es))
	for i, e := range es {
		out[i] = sealed(e)
	}
	return l.WAL.StoreLogs(out)
}

// GetLog reads an entry; a damaged one reads as missing, so a leader
// sends a follower that needs it a snapshot instead.
func (l *walLog) GetLog(index uint64, out *raft.Log) error {
	err := l.getChecked(index, out)
	if errors.Is(err, errDamagedEntry) {
		if l.damaged.Add(1) == 1 {
			l.logger.Error("raft log entry damaged: reported as missing", "index", index, "err", err)
		}
		return raft.ErrLogNotFound
	}
	return err
}

func (l *walLog) getChecked(index uint64, out *raft.Log) error {
	if err := l.WAL.GetLog(index, out); err != nil {
		return err
	}
	return checkEntry(out)
}

// checkRaftLog checks the entries Raft will apply again (those after the
// last snapshot) before the group starts. At the first damaged one it
// records the log's last index, truncates the log there and returns that
// index: the group then abstains from elections until a leader has sent
// it everything up to it again (watchRecovery). Without damage it returns
// the index an earlier, unfinished recovery must still reach, or 0.
func (n *Node) checkRaftLog(group, dir string, store *walLog, snaps raft.SnapshotStore) (uint64, error) {
	target, err := readRecovering(dir)
	if err != nil {
		return 0, err
	}
	var from uint64
	metas, err := snaps.List()
	if err != nil {
		return 0, fmt.Errorf("list snapshots of %s: %w", group, err)
	}
	if len(metas) > 0 {
		from = metas[0].Index + 1
	}
	bad, err := checkLogTail(store, from)
	if err != nil {
		return 0, fmt.Errorf("check raft log of %s: %w", group, err)
	}
	if bad == 0 {
		return target, nil
	}
	last, err := store.LastIndex()
	if err != nil {
		return 0, err
	}
	target = max(target, last)
	if err := writeRecovering(dir, target); err != nil {
		return 0, err
	}
	n.logger.Error("raft log damaged: truncated at the first damaged entry; the replica takes no part in elections until its leader has sent the lost entries again",
		"raft_group", group, "first_damaged", bad, "last_index", last)
	if err := store.DeleteRange(bad, last); err != nil {
		return 0, fmt.Errorf("truncate damaged raft log of %s at %d: %w", group, bad, err)
	}
	n.damagedLogs.Add(1)
	return target, nil
}

// watchRecovery ends a group's abstention once its log and state reach
// the index its damaged log had.
func (n *Node) watchRecovery(rg *raftGroup, dir string, target uint64) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for range t.C {
		if rg.raft.State() == raft.Shutdown {
			return
		}
		if rg.raft.LastIndex() < target || rg.raft.AppliedIndex() < target {
			continue
		}
		if err := clearRecovering(dir); err != nil {
			n.logger.Warn("could not clear the raft log recovery marker", "raft_group", rg.name, "err", err)
			continue
		}
		rg.trans.abstain.Store(false)
		n.logger.Info("raft log recovered: the replica takes part in elections again", "raft_group", rg.name, "index", target)
		return
	}
}
