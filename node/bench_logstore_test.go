package node

import (
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// BenchmarkStoreLogs measures the Raft log store the node uses (raft-wal
// on sparse segments, one fsync per call: store=wal) against raft-boltdb/v2
// (one fsynced transaction per call: store=bolt, the log store before)
// with batches shaped like produce traffic: one op is one StoreLogs call of
// entries × size.
func BenchmarkStoreLogs(b *testing.B) {
	type opener func(dir string) (raft.LogStore, func() error, error)
	stores := []struct {
		name string
		open opener
	}{
		{"wal", func(dir string) (raft.LogStore, func() error, error) {
			stable, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
			if err != nil {
				return nil, nil, err
			}
			w, err := openLogStore(dir, stable, false, hclog.NewNullLogger())
			if err != nil {
				stable.Close()
				return nil, nil, err
			}
			return w, func() error { w.Close(); return stable.Close() }, nil
		}},
		{"bolt", func(dir string) (raft.LogStore, func() error, error) {
			s, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
			if err != nil {
				return nil, nil, err
			}
			return s, s.Close, nil
		}},
	}
	for _, st := range stores {
		for _, tc := range []struct{ entries, size int }{{1, 100 << 10}, {16, 100 << 10}, {64, 1 << 10}, {1, 1 << 20}} {
			b.Run(fmt.Sprintf("store=%s/entries=%d/size=%d", st.name, tc.entries, tc.size), func(b *testing.B) {
				store, closeStore, err := st.open(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				defer closeStore()
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
}
