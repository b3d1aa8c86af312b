package fsm

import (
	"bufio"
	"bytes"
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/sluice-io/sluice/internal/failpoint"
	"github.com/sluice-io/sluice/transport"
)

// DefaultMaxProducers bounds the idempotent-producer table by default.
const DefaultMaxProducers = 10000

// producerWindow is how many recent batches per producer are remembered for
// duplicate detection (Kafka keeps five: one per in-flight request).
const producerWindow = 5

// Raft command types of a partition group.
const (
	cmdAppend       byte = 1 // batch (written before cmdAppendAt existed)
	cmdOffsetCommit byte = 2
	cmdAppendAt     byte = 3 // leader's clock (unix ms, int64) + batch
)

// DefaultMaxTimestampAhead is how far past the leader's clock a batch's
// max timestamp may lie (Kafka's message.timestamp.after.max.ms).
const DefaultMaxTimestampAhead = time.Hour

// Sibling directories of the log dir used while a snapshot is restored.
const (
	restoreSuffix = ".restore"
	oldSuffix     = ".old"
)

// ErrReplayMismatch: a Raft entry replayed after a restart does not match
// the batch the log stored for it. The partition stops rather than serve
// data its Raft log does not vouch for.
var ErrReplayMismatch = fmt.Errorf("%w: replayed raft entry does not match the stored batch", ErrCorruptLog)

// ErrDamagedRaftEntry: a replayed Raft entry fails its batch checks although
// the log stored a valid batch for it, so the Raft log store is damaged.
// Rebuilding the segments from it would lose that batch, so the partition
// just stops (it is not ErrCorruptLog); the replica needs rebuilding from
// its peers by an operator.
var ErrDamagedRaftEntry = errors.New("replayed raft entry is damaged")

// PartitionConfig configures a partition replica's state machine.
type PartitionConfig struct {
	Log          LogConfig
	Logger       *slog.Logger
	MaxProducers int // idempotent producers remembered (default 10000)
	// MaxGroups bounds the consumer groups whose offsets a partition keeps
	// (default DefaultMaxGroups).
	MaxGroups int
	// OffsetsRetention expires a group's offsets this long after its last
	// commit, measured by the timestamps of Raft commands (default
	// DefaultOffsetsRetention; < 0 keeps them forever).
	OffsetsRetention time.Duration
	// SkipScrub disables the background check of every sealed segment's
	// CRCs after open.
	SkipScrub bool
	// MaxTimestampAhead refuses batches whose max timestamp is further
	// ahead of the proposing leader's clock (carried in the command), so a
	// client clock cannot pin segments against age retention (default
	// DefaultMaxTimestampAhead; < 0 disables the check).
	MaxTimestampAhead time.Duration
	// Repair, when set, supplies frames from another replica when a
	// restore finds the snapshot's own frames damaged: a snapshot links the
	// segment files (SnapshotStore), so damage to a sealed segment is
	// damage to the local snapshot too, and the data must come from peers.
	Repair FrameSource
}

// FrameSource reads stored frames (Log.ReadFrames) of this partition from
// another replica, starting with the batch that holds offset.
type FrameSource interface {
	ReadFrames(ctx context.Context, offset int64, maxBytes int) ([][]byte, error)
}

// repairTimeout bounds fetching a damaged range from peers during a restore.
const repairTimeout = 5 * time.Minute

// AppendResult is what Apply returns for an append command.
type AppendResult struct {
	BaseOffset int64
	LastOffset int64
	// Duplicate is set when the batch was a producer retry of a batch
	// already in the log; the offsets are those of the earlier copy.
	Duplicate bool
}

// EncodeAppend builds the Raft command that appends a record batch,
// stamped with the local clock (the leader's, when it proposes it).
func EncodeAppend(batch []byte) []byte {
	return EncodeAppendAt(batch, time.Now())
}

// EncodeAppendAt is EncodeAppend stamped with at.
func EncodeAppendAt(batch []byte, at time.Time) []byte {
	cmd := make([]byte, 9+len(batch))
	cmd[0] = cmdAppendAt
	binary.BigEndian.PutUint64(cmd[1:], uint64(at.UnixMilli()))
	copy(cmd[9:], batch)
	return cmd
}

type offsetCommitCmd struct {
	Group    string `msgpack:"g"`
	Offset   int64  `msgpack:"o"`
	Metadata string `msgpack:"m"`
	// Time is the leader's clock when it proposed the commit (unix ms; 0
	// in commands written before it existed). It drives offset expiry.
	Time int64 `msgpack:"t,omitempty"`
}

