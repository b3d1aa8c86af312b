package fsm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
)

const (
	logSuffix   = ".log"
	indexSuffix = ".index"
)

func segmentPath(dir string, base int64, suffix string) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", base, suffix))
}

// parseSegmentName returns the base offset of a "%020d.log" file name.
func parseSegmentName(name string) (int64, bool) {
	stem, ok := strings.CutSuffix(name, logSuffix)
	if !ok || len(stem) != 20 {
		return 0, false
	}
	base, err := strconv.ParseInt(stem, 10, 64)
	if err != nil || base < 0 {
		return 0, false
	}
	return base, true
}

// segment is one .log file and its .index. Files stay open while anyone
// holds a reference: the Log holds one while the segment is part of it and
// every reader or snapshot takes its own, so retention and snapshot restore
// can drop a segment while reads of it are still running.
type segment struct {
	base    int64
	logPath string
	idxPath string
	logF    *os.File
	idxF    *os.File
	refs    atomic.Int32

	// Guarded by Log.mu for readers; changed only with Log.wmu held too.
	size      int64 // bytes of valid frames in logF
	n         int   // index entries (batches)
	next      int64 // offset after the last batch (base when empty)
	firstRaft uint64
	lastRaft  uint64
	// mem holds every entry of the active segment, so reads at the tail
	// need no index I/O. Nil once sealed: sealed indexes are read from disk.
	mem    []indexEntry
	active bool

	// Only touched with Log.wmu held.
	maxTS      int64
	maxTSKnown bool
}

func openSegmentFiles(dir string, base int64, create bool) (*segment, error) {
	s := &segment{
		base:    base,
		next:    base,
		logPath: segmentPath(dir, base, logSuffix),
		idxPath: segmentPath(dir, base, indexSuffix),
	}
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE | os.O_EXCL
	}
	var err error
	if s.logF, err = os.OpenFile(s.logPath, flag, 0o644); err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	// A missing index is rebuilt from the log, so it may always be created.
	idxFlag := os.O_RDWR | os.O_CREATE
	if create {
		idxFlag |= os.O_TRUNC
	}
	if s.idxF, err = os.OpenFile(s.idxPath, idxFlag, 0o644); err != nil {
		s.logF.Close()
		return nil, fmt.Errorf("open segment index: %w", err)
	}
	s.refs.Store(1)
	return s, nil
}

func (s *segment) acquire() { s.refs.Add(1) }

func (s *segment) release() {
	if s.refs.Add(-1) == 0 {
		s.logF.Close()
		s.idxF.Close()
	}
}

func (s *segment) sync() error {
	if err := s.logF.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", s.logPath, err)
	}
	if err := s.idxF.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", s.idxPath, err)
	}
	return nil
}

// view captures the segment's published extent; call with Log.mu held.
func (s *segment) view() segView {
	v := segView{seg: s, n: s.n, size: s.size}
	if s.active {
		v.mem = s.mem[:s.n:s.n]
		v.inMem = true
	}
	return v
}

// applyEntries sets the derived fields from a full entry list.
func (s *segment) applyEntries(entries []indexEntry, size int64) {
	s.n, s.size = len(entries), size
	s.next, s.firstRaft, s.lastRaft = s.base, 0, 0
	s.maxTS, s.maxTSKnown = -1, true
	for i, e := range entries {
		if i == 0 {
			s.firstRaft = e.raftIndex
		}
		s.lastRaft, s.next = e.raftIndex, e.next()
		s.maxTS = max(s.maxTS, e.maxTimestamp)
	}
}

// segView is a stable, read-only extent of a segment: frames below size and
// index entries below n never change, whatever is appended later.
type segView struct {
	seg   *segment
	n     int
	size  int64
	mem   []indexEntry
	inMem bool
}

func (v segView) entries(from, to int) ([]indexEntry, error) {
	if v.inMem {
		return v.mem[from:to], nil
	}
	return readIndexEntries(v.seg.idxF, from, to)
}

// search returns the smallest i in [0, n) for which pred holds (pred must be
// monotonic), or n.
func (v segView) search(pred func(indexEntry) bool) (int, error) {
	if v.inMem {
		return sort.Search(v.n, func(i int) bool { return pred(v.mem[i]) }), nil
	}
	var err error
	buf := make([]byte, indexEntrySize)
	i := sort.Search(v.n, func(i int) bool {
		if err != nil {
			return true
		}
		if _, rerr := v.seg.idxF.ReadAt(buf, int64(i)*indexEntrySize); rerr != nil {
			err = fmt.Errorf("read index %s: %w", v.seg.idxPath, rerr)
			return true
		}
		return pred(decodeIndexEntry(buf))
	})
	return i, err
}

// chunkEntries returns entries from index i on, as many as cover about
// maxBytes of frames (always at least one), for bulk reads.
func (v segView) chunkEntries(i int, maxBytes int64) ([]indexEntry, error) {
	const perRead = 256
	var out []indexEntry
	var total int64
	for i < v.n {
		es, err := v.entries(i, min(v.n, i+perRead))
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if len(out) > 0 && total+int64(e.size) > maxBytes {
				return out, nil
			}
			out = append(out, e)
			total += int64(e.size)
		}
		i += len(es)
	}
	return out, nil
}

// corruptFrameError reports a stored frame that failed its checks.
type corruptFrameError struct {
	offset int64
	err    error
}

func (e *corruptFrameError) Error() string { return e.err.Error() }
func (e *corruptFrameError) Unwrap() error { return e.err }

