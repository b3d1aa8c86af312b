package fsm

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/transport"
)

func openTestLog(t *testing.T, cfg LogConfig) *Log {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	l, err := OpenLog(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

// fill appends batches of 1..maxRecs records with Raft indexes 1.. and
// returns what the log should store for each.
func fill(t *testing.T, l *Log, batches, maxRecs int) [][]byte {
	t.Helper()
	var want [][]byte
	idx := l.LastRaftIndex()
	for i := 0; i < batches; i++ {
		b := plainBatch(t, 1+i%maxRecs)
		idx++
		next := l.NextOffset()
		base, err := l.Append(b, idx, 3)
		require.NoError(t, err)
		require.Equal(t, next, base)
		want = append(want, stored(b, base, 3))
	}
	return want
}

func segmentFiles(t *testing.T, dir, suffix string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	require.NoError(t, err)
	sort.Strings(m)
	return m
}

func TestLogAppendAndReadEveryOffset(t *testing.T) {
	l := openTestLog(t, LogConfig{SegmentBytes: 2048})
	want := fill(t, l, 120, 5)

	assert.Greater(t, len(segmentFiles(t, l.cfg.Dir, ".log")), 5, "small segments roll often")
	assert.Equal(t, int64(0), l.StartOffset())
	assert.Equal(t, uint64(120), l.LastRaftIndex())

	var next int64
	for i, w := range want {
		base, n := batchBase(w), batchCount(w)
		require.Equal(t, next, base, "offsets are dense")
		next += n
		// Every offset inside the batch leads to the whole batch.
		for off := base; off < base+n; off++ {
			got, err := l.Read(off, 1, 0)
			require.NoError(t, err)
			require.Len(t, got, 1)
			require.Equal(t, w, got[0], "batch %d at offset %d", i, off)
		}
		b, c, ok := l.BaseOffsetForRaftIndex(uint64(i + 1))
		require.True(t, ok)
		require.Equal(t, base, b)
		require.Equal(t, int(n), c)
	}
	require.Equal(t, next, l.NextOffset())

	// One big read crosses segments and returns everything in order.
	got, err := l.Read(0, 1<<30, 0)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, want, readAll(t, l.Read, 0, l.NextOffset()))

	_, _, ok := l.BaseOffsetForRaftIndex(121)
	assert.False(t, ok)
	_, _, ok = l.BaseOffsetForRaftIndex(0)
	assert.False(t, ok)
}

func TestLogReadInsideBatch(t *testing.T) {
	l := openTestLog(t, LogConfig{})
	b1, b2 := plainBatch(t, 10), plainBatch(t, 10)
	_, err := l.Append(b1, 1, 1)
	require.NoError(t, err)
	_, err = l.Append(b2, 2, 1)
	require.NoError(t, err)

	got, err := l.Read(5, 1<<20, 0)
	require.NoError(t, err)
	require.Equal(t, [][]byte{stored(b1, 0, 1), stored(b2, 10, 1)}, got, "a read starts with the batch holding the offset")

	got, err = l.Read(19, 1<<20, 0)
	require.NoError(t, err)
	require.Equal(t, [][]byte{stored(b2, 10, 1)}, got)
}

func TestLogReadLimits(t *testing.T) {
	l := openTestLog(t, LogConfig{SegmentBytes: 1 << 20})
	var want [][]byte
	for i := 0; i < 6; i++ {
		b := plainBatch(t, 10)
		base, err := l.Append(b, uint64(i+1), 1)
		require.NoError(t, err)
		want = append(want, stored(b, base, 1))
	}
	size := len(want[0])

	tests := []struct {
		name                 string
		offset               int64
		maxBytes, maxRecords int
		batches              int
	}{
		{"maxBytes below one batch still returns one", 0, 10, 0, 1},
		{"zero maxBytes returns one", 0, 0, 0, 1},
		{"exactly two batches", 0, 2 * size, 0, 2},
		{"two and a half batches", 0, 2*size + size/2, 0, 2},
		{"all", 0, 100 * size, 0, 6},
		{"maxRecords within first batch", 0, 100 * size, 3, 1},
		{"maxRecords reached by second batch", 0, 100 * size, 15, 2},
		{"maxRecords exactly two batches", 0, 100 * size, 20, 2},
		{"maxRecords counts from the offset", 15, 100 * size, 5, 1},
		{"maxRecords counts from the offset, one more", 15, 100 * size, 6, 2},
		{"bytes limit before records limit", 0, size, 50, 1},
		{"from the middle", 25, 2 * size, 0, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := l.Read(tc.offset, tc.maxBytes, tc.maxRecords)
			require.NoError(t, err)
			first := int(tc.offset / 10)
			require.Equal(t, want[first:first+tc.batches], got)
		})
	}
}