// EncodeOffsetCommit builds the Raft command that commits a consumer
// group's offset for this partition, stamped with the local clock.
func EncodeOffsetCommit(group string, offset int64, metadata string) []byte {
	return EncodeOffsetCommitAt(group, offset, metadata, time.Now())
}

// EncodeOffsetCommitAt is EncodeOffsetCommit stamped with at.
func EncodeOffsetCommitAt(group string, offset int64, metadata string, at time.Time) []byte {
	return encodeCommand(cmdOffsetCommit, offsetCommitCmd{Group: group, Offset: offset, Metadata: metadata, Time: at.UnixMilli()})
}

func encodeCommand(typ byte, v any) []byte {
	b, err := msgpack.Marshal(v)
	if err != nil {
		// Unreachable for the plain structs encoded here; an empty command
		// is rejected by Apply rather than panicking.
		return nil
	}
	return append([]byte{typ}, b...)
}

type groupOffset struct {
	Offset   int64  `msgpack:"o"`
	Metadata string `msgpack:"m"`
	Time     int64  `msgpack:"t,omitempty"` // last commit, partition clock (unix ms)
}

// Partition is the Raft FSM of one partition replica: the on-disk log,
// idempotent-producer state and committed consumer-group offsets.
//
// Apply, Snapshot and Restore run on Raft's FSM goroutine; Read and the
// accessors may be called from any goroutine.
type Partition struct {
	cfg    PartitionConfig
	logger *slog.Logger

	logMu sync.RWMutex // guards the log pointer (swapped by Restore)
	log   *Log

	mu     sync.Mutex // guards groups, the clock and failed
	groups map[string]groupOffset
	failed error
	// clock is the newest command timestamp applied (unix ms) and
	// nextExpiry when group offsets are next scanned for expiry.
	clock      int64
	nextExpiry int64
	// maxHeader bounds the snapshot header written and read.
	maxHeader int

	producers *producerTable // FSM goroutine only
	applied   atomic.Uint64

	chMu    sync.Mutex
	changed chan struct{}

	// The background scrub of sealed segments (scrub.go).
	stopScrub chan struct{}
	scrubDone chan struct{}
	closeOnce sync.Once
}

// NewPartition opens the partition's log, finishing or rolling back a
// snapshot restore that a crash interrupted.
func NewPartition(cfg PartitionConfig) (*Partition, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Log.Logger == nil {
		cfg.Log.Logger = cfg.Logger
	}
	if cfg.MaxProducers <= 0 {
		cfg.MaxProducers = DefaultMaxProducers
	}
	if cfg.MaxGroups <= 0 {
		cfg.MaxGroups = DefaultMaxGroups
	}
	if cfg.OffsetsRetention == 0 {
		cfg.OffsetsRetention = DefaultOffsetsRetention
	}
	if cfg.MaxTimestampAhead == 0 {
		cfg.MaxTimestampAhead = DefaultMaxTimestampAhead
	}
	if cfg.Log.Dir == "" {
		return nil, errors.New("partition log dir is required")
	}
	if err := recoverRestore(filepath.Clean(cfg.Log.Dir)); err != nil {
		return nil, err
	}
	p := &Partition{}
	userHook := cfg.Log.OnCorrupt
	cfg.Log.OnCorrupt = func(err error) {
		p.fail(fmt.Errorf("%w: %w", ErrCorruptLog, err))
		if userHook != nil {
			userHook(err)
		}
	}
	l, err := OpenLog(cfg.Log)
	if err != nil {
		return nil, fmt.Errorf("open partition log: %w", err)
	}
	*p = Partition{
		cfg:       cfg,
		logger:    cfg.Logger,
		log:       l,
		groups:    map[string]groupOffset{},
		producers: newProducerTable(cfg.MaxProducers),
		changed:   make(chan struct{}),
		maxHeader: maxSnapshotHeaderBytes,
		stopScrub: make(chan struct{}),
		scrubDone: make(chan struct{}),
	}
	p.applied.Store(l.LastRaftIndex())
	if cfg.SkipScrub {
		close(p.scrubDone)
	} else {
		p.startScrub()
	}
	return p, nil
}

