package fsm

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/transport"
)

func newTestPartition(t *testing.T, dir string, segBytes int64) *Partition {
	t.Helper()
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "p0")
	}
	p, err := NewPartition(PartitionConfig{
		Log:    LogConfig{Dir: dir, SegmentBytes: segBytes},
		Logger: quietLogger(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

func cmdLog(idx, term uint64, data []byte) *raft.Log {
	return &raft.Log{Index: idx, Term: term, Type: raft.LogCommand, Data: data}
}

func mustAppend(t *testing.T, p *Partition, idx, term uint64, batch []byte) *AppendResult {
	t.Helper()
	res := p.Apply(cmdLog(idx, term, EncodeAppend(batch)))
	r, ok := res.(*AppendResult)
	require.True(t, ok, "apply returned %T %v", res, res)
	return r
}

func idemBatch(t *testing.T, pid int64, seq int32, n int) []byte {
	return testBatch(t, n, 16, pid, 0, seq, testTime)
}

func partitionBatches(t *testing.T, p *Partition) [][]byte {
	return readAll(t, p.Read, p.StartOffset(), p.HighWatermark())
}

func TestPartitionApplyAssignsOffsets(t *testing.T) {
	p := newTestPartition(t, "", 0)
	ch := p.Changed()
	b1, b2 := plainBatch(t, 3), plainBatch(t, 5)

	r := mustAppend(t, p, 1, 7, b1)
	assert.Equal(t, &AppendResult{BaseOffset: 0, LastOffset: 2}, r)
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed by an append")
	}
	ch = p.Changed()
	require.Nil(t, p.Apply(&raft.Log{Index: 2, Term: 7, Type: raft.LogNoop}), "non-commands are ignored")
	r = mustAppend(t, p, 3, 8, b2)
	assert.Equal(t, &AppendResult{BaseOffset: 3, LastOffset: 7}, r)
	<-ch

	assert.Equal(t, int64(8), p.HighWatermark())
	assert.Equal(t, int64(0), p.StartOffset())
	assert.Equal(t, uint64(3), p.AppliedIndex())
	got := partitionBatches(t, p)
	require.Equal(t, [][]byte{stored(b1, 0, 7), stored(b2, 3, 8)}, got, "leader epoch = raft term")
	rb, _, err := ParseBatch(got[1])
	require.NoError(t, err)
	assert.Equal(t, int32(8), rb.PartitionLeaderEpoch)
	assert.Equal(t, int64(3), rb.FirstOffset)
}

func TestPartitionRejectsBadCommands(t *testing.T) {
	p := newTestPartition(t, "", 0)
	bad := plainBatch(t, 2)
	bad[len(bad)-1] ^= 1
	requireCode(t, p.Apply(cmdLog(1, 1, EncodeAppend(bad))).(error), transport.ErrCorruptBatch)
	requireCode(t, p.Apply(cmdLog(2, 1, nil)).(error), transport.ErrInvalidRequest)
	requireCode(t, p.Apply(cmdLog(3, 1, []byte{99, 1})).(error), transport.ErrInvalidRequest)
	requireCode(t, p.Apply(cmdLog(4, 1, []byte{cmdOffsetCommit, 0xc1})).(error), transport.ErrInvalidRequest)
	requireCode(t, p.Apply(cmdLog(5, 1, EncodeOffsetCommit("", 1, ""))).(error), transport.ErrInvalidRequest)
	assert.Equal(t, int64(0), p.HighWatermark())
	assert.NoError(t, p.Err(), "rejected commands do not stop the partition")
	assert.Equal(t, uint64(5), p.AppliedIndex())
}

func TestPartitionDuplicateProducerBatch(t *testing.T) {
	p := newTestPartition(t, "", 0)
	r := mustAppend(t, p, 1, 1, idemBatch(t, 7, 0, 3))
	assert.Equal(t, &AppendResult{BaseOffset: 0, LastOffset: 2}, r)
	mustAppend(t, p, 2, 1, plainBatch(t, 4)) // offsets 3..6
	r = mustAppend(t, p, 3, 1, idemBatch(t, 7, 3, 2))
	assert.Equal(t, &AppendResult{BaseOffset: 7, LastOffset: 8}, r)

	// A retry of the last batch gets the same offsets and appends nothing.
	hw := p.HighWatermark()
	r = mustAppend(t, p, 4, 2, idemBatch(t, 7, 3, 2))
	assert.Equal(t, &AppendResult{BaseOffset: 7, LastOffset: 8, Duplicate: true}, r)
	// So does a retry of an earlier one still in the window.
	r = mustAppend(t, p, 5, 2, idemBatch(t, 7, 0, 3))
	assert.Equal(t, &AppendResult{BaseOffset: 0, LastOffset: 2, Duplicate: true}, r)
	assert.Equal(t, hw, p.HighWatermark())
	assert.Len(t, partitionBatches(t, p), 3)

	// Non-idempotent batches are never deduplicated.
	b := plainBatch(t, 1)
	r1, r2 := mustAppend(t, p, 6, 2, b), mustAppend(t, p, 7, 2, b)
	assert.NotEqual(t, r1.BaseOffset, r2.BaseOffset)
	assert.False(t, r2.Duplicate)
}

func TestPartitionOutOfOrderSequence(t *testing.T) {
	p := newTestPartition(t, "", 0)
	mustAppend(t, p, 1, 1, idemBatch(t, 9, 0, 3)) // sequences 0..2

	for i, seq := range []int32{2, 4, 10, 1} {
		res := p.Apply(cmdLog(uint64(2+i), 1, EncodeAppend(idemBatch(t, 9, seq, 2))))
		err, ok := res.(error)
		require.True(t, ok, "sequence %d: got %v", seq, res)
		requireCode(t, err, transport.ErrOutOfOrderSequence)
		assert.Contains(t, err.Error(), "producer 9")
	}
	// Same base sequence, different size: not a retry.
	res := p.Apply(cmdLog(10, 1, EncodeAppend(idemBatch(t, 9, 0, 2))))
	requireCode(t, res.(error), transport.ErrOutOfOrderSequence)

	r := mustAppend(t, p, 11, 1, idemBatch(t, 9, 3, 2))
	assert.Equal(t, int64(3), r.BaseOffset)
	assert.Equal(t, int64(5), p.HighWatermark())
	require.NoError(t, p.Err())

	// A missing sequence on an idempotent batch is invalid.
	res = p.Apply(cmdLog(12, 1, EncodeAppend(idemBatch(t, 9, -1, 1))))
	requireCode(t, res.(error), transport.ErrInvalidRequest)
}

func TestPartitionProducerEpochs(t *testing.T) {
	p := newTestPartition(t, "", 0)
	mustAppend(t, p, 1, 1, testBatch(t, 2, 8, 5, 1, 0, testTime))
	// A new epoch restarts sequences.
	r := mustAppend(t, p, 2, 1, testBatch(t, 2, 8, 5, 2, 0, testTime))
	assert.False(t, r.Duplicate)
	assert.Equal(t, int64(2), r.BaseOffset)
	// The old epoch is fenced.
	res := p.Apply(cmdLog(3, 1, EncodeAppend(testBatch(t, 2, 8, 5, 1, 2, testTime))))
	requireCode(t, res.(error), transport.ErrInvalidRequest)
}

func TestPartitionSequenceWraps(t *testing.T) {
	p := newTestPartition(t, "", 0)
	mustAppend(t, p, 1, 1, plainBatch(t, 2))
	// Producer 1 got as far as sequences MaxInt32-1 and MaxInt32.
	p.producers.load([]producerState{{ID: 1, Batches: []producerBatch{{Seq: 1<<31 - 2, Count: 2, Base: 0}}, LastIndex: 1}})
	r := mustAppend(t, p, 2, 1, idemBatch(t, 1, 0, 1))
	assert.False(t, r.Duplicate)
	assert.Equal(t, int64(2), r.BaseOffset)
	r = mustAppend(t, p, 3, 1, idemBatch(t, 1, 1, 1))
	assert.Equal(t, int64(3), r.BaseOffset)
}

func TestPartitionProducerEviction(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	p, err := NewPartition(PartitionConfig{Log: LogConfig{Dir: dir}, Logger: quietLogger(), MaxProducers: 2})
	require.NoError(t, err)
	defer p.Close()
	mustAppend(t, p, 1, 1, idemBatch(t, 1, 0, 1))
	mustAppend(t, p, 2, 1, idemBatch(t, 2, 0, 1))
	mustAppend(t, p, 3, 1, idemBatch(t, 1, 1, 1)) // producer 1 used last: 2 is now oldest
	mustAppend(t, p, 4, 1, idemBatch(t, 3, 0, 1)) // evicts producer 2

	// Producer 2 is forgotten: a "retry" appends again.
	r := mustAppend(t, p, 5, 1, idemBatch(t, 2, 0, 1))
	assert.False(t, r.Duplicate)
	// That evicted producer 1, the least recently used; producer 3 stays.
	r = mustAppend(t, p, 6, 1, idemBatch(t, 3, 0, 1))
	assert.True(t, r.Duplicate)
	assert.Len(t, p.producers.byID, 2)
	assert.NotContains(t, p.producers.byID, int64(1))
	assert.Contains(t, p.producers.byID, int64(2))
}

func TestPartitionGroupOffsets(t *testing.T) {
	p := newTestPartition(t, "", 0)
	_, _, ok := p.GroupOffset("g1")
	assert.False(t, ok)
	require.Nil(t, p.Apply(cmdLog(1, 1, EncodeOffsetCommit("g1", 10, "m1"))))
	require.Nil(t, p.Apply(cmdLog(2, 1, EncodeOffsetCommit("g2", 3, ""))))
	require.Nil(t, p.Apply(cmdLog(3, 1, EncodeOffsetCommit("g1", 12, "m2"))))
	off, md, ok := p.GroupOffset("g1")
	require.True(t, ok)
	assert.Equal(t, int64(12), off)
	assert.Equal(t, "m2", md)

	snap := persist(t, p)
	q := newTestPartition(t, "", 0)
	require.NoError(t, q.Restore(io.NopCloser(bytes.NewReader(snap))))
	off, md, ok = q.GroupOffset("g1")
	require.True(t, ok)
	assert.Equal(t, int64(12), off)
	assert.Equal(t, "m2", md)
	off, _, ok = q.GroupOffset("g2")
	require.True(t, ok)
	assert.Equal(t, int64(3), off)
	assert.Equal(t, uint64(3), q.AppliedIndex())
}

// script is a deterministic mix of commands: plain and idempotent appends,
// producer retries, an out-of-order batch and offset commits.
func script(t *testing.T, n int) [][]byte {
	var cmds [][]byte
	seq := map[int64]int32{}
	for i := 0; len(cmds) < n; i++ {
		switch i % 6 {
		case 0, 3:
			cmds = append(cmds, EncodeAppend(plainBatch(t, 1+i%4)))
		case 1, 4:
			pid := int64(i % 5)
			cmds = append(cmds, EncodeAppend(idemBatch(t, pid, seq[pid], 2)))
			seq[pid] += 2
		case 2:
			pid := int64((i - 1) % 5)
			if i%4 == 0 {
				cmds = append(cmds, EncodeAppend(idemBatch(t, pid, seq[pid]-2, 2))) // retry
			} else {
				cmds = append(cmds, EncodeAppend(idemBatch(t, pid, seq[pid]+7, 2))) // gap
			}
		case 5:
			cmds = append(cmds, EncodeOffsetCommit("g", int64(i), "x"))
		}
	}
	return cmds
}

func applyScript(t *testing.T, p *Partition, cmds [][]byte, from, to int) []any {
	var out []any
	for i := from; i <= to; i++ {
		out = append(out, p.Apply(cmdLog(uint64(i), uint64(1+i/10), cmds[i-1])))
	}
	return out
}

func TestPartitionReplayAfterRestartDoesNotDoubleAppend(t *testing.T) {
	const n, k = 90, 40
	cmds := script(t, n)
	dir := filepath.Join(t.TempDir(), "p")
	cfg := PartitionConfig{Log: LogConfig{Dir: dir, SegmentBytes: 1024}, Logger: quietLogger()}

	p, err := NewPartition(cfg)
	require.NoError(t, err)
	first := applyScript(t, p, cmds, 1, k)
	snapK := persist(t, p)
	first = append(first, applyScript(t, p, cmds, k+1, n)...)
	var dups, errs int
	for _, r := range first {
		if ar, ok := r.(*AppendResult); ok && ar.Duplicate {
			dups++
		}
		if _, ok := r.(error); ok {
			errs++
		}
	}
	require.Positive(t, dups, "the script has producer retries")
	require.Positive(t, errs, "the script has out-of-order batches")
	wantBatches := partitionBatches(t, p)
	wantHW := p.HighWatermark()
	wantGroup, _, _ := p.GroupOffset("g")
	require.NoError(t, p.Close())

	// Restart: Raft restores its latest snapshot, then replays the rest.
	p, err = NewPartition(cfg)
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.Restore(io.NopCloser(bytes.NewReader(snapK))))
	assert.Equal(t, uint64(k), p.AppliedIndex())
	again := applyScript(t, p, cmds, k+1, n)
	require.Equal(t, first[k:], again, "replayed entries report their original results")
	assert.Equal(t, wantHW, p.HighWatermark())
	require.Equal(t, wantBatches, partitionBatches(t, p))
	g, _, _ := p.GroupOffset("g")
	assert.Equal(t, wantGroup, g)
	assert.Equal(t, uint64(n), p.AppliedIndex())

	// Producer state was rebuilt by the replay: retries still dedupe and new
	// batches continue the sequences.
	more := applyScript(t, p, append(cmds, script(t, n+12)[n:]...), n+1, n+12)
	for _, r := range more {
		if err, ok := r.(error); ok {
			require.Contains(t, err.Error(), "out of order")
		}
	}

	// Without any snapshot Raft replays everything from index 1.
	require.NoError(t, p.Close())
	p2, err := NewPartition(cfg)
	require.NoError(t, err)
	defer p2.Close()
	hw := p2.HighWatermark()
	all := applyScript(t, p2, append(cmds, script(t, n+12)[n:]...), 1, n+12)
	require.Equal(t, first, all[:n])
	require.Equal(t, more, all[n:])
	assert.Equal(t, hw, p2.HighWatermark())
}

func TestPartitionReplayAfterLostTail(t *testing.T) {
	// Power loss took the unsynced tail of the log; the replay re-appends it.
	const n, k = 60, 30
	cmds := script(t, n)
	dir := filepath.Join(t.TempDir(), "p")
	cfg := PartitionConfig{Log: LogConfig{Dir: dir, SegmentBytes: 1 << 20}, Logger: quietLogger()}
	p, err := NewPartition(cfg)
	require.NoError(t, err)
	first := applyScript(t, p, cmds, 1, k)
	snapK := persist(t, p)
	first = append(first, applyScript(t, p, cmds, k+1, n)...)
	want := partitionBatches(t, p)
	wantHW := p.HighWatermark()
	require.NoError(t, p.Close())

	logs := segmentFiles(t, dir, ".log")
	st, err := os.Stat(logs[0])
	require.NoError(t, err)
	require.NoError(t, os.Truncate(logs[0], st.Size()-300))

	p, err = NewPartition(cfg)
	require.NoError(t, err)
	defer p.Close()
	require.Less(t, p.HighWatermark(), wantHW)
	require.NoError(t, p.Restore(io.NopCloser(bytes.NewReader(snapK))))
	again := applyScript(t, p, cmds, k+1, n)
	require.Equal(t, first[k:], again)
	require.Equal(t, want, partitionBatches(t, p))
}

func TestPartitionSnapshotRestoreIntoEmpty(t *testing.T) {
	src := newTestPartition(t, "", 1024)
	cmds := script(t, 120)
	applyScript(t, src, cmds, 1, len(cmds))
	require.NoError(t, src.ApplyRetention()) // no retention configured: nothing happens
	require.Greater(t, len(src.log.segs), 3)
	snap := persist(t, src)

	dst := newTestPartition(t, "", 4096) // different segment size: same bytes
	ch := dst.Changed()
	require.NoError(t, dst.Restore(io.NopCloser(bytes.NewReader(snap))))
	<-ch
	assertSameLog(t, src, dst)

	// Producer state came along: retries dedupe, sequences continue.
	for _, c := range script(t, 130)[120:] {
		i := uint64(src.AppliedIndex() + 1)
		require.Equal(t, src.Apply(cmdLog(i, 99, c)), dst.Apply(cmdLog(i, 99, c)))
	}
	assertSameLog(t, src, dst)
}

func assertSameLog(t *testing.T, want, got *Partition) {
	t.Helper()
	require.Equal(t, want.StartOffset(), got.StartOffset())
	require.Equal(t, want.HighWatermark(), got.HighWatermark())
	require.Equal(t, want.currentLog().LastRaftIndex(), got.currentLog().LastRaftIndex())
	require.Equal(t, want.AppliedIndex(), got.AppliedIndex())
	w, g := partitionBatches(t, want), partitionBatches(t, got)
	require.Equal(t, len(w), len(g))
	for i := range w {
		require.True(t, bytes.Equal(w[i], g[i]), "batch %d differs", i)
	}
	for i := uint64(1); i <= want.currentLog().LastRaftIndex(); i++ {
		wb, wc, wok := want.currentLog().BaseOffsetForRaftIndex(i)
		gb, gc, gok := got.currentLog().BaseOffsetForRaftIndex(i)
		require.Equal(t, []any{wb, wc, wok}, []any{gb, gc, gok}, "raft index %d", i)
	}
	wo, wm, wok := want.GroupOffset("g")
	go_, gm, gok := got.GroupOffset("g")
	require.Equal(t, []any{wo, wm, wok}, []any{go_, gm, gok})
}

func TestPartitionSnapshotAfterRetention(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "src")
	src, err := NewPartition(PartitionConfig{Log: LogConfig{Dir: dir, SegmentBytes: 1024, RetentionBytes: 2048}, Logger: quietLogger()})
	require.NoError(t, err)
	defer src.Close()
	applyScript(t, src, script(t, 80), 1, 80)
	require.NoError(t, src.ApplyRetention())
	require.Positive(t, src.StartOffset())

	dst := newTestPartition(t, "", 0)
	require.NoError(t, dst.Restore(io.NopCloser(bytes.NewReader(persist(t, src)))))
	assertSameLog(t, src, dst)
	_, err = dst.Read(0, 100, 0)
	requireCode(t, err, transport.ErrOffsetOutOfRange)
}

