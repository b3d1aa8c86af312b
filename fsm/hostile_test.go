package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/transport"
)

// forgedCountBatch is issue #7's 69-byte batch: CRC-valid, one tiny record,
// a header claiming 2^31-1 records.
func forgedCountBatch(t *testing.T) []byte {
	b := testBatch(t, 1, 1, -1, -1, -1, testTime)
	require.Len(t, b, 69+2) // key "k0" takes two bytes more than the issue's
	binary.BigEndian.PutUint32(b[23:], 1<<31-2)
	binary.BigEndian.PutUint32(b[57:], 1<<31-1)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return b
}

func TestForgedRecordCountIsRejected(t *testing.T) {
	b := forgedCountBatch(t)
	_, _, err := ParseBatch(b)
	requireCode(t, err, transport.ErrCorruptBatch)
	requireCode(t, ValidateProduce(b), transport.ErrCorruptBatch)

	l := openTestLog(t, LogConfig{})
	_, err = l.Append(b, 1, 1)
	requireCode(t, err, transport.ErrCorruptBatch)
	assert.Equal(t, int64(0), l.NextOffset(), "a rejected batch must not use offsets")

	p := newTestPartition(t, "", 0)
	res := p.Apply(cmdLog(1, 1, EncodeAppend(b)))
	err, _ = res.(error)
	requireCode(t, err, transport.ErrCorruptBatch)
	assert.Equal(t, int64(0), p.HighWatermark())
	require.NoError(t, p.Err(), "a bad client batch must not stop the state machine")
	mustAppend(t, p, 2, 1, plainBatch(t, 2))
	assert.Equal(t, int64(2), p.HighWatermark())
}

// A snapshot stream whose frame or header lengths are forged must fail on
// the bytes present, not allocate what the length claims.
func TestRestoreForgedLengths(t *testing.T) {
	src := newTestPartition(t, "", 0)
	mustAppend(t, src, 1, 1, plainBatch(t, 3))
	snap := persist(t, src)

	t.Run("header length", func(t *testing.T) {
		b := bytes.Clone(snap[:12])
		binary.BigEndian.PutUint32(b[8:], 200<<20) // under the limit, absent
		allocs := testing.AllocsPerRun(1, func() {
			_, err := readSnapshotHeader(bytes.NewReader(b))
			require.Error(t, err)
		})
		assert.Less(t, allocs, 100.0)
	})
	t.Run("frame length", func(t *testing.T) {
		hdrLen := int(binary.BigEndian.Uint32(snap[8:]))
		b := bytes.Clone(snap[:12+hdrLen+frameHeaderLen+lengthPrefix])
		binary.BigEndian.PutUint32(b[12+hdrLen+frameHeaderLen+offLength:], 1<<29)
		dst := newTestPartition(t, "", 0)
		err := dst.Restore(readCloser{bytes.NewReader(b)})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "declared")
	})
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// Issue #7 defect 6: a retry from a producer whose state was evicted must
// not be appended a second time.
func TestEvictedProducerRetryIsNotAppendedTwice(t *testing.T) {
	p, err := NewPartition(PartitionConfig{Log: LogConfig{Dir: t.TempDir() + "/p"}, Logger: quietLogger(), MaxProducers: 1})
	require.NoError(t, err)
	defer p.Close()
	mustAppend(t, p, 1, 1, idemBatch(t, 1, 0, 2))
	mustAppend(t, p, 2, 1, idemBatch(t, 1, 2, 3)) // sequences 2..4 at offsets 2..4
	mustAppend(t, p, 3, 1, idemBatch(t, 2, 0, 1)) // evicts producer 1
	hw := p.HighWatermark()

	// Producer 1 retries its last batch (say its reply was lost).
	res := p.Apply(cmdLog(4, 1, EncodeAppend(idemBatch(t, 1, 2, 3))))
	err, _ = res.(error)
	requireCode(t, err, transport.ErrOutOfOrderSequence)
	assert.Contains(t, err.Error(), "unknown producer 1")
	assert.Equal(t, hw, p.HighWatermark(), "nothing appended")
	// A producer never seen at a non-zero sequence, likewise.
	res = p.Apply(cmdLog(5, 1, EncodeAppend(idemBatch(t, 77, 5, 1))))
	err, _ = res.(error)
	requireCode(t, err, transport.ErrOutOfOrderSequence)
	require.NoError(t, p.Err())
}