// recoverRestore cleans up after a crash during Restore's directory swap.
func recoverRestore(dir string) error {
	old := dir + oldSuffix
	if _, err := os.Stat(old); err == nil {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			// Crashed between the two renames: the old log is intact, and
			// Raft restores the snapshot again after restart.
			if err := os.Rename(old, dir); err != nil {
				return fmt.Errorf("roll back interrupted restore: %w", err)
			}
		} else if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("remove replaced log: %w", err)
		}
	}
	if err := os.RemoveAll(dir + restoreSuffix); err != nil {
		return fmt.Errorf("remove partial restore: %w", err)
	}
	return nil
}

func (p *Partition) currentLog() *Log {
	p.logMu.RLock()
	defer p.logMu.RUnlock()
	return p.log
}

// Err is the error that stopped the state machine, if any. A failed
// partition refuses every command (its offsets would no longer match the
// other replicas); close it and open it again to replay from Raft.
func (p *Partition) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

func (p *Partition) fail(err error) {
	p.mu.Lock()
	if p.failed == nil {
		p.failed = err
	}
	p.mu.Unlock()
	p.logger.Error("partition state machine stopped", "err", err)
}

// Apply applies one committed Raft entry. It returns *AppendResult for an
// append, nil for an offset commit, or an error (*transport.Error when the
// client should see it).
func (p *Partition) Apply(l *raft.Log) any {
	if err := p.Err(); err != nil {
		return fmt.Errorf("partition failed earlier: %w", err)
	}
	defer func() {
		if p.Err() == nil {
			p.applied.Store(l.Index)
		}
	}()
	if l.Type != raft.LogCommand {
		return nil
	}
	if len(l.Data) == 0 {
		return transport.Errorf(transport.ErrInvalidRequest, "empty partition command")
	}
	switch l.Data[0] {
	case cmdAppend:
		return p.applyAppend(l, l.Data[1:], 0)
	case cmdAppendAt:
		if len(l.Data) < 9 {
			return transport.Errorf(transport.ErrInvalidRequest, "append command of %d bytes has no timestamp", len(l.Data))
		}
		return p.applyAppend(l, l.Data[9:], int64(binary.BigEndian.Uint64(l.Data[1:])))
	case cmdOffsetCommit:
		var c offsetCommitCmd
		if err := msgpack.Unmarshal(l.Data[1:], &c); err != nil {
			return transport.Errorf(transport.ErrInvalidRequest, "decode offset commit: %v", err)
		}
		if failpoint.Enabled(failpoint.ForgetGroupOffset) && failpoint.Starting() {
			return nil
		}
		if err := p.commitOffset(c); err != nil {
			return err
		}
		return nil
	default:
		return transport.Errorf(transport.ErrInvalidRequest, "unknown partition command type %d", l.Data[0])
	}
}

// applyAppend applies one batch; at is the proposing leader's clock (unix
// ms), 0 for commands from before it was carried.
func (p *Partition) applyAppend(l *raft.Log, batch []byte, at int64) any {
	info, err := checkBatch(batch)
	if err != nil {
		lg := p.currentLog()
		if l.Index <= lg.LastRaftIndex() {
			// The log stored a valid batch for this entry, so the entry
			// itself was damaged since (the Raft log store).
			if _, ok, _ := lg.storedForRaftIndex(l.Index); ok {
				err = fmt.Errorf("%w: raft entry %d no longer holds a valid batch (%v) but the log stored one for it", ErrDamagedRaftEntry, l.Index, err)
				p.fail(err)
			}
		}
		return err
	}
	if at != 0 {
		if ahead := p.cfg.MaxTimestampAhead; ahead > 0 && info.maxTimestamp > at+ahead.Milliseconds() {
			return transport.Errorf(transport.ErrInvalidRequest, "batch max timestamp %s is more than %s ahead of the leader's clock (%s)",
				time.UnixMilli(info.maxTimestamp).UTC().Format(time.RFC3339), ahead, time.UnixMilli(at).UTC().Format(time.RFC3339))
		}
		p.mu.Lock()
		p.advanceClockLocked(at)
		p.mu.Unlock()
	}
	if info.producerID >= 0 && !failpoint.Enabled(failpoint.SkipIdempotence) {
		dup, err := p.producers.check(info)
		if err != nil {
			return err
		}
		if dup != nil {
			return dup
		}
	}
	lg := p.currentLog()
	var base int64
	if l.Index <= lg.LastRaftIndex() {
		// A replay after restart: the batch is on disk already. Rebuild
		// producer state from where it went and report the original offsets.
		sb, ok, err := lg.storedForRaftIndex(l.Index)
		if err != nil {
			err = fmt.Errorf("replay raft entry %d: %w", l.Index, err)
			p.fail(err)
			return err
		}
		b := sb.offset
		switch {
		case !ok:
			p.logger.Warn("replayed append is no longer in the log (removed by retention?)", "raft_index", l.Index)
			if info.producerID >= 0 {
				p.producers.record(info, -1, l.Index)
			}
			return &AppendResult{BaseOffset: -1, LastOffset: -1}
		case sb.count != uint32(info.count) || sb.batchLen() != info.length || sb.crc != info.crc:
			// The log holds something else at this Raft index (a stale
			// replica's data, or damage): skipping would silently serve it.
			err := fmt.Errorf("%w: raft entry %d carries a batch of %d records, %d bytes, CRC %#08x, but the log holds %d records, %d bytes, CRC %#08x at offset %d",
				ErrReplayMismatch, l.Index, info.count, info.length, info.crc, sb.count, sb.batchLen(), sb.crc, b)
			p.fail(err)
			return err
		}
		base = b
	} else {
		if failpoint.Enabled(failpoint.DropAppliedBatch) && l.Index%failpoint.DropEvery == 0 {
			return &AppendResult{BaseOffset: lg.NextOffset(), LastOffset: lg.NextOffset() + int64(info.count) - 1}
		}
		base, err = lg.appendChecked(batch, info, l.Index, int32(l.Term))
		if err != nil {
			err = fmt.Errorf("append raft entry %d: %w", l.Index, err)
			p.fail(err)
			return err
		}
		p.notify()
	}
	if info.producerID >= 0 {
		p.producers.record(info, base, l.Index)
	}
	return &AppendResult{BaseOffset: base, LastOffset: base + int64(info.count) - 1}
}

