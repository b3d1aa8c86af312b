package chaos

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/batch"
	"github.com/sluice-io/sluice/chaos/history"
)

func testBatch(base int64, values ...string) []byte {
	var recs []kmsg.Record
	for i, v := range values {
		recs = append(recs, kmsg.Record{OffsetDelta: int32(i), Value: []byte(v)})
	}
	b := batch.NewBatch(recs, -1, -1, -1, time.UnixMilli(1))
	// The base offset is outside the CRC: set it as a broker would.
	for i := range 8 {
		b[i] = byte(uint64(base) >> (56 - 8*i))
	}
	return b
}

func TestDecodeBatches(t *testing.T) {
	b := append(testBatch(10, "a", "b", "c"), testBatch(13, "d", "e")...)
	got, err := decodeBatches(b, 11, 0)
	require.NoError(t, err)
	require.Equal(t, []history.Record{{Offset: 11, Value: "b"}, {Offset: 12, Value: "c"}, {Offset: 13, Value: "d"}, {Offset: 14, Value: "e"}}, got)

	got, err = decodeBatches(b, 0, 2)
	require.NoError(t, err)
	require.Len(t, got, 2)

	// A partial batch at the end (a broker may cut the response) is dropped.
	got, err = decodeBatches(b[:len(b)-3], 0, 0)
	require.NoError(t, err)
	require.Len(t, got, 3)

	bad := testBatch(0, "x")
	bad[len(bad)-1] ^= 0xff
	_, err = decodeBatches(bad, 0, 0)
	require.Error(t, err, "a corrupt batch fails the CRC")
}

// FuzzDecodeBatches: fetch response bytes never crash the decoder.
func FuzzDecodeBatches(f *testing.F) {
	f.Add(append(testBatch(10, "a", "b"), testBatch(12, "c")...), int64(0))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, int64(0))
	f.Fuzz(func(t *testing.T, b []byte, from int64) {
		recs, err := decodeBatches(b, from, 100)
		if err == nil {
			require.LessOrEqual(t, len(recs), 100)
		}
	})
}

// TestChaosKafkaClient runs the workload through the nodes' Kafka
// listeners (franz-go) across a killed and an isolated leader; the same
// checker must pass it.
func TestChaosKafkaClient(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: skipped with -short")
	}
	if os.Getenv("SLUICE_SKIP_CHAOS") == "1" {
		t.Skip("chaos: SLUICE_SKIP_CHAOS=1")
	}
	opts := shortRun(t, "kafka")
	opts.Client = ClientKafka
	opts.Nemeses = []string{"kill-leader", "partition-leader"}
	opts.TimeLimit = 32 * time.Second
	opts.Interval = 8 * time.Second
	opts.Recovery = 8 * time.Second
	opts.BaseHost = 51
	res := runShort(t, opts, 4*time.Minute)
	require.Len(t, res.Faults, 2)
	require.Positive(t, res.Check.Ops["send"]["ok"])
	require.Positive(t, res.Check.Ops["poll"]["ok"])
	require.Positive(t, res.Check.Ops["commit"]["ok"])
}