func TestPartitionSnapshotWhileAppending(t *testing.T) {
	src := newTestPartition(t, "", 2048)
	cmds := script(t, 300)
	applyScript(t, src, cmds, 1, 100)
	snap, err := src.Snapshot()
	require.NoError(t, err)
	capturedHW, capturedApplied := src.HighWatermark(), src.AppliedIndex()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		applyScript(t, src, cmds, 101, 300)
	}()
	var sink memSink
	require.NoError(t, snap.Persist(&sink))
	snap.Release()
	wg.Wait()
	require.Greater(t, src.HighWatermark(), capturedHW)

	dst := newTestPartition(t, "", 0)
	require.NoError(t, dst.Restore(io.NopCloser(&sink)))
	require.Equal(t, capturedHW, dst.HighWatermark())
	require.Equal(t, capturedApplied, dst.AppliedIndex())
	got := partitionBatches(t, dst)
	want, err := src.Read(0, 1<<30, 0)
	require.NoError(t, err)
	require.Equal(t, want[:len(got)], got)

	// Replaying the rest brings dst level with src.
	applyScript(t, dst, cmds, 101, 300)
	assertSameLog(t, src, dst)
}

func TestPartitionRestoreRebuildsLaggingLog(t *testing.T) {
	cmds := script(t, 100)
	leader := newTestPartition(t, "", 1024)
	applyScript(t, leader, cmds, 1, 100)
	snap := persist(t, leader)

	dir := filepath.Join(t.TempDir(), "follower")
	follower := newTestPartition(t, dir, 1024)
	applyScript(t, follower, cmds, 1, 37)
	ch := follower.Changed()
	require.NoError(t, follower.Restore(io.NopCloser(bytes.NewReader(snap))))
	<-ch
	assertSameLog(t, leader, follower)
	_, err := os.Stat(dir + oldSuffix)
	assert.True(t, os.IsNotExist(err), "old log removed")
	_, err = os.Stat(dir + restoreSuffix)
	assert.True(t, os.IsNotExist(err), "temporary log renamed")

	// It keeps working after the swap, and after a restart.
	more := script(t, 110)[100:]
	for i, c := range more {
		require.Equal(t, leader.Apply(cmdLog(uint64(101+i), 50, c)), follower.Apply(cmdLog(uint64(101+i), 50, c)))
	}
	assertSameLog(t, leader, follower)
	require.NoError(t, follower.Close())
	reopened := newTestPartition(t, dir, 1024)
	require.Equal(t, partitionBatches(t, leader), partitionBatches(t, reopened))
}