// Read returns stored batches from offset; see Log.Read.
func (p *Partition) Read(offset int64, maxBytes, maxRecords int) ([][]byte, error) {
	p.logMu.RLock()
	defer p.logMu.RUnlock()
	return p.log.Read(offset, maxBytes, maxRecords)
}

// ReadFrames returns stored frames from offset; see Log.ReadFrames.
func (p *Partition) ReadFrames(offset int64, maxBytes int) ([][]byte, error) {
	p.logMu.RLock()
	defer p.logMu.RUnlock()
	return p.log.ReadFrames(offset, maxBytes)
}

// HighWatermark is the offset after the last applied record: every applied
// entry is committed, so everything below it may be served.
func (p *Partition) HighWatermark() int64 { return p.currentLog().NextOffset() }

// StartOffset is the first offset still stored.
func (p *Partition) StartOffset() int64 { return p.currentLog().StartOffset() }

// Size is the bytes the partition's segments take on disk.
func (p *Partition) Size() int64 { return p.currentLog().Size() }

// AppliedIndex is the Raft index of the last entry applied (or restored).
func (p *Partition) AppliedIndex() uint64 { return p.applied.Load() }

// Changed returns a channel closed at the next append (or restore, or
// close); call it again afterwards for the next change.
func (p *Partition) Changed() <-chan struct{} {
	p.chMu.Lock()
	defer p.chMu.Unlock()
	return p.changed
}

func (p *Partition) notify() {
	p.chMu.Lock()
	close(p.changed)
	p.changed = make(chan struct{})
	p.chMu.Unlock()
}

// GroupOffset is the last offset a consumer group committed here.
func (p *Partition) GroupOffset(group string) (offset int64, metadata string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	g, ok := p.groups[group]
	return g.Offset, g.Metadata, ok
}

// ApplyRetention deletes old segments per the log's retention settings.
func (p *Partition) ApplyRetention() error {
	p.logMu.RLock()
	defer p.logMu.RUnlock()
	_, err := p.log.ApplyRetention()
	return err
}

// Close closes the log and wakes long-polling readers.
func (p *Partition) Close() error {
	p.closeOnce.Do(func() { close(p.stopScrub) })
	<-p.scrubDone
	p.logMu.Lock()
	err := p.log.Close()
	p.logMu.Unlock()
	p.notify()
	return err
}

// maxSnapshotHeaderBytes is the largest snapshot header Restore reads;
// Snapshot refuses to write a larger one (the group and producer limits
// keep real headers far below it).
const maxSnapshotHeaderBytes = 256 << 20

// maxFrameBytes bounds one stored frame read from a snapshot stream.
const maxFrameBytes = 1 << 30

