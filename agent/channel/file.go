package channel

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sluice-io/sluice/agent/flow"
)

// File is the durable channel: every commit is one CRC-framed record
// appended to a log file in dataDirs and fsynced before Commit returns; a
// checkpoint (every checkpointInterval, and on stop) writes the channel's
// whole content to checkpointDir, after which older logs are deleted.
// Start replays the checkpoint and the logs after it. Events are also kept
// in memory (the queue), so capacity bounds the RAM too.
type File struct {
	*core
	log *slog.Logger

	ckptDir, dataDir string
	maxFileSize      int64
	minFree          uint64
	interval         time.Duration

	wmu    sync.Mutex // guards the log file below (taken under commitMu)
	f      *os.File
	seq    uint64 // current log file number
	size   int64
	broken error // a write that could not be undone: refuse commits
	smu    sync.Mutex
	freeOK time.Time // last time free space was checked and sufficient (smu)

	// Group commit (fmu): cur collects records while a flush runs.
	fmu      sync.Mutex
	fcond    *sync.Cond
	cur      *flushGroup
	flushing bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// NewFile builds a file channel from Flume's properties: checkpointDir,
// dataDirs (comma list; the first is used), capacity (1,000,000),
// transactionCapacity (10,000), checkpointInterval (30,000 ms),
// maxFileSize (2,146,435,071), minimumRequiredSpace (524,288,000 bytes),
// keep-alive (3 s). Directories default to DataDir/<agent>/<channel>/.
func NewFile(name string, p *flow.Props, d flow.Deps) (flow.Channel, error) {
	base := d.DataDir
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".sluice")
	}
	def := filepath.Join(base, "file-channel", d.Agent, name)
	ckpt := p.String("checkpointDir", filepath.Join(def, "checkpoint"))
	dirs := strings.Split(p.String("dataDirs", filepath.Join(def, "data")), ",")
	capacity := p.Int("capacity", 1_000_000)
	txCap := p.Int("transactionCapacity", 10_000)
	interval := p.Millis("checkpointInterval", 30*time.Second)
	maxFile := p.Int("maxFileSize", 2146435071)
	minFree := p.Int("minimumRequiredSpace", 524288000)
	keepAlive := p.Seconds("keep-alive", 3*time.Second)
	if err := p.Err(); err != nil {
		return nil, err
	}
	switch {
	case capacity < 1:
		return nil, fmt.Errorf("%s.capacity: must be at least 1, got %d", p.Prefix, capacity)
	case txCap < 1 || txCap > capacity:
		return nil, fmt.Errorf("%s.transactionCapacity: must be between 1 and capacity (%d), got %d", p.Prefix, capacity, txCap)
	case maxFile < 1<<16:
		return nil, fmt.Errorf("%s.maxFileSize: must be at least 65536 bytes, got %d", p.Prefix, maxFile)
	case minFree < 0:
		return nil, fmt.Errorf("%s.minimumRequiredSpace: must not be negative", p.Prefix)
	case interval <= 0:
		return nil, fmt.Errorf("%s.checkpointInterval: must be positive", p.Prefix)
	}
	dataDir := strings.TrimSpace(dirs[0])
	if dataDir == "" {
		return nil, fmt.Errorf("%s.dataDirs: empty directory", p.Prefix)
	}
	logger := d.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("channel", name)
	if len(dirs) > 1 {
		logger.Warn("file channel uses the first of dataDirs only", "dataDir", dataDir)
	}
	c := newCore(name, capacity, int(txCap), 0, keepAlive)
	c.atPut = true
	c.taken = map[uint64]item{}
	fc := &File{core: c, log: logger, ckptDir: ckpt, dataDir: dataDir, maxFileSize: maxFile, minFree: uint64(minFree), interval: interval}
	fc.fcond = sync.NewCond(&fc.fmu)
	c.persist = fc
	return fc, nil
}

func logName(seq uint64) string { return fmt.Sprintf("log-%020d", seq) }

