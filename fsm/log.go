package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-io/sluice/batch"
	"github.com/sluice-io/sluice/transport"
)

// DefaultSegmentBytes is the segment size used when LogConfig.SegmentBytes is 0.
const DefaultSegmentBytes = 64 << 20

// LogConfig configures a partition replica's on-disk log.
type LogConfig struct {
	Dir            string
	SegmentBytes   int64         // roll to a new segment past this size (default 64 MiB)
	RetentionBytes int64         // <= 0: unlimited
	RetentionAge   time.Duration // <= 0: unlimited
	Logger         *slog.Logger
	Now            func() time.Time // nil: time.Now
	// OnCorrupt is called when a read finds a stored batch that fails its
	// checks (the batch is never served).
	OnCorrupt func(error)
}

// ErrCorruptLog marks a partition log whose stored data failed its checks:
// a damaged sealed segment, state file or stored batch. Nothing of it is
// served; the replica must be rebuilt from its Raft snapshot and log, or
// from its peers.
var ErrCorruptLog = errors.New("partition log is corrupt")

func (c *LogConfig) setDefaults() error {
	if c.Dir == "" {
		return errors.New("log dir is required")
	}
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Log is the on-disk log of one partition replica: segments named by base
// offset, each a .log file of frames (see index.go) and a dense .index.
//
// Append, Sync, ApplyRetention and Close are serialised by wmu; Read and the
// accessors may run concurrently with them. Readers capture an immutable
// extent of the segments under mu and do their file I/O without locks.
type Log struct {
	cfg    LogConfig
	logger *slog.Logger

	wmu    sync.Mutex
	broken error  // a failed write could not be undone: refuse appends
	wbuf   []byte // frame being written (reused)
	ibuf   []byte // index entry being written (reused)
	// syncedRaft is the Raft index of the last batch known to be on disk
	// (fsynced): the only value the state file may record.
	syncedRaft uint64

	mu     sync.RWMutex
	segs   []*segment // oldest first; the last is the active segment
	closed bool

	start    atomic.Int64
	next     atomic.Int64
	lastRaft atomic.Uint64
	size     atomic.Int64
}

var errLogClosed = transport.Errorf(transport.ErrShuttingDown, "partition log is closed")

// OpenLog opens (or creates) the log in cfg.Dir. The last segment is scanned
// and a torn or corrupt tail is truncated; indexes that are missing or
// disagree with their segment are rebuilt.
func OpenLog(cfg LogConfig) (*Log, error) {
	return openLog(cfg, 0)
}

// openLog opens cfg.Dir; an empty directory starts at offset initialBase.
func openLog(cfg LogConfig, initialBase int64) (*Log, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(cfg.Dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("create log dir: %w", err)
		}
		if err := syncDir(filepath.Dir(filepath.Clean(cfg.Dir))); err != nil {
			return nil, err
		}
	}
	l := &Log{cfg: cfg, logger: cfg.Logger.With("dir", cfg.Dir)}
	st, haveState, err := readState(cfg.Dir)
	if err != nil {
		return nil, err
	}
	bases, err := l.listSegments()
	if err != nil {
		return nil, err
	}
	for i, base := range bases {
		s, err := openSegmentFiles(cfg.Dir, base, false)
		if err == nil {
			if i == len(bases)-1 {
				err = l.loadActive(s)
			} else {
				err = l.loadSealed(s)
			}
			if err != nil {
				s.release()
			}
		}
		if err != nil {
			l.releaseAll()
			return nil, err
		}
		if i > 0 && l.segs[i-1].next != s.base {
			s.release()
			l.releaseAll()
			return nil, fmt.Errorf("%w: log %s: segment %d does not follow segment %d (which ends at offset %d)", ErrCorruptLog, cfg.Dir, s.base, l.segs[i-1].base, l.segs[i-1].next)
		}
		l.segs = append(l.segs, s)
	}
	if len(l.segs) == 0 {
		s, err := openSegmentFiles(cfg.Dir, initialBase, true)
		if err != nil {
			return nil, err
		}
		s.active, s.maxTS, s.maxTSKnown = true, -1, true
		l.segs = append(l.segs, s)
		if err := syncDir(cfg.Dir); err != nil {
			l.releaseAll()
			return nil, err
		}
	}
	if err := l.applyState(st, haveState); err != nil {
		l.releaseAll()
		return nil, err
	}
	l.logger.Debug("log opened", "segments", len(l.segs), "start", l.StartOffset(), "next", l.NextOffset(), "last_raft_index", l.LastRaftIndex())
	return l, nil
}

