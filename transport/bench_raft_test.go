package transport

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// BenchmarkRaftAppendEntries measures one Raft AppendEntries round trip
// through the mux's raft layer and hashicorp/raft's NetworkTransport, as a
// partition group's leader sends it: a heartbeat (no entries) and a batch
// of produce-sized entries. The follower side answers at once.
func BenchmarkRaftAppendEntries(b *testing.B) {
	a, err := Listen(Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	f, err := Listen(Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range []*Mux{a, f} {
		go func() { _ = m.Serve(nil) }()
		defer m.Close()
	}
	la, err := a.RaftLayer("p0")
	if err != nil {
		b.Fatal(err)
	}
	lf, err := f.RaftLayer("p0")
	if err != nil {
		b.Fatal(err)
	}
	hl := hclog.New(&hclog.LoggerOptions{Output: io.Discard})
	ta := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: la, MaxPool: 3, Timeout: 10 * time.Second, Logger: hl})
	tf := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: lf, MaxPool: 3, Timeout: 10 * time.Second, Logger: hl})
	defer ta.Close()
	defer tf.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			select {
			case rpc := <-tf.Consumer():
				rpc.Respond(&raft.AppendEntriesResponse{Term: 1, Success: true}, nil)
			case <-ctx.Done():
				return
			}
		}
	}()
	target := raft.ServerAddress(f.Addr().String())
	for _, tc := range []struct{ entries, size int }{{0, 0}, {1, 100 << 10}, {16, 1 << 10}} {
		b.Run(fmt.Sprintf("entries=%d/size=%d", tc.entries, tc.size), func(b *testing.B) {
			req := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte("n1"), Addr: []byte(a.Addr().String())}, Term: 1}
			for i := range tc.entries {
				req.Entries = append(req.Entries, &raft.Log{Index: uint64(i + 1), Term: 1, Data: make([]byte, tc.size)})
			}
			if tc.entries > 0 {
				b.SetBytes(int64(tc.entries * tc.size))
			}
			b.ReportAllocs()
			var resp raft.AppendEntriesResponse
			for b.Loop() {
				if err := ta.AppendEntries("n2", target, req, &resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