// Issue #7 defect 11: a far-future client timestamp would pin its segment,
// and every later one, against age retention. The leader's clock carried
// in the command bounds it.
func TestFarFutureTimestampIsRefused(t *testing.T) {
	p := newTestPartition(t, "", 0)
	now := testTime.Add(100 * 24 * time.Hour)
	future := testBatch(t, 2, 8, -1, -1, -1, now.Add(10*365*24*time.Hour))
	res := p.Apply(cmdLog(1, 1, EncodeAppendAt(future, now)))
	err, _ := res.(error)
	requireCode(t, err, transport.ErrInvalidRequest)
	assert.Contains(t, err.Error(), "ahead of the leader's clock")
	assert.Equal(t, int64(0), p.HighWatermark())

	// Within the bound, and in the past, is fine.
	r := mustAppendAt(t, p, 2, testBatch(t, 1, 8, -1, -1, -1, now.Add(30*time.Minute)), now)
	assert.Equal(t, int64(0), r.BaseOffset)
	mustAppendAt(t, p, 3, testBatch(t, 1, 8, -1, -1, -1, testTime), now)
	require.NoError(t, p.Err())
}

func mustAppendAt(t *testing.T, p *Partition, idx uint64, b []byte, at time.Time) *AppendResult {
	t.Helper()
	res := p.Apply(cmdLog(idx, 1, EncodeAppendAt(b, at)))
	r, ok := res.(*AppendResult)
	require.True(t, ok, "apply returned %T %v", res, res)
	return r
}

// A replayed entry whose stored batch differs (same record count, other
// bytes) must stop the partition, not be skipped as already applied.
func TestReplayMismatchFailsLoudly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	p := newTestPartition(t, dir, 0)
	mustAppend(t, p, 1, 1, plainBatch(t, 2))
	mustAppend(t, p, 2, 1, plainBatch(t, 3))
	require.NoError(t, p.Close())

	q := newTestPartition(t, dir, 0)
	mustAppend(t, q, 1, 1, plainBatch(t, 2)) // the same entry replays fine
	other := testBatch(t, 3, 16, -1, -1, -1, testTime.Add(time.Second))
	res := q.Apply(cmdLog(2, 1, EncodeAppend(other)))
	err, _ := res.(error)
	require.ErrorIs(t, err, ErrReplayMismatch)
	require.ErrorIs(t, q.Err(), ErrReplayMismatch)
}

// A replayed entry that no longer holds a valid batch, where the log
// stored one (the Raft log store was damaged), stops the partition too.
func TestReplayOfDamagedEntryFailsLoudly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	p := newTestPartition(t, dir, 0)
	b := plainBatch(t, 2)
	mustAppend(t, p, 1, 1, b)
	require.NoError(t, p.Close())
	q := newTestPartition(t, dir, 0)
	damaged := bytes.Clone(b)
	damaged[len(damaged)-2] ^= 1
	res := q.Apply(cmdLog(1, 1, EncodeAppend(damaged)))
	err, _ := res.(error)
	require.ErrorIs(t, err, ErrDamagedRaftEntry)
	require.ErrorIs(t, q.Err(), ErrDamagedRaftEntry)
	require.NotErrorIs(t, q.Err(), ErrCorruptLog, "rebuilding the segments from a damaged Raft log would lose the batch")
}

// Damage inside a sealed segment whose index is consistent passes open;
// the background scrub finds it and stops the partition.
func TestScrubFindsDamageInSealedSegment(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	p := newTestPartition(t, dir, 300)
	for i := range 10 {
		mustAppend(t, p, uint64(i+1), 1, plainBatch(t, 2))
	}
	require.Greater(t, len(p.currentLog().segs), 2)
	require.NoError(t, p.Close())
	segs := segmentFiles(t, dir, logSuffix)
	flipByteAt(t, segs[0], 40)

	q := newTestPartition(t, dir, 300)
	require.Eventually(t, func() bool { return errors.Is(q.Err(), ErrCorruptLog) }, 10*time.Second, 10*time.Millisecond)
	_, err := q.Read(0, 1<<20, 0)
	requireCode(t, err, transport.ErrCorruptBatch)
}