func listLogs(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range ents {
		if s, ok := strings.CutPrefix(e.Name(), "log-"); ok {
			if n, err := strconv.ParseUint(s, 10, 64); err == nil {
				seqs = append(seqs, n)
			}
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, nil
}

// Start replays the checkpoint and the logs, then opens a fresh log.
func (fc *File) Start(context.Context) error {
	for _, d := range []string{fc.ckptDir, fc.dataDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("channel %s: %w", fc.name, err)
		}
	}
	items, nextID, fromSeq, err := readCheckpoint(filepath.Join(fc.ckptDir, "checkpoint"))
	if err != nil {
		return fmt.Errorf("channel %s: %w", fc.name, err)
	}
	byID := make(map[uint64]int, len(items))
	for i, it := range items {
		byID[it.id] = i
	}
	live := make([]bool, len(items))
	for i := range live {
		live[i] = true
	}
	seqs, err := listLogs(fc.dataDir)
	if err != nil {
		return fmt.Errorf("channel %s: %w", fc.name, err)
	}
	replayed, truncated := 0, 0
	last := fromSeq
	for i, seq := range seqs {
		if seq < fromSeq {
			continue // covered by the checkpoint; removed below
		}
		last = max(last, seq)
		path := filepath.Join(fc.dataDir, logName(seq))
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("channel %s: %w", fc.name, err)
		}
		off := 0
		for off < len(data) {
			rec, n, derr := decodeRecord(data[off:])
			if derr != nil {
				if i == len(seqs)-1 && isTornTail(data[off:], derr) {
					truncated = len(data) - off
					if err := os.Truncate(path, int64(off)); err != nil {
						return fmt.Errorf("channel %s: truncate torn tail of %s: %w", fc.name, path, err)
					}
					break
				}
				return fmt.Errorf("channel %s: %s at byte %d: %w (the channel refuses to start rather than lose or invent events; move the damaged file away to start empty)", fc.name, path, off, derr)
			}
			for _, it := range rec.puts {
				byID[it.id] = len(items)
				items = append(items, it)
				live = append(live, true)
				nextID = max(nextID, it.id+1)
			}
			for _, id := range rec.takes {
				if j, ok := byID[id]; ok {
					live[j] = false
					delete(byID, id)
				}
			}
			replayed++
			off += n
		}
	}
	q := make([]item, 0, len(byID))
	for i, it := range items {
		if live[i] {
			q = append(q, it)
		}
	}
	sort.Slice(q, func(i, j int) bool { return q[i].id < q[j].id })
	fc.load(q, nextID)
	if truncated > 0 {
		fc.log.Warn("file channel: torn record at the end of the last log dropped (a commit that was never acknowledged)", "bytes", truncated)
	}
	fc.log.Info("file channel replayed", "events", len(q), "records", replayed)
	// A fresh log after everything replayed, then a checkpoint so old logs go.
	fc.seq = last
	if err := fc.openLog(last + 1); err != nil {
		return err
	}
	if err := fc.checkpoint(); err != nil {
		return err
	}
	fc.counters.MarkStart()
	fc.stop = make(chan struct{})
	fc.wg.Add(1)
	go fc.checkpointLoop()
	return nil
}

// isTornTail tells a write cut short by a crash (the rest of the file is
// the partial record, or zeros a filesystem left after it) from damage
// followed by more data.
func isTornTail(rest []byte, err error) bool {
	if errors.Is(err, errShort) {
		return true
	}
	if len(bytes.Trim(rest, "\x00")) == 0 {
		return true
	}
	if len(rest) >= recordHeader {
		n := int64(binary.BigEndian.Uint32(rest))
		return n > 0 && recordHeader+n == int64(len(rest)) // the last record, partially written
	}
	return false
}

