package fsm

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The fuzz targets work in memory where they can (fsyncs would make them
// crawl); each runs its seeds in testdata/fuzz as a normal test.

// FuzzSegmentFrame treats the input as a segment file: the scan must never
// panic, and every frame it accepts must pass the frame and batch checks.
func FuzzSegmentFrame(f *testing.F) {
	f.Add(fuzzSegment(f, 3))
	f.Add(fuzzSegment(f, 1)[:40])
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := scanFrames(bytes.NewReader(data), int64(len(data)), "fuzz", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range res.entries {
			if _, _, err := checkFrame(data[e.pos:e.end()]); err != nil {
				t.Fatalf("scan accepted a frame that fails its checks: %v", err)
			}
		}
		if res.validEnd > res.fileSize {
			t.Fatalf("valid end %d past the file's %d bytes", res.validEnd, res.fileSize)
		}
	})
}

// fuzzSegment is the .log of a fresh log holding n batches.
func fuzzSegment(tb testing.TB, n int) []byte {
	dir := tb.TempDir()
	l, err := OpenLog(LogConfig{Dir: dir, Logger: quietLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		if _, err := l.Append(plainBatch(tb, i+1), uint64(i+1), 1); err != nil {
			tb.Fatal(err)
		}
	}
	l.Close()
	b, err := os.ReadFile(segmentPath(dir, 0, logSuffix))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzIndexEntries puts arbitrary bytes in place of a sealed segment's
// index entries: lookups and reads through them must only ever return
// frames that pass their checks, never panic or size a read past the file.
func FuzzIndexEntries(f *testing.F) {
	dir := f.TempDir()
	l, err := OpenLog(LogConfig{Dir: dir, Logger: quietLogger()})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 4 {
		if _, err := l.Append(plainBatch(f, 2), uint64(i+1), 1); err != nil {
			f.Fatal(err)
		}
	}
	l.Close()
	seg, err := openSegmentFiles(dir, 0, false)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(seg.release)
	st, _ := seg.logF.Stat()
	idx, err := os.ReadFile(segmentPath(dir, 0, indexSuffix))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(idx)
	f.Add(idx[:indexEntrySize])
	f.Fuzz(func(t *testing.T, data []byte) {
		var mem []indexEntry
		for i := 0; i+indexEntrySize <= len(data); i += indexEntrySize {
			mem = append(mem, decodeIndexEntry(data[i:]))
		}
		v := segView{seg: seg, n: len(mem), size: st.Size(), mem: mem, inMem: true}
		if _, err := v.search(func(e indexEntry) bool { return e.raftIndex >= 2 }); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < v.n; {
			chunk, err := v.chunkEntries(i, 1<<20)
			if err != nil || len(chunk) == 0 {
				t.Fatalf("chunk at %d: %v", i, err)
			}
			frames, _ := v.readFrames(chunk)
			for _, fr := range frames {
				if _, _, err := checkFrame(fr); err != nil {
					t.Fatalf("returned a frame that fails its checks: %v", err)
				}
			}
			i += len(chunk)
		}
	})
}

// FuzzSnapshotHeader decodes arbitrary bytes as a partition snapshot
// stream (header, then frames): it must fail cleanly, never panic or
// allocate what a forged length claims.
func FuzzSnapshotHeader(f *testing.F) {
	p, err := NewPartition(PartitionConfig{Log: LogConfig{Dir: filepath.Join(f.TempDir(), "p")}, Logger: quietLogger()})
	if err != nil {
		f.Fatal(err)
	}
	defer p.Close()
	p.Apply(cmdLog(1, 1, EncodeAppendAt(plainBatch(f, 3), testTime)))
	p.Apply(cmdLog(2, 1, EncodeOffsetCommitAt("g", 2, "m", testTime)))
	snap, err := p.Snapshot()
	if err != nil {
		f.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		f.Fatal(err)
	}
	snap.Release()
	f.Add(sink.Bytes())
	f.Add(sink.Bytes()[:20])
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		if _, err := readSnapshotHeader(r); err != nil {
			return
		}
		_, _ = readSnapshotFrames(r, func(frame []byte) error {
			_, _, err := checkFrame(frame)
			return err
		})
	})
}
