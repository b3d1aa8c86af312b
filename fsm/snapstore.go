package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// SnapshotStore is the raft.SnapshotStore of a partition group. A snapshot
// is an ordered list of parts whose concatenation is the snapshot stream
// (Partition.Restore's format): parts the snapshot wrote itself (the
// header: producer state, group offsets) and byte ranges of the segment
// files, hard-linked into the snapshot's directory instead of copied. So a
// snapshot costs a header and a few links however much data the partition
// retains, and opening one reads nothing until its stream is read (a
// restart restores the header only, since the local log holds the rest).
// A snapshot received from a leader (InstallSnapshot) arrives as a stream
// and is kept as one written part.
//
// Layout: DIR/<term>-<index>-<ms>/meta.json lists the parts; written parts
// are part-N files, linked ones seg-N files. A directory is complete once
// renamed from its .tmp name. Directories written by hashicorp/raft's
// FileSnapshotStore (meta.json and state.bin) are read as one part.
type SnapshotStore struct {
	dir    string
	retain int
	logger *slog.Logger
	// noSync skips fsync (the skip-raft-fsync failpoint only).
	noSync bool
}

// SnapshotStoreDir is the snapshot directory inside a replica directory
// (where hashicorp/raft's file store kept its snapshots too).
const SnapshotStoreDir = "snapshots"

const (
	snapMetaFile  = "meta.json"
	snapLegacy    = "state.bin"
	snapTmpSuffix = ".tmp"
)

// NewSnapshotStore opens (creating) dir, keeping the newest retain
// snapshots.
func NewSnapshotStore(dir string, retain int, noSync bool, logger *slog.Logger) (*SnapshotStore, error) {
	if retain < 1 {
		return nil, errors.New("snapshot store: retain must be at least 1")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	s := &SnapshotStore{dir: dir, retain: retain, logger: logger, noSync: noSync}
	// Directories of snapshots interrupted by a crash are never complete.
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasSuffix(e.Name(), snapTmpSuffix) {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return nil, fmt.Errorf("snapshot store: remove unfinished %s: %w", e.Name(), err)
			}
		}
	}
	return s, nil
}

// snapPart is one piece of a snapshot's stream: Len bytes of File from Off.
// Linked parts are hard links to segment files; CRC covers written parts.
type snapPart struct {
	File   string `json:"file"`
	Off    int64  `json:"off"`
	Len    int64  `json:"len"`
	Linked bool   `json:"linked,omitempty"`
	CRC    uint32 `json:"crc,omitempty"`
}

// snapMeta is meta.json. hashicorp/raft's file store wrote the same
// SnapshotMeta fields (and a CRC-64 of state.bin, not checked here: the
// frames inside carry their own CRCs).
type snapMeta struct {
	raft.SnapshotMeta
	Parts []snapPart `json:"parts,omitempty"`
}

// Create starts a snapshot; raft writes it through the returned sink.
func (s *SnapshotStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("snapshot store: unsupported snapshot version %d", version)
	}
	id := fmt.Sprintf("%d-%d-%d", term, index, time.Now().UnixMilli())
	dir := filepath.Join(s.dir, id+snapTmpSuffix)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	return &snapshotSink{store: s, dir: dir, meta: snapMeta{SnapshotMeta: raft.SnapshotMeta{
		Version: version, ID: id, Index: index, Term: term,
		Configuration: configuration, ConfigurationIndex: configurationIndex,
	}}}, nil
}

// List returns the complete snapshots, newest first.
func (s *SnapshotStore) List() ([]*raft.SnapshotMeta, error) {
	metas, err := s.complete()
	if err != nil {
		return nil, err
	}
	out := make([]*raft.SnapshotMeta, 0, min(len(metas), s.retain))
	for _, m := range metas {
		if len(out) == s.retain {
			break
		}
		sm := m.SnapshotMeta
		out = append(out, &sm)
	}
	return out, nil
}