// readFrames reads the contiguous frames of entries (consecutive) and checks
// each against its entry and its CRCs. It returns the frames that passed,
// in order, and a *corruptFrameError for the first that did not.
func (v segView) readFrames(entries []indexEntry) ([][]byte, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	first, last := entries[0], entries[len(entries)-1]
	// Entries come off disk: make sure they describe contiguous frames
	// inside the published extent before sizing a buffer from them.
	for i, e := range entries {
		bad := e.pos < 0 || int64(e.size) < frameHeaderLen+batchHeaderLen || e.end() > v.size
		if i > 0 && e.pos != entries[i-1].end() {
			bad = true
		}
		if bad {
			return nil, &corruptFrameError{offset: e.offset, err: fmt.Errorf("segment %s: index entry for offset %d (position %d, %d bytes) does not fit the %d-byte log", v.seg.idxPath, e.offset, e.pos, e.size, v.size)}
		}
	}
	buf := make([]byte, last.end()-first.pos)
	if _, err := v.seg.logF.ReadAt(buf, first.pos); err != nil {
		return nil, fmt.Errorf("read %s at %d: %w", v.seg.logPath, first.pos, err)
	}
	out := make([][]byte, 0, len(entries))
	for _, e := range entries {
		at := e.pos - first.pos
		frame := buf[at : at+int64(e.size) : at+int64(e.size)]
		raftIndex, info, err := checkFrame(frame)
		if err == nil && (raftIndex != e.raftIndex || info.baseOffset != e.offset || uint32(info.count) != e.count) {
			err = errors.New("frame does not match its index entry")
		}
		if err != nil {
			return out, &corruptFrameError{offset: e.offset, err: fmt.Errorf("segment %s: batch at offset %d (position %d): %w", v.seg.logPath, e.offset, e.pos, err)}
		}
		out = append(out, frame)
	}
	return out, nil
}

// scanResult is the outcome of reading a segment's frames from the start.
type scanResult struct {
	entries  []indexEntry
	validEnd int64  // bytes of good frames
	fileSize int64  // bytes in the file
	problem  string // why the scan stopped before fileSize, "" if it did not
}

// scanSegment validates every frame of a segment file in order: frame and
// batch CRCs, dense offsets from the segment's base, rising Raft indexes.
// It stops at the first frame that fails; I/O errors are returned.
func scanSegment(f *os.File, base int64, prevRaft uint64) (scanResult, error) {
	st, err := f.Stat()
	if err != nil {
		return scanResult{}, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	return scanFrames(f, st.Size(), f.Name(), base, prevRaft)
}

// scanFrames is scanSegment over size bytes of any reader.
func scanFrames(f io.ReaderAt, size int64, name string, base int64, prevRaft uint64) (scanResult, error) {
	res := scanResult{fileSize: size}
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, res.fileSize), 1<<20)
	next, lastRaft := base, prevRaft
	var buf []byte
	const prefixLen = frameHeaderLen + lengthPrefix
	for res.validEnd < res.fileSize {
		remaining := res.fileSize - res.validEnd
		if remaining < prefixLen {
			res.problem = fmt.Sprintf("torn frame header (%d bytes)", remaining)
			return res, nil
		}
		prefix, err := r.Peek(prefixLen)
		if err != nil {
			return res, fmt.Errorf("read %s: %w", name, err)
		}
		size := frameSizeFromPrefix(prefix)
		if size < 0 {
			res.problem = "invalid batch length"
			return res, nil
		}
		if size > remaining {
			res.problem = fmt.Sprintf("torn frame: %d bytes declared, %d present", size, remaining)
			return res, nil
		}
		if int64(cap(buf)) < size {
			buf = make([]byte, size)
		}
		frame := buf[:size]
		if _, err := io.ReadFull(r, frame); err != nil {
			return res, fmt.Errorf("read %s: %w", name, err)
		}
		raftIndex, info, err := checkFrame(frame)
		switch {
		case err != nil:
			res.problem = err.Error()
		case info.baseOffset != next:
			res.problem = fmt.Sprintf("batch base offset %d, expected %d", info.baseOffset, next)
		case raftIndex <= lastRaft:
			res.problem = fmt.Sprintf("raft index %d does not follow %d", raftIndex, lastRaft)
		}
		if res.problem != "" {
			return res, nil
		}
		res.entries = append(res.entries, indexEntry{
			offset:       info.baseOffset,
			pos:          res.validEnd,
			raftIndex:    raftIndex,
			count:        uint32(info.count),
			size:         uint32(size),
			maxTimestamp: info.maxTimestamp,
		})
		next += int64(info.count)
		lastRaft = raftIndex
		res.validEnd += size
	}
	return res, nil
}

// writeIndex replaces the index file's contents with entries and fsyncs it.
func writeIndex(f *os.File, entries []indexEntry) error {
	buf := make([]byte, 0, len(entries)*indexEntrySize)
	for _, e := range entries {
		buf = e.appendTo(buf)
	}
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("truncate index %s: %w", f.Name(), err)
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		return fmt.Errorf("write index %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync index %s: %w", f.Name(), err)
	}
	return nil
}

// indexMatches reports whether the index file holds exactly entries.
func indexMatches(f *os.File, entries []indexEntry) (bool, error) {
	st, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	if st.Size() != int64(len(entries))*indexEntrySize {
		return false, nil
	}
	onDisk, err := readIndexEntries(f, 0, len(entries))
	if err != nil {
		return false, err
	}
	for i := range entries {
		if onDisk[i] != entries[i] {
			return false, nil
		}
	}
	return true, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}