// snapshotMagic starts every partition snapshot.
var snapshotMagic = [8]byte{'S', 'L', 'U', 'I', 'C', 'E', 'P', '1'}

const snapshotVersion = 1

// snapshotHeader precedes the log frames in a partition snapshot.
type snapshotHeader struct {
	Version       int                    `msgpack:"v"`
	StartOffset   int64                  `msgpack:"start"`
	NextOffset    int64                  `msgpack:"next"`
	LastRaftIndex uint64                 `msgpack:"last_raft"`
	AppliedIndex  uint64                 `msgpack:"applied"`
	Groups        map[string]groupOffset `msgpack:"groups"`
	Producers     []producerState        `msgpack:"producers"` // least recently used first
	Clock         int64                  `msgpack:"clock,omitempty"`
	NextExpiry    int64                  `msgpack:"next_expiry,omitempty"`
}

// Snapshot fsyncs the log (Raft compacts its own log up to this point, so
// the segments must hold everything durably) and pins the current state.
// The frames are streamed by Persist.
func (p *Partition) Snapshot() (raft.FSMSnapshot, error) {
	if err := p.Err(); err != nil {
		return nil, fmt.Errorf("partition failed earlier: %w", err)
	}
	lg := p.currentLog()
	if err := lg.Sync(); err != nil {
		return nil, fmt.Errorf("sync log for snapshot: %w", err)
	}
	ls, err := lg.snapshot()
	if err != nil {
		return nil, err
	}
	hdr := snapshotHeader{
		Version:       snapshotVersion,
		StartOffset:   ls.start,
		NextOffset:    ls.next,
		LastRaftIndex: ls.lastRaft,
		AppliedIndex:  p.applied.Load(),
		Groups:        map[string]groupOffset{},
		Producers:     p.producers.export(),
	}
	p.mu.Lock()
	for g, o := range p.groups {
		hdr.Groups[g] = o
	}
	hdr.Clock, hdr.NextExpiry = p.clock, p.nextExpiry
	p.mu.Unlock()
	return &partitionSnapshot{hdr: hdr, log: ls, maxHeader: p.maxHeader}, nil
}

type partitionSnapshot struct {
	hdr       snapshotHeader
	log       *logSnapshot
	maxHeader int
	once      sync.Once
}

// Persist writes magic, header length (uint32), msgpack header, the log's
// frames from StartOffset to NextOffset, and an all-zero frame header.
func (s *partitionSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.persist(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist partition snapshot: %w", err)
	}
	return sink.Close()
}

func (s *partitionSnapshot) persist(w io.Writer) error {
	hdr, err := msgpack.Marshal(&s.hdr)
	if err != nil {
		return err
	}
	if len(hdr) > s.maxHeader {
		// Restore would refuse it: fail here, where the old snapshot stays.
		return fmt.Errorf("snapshot header of %d bytes (%d groups, %d producers) exceeds the limit of %d that Restore enforces",
			len(hdr), len(s.hdr.Groups), len(s.hdr.Producers), s.maxHeader)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	bw.Write(snapshotMagic[:])
	bw.Write(binary.BigEndian.AppendUint32(nil, uint32(len(hdr))))
	bw.Write(hdr)
	if l, ok := w.(SegmentLinker); ok {
		// The frames go in as links to the segment files (SnapshotStore):
		// the snapshot does not copy the retained log.
		if err := bw.Flush(); err != nil {
			return err
		}
		if err := s.log.linkFrames(l); err != nil {
			return err
		}
	} else if err := s.log.writeFrames(bw); err != nil {
		return err
	}
	bw.Write(make([]byte, frameHeaderLen))
	return bw.Flush()
}

func (s *partitionSnapshot) Release() {
	s.once.Do(s.log.release)
}

// Restore replaces the state with a snapshot's. When the local log already
// holds everything the snapshot does (the usual case at restart: Raft
// restores its latest snapshot, then replays the entries after it), the
// segments are kept and only producer state and group offsets are loaded.
// Otherwise the log is rebuilt from the snapshot's frames in a temporary
// directory and swapped in.
func (p *Partition) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 1<<20)
	hdr, err := readSnapshotHeaderLimit(br, p.maxHeader)
	if err != nil {
		return err
	}
	lg := p.currentLog()
	keep := p.Err() == nil && lg.LastRaftIndex() >= hdr.LastRaftIndex && lg.NextOffset() >= hdr.NextOffset
	if keep {
		p.logger.Debug("restore: local log covers the snapshot", "snapshot_next", hdr.NextOffset, "log_next", lg.NextOffset())
	} else {
		if err := p.rebuildLog(br, hdr); err != nil {
			return err
		}
	}
	p.producers.load(hdr.Producers)
	p.mu.Lock()
	p.groups = map[string]groupOffset{}
	for g, o := range hdr.Groups {
		p.groups[g] = o
	}
	p.clock, p.nextExpiry = hdr.Clock, hdr.NextExpiry
	p.failed = nil
	p.mu.Unlock()
	p.applied.Store(hdr.AppliedIndex)
	p.notify()
	return nil
}