// complete reads every complete snapshot's meta, newest first.
func (s *SnapshotStore) complete() ([]*snapMeta, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	var metas []*snapMeta
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), snapTmpSuffix) {
			continue
		}
		m, err := s.readMeta(e.Name())
		if err != nil {
			s.logger.Warn("skipping unreadable snapshot", "snapshot", e.Name(), "err", err)
			continue
		}
		metas = append(metas, m)
	}
	sort.Slice(metas, func(i, j int) bool {
		a, b := metas[i], metas[j]
		if a.Term != b.Term {
			return a.Term > b.Term
		}
		if a.Index != b.Index {
			return a.Index > b.Index
		}
		return a.ID > b.ID
	})
	return metas, nil
}

func (s *SnapshotStore) readMeta(id string) (*snapMeta, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, id, snapMetaFile))
	if err != nil {
		return nil, err
	}
	var m snapMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", snapMetaFile, err)
	}
	if m.Version < raft.SnapshotVersionMin || m.Version > raft.SnapshotVersionMax {
		return nil, fmt.Errorf("snapshot version %d not supported", m.Version)
	}
	if len(m.Parts) == 0 {
		// hashicorp/raft's file store: the whole stream in state.bin.
		m.Parts = []snapPart{{File: snapLegacy, Len: m.Size}}
	}
	var total int64
	for _, p := range m.Parts {
		if p.Off < 0 || p.Len < 0 || p.File == "" || strings.ContainsAny(p.File, `/\`) {
			return nil, fmt.Errorf("bad part %+v", p)
		}
		total += p.Len
	}
	if total != m.Size {
		return nil, fmt.Errorf("parts add up to %d bytes, the snapshot has %d", total, m.Size)
	}
	return &m, nil
}

// Open returns a snapshot's stream. Every part's file is opened here, so a
// snapshot reaped (or a segment deleted by retention) while the stream is
// read stays readable; written parts are checked against their CRCs.
func (s *SnapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	m, err := s.readMeta(id)
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot store: open %s: %w", id, err)
	}
	rc := &partsReader{}
	readers := make([]io.Reader, 0, len(m.Parts))
	for _, p := range m.Parts {
		f, err := os.Open(filepath.Join(s.dir, id, p.File))
		if err != nil {
			rc.Close()
			return nil, nil, fmt.Errorf("snapshot store: open %s: %w", id, err)
		}
		rc.files = append(rc.files, f)
		var r io.Reader = io.NewSectionReader(f, p.Off, p.Len)
		if !p.Linked && p.CRC != 0 {
			r = &crcReader{r: r, want: p.CRC, left: p.Len, name: p.File}
		}
		readers = append(readers, r)
	}
	rc.Reader = io.MultiReader(readers...)
	sm := m.SnapshotMeta
	return &sm, rc, nil
}

// partsReader reads a snapshot's parts in turn and closes their files.
type partsReader struct {
	io.Reader
	files []*os.File
}

func (r *partsReader) Close() error {
	var errs []error
	for _, f := range r.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// crcReader checks a written part's CRC-32C when its last byte is read.
type crcReader struct {
	r    io.Reader
	want uint32
	got  uint32
	left int64
	name string
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.got = crc32.Update(c.got, castagnoli, p[:n])
	c.left -= int64(n)
	if c.left == 0 && c.got != c.want {
		return n, fmt.Errorf("snapshot part %s: CRC %#08x, meta says %#08x: %w", c.name, c.got, c.want, ErrCorruptLog)
	}
	return n, err
}

// reap removes all but the newest retain complete snapshots.
func (s *SnapshotStore) reap() error {
	metas, err := s.complete()
	if err != nil {
		return err
	}
	for _, m := range metas[min(len(metas), s.retain):] {
		if err := os.RemoveAll(filepath.Join(s.dir, m.ID)); err != nil {
			return fmt.Errorf("snapshot store: reap %s: %w", m.ID, err)
		}
	}
	return nil
}

// SegmentLinker is what a snapshot sink of a SnapshotStore offers besides
// writing: adding a byte range of a file in the same file system without
// copying it. Partition.Snapshot's Persist uses it when the sink has it.
type SegmentLinker interface {
	LinkRange(path string, off, n int64) error
}

// snapshotSink writes one snapshot: Write appends to the current written
// part, LinkRange appends a linked part.
type snapshotSink struct {
	store *SnapshotStore
	dir   string
	meta  snapMeta

	mu      sync.Mutex
	cur     *os.File // the written part being appended to, if any
	curPart *snapPart
	done    bool
}

var _ SegmentLinker = (*snapshotSink)(nil)

func (k *snapshotSink) ID() string { return k.meta.ID }

func (k *snapshotSink) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.done {
		return 0, errors.New("snapshot sink closed")
	}
	return k.writeLocked(p)
}

func (k *snapshotSink) writeLocked(p []byte) (int, error) {
	if k.cur == nil {
		name := fmt.Sprintf("part-%d", len(k.meta.Parts))
		f, err := os.OpenFile(filepath.Join(k.dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return 0, err
		}
		k.cur = f
		k.meta.Parts = append(k.meta.Parts, snapPart{File: name})
		k.curPart = &k.meta.Parts[len(k.meta.Parts)-1]
	}
	n, err := k.cur.Write(p)
	k.curPart.Len += int64(n)
	k.curPart.CRC = crc32.Update(k.curPart.CRC, castagnoli, p[:n])
	return n, err
}

// finishPart closes the written part being appended to.
func (k *snapshotSink) finishPart() error {
	if k.cur == nil {
		return nil
	}
	var err error
	if !k.store.noSync {
		err = k.cur.Sync()
	}
	if cerr := k.cur.Close(); err == nil {
		err = cerr
	}
	k.cur, k.curPart = nil, nil
	return err
}

// LinkRange adds n bytes of path from off as a part. The file is hard-linked
// into the snapshot; where the file system cannot link, the range is
// copied.
func (k *snapshotSink) LinkRange(path string, off, n int64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.done {
		return errors.New("snapshot sink closed")
	}
	if err := k.finishPart(); err != nil {
		return err
	}
	name := fmt.Sprintf("seg-%d", len(k.meta.Parts))
	if err := os.Link(path, filepath.Join(k.dir, name)); err == nil {
		k.meta.Parts = append(k.meta.Parts, snapPart{File: name, Off: off, Len: n, Linked: true})
		return nil
	}
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	if _, err = io.Copy(writerFunc(k.writeLocked), io.NewSectionReader(src, off, n)); err != nil {
		return fmt.Errorf("copy %s into snapshot: %w", path, err)
	}
	return k.finishPart()
}

// Close makes the snapshot complete: parts and meta synced, the directory
// renamed from its temporary name, then older snapshots reaped.
func (k *snapshotSink) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.done {
		return nil
	}
	k.done = true
	if err := k.finish(); err != nil {
		_ = os.RemoveAll(k.dir)
		return fmt.Errorf("snapshot store: %w", err)
	}
	if err := k.store.reap(); err != nil {
		k.store.logger.Warn("reap snapshots", "err", err)
	}
	return nil
}

func (k *snapshotSink) finish() error {
	if err := k.finishPart(); err != nil {
		return err
	}
	for _, p := range k.meta.Parts {
		k.meta.Size += p.Len
	}
	b, err := json.Marshal(&k.meta)
	if err != nil {
		return err
	}
	if err := writeFileSync(filepath.Join(k.dir, snapMetaFile), b, !k.store.noSync); err != nil {
		return err
	}
	if !k.store.noSync {
		if err := syncDir(k.dir); err != nil {
			return err
		}
	}
	final := strings.TrimSuffix(k.dir, snapTmpSuffix)
	if err := os.Rename(k.dir, final); err != nil {
		return err
	}
	k.dir = final
	if k.store.noSync {
		return nil
	}
	return syncDir(k.store.dir)
}

// Cancel abandons the snapshot.
func (k *snapshotSink) Cancel() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.done {
		return nil
	}
	k.done = true
	if k.cur != nil {
		k.cur.Close()
		k.cur = nil
	}
	return os.RemoveAll(k.dir)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func writeFileSync(path string, b []byte, sync bool) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