// applyState sets the log's offsets and Raft index from its segments and
// its state file: it finishes a retention delete a crash interrupted, keeps
// the Raft index retention would otherwise lose, and writes the file for a
// directory from before it existed.
func (l *Log) applyState(st logState, haveState bool) error {
	if haveState {
		// Retention records the new start before deleting segments.
		for len(l.segs) > 1 && l.segs[0].next <= st.start {
			s := l.segs[0]
			l.logger.Info("finishing interrupted retention delete", "segment", s.logPath)
			s.release()
			if err := removeSegmentFiles(s); err != nil {
				return err
			}
			l.segs = l.segs[1:]
		}
	}
	var total int64
	var derived uint64
	for _, s := range l.segs {
		total += s.size
		if s.n > 0 {
			derived = s.lastRaft
		}
	}
	l.size.Store(total)
	l.start.Store(l.segs[0].base)
	l.next.Store(l.segs[len(l.segs)-1].next)
	if !haveState {
		// Migration: everything just read is on disk; make sure of it
		// before the state file vouches for it.
		if err := l.segs[len(l.segs)-1].sync(); err != nil {
			return err
		}
		l.lastRaft.Store(derived)
		l.syncedRaft = derived
		l.logger.Info("partition state file missing: derived from the segments", "start", l.StartOffset(), "last_raft_index", derived)
		return writeState(l.cfg.Dir, l.stateLocked())
	}
	if derived > 0 && derived < st.lastRaft {
		return fmt.Errorf("log %s: %w: segments end at raft index %d but raft index %d was recorded as durable (acknowledged batches are missing)", l.cfg.Dir, errCorruptState, derived, st.lastRaft)
	}
	if st.start > l.StartOffset() && len(l.segs) > 0 {
		l.logger.Warn("state file start offset is past the first segment", "state_start", st.start, "first_segment", l.StartOffset())
	}
	last := max(derived, st.lastRaft)
	l.lastRaft.Store(last)
	l.syncedRaft = last
	return nil
}

// stateLocked is what the state file should say now (wmu held, or during
// open).
func (l *Log) stateLocked() logState {
	return logState{start: l.start.Load(), lastRaft: l.syncedRaft, next: l.next.Load()}
}