func readSnapshotHeader(r io.Reader) (snapshotHeader, error) {
	return readSnapshotHeaderLimit(r, maxSnapshotHeaderBytes)
}

func readSnapshotHeaderLimit(r io.Reader, limit int) (snapshotHeader, error) {
	var hdr snapshotHeader
	var pre [12]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return hdr, fmt.Errorf("read snapshot header: %w", err)
	}
	if [8]byte(pre[:8]) != snapshotMagic {
		return hdr, errors.New("not a partition snapshot (bad magic)")
	}
	n := binary.BigEndian.Uint32(pre[8:])
	if int64(n) > int64(limit) {
		return hdr, fmt.Errorf("snapshot header of %d bytes exceeds the limit of %d", n, limit)
	}
	// Grow with the bytes that arrive rather than trusting n up front.
	var buf bytes.Buffer
	if _, err := io.CopyN(&buf, r, int64(n)); err != nil {
		return hdr, fmt.Errorf("read snapshot header (%d bytes declared): %w", n, err)
	}
	if err := msgpack.Unmarshal(buf.Bytes(), &hdr); err != nil {
		return hdr, fmt.Errorf("decode snapshot header: %w", err)
	}
	if hdr.Version != snapshotVersion {
		return hdr, fmt.Errorf("unsupported partition snapshot version %d", hdr.Version)
	}
	return hdr, nil
}

// rebuildLog writes the snapshot's frames into a fresh log next to the
// current one, makes it durable and swaps the directories.
func (p *Partition) rebuildLog(r io.Reader, hdr snapshotHeader) error {
	dir := filepath.Clean(p.cfg.Log.Dir)
	tmp := dir + restoreSuffix
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("restore: clear %s: %w", tmp, err)
	}
	cfg := p.cfg.Log
	cfg.Dir = tmp
	cfg.Logger = p.logger
	tl, err := openLog(cfg, hdr.StartOffset)
	if err != nil {
		return fmt.Errorf("restore: open temporary log: %w", err)
	}
	frames, err := copyFrames(r, tl)
	if err != nil && p.cfg.Repair != nil {
		p.logger.Error("restore: snapshot frames are damaged; fetching the rest from another replica",
			"offset", tl.NextOffset(), "until", hdr.NextOffset, "err", err)
		var n int
		n, err = p.repairFrames(tl, hdr)
		frames += n
	}
	if err == nil && tl.NextOffset() == hdr.NextOffset && tl.LastRaftIndex() < hdr.LastRaftIndex {
		// Retention had removed the batches of the last entries: the
		// snapshot still vouches for their Raft index.
		tl.advanceRaftIndex(hdr.LastRaftIndex)
	}
	if err == nil && (tl.NextOffset() != hdr.NextOffset || tl.LastRaftIndex() != hdr.LastRaftIndex) {
		err = fmt.Errorf("snapshot frames end at offset %d, raft index %d; header says %d, %d",
			tl.NextOffset(), tl.LastRaftIndex(), hdr.NextOffset, hdr.LastRaftIndex)
	}
	if err == nil {
		err = tl.Sync()
	}
	if cerr := tl.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("restore: %w", err)
	}

	p.logMu.Lock()
	defer p.logMu.Unlock()
	if err := p.log.Close(); err != nil {
		p.logger.Warn("restore: closing replaced log", "err", err)
	}
	if err := swapDirs(dir, tmp); err != nil {
		p.reopenAfterFailedSwap(dir)
		return fmt.Errorf("restore: %w", err)
	}
	if err := os.RemoveAll(dir + oldSuffix); err != nil {
		// Harmless: NewPartition removes it next time.
		p.logger.Warn("restore: removing replaced log", "err", err)
	}
	nl, err := OpenLog(p.cfg.Log)
	if err != nil {
		return fmt.Errorf("restore: reopen log: %w", err)
	}
	p.log = nl
	p.logger.Info("restored partition log from snapshot", "batches", frames,
		"start", hdr.StartOffset, "next", hdr.NextOffset, "last_raft_index", hdr.LastRaftIndex)
	return nil
}