func TestLogOutOfRange(t *testing.T) {
	l := openTestLog(t, LogConfig{SegmentBytes: 512, RetentionBytes: 1})

	got, err := l.Read(0, 100, 0)
	require.NoError(t, err, "reading at the end of an empty log is fine")
	require.Empty(t, got)

	fill(t, l, 20, 3)
	next := l.NextOffset()
	got, err = l.Read(next, 100, 0)
	require.NoError(t, err)
	require.Empty(t, got)

	for _, off := range []int64{-1, next + 1, next + 1000} {
		_, err = l.Read(off, 100, 0)
		requireCode(t, err, transport.ErrOffsetOutOfRange)
		assert.Contains(t, err.Error(), "[0, ")
	}

	removed, err := l.ApplyRetention()
	require.NoError(t, err)
	require.Positive(t, removed)
	start := l.StartOffset()
	require.Positive(t, start)
	_, err = l.Read(start-1, 100, 0)
	requireCode(t, err, transport.ErrOffsetOutOfRange)
	_, err = l.Read(0, 100, 0)
	requireCode(t, err, transport.ErrOffsetOutOfRange)
	got, err = l.Read(start, 100, 0)
	require.NoError(t, err)
	require.Equal(t, start, batchBase(got[0]))
}

func TestLogAppendValidation(t *testing.T) {
	l := openTestLog(t, LogConfig{})
	good := plainBatch(t, 2)
	bad := func(mut func([]byte)) []byte { b := bytes.Clone(good); mut(b); return b }
	for name, b := range map[string][]byte{
		"crc":       bad(func(b []byte) { b[len(b)-1] ^= 1 }),
		"magic":     bad(func(b []byte) { b[16] = 0 }),
		"length":    good[:len(good)-2],
		"no header": good[:20],
		"empty":     NewBatch(nil, -1, 0, 0, testTime),
	} {
		_, err := l.Append(b, 1, 1)
		requireCode(t, err, transport.ErrCorruptBatch)
		assert.Equal(t, int64(0), l.NextOffset(), name)
	}
	_, err := l.Append(good, 5, 1)
	require.NoError(t, err)
	_, err = l.Append(good, 5, 1)
	require.Error(t, err, "raft indexes must rise")
	_, err = l.Append(good, 4, 1)
	require.Error(t, err)
	assert.Equal(t, int64(2), l.NextOffset())
	assert.Equal(t, uint64(5), l.LastRaftIndex())
}

func TestLogAppendDoesNotModifyInput(t *testing.T) {
	l := openTestLog(t, LogConfig{})
	b := plainBatch(t, 2)
	orig := bytes.Clone(b)
	_, err := l.Append(b, 1, 1)
	require.NoError(t, err)
	_, err = l.Append(b, 2, 1)
	require.NoError(t, err)
	require.Equal(t, orig, b)
}

func TestLogReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	cfg := LogConfig{Dir: dir, SegmentBytes: 1024, Logger: quietLogger()}
	l, err := OpenLog(cfg)
	require.NoError(t, err)
	want := fill(t, l, 60, 4)
	next, size := l.NextOffset(), l.Size()
	require.NoError(t, l.Close())
	_, err = l.Read(0, 100, 0)
	requireCode(t, err, transport.ErrShuttingDown)

	l = openTestLog(t, cfg)
	assert.Equal(t, next, l.NextOffset())
	assert.Equal(t, size, l.Size())
	assert.Equal(t, uint64(60), l.LastRaftIndex())
	require.Equal(t, want, readAll(t, l.Read, 0, next))
	for i := range want {
		b, _, ok := l.BaseOffsetForRaftIndex(uint64(i + 1))
		require.True(t, ok)
		require.Equal(t, batchBase(want[i]), b)
	}
	more := fill(t, l, 5, 2)
	assert.Equal(t, next, batchBase(more[0]))
	assert.Equal(t, uint64(65), l.LastRaftIndex())
}