func removeSegmentFiles(s *segment) error {
	// The .log goes first: an index without its log is removed on open.
	var errs []error
	if err := os.Remove(s.logPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := os.Remove(s.idxPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// listSegments returns the base offsets of the .log files in the directory,
// sorted, and removes index files whose log is gone.
func (l *Log) listSegments() ([]int64, error) {
	ents, err := os.ReadDir(l.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("list log dir: %w", err)
	}
	logs := map[string]bool{}
	var bases []int64
	for _, e := range ents {
		if base, ok := parseSegmentName(e.Name()); ok && e.Type().IsRegular() {
			bases = append(bases, base)
			logs[segmentPath(l.cfg.Dir, base, indexSuffix)] = true
		}
	}
	for _, e := range ents {
		if stem, ok := strings.CutSuffix(e.Name(), indexSuffix); ok && len(stem) == 20 {
			p := filepath.Join(l.cfg.Dir, e.Name())
			if !logs[p] {
				// Retention removes the .log first; finish its job.
				if err := os.Remove(p); err != nil {
					return nil, fmt.Errorf("remove orphan index: %w", err)
				}
			}
		}
	}
	slices.Sort(bases)
	return bases, nil
}

// loadSealed trusts a sealed segment's index when it is consistent with the
// file (it was fsynced with the segment at roll) and rebuilds it otherwise.
func (l *Log) loadSealed(s *segment) error {
	logSt, err := s.logF.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", s.logPath, err)
	}
	idxSt, err := s.idxF.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", s.idxPath, err)
	}
	if n := int(idxSt.Size() / indexEntrySize); n > 0 && idxSt.Size()%indexEntrySize == 0 {
		first, ferr := readIndexEntries(s.idxF, 0, 1)
		last, lerr := readIndexEntries(s.idxF, n-1, n)
		if ferr == nil && lerr == nil && first[0].pos == 0 && first[0].offset == s.base && last[0].end() == logSt.Size() {
			s.n, s.size = n, logSt.Size()
			s.next, s.firstRaft, s.lastRaft = last[0].next(), first[0].raftIndex, last[0].raftIndex
			return nil
		}
	}
	if logSt.Size() == 0 {
		return writeIndex(s.idxF, nil)
	}
	res, err := scanSegment(s.logF, s.base, 0)
	if err != nil {
		return err
	}
	if res.problem != "" {
		// Offsets after this point live in later segments: truncating here
		// would leave a hole, so refuse to open rather than serve around it.
		return fmt.Errorf("%w: sealed segment %s is corrupt at byte %d of %d: %s", ErrCorruptLog, s.logPath, res.validEnd, res.fileSize, res.problem)
	}
	l.logger.Warn("rebuilt index of sealed segment", "segment", s.logPath, "batches", len(res.entries))
	s.applyEntries(res.entries, res.validEnd)
	return writeIndex(s.idxF, res.entries)
}

// loadActive scans the newest segment, truncates a torn or corrupt tail and
// makes its index match what remains.
func (l *Log) loadActive(s *segment) error {
	var prevRaft uint64
	if len(l.segs) > 0 {
		prevRaft = l.segs[len(l.segs)-1].lastRaft
	}
	res, err := scanSegment(s.logF, s.base, prevRaft)
	if err != nil {
		return err
	}
	if res.problem != "" {
		l.logger.Warn("truncating torn or corrupt log tail",
			"segment", s.logPath, "reason", res.problem,
			"valid_bytes", res.validEnd, "bytes_dropped", res.fileSize-res.validEnd,
			"batches_kept", len(res.entries))
		if err := s.logF.Truncate(res.validEnd); err != nil {
			return fmt.Errorf("truncate %s: %w", s.logPath, err)
		}
		if err := s.logF.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", s.logPath, err)
		}
	}
	ok, err := indexMatches(s.idxF, res.entries)
	if err != nil {
		return err
	}
	if !ok {
		l.logger.Info("rebuilding index of active segment", "segment", s.idxPath, "batches", len(res.entries))
		if err := writeIndex(s.idxF, res.entries); err != nil {
			return err
		}
	}
	s.applyEntries(res.entries, res.validEnd)
	s.mem = res.entries
	s.active = true
	return nil
}

func (l *Log) releaseAll() {
	for _, s := range l.segs {
		s.release()
	}
	l.segs = nil
}

// StartOffset is the first offset still stored.
func (l *Log) StartOffset() int64 { return l.start.Load() }

// NextOffset is the offset the next appended record gets.
func (l *Log) NextOffset() int64 { return l.next.Load() }

// LastRaftIndex is the Raft index of the last batch appended (0 if none).
func (l *Log) LastRaftIndex() uint64 { return l.lastRaft.Load() }

// Size is the bytes stored in all segment files.
func (l *Log) Size() int64 { return l.size.Load() }

// Append validates a client batch (magic 2, length, CRC, record count),
// writes it with its base offset set to NextOffset() and its partition
// leader epoch set to epoch, and returns the base offset. Both fields lie
// outside the CRC. raftIndex is the Raft entry that carried the batch and
// must be above LastRaftIndex(). batch itself is not modified.
func (l *Log) Append(batch []byte, raftIndex uint64, epoch int32) (int64, error) {
	info, err := checkBatch(batch)
	if err != nil {
		return 0, err
	}
	return l.appendChecked(batch, info, raftIndex, epoch)
}

// appendChecked appends a batch that checkBatch accepted.
func (l *Log) appendChecked(batch []byte, info batchInfo, raftIndex uint64, epoch int32) (int64, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writableLocked(raftIndex); err != nil {
		return 0, err
	}
	base := l.next.Load()
	frame := append(l.wbuf[:0], make([]byte, frameHeaderLen)...)
	frame = append(frame, batch...)
	l.wbuf = frame
	b := frame[frameHeaderLen:]
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(base))
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
	sealFrame(frame, raftIndex)
	if err := l.writeFrameLocked(frame, raftIndex, info); err != nil {
		return 0, err
	}
	return base, nil
}