func TestPartitionRestoreKeepsCoveringLog(t *testing.T) {
	cmds := script(t, 60)
	p := newTestPartition(t, "", 1024)
	applyScript(t, p, cmds, 1, 30)
	snap := persist(t, p)
	applyScript(t, p, cmds, 31, 60)
	segs := segmentFiles(t, p.cfg.Log.Dir, ".log")
	before := partitionBatches(t, p)

	// A truncated stream proves Restore stops after the header.
	short := snap[:len(snap)-40]
	require.NoError(t, p.Restore(io.NopCloser(bytes.NewReader(short))))
	require.Equal(t, before, partitionBatches(t, p), "local segments kept")
	require.Equal(t, segs, segmentFiles(t, p.cfg.Log.Dir, ".log"))
	assert.Equal(t, uint64(30), p.AppliedIndex())
}

func TestPartitionRestoreRejectsBadSnapshots(t *testing.T) {
	src := newTestPartition(t, "", 0)
	applyScript(t, src, script(t, 20), 1, 20)
	snap := persist(t, src)

	cases := map[string][]byte{
		"bad magic":   append([]byte("NOTSNAP!"), snap[8:]...),
		"truncated":   snap[:len(snap)-20],
		"no end mark": snap[:len(snap)-frameHeaderLen],
		"flipped":     flipped(snap, len(snap)-frameHeaderLen-5),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			dst := newTestPartition(t, "", 0)
			require.Error(t, dst.Restore(io.NopCloser(bytes.NewReader(b))))
			assert.Equal(t, int64(0), dst.HighWatermark(), "the old log stays in place")
			_, err := os.Stat(dst.cfg.Log.Dir + restoreSuffix)
			assert.True(t, os.IsNotExist(err))
		})
	}
}