// repairFrames appends to l, from its next offset up to the snapshot's,
// frames read from another replica; appendFrame checks each one.
func (p *Partition) repairFrames(l *Log, hdr snapshotHeader) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), repairTimeout)
	defer cancel()
	n := 0
	for l.NextOffset() < hdr.NextOffset {
		frames, err := p.cfg.Repair.ReadFrames(ctx, l.NextOffset(), 4<<20)
		if err != nil {
			return n, fmt.Errorf("repair from another replica at offset %d: %w", l.NextOffset(), err)
		}
		if len(frames) == 0 {
			return n, fmt.Errorf("repair from another replica: nothing at offset %d (below %d)", l.NextOffset(), hdr.NextOffset)
		}
		for _, f := range frames {
			if _, info, err := checkFrame(f); err == nil && info.baseOffset >= hdr.NextOffset {
				return n, nil
			}
			if err := l.appendFrame(f); err != nil {
				return n, fmt.Errorf("repair from another replica: %w", err)
			}
			n++
		}
	}
	return n, nil
}

// copyFrames appends every frame of a snapshot stream to l until the
// all-zero end marker.
func copyFrames(r io.Reader, l *Log) (int, error) {
	return readSnapshotFrames(r, l.appendFrame)
}

// readSnapshotFrames calls fn with every frame of a snapshot stream until
// the all-zero end marker; the frame is only valid during the call.
func readSnapshotFrames(r io.Reader, fn func(frame []byte) error) (int, error) {
	var buf bytes.Buffer
	prefix := make([]byte, frameHeaderLen+lengthPrefix)
	zero := make([]byte, frameHeaderLen)
	for n := 0; ; n++ {
		if _, err := io.ReadFull(r, prefix[:frameHeaderLen]); err != nil {
			return n, fmt.Errorf("read frame %d: %w", n, err)
		}
		if string(prefix[:frameHeaderLen]) == string(zero) {
			return n, nil
		}
		if _, err := io.ReadFull(r, prefix[frameHeaderLen:]); err != nil {
			return n, fmt.Errorf("read frame %d: %w", n, err)
		}
		size := frameSizeFromPrefix(prefix)
		if size < 0 || size > maxFrameBytes {
			return n, fmt.Errorf("frame %d has an invalid length", n)
		}
		// Grow with the bytes that actually arrive, so a forged length
		// costs no more memory than the stream really holds.
		buf.Reset()
		buf.Write(prefix)
		if _, err := io.CopyN(&buf, r, size-int64(len(prefix))); err != nil {
			return n, fmt.Errorf("read frame %d (%d bytes declared): %w", n, size, err)
		}
		frame := buf.Bytes()
		if err := fn(frame); err != nil {
			return n, fmt.Errorf("frame %d: %w", n, err)
		}
	}
}