// appendFrame appends a frame copied from another replica's log (snapshot
// restore): it is written byte for byte and must continue this log exactly.
func (l *Log) appendFrame(frame []byte) error {
	raftIndex, info, err := checkFrame(frame)
	if err != nil {
		return err
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writableLocked(raftIndex); err != nil {
		return err
	}
	if next := l.next.Load(); info.baseOffset != next {
		return fmt.Errorf("batch base offset %d does not continue the log at %d", info.baseOffset, next)
	}
	return l.writeFrameLocked(frame, raftIndex, info)
}

func (l *Log) writableLocked(raftIndex uint64) error {
	l.mu.RLock()
	closed := l.closed
	l.mu.RUnlock()
	if closed {
		return errLogClosed
	}
	if l.broken != nil {
		return fmt.Errorf("log %s unusable after a failed write (reopen it): %w", l.cfg.Dir, l.broken)
	}
	if last := l.lastRaft.Load(); raftIndex <= last {
		return fmt.Errorf("raft index %d is not above the log's last raft index %d", raftIndex, last)
	}
	return nil
}

// writeFrameLocked writes a sealed frame at the end of the active segment
// (rolling first if it is full) and publishes it to readers.
func (l *Log) writeFrameLocked(frame []byte, raftIndex uint64, info batchInfo) error {
	s := l.segs[len(l.segs)-1]
	if s.size > 0 && s.size+int64(len(frame)) > l.cfg.SegmentBytes {
		var err error
		if s, err = l.rollLocked(); err != nil {
			return err
		}
	}
	e := indexEntry{
		offset:       l.next.Load(),
		pos:          s.size,
		raftIndex:    raftIndex,
		count:        uint32(info.count),
		size:         uint32(len(frame)),
		maxTimestamp: info.maxTimestamp,
	}
	if _, err := s.logF.WriteAt(frame, s.size); err != nil {
		return l.undoWriteLocked(s, fmt.Errorf("write %s: %w", s.logPath, err))
	}
	l.ibuf = e.appendTo(l.ibuf[:0])
	if _, err := s.idxF.WriteAt(l.ibuf, int64(s.n)*indexEntrySize); err != nil {
		return l.undoWriteLocked(s, fmt.Errorf("write %s: %w", s.idxPath, err))
	}
	s.maxTS = max(s.maxTS, e.maxTimestamp)

	l.mu.Lock()
	if s.n == 0 {
		s.firstRaft = raftIndex
	}
	s.mem = append(s.mem, e)
	s.n++
	s.size += int64(len(frame))
	s.next = e.next()
	s.lastRaft = raftIndex
	l.next.Store(e.next())
	l.lastRaft.Store(raftIndex)
	l.size.Add(int64(len(frame)))
	l.mu.Unlock()
	return nil
}

// undoWriteLocked cuts a partly written frame off the active segment so the
// log stays a clean prefix; if even that fails the log refuses appends.
func (l *Log) undoWriteLocked(s *segment, cause error) error {
	terr := s.logF.Truncate(s.size)
	if terr == nil {
		terr = s.idxF.Truncate(int64(s.n) * indexEntrySize)
	}
	if terr != nil {
		l.broken = errors.Join(cause, terr)
		l.logger.Error("log write failed and could not be undone", "err", l.broken)
		return l.broken
	}
	return cause
}

// rollLocked makes the active segment durable and starts a new one: Sync
// only covers the active segment, so sealed ones must be on disk already.
func (l *Log) rollLocked() (*segment, error) {
	old := l.segs[len(l.segs)-1]
	if err := old.sync(); err != nil {
		return nil, err
	}
	s, err := openSegmentFiles(l.cfg.Dir, l.next.Load(), true)
	if err != nil {
		return nil, err
	}
	s.active, s.maxTS, s.maxTSKnown = true, -1, true
	// The new files must survive a crash as surely as their contents will.
	if err := syncDir(l.cfg.Dir); err != nil {
		s.release()
		os.Remove(s.logPath)
		os.Remove(s.idxPath)
		return nil, err
	}
	l.mu.Lock()
	old.active, old.mem = false, nil
	l.segs = append(l.segs, s)
	l.mu.Unlock()
	// Every batch so far is in fsynced sealed segments now.
	l.syncedRaft = l.lastRaft.Load()
	if err := writeState(l.cfg.Dir, l.stateLocked()); err != nil {
		return nil, err
	}
	l.logger.Debug("rolled segment", "base", s.base, "previous_bytes", old.size)
	return s, nil
}

// advanceRaftIndex records that Raft entries up to idx are applied although
// the log holds no batch of theirs (snapshot restore); Sync makes it
// durable in the state file.
func (l *Log) advanceRaftIndex(idx uint64) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if idx > l.lastRaft.Load() {
		l.lastRaft.Store(idx)
	}
}