func flipped(b []byte, at int) []byte {
	out := bytes.Clone(b)
	out[at] ^= 0x01
	return out
}

func TestPartitionRecoversInterruptedSwap(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "p")
	p := newTestPartition(t, dir, 0)
	applyScript(t, p, script(t, 10), 1, 10)
	want := partitionBatches(t, p)
	require.NoError(t, p.Close())

	// Crash after dir -> dir.old, before restore -> dir.
	require.NoError(t, os.Rename(dir, dir+oldSuffix))
	require.NoError(t, os.MkdirAll(dir+restoreSuffix, 0o755))
	p = newTestPartition(t, dir, 0)
	require.Equal(t, want, partitionBatches(t, p))
	_, err := os.Stat(dir + restoreSuffix)
	assert.True(t, os.IsNotExist(err))
	require.NoError(t, p.Close())

	// Crash after both renames, before dir.old was removed.
	require.NoError(t, os.MkdirAll(dir+oldSuffix, 0o755))
	p = newTestPartition(t, dir, 0)
	require.Equal(t, want, partitionBatches(t, p))
	_, err = os.Stat(dir + oldSuffix)
	assert.True(t, os.IsNotExist(err))
}

func TestPartitionReadsDuringRestore(t *testing.T) {
	leader := newTestPartition(t, "", 1024)
	cmds := script(t, 200)
	applyScript(t, leader, cmds, 1, 200)
	snap := persist(t, leader)

	follower := newTestPartition(t, "", 1024)
	applyScript(t, follower, cmds, 1, 50)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			bs, err := follower.Read(0, 4096, 0)
			if !assert.NoError(t, err) || !assert.NotEmpty(t, bs) {
				return
			}
			_, _, err = ParseBatch(bs[0])
			assert.NoError(t, err)
		}
	}()
	require.NoError(t, follower.Restore(io.NopCloser(bytes.NewReader(snap))))
	close(stop)
	wg.Wait()
	assertSameLog(t, leader, follower)
}