func (fc *File) openLog(seq uint64) error {
	f, err := os.OpenFile(filepath.Join(fc.dataDir, logName(seq)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("channel %s: open log: %w", fc.name, err)
	}
	if err := syncDir(fc.dataDir); err != nil {
		f.Close()
		return fmt.Errorf("channel %s: %w", fc.name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if fc.f != nil {
		fc.f.Close()
	}
	fc.f, fc.seq, fc.size = f, seq, st.Size()
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// checkPut is the minimumRequiredSpace floor (checked at most every 250 ms).
func (fc *File) checkPut() error {
	fc.smu.Lock()
	defer fc.smu.Unlock()
	if time.Since(fc.freeOK) < 250*time.Millisecond {
		return nil
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(fc.dataDir, &st); err != nil {
		return fmt.Errorf("channel %s: statfs %s: %w", fc.name, fc.dataDir, err)
	}
	free := st.Bavail * uint64(st.Bsize)
	if free < fc.minFree {
		return fmt.Errorf("channel %s: usable space exhausted: %d bytes free in %s, below minimumRequiredSpace %d; puts stop until space is freed: %w", fc.name, free, fc.dataDir, fc.minFree, flow.ErrChannelFull)
	}
	fc.freeOK = time.Now()
	return nil
}

// flushGroup is the records of the transactions that share one write
// and one fsync.
type flushGroup struct {
	buf  []byte
	done chan struct{}
	err  error
}

func (fc *File) enqueue(puts []item, takes []item) *flushGroup {
	fc.fmu.Lock()
	defer fc.fmu.Unlock()
	g := fc.cur
	if g == nil {
		g = &flushGroup{done: make(chan struct{})}
		fc.cur = g
	}
	g.buf = encodeRecord(g.buf, puts, takes)
	return g
}

// wait makes g durable: the first waiter while no flush runs writes the
// whole pending group; the others wait for it (leader/follower group
// commit).
func (fc *File) wait(g *flushGroup) error {
	fc.fmu.Lock()
	for {
		select {
		case <-g.done:
			fc.fmu.Unlock()
			return g.err
		default:
		}
		if fc.flushing {
			fc.fcond.Wait()
			continue
		}
		grp := fc.cur
		fc.cur = nil
		fc.flushing = true
		fc.fmu.Unlock()
		grp.err = fc.writeSync(grp.buf)
		close(grp.done)
		fc.fmu.Lock()
		fc.flushing = false
		fc.fcond.Broadcast()
	}
}

// writeSync appends whole records and fsyncs them.
func (fc *File) writeSync(buf []byte) error {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	if fc.broken != nil {
		return fc.broken
	}
	if fc.size > 0 && fc.size+int64(len(buf)) > fc.maxFileSize {
		if err := fc.f.Sync(); err != nil {
			return fc.fail(err)
		}
		if err := fc.openLog(fc.seq + 1); err != nil {
			return err
		}
	}
	if _, err := fc.f.Write(buf); err != nil {
		// Undo the partial write so the log stays a sequence of whole
		// records (ENOSPC lands here).
		if terr := fc.f.Truncate(fc.size); terr != nil {
			return fc.fail(fmt.Errorf("%w; and undoing it failed: %v", err, terr))
		}
		fc.smu.Lock()
		fc.freeOK = time.Time{}
		fc.smu.Unlock()
		return fmt.Errorf("write log: %w", err)
	}
	if err := fc.f.Sync(); err != nil {
		return fc.fail(err)
	}
	fc.size += int64(len(buf))
	return nil
}

func (fc *File) fail(err error) error {
	fc.broken = fmt.Errorf("channel %s: log write failed, channel stopped taking commits (restart replays it): %w", fc.name, err)
	fc.log.Error("file channel broken", "err", err)
	return fc.broken
}

func (fc *File) checkpointLoop() {
	defer fc.wg.Done()
	t := time.NewTicker(fc.interval)
	defer t.Stop()
	for {
		select {
		case <-fc.stop:
			return
		case <-t.C:
			if err := fc.checkpoint(); err != nil {
				fc.log.Error("file channel checkpoint failed", "err", err)
			}
		}
	}
}

// checkpoint rolls to a new log, writes the channel's content as of that
// point, then deletes the older logs.
func (fc *File) checkpoint() error {
	fc.commitMu.Lock()
	// Every enqueued commit must be on disk and applied before the
	// snapshot: its record may be in a log the checkpoint lets go.
	fc.applying.Wait()
	fc.wmu.Lock()
	if fc.broken != nil {
		fc.wmu.Unlock()
		fc.commitMu.Unlock()
		return fc.broken
	}
	if fc.size > 0 {
		if err := fc.openLog(fc.seq + 1); err != nil {
			fc.wmu.Unlock()
			fc.commitMu.Unlock()
			return err
		}
	}
	from := fc.seq
	fc.wmu.Unlock()
	items := fc.snapshot()
	fc.mu.Lock()
	nextID := fc.nextID
	fc.mu.Unlock()
	fc.commitMu.Unlock()

	if err := writeCheckpoint(fc.ckptDir, items, nextID, from); err != nil {
		return fmt.Errorf("channel %s: checkpoint: %w", fc.name, err)
	}
	seqs, err := listLogs(fc.dataDir)
	if err != nil {
		return err
	}
	for _, s := range seqs {
		if s < from {
			if err := os.Remove(filepath.Join(fc.dataDir, logName(s))); err != nil {
				fc.log.Warn("file channel: remove old log", "err", err)
			}
		}
	}
	return nil
}

func (fc *File) Stop(ctx context.Context) error {
	err := fc.drain(ctx)
	if fc.stop != nil {
		close(fc.stop)
		fc.wg.Wait()
		fc.stop = nil
	}
	if cerr := fc.checkpoint(); cerr != nil && err == nil {
		err = cerr
	}
	fc.wmu.Lock()
	if fc.f != nil {
		fc.f.Close()
		fc.f = nil
	}
	fc.wmu.Unlock()
	fc.counters.MarkStop()
	return err
}

// Checkpoint layout: "SLCK" | u32 CRC-32C of the rest | u64 first log to
// replay | u64 next event id | uvarint count | count × (uvarint id, event).
const ckptMagic = "SLCK"

func writeCheckpoint(dir string, items []item, nextID, fromSeq uint64) error {
	b := make([]byte, 8, 64+len(items)*64)
	copy(b, ckptMagic)
	b = binary.BigEndian.AppendUint64(b, fromSeq)
	b = binary.BigEndian.AppendUint64(b, nextID)
	b = binary.AppendUvarint(b, uint64(len(items)))
	for _, it := range items {
		b = binary.AppendUvarint(b, it.id)
		b = appendEvent(b, it.ev)
	}
	binary.BigEndian.PutUint32(b[4:], crc32.Checksum(b[8:], castagnoli))
	tmp := filepath.Join(dir, "checkpoint.tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "checkpoint")); err != nil {
		return err
	}
	return syncDir(dir)
}

// readCheckpoint returns the checkpointed events; a missing checkpoint is
// an empty channel replaying every log.
func readCheckpoint(path string) (items []item, nextID, fromSeq uint64, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 1, 0, nil
	}
	if err != nil {
		return nil, 0, 0, err
	}
	if len(b) < 24 || string(b[:4]) != ckptMagic {
		return nil, 0, 0, fmt.Errorf("checkpoint %s: %w: not a checkpoint", path, errCorrupt)
	}
	if crc32.Checksum(b[8:], castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return nil, 0, 0, fmt.Errorf("checkpoint %s: %w: checksum mismatch", path, errCorrupt)
	}
	fromSeq = binary.BigEndian.Uint64(b[8:])
	nextID = binary.BigEndian.Uint64(b[16:])
	r := &reader{b: b[24:]}
	n := r.count(3)
	items = make([]item, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		id := r.uvarint()
		ev := r.event()
		items = append(items, item{id: id, ev: ev})
	}
	if r.err != nil {
		return nil, 0, 0, fmt.Errorf("checkpoint %s: %w", path, r.err)
	}
	return items, max(nextID, 1), fromSeq, nil
}

// Durable: committed events survive the process.
func (c *File) Durable() bool { return true }