// Sync fsyncs the active segment and its index (sealed segments were
// fsynced when they were rolled).
func (l *Log) Sync() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.RLock()
	closed := l.closed
	l.mu.RUnlock()
	if closed {
		return errLogClosed
	}
	return l.syncLocked()
}

// syncLocked fsyncs the active segment and records the state it makes
// durable.
func (l *Log) syncLocked() error {
	if err := l.segs[len(l.segs)-1].sync(); err != nil {
		return err
	}
	if last := l.lastRaft.Load(); last != l.syncedRaft {
		l.syncedRaft = last
		return writeState(l.cfg.Dir, l.stateLocked())
	}
	return nil
}

func outOfRange(offset, start, next int64) error {
	return transport.Errorf(transport.ErrOffsetOutOfRange, "offset %d outside [%d, %d]", offset, start, next)
}

// Read returns whole stored batches, untouched, starting with the one that
// contains offset: up to maxBytes of batches (always at least one; so
// maxBytes <= 0 returns exactly one) and, when maxRecords > 0, stopping
// after the batch that brings the records at or after offset to maxRecords.
// offset == NextOffset() gives no batches and no error; an offset outside
// [StartOffset, NextOffset] gives ErrOffsetOutOfRange. A batch that fails
// its checks is never returned: the batches before it are, or an
// ErrCorruptBatch error if it is the first.
func (l *Log) Read(offset int64, maxBytes, maxRecords int) ([][]byte, error) {
	return l.readStored(offset, maxBytes, maxRecords, false)
}

// ReadFrames is Read returning whole stored frames (Raft index and CRC
// header, then the batch), the form another replica's log rebuilds from
// (see FrameSource).
func (l *Log) ReadFrames(offset int64, maxBytes int) ([][]byte, error) {
	return l.readStored(offset, maxBytes, 0, true)
}

func (l *Log) readStored(offset int64, maxBytes, maxRecords int, frames bool) ([][]byte, error) {
	skip := frameHeaderLen
	if frames {
		skip = 0
	}
	views, err := l.readViews(offset, maxBytes)
	if err != nil || len(views) == 0 {
		return nil, err
	}
	defer func() {
		for _, v := range views {
			v.seg.release()
		}
	}()

	var out [][]byte
	var total, records int64
	for vi, v := range views {
		i := 0
		if vi == 0 {
			if i, err = v.search(func(e indexEntry) bool { return e.next() > offset }); err != nil {
				return nil, err
			}
		}
		var sel []indexEntry
		done := false
		for i < v.n && !done {
			chunk, err := v.chunkEntries(i, max(int64(maxBytes)-total, 1<<20))
			if err != nil {
				return nil, err
			}
			for _, e := range chunk {
				bl := int64(e.batchLen())
				if (len(out) > 0 || len(sel) > 0) && total+bl > int64(maxBytes) {
					done = true
					break
				}
				sel = append(sel, e)
				total += bl
				records += e.next() - max(e.offset, offset)
				if maxRecords > 0 && records >= int64(maxRecords) {
					done = true
					break
				}
			}
			i += len(chunk)
		}
		read, rerr := v.readFrames(sel)
		for _, f := range read {
			out = append(out, f[skip:])
		}
		if rerr != nil {
			var corrupt *corruptFrameError
			if !errors.As(rerr, &corrupt) {
				return nil, rerr
			}
			l.logger.Error("refusing to serve a batch that failed its checks", "err", rerr)
			if l.cfg.OnCorrupt != nil {
				l.cfg.OnCorrupt(rerr)
			}
			if len(out) > 0 {
				return out, nil
			}
			return nil, transport.Errorf(transport.ErrCorruptBatch, "stored batch at offset %d is corrupt", corrupt.offset)
		}
		if done {
			break
		}
	}
	return out, nil
}