func TestPartitionFailedWriteStopsApplies(t *testing.T) {
	p := newTestPartition(t, "", 0)
	mustAppend(t, p, 1, 1, plainBatch(t, 1))
	// Simulate a disk failure: the active segment's file is closed underneath.
	p.log.segs[0].logF.Close()
	res := p.Apply(cmdLog(2, 1, EncodeAppend(plainBatch(t, 1))))
	require.Error(t, res.(error))
	require.Error(t, p.Err())
	res = p.Apply(cmdLog(3, 1, EncodeOffsetCommit("g", 1, "")))
	require.Error(t, res.(error), "a failed partition applies nothing more")
	assert.Equal(t, uint64(1), p.AppliedIndex())
	_, err := p.Snapshot()
	require.Error(t, err, "no snapshot of a state that lost an entry")
}

func TestEncodeAppendLayout(t *testing.T) {
	b := plainBatch(t, 1)
	cmd := EncodeAppendAt(b, testTime)
	require.Equal(t, cmdAppendAt, cmd[0])
	require.Equal(t, uint64(testTime.UnixMilli()), binary.BigEndian.Uint64(cmd[1:]))
	require.Equal(t, b, cmd[9:])
	c := EncodeOffsetCommit("grp", 5, "meta")
	require.Equal(t, cmdOffsetCommit, c[0])
}