// swapDirs replaces dir by tmp: dir -> dir.old, tmp -> dir. The caller
// drops dir.old; recoverRestore finishes or undoes the swap after a crash.
func swapDirs(dir, tmp string) error {
	old := dir + oldSuffix
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	if err := os.Rename(dir, old); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

// reopenAfterFailedSwap puts whichever complete log is on disk back in
// service; if that fails too the partition stays closed and failed.
func (p *Partition) reopenAfterFailedSwap(dir string) {
	if err := recoverRestore(dir); err == nil {
		if l, err := OpenLog(p.cfg.Log); err == nil {
			p.log = l
			return
		}
	}
	p.fail(errors.New("log could not be reopened after a failed restore"))
}

// producerState is the idempotence state of one producer id.
type producerState struct {
	ID        int64           `msgpack:"id"`
	Epoch     int16           `msgpack:"epoch"`
	Batches   []producerBatch `msgpack:"batches"` // oldest first, at most producerWindow
	LastIndex uint64          `msgpack:"last_index"`

	elem *list.Element
}

type producerBatch struct {
	Seq   int32 `msgpack:"seq"`
	Count int32 `msgpack:"count"`
	Base  int64 `msgpack:"base"`
}

// producerTable remembers producers, evicting the one whose last append is
// oldest (by Raft index, so every replica evicts the same ones).
type producerTable struct {
	max  int
	byID map[int64]*producerState
	lru  *list.List // *producerState, least recently appended first
}

func newProducerTable(max int) *producerTable {
	return &producerTable{max: max, byID: map[int64]*producerState{}, lru: list.New()}
}

// nextSequence is the sequence after count records from seq; sequences wrap
// from MaxInt32 to 0 as in Kafka.
func nextSequence(seq, count int32) int32 {
	return int32((int64(seq) + int64(count)) % (1 << 31))
}

// check decides what to do with an idempotent batch: append it (nil, nil),
// answer it as a duplicate (result, nil) or reject it.
func (t *producerTable) check(info batchInfo) (*AppendResult, error) {
	if info.baseSequence < 0 {
		return nil, transport.Errorf(transport.ErrInvalidRequest, "batch of producer %d has no sequence number", info.producerID)
	}
	st := t.byID[info.producerID]
	if st == nil || info.producerEpoch > st.Epoch {
		// A new producer (or epoch) starts at sequence 0. Any other
		// sequence means its state was evicted (or never existed) and this
		// may be a retry of a batch already stored: never append it blind.
		if info.baseSequence != 0 {
			return nil, transport.Errorf(transport.ErrOutOfOrderSequence, "unknown producer %d (epoch %d) at sequence %d: its state is gone; restart with a new producer id", info.producerID, info.producerEpoch, info.baseSequence)
		}
		return nil, nil
	}
	if info.producerEpoch < st.Epoch {
		return nil, transport.Errorf(transport.ErrInvalidRequest, "producer %d epoch %d is fenced by epoch %d", info.producerID, info.producerEpoch, st.Epoch)
	}
	for _, b := range st.Batches {
		if b.Seq != info.baseSequence {
			continue
		}
		if b.Count != info.count {
			return nil, transport.Errorf(transport.ErrOutOfOrderSequence, "producer %d resent sequence %d with %d records instead of %d", info.producerID, b.Seq, info.count, b.Count)
		}
		res := &AppendResult{BaseOffset: b.Base, LastOffset: b.Base + int64(b.Count) - 1, Duplicate: true}
		if b.Base < 0 {
			res.LastOffset = -1
		}
		return res, nil
	}
	last := st.Batches[len(st.Batches)-1]
	if want := nextSequence(last.Seq, last.Count); info.baseSequence != want {
		return nil, transport.Errorf(transport.ErrOutOfOrderSequence, "producer %d expected sequence %d, got %d", info.producerID, want, info.baseSequence)
	}
	return nil, nil
}

// record notes an appended batch.
func (t *producerTable) record(info batchInfo, base int64, raftIndex uint64) {
	st := t.byID[info.producerID]
	switch {
	case st == nil:
		st = &producerState{ID: info.producerID, Epoch: info.producerEpoch}
		st.elem = t.lru.PushBack(st)
		t.byID[st.ID] = st
	case info.producerEpoch != st.Epoch:
		st.Epoch, st.Batches = info.producerEpoch, nil
		t.lru.MoveToBack(st.elem)
	default:
		t.lru.MoveToBack(st.elem)
	}
	if len(st.Batches) == producerWindow {
		st.Batches = append(st.Batches[:0], st.Batches[1:]...)
	}
	st.Batches = append(st.Batches, producerBatch{Seq: info.baseSequence, Count: info.count, Base: base})
	st.LastIndex = raftIndex
	for len(t.byID) > t.max {
		oldest := t.lru.Remove(t.lru.Front()).(*producerState)
		delete(t.byID, oldest.ID)
	}
}

// export copies the table, least recently used first.
func (t *producerTable) export() []producerState {
	out := make([]producerState, 0, len(t.byID))
	for e := t.lru.Front(); e != nil; e = e.Next() {
		st := *e.Value.(*producerState)
		st.Batches = append([]producerBatch(nil), st.Batches...)
		st.elem = nil
		out = append(out, st)
	}
	return out
}

// load replaces the table with an exported one.
func (t *producerTable) load(states []producerState) {
	t.byID = make(map[int64]*producerState, len(states))
	t.lru.Init()
	for i := range states {
		st := states[i]
		st.Batches = append([]producerBatch(nil), st.Batches...)
		st.elem = t.lru.PushBack(&st)
		t.byID[st.ID] = &st
	}
	for len(t.byID) > t.max {
		oldest := t.lru.Remove(t.lru.Front()).(*producerState)
		delete(t.byID, oldest.ID)
	}
}