// tailCase damages the newest segment of a closed log.
func testTornTail(t *testing.T, damage func(t *testing.T, path string, lastFrameStart int64)) {
	dir := t.TempDir()
	cfg := LogConfig{Dir: dir, SegmentBytes: 2048, Logger: quietLogger()}
	l, err := OpenLog(cfg)
	require.NoError(t, err)
	want := fill(t, l, 30, 3)
	require.Greater(t, len(segmentFiles(t, dir, ".log")), 1)
	last := want[len(want)-1]
	lastFrameStart := l.segs[len(l.segs)-1].size - int64(len(last)) - frameHeaderLen
	require.NoError(t, l.Close())

	logs := segmentFiles(t, dir, ".log")
	damage(t, logs[len(logs)-1], lastFrameStart)

	l = openTestLog(t, cfg)
	goodNext := batchBase(last)
	assert.Equal(t, goodNext, l.NextOffset(), "recovered to the last good batch")
	assert.Equal(t, uint64(29), l.LastRaftIndex())
	require.Equal(t, want[:29], readAll(t, l.Read, 0, l.NextOffset()))
	_, _, ok := l.BaseOffsetForRaftIndex(30)
	assert.False(t, ok)

	// The replayed entry appends again at the right place.
	b := plainBatch(t, 3)
	base, err := l.Append(b, 30, 4)
	require.NoError(t, err)
	assert.Equal(t, goodNext, base)
	got, err := l.Read(base, 1<<20, 0)
	require.NoError(t, err)
	require.Equal(t, [][]byte{stored(b, base, 4)}, got)

	// And everything survives another reopen.
	require.NoError(t, l.Close())
	l = openTestLog(t, cfg)
	require.Equal(t, append(want[:29:29], stored(b, base, 4)), readAll(t, l.Read, 0, l.NextOffset()))
}

func TestLogTornTailTruncatedMidBatch(t *testing.T) {
	testTornTail(t, func(t *testing.T, path string, start int64) {
		require.NoError(t, os.Truncate(path, start+frameHeaderLen+30))
	})
}

func TestLogTornTailTruncatedInFrameHeader(t *testing.T) {
	testTornTail(t, func(t *testing.T, path string, start int64) {
		require.NoError(t, os.Truncate(path, start+5))
	})
}

func TestLogCorruptTailFlippedRecordByte(t *testing.T) {
	testTornTail(t, func(t *testing.T, path string, start int64) {
		flipByte(t, path, -3)
	})
}

func TestLogCorruptTailFlippedEpoch(t *testing.T) {
	// The leader epoch is outside the batch CRC; the frame CRC catches it.
	testTornTail(t, func(t *testing.T, path string, start int64) {
		flipByteAt(t, path, start+frameHeaderLen+offLeaderEpoch+3)
	})
}

func TestLogCorruptTailGarbageAppended(t *testing.T) {
	dir := t.TempDir()
	cfg := LogConfig{Dir: dir, Logger: quietLogger()}
	l, err := OpenLog(cfg)
	require.NoError(t, err)
	want := fill(t, l, 5, 2)
	next := l.NextOffset()
	require.NoError(t, l.Close())
	f, err := os.OpenFile(segmentFiles(t, dir, ".log")[0], os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.Write(bytes.Repeat([]byte{0xff}, 100))
	require.NoError(t, err)
	require.NoError(t, f.Close())

	l = openTestLog(t, cfg)
	assert.Equal(t, next, l.NextOffset())
	require.Equal(t, want, readAll(t, l.Read, 0, next))
}

func flipByte(t *testing.T, path string, fromEnd int64) {
	st, err := os.Stat(path)
	require.NoError(t, err)
	flipByteAt(t, path, st.Size()+fromEnd)
}

func flipByteAt(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, at)
	require.NoError(t, err)
	b[0] ^= 0x10
	_, err = f.WriteAt(b, at)
	require.NoError(t, err)
}