// readViews captures (and references) the segments a read at offset needs.
func (l *Log) readViews(offset int64, maxBytes int) ([]segView, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, errLogClosed
	}
	start, next := l.start.Load(), l.next.Load()
	if offset == next {
		return nil, nil
	}
	if offset < start || offset > next {
		return nil, outOfRange(offset, start, next)
	}
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset }) - 1
	var views []segView
	var following int64
	for _, s := range l.segs[i:] {
		if len(views) > 0 && following >= int64(maxBytes) {
			break
		}
		v := s.view()
		s.acquire()
		views = append(views, v)
		if len(views) > 1 {
			following += v.size
		}
	}
	return views, nil
}

// BaseOffsetForRaftIndex finds the batch that Raft entry idx appended: its
// base offset and record count. ok is false if no stored batch has idx.
func (l *Log) BaseOffsetForRaftIndex(idx uint64) (base int64, count int, ok bool) {
	sb, ok, err := l.storedForRaftIndex(idx)
	if err != nil {
		l.logger.Error("index lookup by raft index failed", "raft_index", idx, "err", err)
		return 0, 0, false
	}
	return sb.offset, int(sb.count), ok
}

// storedBatch is what the log holds for one Raft entry.
type storedBatch struct {
	indexEntry
	crc uint32 // the batch's own CRC-32C, as stored
}

// storedForRaftIndex finds the stored batch of Raft entry idx.
func (l *Log) storedForRaftIndex(idx uint64) (storedBatch, bool, error) {
	l.mu.RLock()
	var v segView
	found := false
	for i := len(l.segs) - 1; i >= 0 && !l.closed; i-- {
		s := l.segs[i]
		if s.n > 0 && s.firstRaft <= idx && idx <= s.lastRaft {
			v, found = s.view(), true
			s.acquire()
			break
		}
		if s.n > 0 && s.lastRaft < idx {
			break
		}
	}
	l.mu.RUnlock()
	if !found {
		return storedBatch{}, false, nil
	}
	defer v.seg.release()
	i, err := v.search(func(e indexEntry) bool { return e.raftIndex >= idx })
	if err != nil || i >= v.n {
		return storedBatch{}, false, err
	}
	es, err := v.entries(i, i+1)
	if err != nil || es[0].raftIndex != idx {
		return storedBatch{}, false, err
	}
	var crc [4]byte
	if _, err := v.seg.logF.ReadAt(crc[:], es[0].pos+frameHeaderLen+batch.OffCRC); err != nil {
		return storedBatch{}, false, fmt.Errorf("read %s: %w", v.seg.logPath, err)
	}
	return storedBatch{indexEntry: es[0], crc: binary.BigEndian.Uint32(crc[:])}, true, nil
}

// ApplyRetention deletes whole segments from the oldest on, never the
// active one: while the log without the oldest segment still holds at
// least RetentionBytes (Kafka's rule: keep at least that much), or while the
// oldest segment's newest batch timestamp (its file's mtime when batches
// carry no timestamps) is older than RetentionAge.
func (l *Log) ApplyRetention() (int, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.cfg.RetentionBytes <= 0 && l.cfg.RetentionAge <= 0 {
		return 0, nil
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return 0, errLogClosed
	}
	segs := slices.Clone(l.segs)
	l.mu.RUnlock()

	total := l.size.Load()
	cutoff := l.cfg.Now().Add(-l.cfg.RetentionAge)
	var victims []*segment
	for _, s := range segs[:len(segs)-1] {
		expired := l.cfg.RetentionBytes > 0 && total-s.size >= l.cfg.RetentionBytes
		if !expired && l.cfg.RetentionAge > 0 {
			newest, err := l.segmentNewest(s)
			if err != nil {
				return 0, err
			}
			expired = newest.Before(cutoff)
		}
		if !expired {
			break
		}
		victims = append(victims, s)
		total -= s.size
	}
	if len(victims) == 0 {
		return 0, nil
	}
	// Record the new start first: a crash before the files are gone
	// leaves segments that open deletes, never a start that goes back.
	newState := l.stateLocked()
	newState.start = segs[len(victims)].base
	if err := writeState(l.cfg.Dir, newState); err != nil {
		return 0, err
	}
	l.mu.Lock()
	l.segs = l.segs[len(victims):]
	l.start.Store(l.segs[0].base)
	l.size.Store(total)
	l.mu.Unlock()

	var errs []error
	for _, s := range victims {
		if err := removeSegmentFiles(s); err != nil {
			errs = append(errs, err)
		}
		l.logger.Info("retention removed segment", "base", s.base, "next", s.next, "bytes", s.size)
		s.release()
	}
	return len(victims), errors.Join(errs...)
}

