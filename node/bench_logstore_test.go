package node

import (
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// BenchmarkStoreLogs measures the Raft log store the node uses
// (raft-boltdb/v2, one fsynced transaction per call) with batches shaped
// like produce traffic: one op is one StoreLogs call of entries× size.
func BenchmarkStoreLogs(b *testing.B) {
	for _, tc := range []struct{ entries, size int }{{1, 100 << 10}, {16, 100 << 10}, {64, 1 << 10}, {1, 1 << 20}} {
		b.Run(fmt.Sprintf("entries=%d/size=%d", tc.entries, tc.size), func(b *testing.B) {
			store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(b.TempDir(), "raft.db")})
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			data := make([]byte, tc.size)
			rand.Read(data)
			logs := make([]*raft.Log, tc.entries)
			b.SetBytes(int64(tc.entries * tc.size))
			b.ReportAllocs()
			next := uint64(1)
			for b.Loop() {
				for i := range logs {
					logs[i] = &raft.Log{Index: next, Term: 1, Type: raft.LogCommand, Data: data}
					next++
				}
				if err := store.StoreLogs(logs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