func TestLogRebuildsMissingOrShortIndex(t *testing.T) {
	dir := t.TempDir()
	cfg := LogConfig{Dir: dir, SegmentBytes: 2048, Logger: quietLogger()}
	l, err := OpenLog(cfg)
	require.NoError(t, err)
	want := fill(t, l, 50, 3)
	require.NoError(t, l.Close())

	idx := segmentFiles(t, dir, ".index")
	require.Greater(t, len(idx), 2)
	require.NoError(t, os.Remove(idx[len(idx)-1]))                     // active: missing
	require.NoError(t, os.Truncate(idx[0], indexEntrySize*2))          // sealed: short
	require.NoError(t, os.WriteFile(idx[1], []byte("garbage"), 0o644)) // sealed: junk

	l = openTestLog(t, cfg)
	require.Equal(t, want, readAll(t, l.Read, 0, l.NextOffset()))
	assert.Equal(t, uint64(50), l.LastRaftIndex(), "raft indexes come back from the frames")
	for i := range want {
		b, _, ok := l.BaseOffsetForRaftIndex(uint64(i + 1))
		require.True(t, ok)
		require.Equal(t, batchBase(want[i]), b)
	}
}

func TestLogCorruptSealedSegmentFailsOpen(t *testing.T) {
	dir := t.TempDir()
	cfg := LogConfig{Dir: dir, SegmentBytes: 1024, Logger: quietLogger()}
	l, err := OpenLog(cfg)
	require.NoError(t, err)
	fill(t, l, 30, 3)
	require.NoError(t, l.Close())
	logs := segmentFiles(t, dir, ".log")
	flipByte(t, logs[0], -2)
	require.NoError(t, os.Remove(segmentFiles(t, dir, ".index")[0])) // force a scan

	_, err = OpenLog(cfg)
	require.ErrorContains(t, err, "corrupt")
}

func TestLogNeverServesCorruptBatch(t *testing.T) {
	l := openTestLog(t, LogConfig{SegmentBytes: 1024})
	want := fill(t, l, 30, 3)
	// Rot a byte of the third batch on disk behind the log's back.
	s := l.segs[0]
	es, err := readIndexEntries(s.idxF, 0, 3)
	require.NoError(t, err)
	flipByteAt(t, s.logPath, es[2].end()-1)

	got, err := l.Read(0, 1<<20, 0)
	require.NoError(t, err)
	require.Equal(t, want[:2], got, "batches before the bad one are served")
	_, err = l.Read(es[2].offset, 1<<20, 0)
	requireCode(t, err, transport.ErrCorruptBatch)
	got, err = l.Read(es[2].next(), 1<<20, 0)
	require.NoError(t, err)
	require.Equal(t, want[3], got[0])
}

func TestLogBaseOffsetForRaftIndexWithGaps(t *testing.T) {
	l := openTestLog(t, LogConfig{SegmentBytes: 700})
	var bases []int64
	for i := 1; i <= 40; i++ {
		base, err := l.Append(plainBatch(t, 2), uint64(i*3), 1)
		require.NoError(t, err)
		bases = append(bases, base)
	}
	for i := 1; i <= 40; i++ {
		b, c, ok := l.BaseOffsetForRaftIndex(uint64(i * 3))
		require.True(t, ok)
		require.Equal(t, bases[i-1], b)
		require.Equal(t, 2, c)
		_, _, ok = l.BaseOffsetForRaftIndex(uint64(i*3 - 1))
		require.False(t, ok, "no batch came from raft index %d", i*3-1)
	}
}

