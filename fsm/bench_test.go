package fsm

import (
	"testing"

	"github.com/hashicorp/raft"
)

// benchBatch is a batch of 100 records of 1 KiB.
func benchBatch(b *testing.B) []byte {
	return testBatch(b, 100, 1024, -1, -1, -1, testTime)
}

func BenchmarkLogAppend(b *testing.B) {
	// Retention keeps the disk footprint bounded however large b.N gets.
	l, err := OpenLog(LogConfig{Dir: b.TempDir(), RetentionBytes: 256 << 20, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	batch := benchBatch(b)
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := l.Append(batch, uint64(i+1), 1); err != nil {
			b.Fatal(err)
		}
		if i%1024 == 1023 {
			if _, err := l.ApplyRetention(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkLogRead(b *testing.B) {
	l, err := OpenLog(LogConfig{Dir: b.TempDir(), SegmentBytes: 8 << 20, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	batch := benchBatch(b)
	const batches = 200
	for i := 0; i < batches; i++ {
		if _, err := l.Append(batch, uint64(i+1), 1); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(batch)) * 10)
	b.ReportAllocs()
	b.ResetTimer()
	var off int64
	for i := 0; i < b.N; i++ {
		// About ten batches per read, walking the whole log, as a consumer does.
		got, err := l.Read(off, 10*len(batch), 0)
		if err != nil {
			b.Fatal(err)
		}
		off = batchBase(got[len(got)-1]) + batchCount(got[len(got)-1])
		if off >= l.NextOffset() {
			off = 0
		}
	}
}

func BenchmarkPartitionApply(b *testing.B) {
	p, err := NewPartition(PartitionConfig{Log: LogConfig{Dir: b.TempDir(), RetentionBytes: 256 << 20}, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	cmd := EncodeAppend(benchBatch(b))
	b.SetBytes(int64(len(cmd)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := p.Apply(&raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: cmd}).(*AppendResult); !ok {
			b.Fatal("apply failed")
		}
		if i%1024 == 1023 {
			if err := p.ApplyRetention(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