// segmentNewest is the time of the newest data in a sealed segment.
func (l *Log) segmentNewest(s *segment) (time.Time, error) {
	if !s.maxTSKnown {
		s.maxTS = -1
		for i := 0; i < s.n; i += 4096 {
			es, err := readIndexEntries(s.idxF, i, min(s.n, i+4096))
			if err != nil {
				return time.Time{}, err
			}
			for _, e := range es {
				s.maxTS = max(s.maxTS, e.maxTimestamp)
			}
		}
		s.maxTSKnown = true
	}
	if s.maxTS > 0 {
		return time.UnixMilli(s.maxTS), nil
	}
	st, err := s.logF.Stat()
	if err != nil {
		return time.Time{}, fmt.Errorf("stat %s: %w", s.logPath, err)
	}
	return st.ModTime(), nil
}

// Close fsyncs the active segment and closes the log. Reads already running
// finish; later calls fail with ErrShuttingDown.
func (l *Log) Close() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	segs := l.segs
	l.segs = nil
	l.mu.Unlock()
	var err error
	if l.broken == nil {
		// The state file is left as the last snapshot, roll or retention
		// wrote it: the tail is rescanned on open anyway.
		err = segs[len(segs)-1].sync()
	}
	for _, s := range segs {
		s.release()
	}
	return err
}

// logSnapshot pins every segment of the log as of one moment, so a Raft
// snapshot can stream them while appends and retention go on.
type logSnapshot struct {
	views    []segView
	start    int64
	next     int64
	lastRaft uint64
}

func (l *Log) snapshot() (*logSnapshot, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, errLogClosed
	}
	ls := &logSnapshot{start: l.start.Load(), next: l.next.Load(), lastRaft: l.lastRaft.Load()}
	for _, s := range l.segs {
		ls.views = append(ls.views, s.view())
		s.acquire()
	}
	return ls, nil
}

// writeFrames streams every pinned frame, verified, to w.
func (ls *logSnapshot) writeFrames(w io.Writer) error {
	for _, v := range ls.views {
		for i := 0; i < v.n; {
			chunk, err := v.chunkEntries(i, 4<<20)
			if err != nil {
				return err
			}
			frames, err := v.readFrames(chunk)
			if err != nil {
				return err
			}
			for _, f := range frames {
				if _, err := w.Write(f); err != nil {
					return err
				}
			}
			i += len(chunk)
		}
	}
	return nil
}

// linkFrames adds every pinned frame to l as a range of its segment file.
// The ranges were synced before the snapshot was taken and frames below a
// view's size never change, so the links stay valid.
func (ls *logSnapshot) linkFrames(l SegmentLinker) error {
	for _, v := range ls.views {
		if v.n == 0 {
			continue
		}
		first, err := v.entries(0, 1)
		if err != nil {
			return err
		}
		if from := first[0].pos; from < 0 || from > v.size {
			return fmt.Errorf("segment %s: first frame at %d outside the %d-byte log: %w", v.seg.logPath, from, v.size, ErrCorruptLog)
		}
		if err := l.LinkRange(v.seg.logPath, first[0].pos, v.size-first[0].pos); err != nil {
			return fmt.Errorf("link %s into snapshot: %w", v.seg.logPath, err)
		}
	}
	return nil
}

func (ls *logSnapshot) release() {
	for _, v := range ls.views {
		v.seg.release()
	}
	ls.views = nil
}