func TestLogRetentionBySize(t *testing.T) {
	l := openTestLog(t, LogConfig{SegmentBytes: 1024})
	want := fill(t, l, 80, 3)
	sizes := map[int64]int64{}
	for _, s := range l.segs {
		sizes[s.base] = s.size
	}
	nsegs := len(l.segs)
	require.Greater(t, nsegs, 5)
	total := l.Size()

	keep := total / 2
	l.cfg.RetentionBytes = keep
	removed, err := l.ApplyRetention()
	require.NoError(t, err)
	require.Positive(t, removed)
	assert.GreaterOrEqual(t, l.Size(), keep, "at least RetentionBytes stay")
	assert.Less(t, l.Size()-l.segs[0].size, keep, "the oldest left could not go without dropping below it")
	assert.Len(t, segmentFiles(t, l.cfg.Dir, ".log"), nsegs-removed)
	assert.Len(t, segmentFiles(t, l.cfg.Dir, ".index"), nsegs-removed)

	start := l.StartOffset()
	var kept [][]byte
	for _, w := range want {
		if batchBase(w) >= start {
			kept = append(kept, w)
		}
	}
	require.Equal(t, kept, readAll(t, l.Read, start, l.NextOffset()))
	_, _, ok := l.BaseOffsetForRaftIndex(1)
	assert.False(t, ok)

	// However small the limit, the active segment stays.
	l.cfg.RetentionBytes = 1
	_, err = l.ApplyRetention()
	require.NoError(t, err)
	require.Len(t, l.segs, 1)
	assert.Equal(t, l.segs[0].base, l.StartOffset())
	assert.Equal(t, l.segs[0].size, l.Size())
	got, err := l.Read(l.StartOffset(), 1<<20, 0)
	require.NoError(t, err)
	require.NotEmpty(t, got)

	// Reopening sees the same start.
	start = l.StartOffset()
	require.NoError(t, l.Close())
	l2 := openTestLog(t, l.cfg)
	assert.Equal(t, start, l2.StartOffset())
	assert.Equal(t, uint64(80), l2.LastRaftIndex())
}

func TestLogRetentionByAge(t *testing.T) {
	now := testTime
	cfg := LogConfig{SegmentBytes: 1024, RetentionAge: time.Hour, Now: func() time.Time { return now }}
	l := openTestLog(t, cfg)
	// Ten minutes of data per segment-ish: each batch is a minute newer.
	idx := uint64(0)
	for i := 0; i < 60; i++ {
		idx++
		_, err := l.Append(testBatch(t, 2, 16, -1, -1, -1, testTime.Add(time.Duration(i)*time.Minute)), idx, 1)
		require.NoError(t, err)
	}
	require.Greater(t, len(l.segs), 4)

	removed, err := l.ApplyRetention()
	require.NoError(t, err)
	require.Zero(t, removed, "nothing is an hour old yet")

	now = testTime.Add(90 * time.Minute) // cutoff: minute 30
	removed, err = l.ApplyRetention()
	require.NoError(t, err)
	require.Positive(t, removed)
	// Batch i (offsets 2i, 2i+1) is from minute i. The oldest segment left
	// has data from minute 30 on; the batch before it was older.
	cutoff := testTime.Add(30 * time.Minute)
	newest, err := l.segmentNewest(l.segs[0])
	require.NoError(t, err)
	assert.False(t, newest.Before(cutoff))
	assert.Less(t, l.StartOffset()/2-1, int64(30))

	now = testTime.Add(1000 * time.Hour)
	_, err = l.ApplyRetention()
	require.NoError(t, err)
	require.Len(t, l.segs, 1, "the active segment is never deleted")
}

func TestLogRetentionByAgeAfterReopen(t *testing.T) {
	// Sealed segments loaded at open learn their max timestamp from the index.
	now := testTime
	cfg := LogConfig{Dir: t.TempDir(), SegmentBytes: 1024, RetentionAge: time.Hour, Now: func() time.Time { return now }, Logger: quietLogger()}
	l, err := OpenLog(cfg)
	require.NoError(t, err)
	for i := 0; i < 40; i++ {
		_, err := l.Append(testBatch(t, 2, 16, -1, -1, -1, testTime.Add(time.Duration(i)*time.Minute)), uint64(i+1), 1)
		require.NoError(t, err)
	}
	nsegs := len(l.segs)
	require.NoError(t, l.Close())
	l = openTestLog(t, cfg)
	now = testTime.Add(2 * time.Hour)
	removed, err := l.ApplyRetention()
	require.NoError(t, err)
	assert.Equal(t, nsegs-1, removed)
}

func TestLogRetentionKeepsPinnedSegmentsReadable(t *testing.T) {
	l := openTestLog(t, LogConfig{SegmentBytes: 1024})
	want := fill(t, l, 40, 3)
	ls, err := l.snapshot()
	require.NoError(t, err)
	l.cfg.RetentionBytes = 1
	removed, err := l.ApplyRetention()
	require.NoError(t, err)
	require.Positive(t, removed)

	var buf bytes.Buffer
	require.NoError(t, ls.writeFrames(&buf), "deleted segments stay readable while pinned")
	ls.release()
	var got [][]byte
	for b := buf.Bytes(); len(b) > 0; {
		size := frameSizeFromPrefix(b)
		got = append(got, b[frameHeaderLen:size])
		b = b[size:]
	}
	require.Equal(t, want, got)
}

