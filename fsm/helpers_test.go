package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/transport"
)

// testBatch builds a valid v2 batch of n records independently of NewBatch
// (so NewBatch is checked against it), each value valueSize bytes.
func testBatch(tb testing.TB, n, valueSize int, producerID int64, epoch int16, seq int32, ts time.Time) []byte {
	tb.Helper()
	var recs []byte
	for i := 0; i < n; i++ {
		val := bytes.Repeat([]byte{byte('a' + i%26)}, valueSize)
		copy(val, fmt.Sprintf("r%d-", i))
		r := kmsg.Record{
			OffsetDelta:      int32(i),
			TimestampDelta64: int64(i),
			Key:              []byte(fmt.Sprintf("k%d", i)),
			Value:            val,
		}
		body := r.AppendTo(nil) // with a zero length varint (1 byte)
		r.Length = int32(len(body) - 1)
		recs = r.AppendTo(recs)
	}
	first := ts.UnixMilli()
	rb := kmsg.RecordBatch{
		Length:               int32(49 + len(recs)),
		PartitionLeaderEpoch: -1,
		Magic:                2,
		LastOffsetDelta:      int32(n - 1),
		FirstTimestamp:       first,
		MaxTimestamp:         first + int64(max(n-1, 0)),
		ProducerID:           producerID,
		ProducerEpoch:        epoch,
		FirstSequence:        seq,
		NumRecords:           int32(n),
		Records:              recs,
	}
	b := rb.AppendTo(nil)
	table := crc32.MakeTable(crc32.Castagnoli)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], table))
	return b
}

var testTime = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// plainBatch is a non-idempotent batch of n small records.
func plainBatch(tb testing.TB, n int) []byte {
	return testBatch(tb, n, 16, -1, -1, -1, testTime)
}

// stored is what the log keeps for batch: base offset and epoch set.
func stored(batch []byte, base int64, epoch int32) []byte {
	out := bytes.Clone(batch)
	binary.BigEndian.PutUint64(out[0:], uint64(base))
	binary.BigEndian.PutUint32(out[12:], uint32(epoch))
	return out
}

func batchBase(b []byte) int64 { return int64(binary.BigEndian.Uint64(b)) }

func batchCount(b []byte) int64 { return int64(binary.BigEndian.Uint32(b[23:])) + 1 }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func requireCode(t *testing.T, err error, code transport.ErrorCode) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, code, transport.CodeOf(err), "error: %v", err)
}

// memSink is an in-memory raft.SnapshotSink.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { s.closed = true; return nil }

// persist runs a full snapshot of fsm into memory.
func persist(t *testing.T, f raft.FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	require.NoError(t, err)
	defer snap.Release()
	var sink memSink
	require.NoError(t, snap.Persist(&sink))
	require.True(t, sink.closed)
	return sink.Bytes()
}

// readAll returns every batch of a partition or log reader from its start.
func readAll(t *testing.T, read func(int64, int, int) ([][]byte, error), start, next int64) [][]byte {
	t.Helper()
	var out [][]byte
	for off := start; off < next; {
		bs, err := read(off, 1<<20, 0)
		require.NoError(t, err)
		require.NotEmpty(t, bs)
		for _, b := range bs {
			if batchBase(b)+batchCount(b) <= off {
				continue
			}
			out = append(out, bytes.Clone(b))
			off = batchBase(b) + batchCount(b)
		}
	}
	return out
}