func TestSnapshotHeaderLayout(t *testing.T) {
	p := newTestPartition(t, "", 0)
	applyScript(t, p, script(t, 5), 1, 5)
	snap := persist(t, p)
	require.Equal(t, snapshotMagic[:], snap[:8])
	n := binary.BigEndian.Uint32(snap[8:])
	hdr, err := readSnapshotHeader(bytes.NewReader(snap))
	require.NoError(t, err)
	assert.Equal(t, p.HighWatermark(), hdr.NextOffset)
	assert.Equal(t, uint64(5), hdr.AppliedIndex)
	assert.Equal(t, bytes.Repeat([]byte{0}, frameHeaderLen), snap[len(snap)-frameHeaderLen:])
	assert.Greater(t, len(snap), 12+int(n))
}

func TestPartitionReplayOfEntriesRemovedByRetention(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	cfg := PartitionConfig{Log: LogConfig{Dir: dir, SegmentBytes: 1024, RetentionBytes: 1}, Logger: quietLogger()}
	p, err := NewPartition(cfg)
	require.NoError(t, err)
	var first []any
	for i := 1; i <= 40; i++ {
		first = append(first, p.Apply(cmdLog(uint64(i), 1, EncodeAppend(idemBatch(t, 3, int32(2*(i-1)), 2)))))
	}
	require.NoError(t, p.ApplyRetention())
	start, hw := p.StartOffset(), p.HighWatermark()
	require.Positive(t, start)
	require.NoError(t, p.Close())

	p, err = NewPartition(cfg)
	require.NoError(t, err)
	defer p.Close()
	for i := 1; i <= 40; i++ {
		r := p.Apply(cmdLog(uint64(i), 1, EncodeAppend(idemBatch(t, 3, int32(2*(i-1)), 2)))).(*AppendResult)
		if want := first[i-1].(*AppendResult); want.BaseOffset >= start {
			require.Equal(t, want, r)
		} else {
			require.Equal(t, int64(-1), r.BaseOffset, "gone by retention: offsets unknown")
		}
	}
	require.Equal(t, hw, p.HighWatermark(), "nothing appended twice")
	require.NoError(t, p.Err())
	// The producer's sequence state is intact.
	r := mustAppend(t, p, 41, 1, idemBatch(t, 3, 78, 2))
	assert.True(t, r.Duplicate)
	r = mustAppend(t, p, 42, 1, idemBatch(t, 3, 80, 2))
	assert.Equal(t, hw, r.BaseOffset)
}