func TestLogConcurrentReadsDuringAppends(t *testing.T) {
	l := openTestLog(t, LogConfig{SegmentBytes: 4096, RetentionBytes: 16 << 10})
	const total = 400
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				start, next := l.StartOffset(), l.NextOffset()
				if next == 0 {
					continue
				}
				off := start + rng.Int64N(next-start+1)
				got, err := l.Read(off, 1+rng.IntN(8192), rng.IntN(20))
				if transport.CodeOf(err) == transport.ErrOffsetOutOfRange {
					continue // retention moved the start meanwhile
				}
				if !assert.NoError(t, err) {
					return
				}
				if off < next && !assert.NotEmpty(t, got) {
					return
				}
				expect := int64(-1)
				for i, b := range got {
					_, recs, err := ParseBatch(b)
					if !assert.NoError(t, err) {
						return
					}
					base := batchBase(b)
					if i == 0 {
						assert.LessOrEqual(t, base, off)
						assert.Greater(t, base+int64(len(recs)), off)
					} else {
						assert.Equal(t, expect, base)
					}
					expect = base + int64(len(recs))
				}
			}
		}(uint64(r))
	}
	for i := 1; i <= total; i++ {
		_, err := l.Append(plainBatch(t, 1+i%7), uint64(i), 1)
		require.NoError(t, err)
		if i%50 == 0 {
			_, err := l.ApplyRetention()
			require.NoError(t, err)
			require.NoError(t, l.Sync())
		}
	}
	close(stop)
	wg.Wait()
}

func TestLogOrphanIndexRemoved(t *testing.T) {
	dir := t.TempDir()
	cfg := LogConfig{Dir: dir, SegmentBytes: 1024, Logger: quietLogger()}
	l, err := OpenLog(cfg)
	require.NoError(t, err)
	fill(t, l, 30, 3)
	require.NoError(t, l.Close())
	// Retention crashed after removing the .log of the oldest segment.
	logs := segmentFiles(t, dir, ".log")
	require.NoError(t, os.Remove(logs[0]))
	l = openTestLog(t, cfg)
	base, ok := parseSegmentName(filepath.Base(logs[1]))
	require.True(t, ok)
	assert.Equal(t, base, l.StartOffset())
	assert.Len(t, segmentFiles(t, dir, ".index"), len(logs)-1)
}

func TestLogStartsAtInitialBase(t *testing.T) {
	cfg := LogConfig{Dir: t.TempDir(), Logger: quietLogger()}
	l, err := openLog(cfg, 500)
	require.NoError(t, err)
	assert.Equal(t, int64(500), l.StartOffset())
	assert.Equal(t, int64(500), l.NextOffset())
	base, err := l.Append(plainBatch(t, 2), 1, 1)
	require.NoError(t, err)
	assert.Equal(t, int64(500), base)
	require.NoError(t, l.Close())
	l = openTestLog(t, cfg)
	assert.Equal(t, int64(500), l.StartOffset())
	assert.Equal(t, int64(502), l.NextOffset())
}

func TestLogTornTailOnlyBatchOfSegment(t *testing.T) {
	// SegmentBytes 1: every batch gets a segment of its own, so the torn
	// segment ends up empty and the previous one supplies the raft index.
	dir := t.TempDir()
	cfg := LogConfig{Dir: dir, SegmentBytes: 1, Logger: quietLogger()}
	l, err := OpenLog(cfg)
	require.NoError(t, err)
	want := fill(t, l, 5, 3)
	require.NoError(t, l.Close())
	logs := segmentFiles(t, dir, ".log")
	require.Len(t, logs, 5)
	require.NoError(t, os.Truncate(logs[4], 20))

	l = openTestLog(t, cfg)
	assert.Equal(t, batchBase(want[4]), l.NextOffset())
	assert.Equal(t, uint64(4), l.LastRaftIndex())
	require.Equal(t, want[:4], readAll(t, l.Read, 0, l.NextOffset()))
	base, err := l.Append(plainBatch(t, 1), 5, 1)
	require.NoError(t, err)
	assert.Equal(t, batchBase(want[4]), base)
	assert.Len(t, segmentFiles(t, dir, ".log"), 5, "the empty segment is reused")
}
