package batch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy/xerial"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var testTime = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func testRecords(n, valueSize int) []kmsg.Record {
	var recs []kmsg.Record
	for i := range n {
		val := bytes.Repeat([]byte{byte('a' + i%26)}, valueSize)
		r := kmsg.Record{TimestampDelta64: int64(i), Key: fmt.Appendf(nil, "k%d", i), Value: val}
		if i%2 == 0 {
			r.Headers = []kmsg.Header{{Key: "h", Value: []byte("x")}, {Key: "n", Value: nil}}
		}
		recs = append(recs, r)
	}
	return recs
}

// reseal recomputes the CRC after a test edits CRC-covered bytes.
func reseal(b []byte) []byte {
	binary.BigEndian.PutUint32(b[OffCRC:], crc32.Checksum(b[OffAttributes:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func collect(t *testing.T, b []byte) (Header, []kmsg.Record) {
	t.Helper()
	var out []kmsg.Record
	h, err := Walk(b, 0, func(r Record) error {
		kr := kmsg.Record{TimestampDelta64: r.TimestampDelta, OffsetDelta: r.OffsetDelta,
			Key: bytes.Clone(r.Key), Value: bytes.Clone(r.Value)}
		for k, v := range r.Headers() {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: string(k), Value: bytes.Clone(v)})
		}
		out = append(out, kr)
		return nil
	})
	require.NoError(t, err)
	return h, out
}

func TestBuildWalkRoundTrip(t *testing.T) {
	for _, c := range []Compression{None, Gzip, Snappy, LZ4, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			recs := testRecords(20, 300)
			b, err := Build(recs, Options{ProducerID: 7, ProducerEpoch: 1, BaseSequence: 40, Timestamp: testTime, Compress: c})
			require.NoError(t, err)
			h, out := collect(t, b)
			assert.Equal(t, c, h.Attributes.Compression())
			assert.Equal(t, int32(20), h.NumRecords)
			assert.Equal(t, int64(7), h.ProducerID)
			assert.Equal(t, int32(40), h.BaseSequence)
			assert.Equal(t, testTime.UnixMilli()+19, h.MaxTimestamp)
			require.Len(t, out, 20)
			for i, r := range out {
				assert.Equal(t, int32(i), r.OffsetDelta)
				assert.Equal(t, recs[i].Key, r.Key)
				assert.Equal(t, recs[i].Value, r.Value)
				assert.Equal(t, int64(i), r.TimestampDelta64)
				if i%2 == 0 {
					require.Len(t, r.Headers, 2)
					assert.Equal(t, "h", r.Headers[0].Key)
					assert.Equal(t, []byte("x"), r.Headers[0].Value)
					assert.Nil(t, r.Headers[1].Value)
				} else {
					assert.Empty(t, r.Headers)
				}
			}
		})
	}
}

func TestNewBatchNonIdempotentAndNullKey(t *testing.T) {
	b := NewBatch([]kmsg.Record{{Value: []byte("v")}}, -1, 5, 9, testTime)
	h, out := collect(t, b)
	assert.Equal(t, int64(-1), h.ProducerID)
	assert.Equal(t, int16(-1), h.ProducerEpoch)
	assert.Equal(t, int32(-1), h.BaseSequence)
	assert.Nil(t, out[0].Key)
	// The batch is what kmsg decodes too.
	var rb kmsg.RecordBatch
	require.NoError(t, rb.ReadFrom(b))
	assert.Equal(t, int32(1), rb.NumRecords)
}

// Kafka's Java client frames snappy the xerial way; franz-go and
// librdkafka write raw blocks. Both must read.
func TestXerialSnappy(t *testing.T) {
	raw := NewBatch(testRecords(50, 2000), 1, 0, 0, testTime)
	framed := xerial.Encode(nil, raw[HeaderLen:])
	require.True(t, bytes.HasPrefix(framed, xerialMagic))
	b := append(bytes.Clone(raw[:HeaderLen]), framed...)
	binary.BigEndian.PutUint32(b[OffLength:], uint32(len(b)-LengthPrefix))
	binary.BigEndian.PutUint16(b[OffAttributes:], uint16(Snappy))
	_, out := collect(t, reseal(b))
	require.Len(t, out, 50)
	assert.Equal(t, testRecords(50, 2000)[49].Value, out[49].Value)
}

func TestAttributes(t *testing.T) {
	a := Attributes(Zstd | AttrLogAppendTime | AttrTransactional | AttrControl)
	assert.Equal(t, Zstd, a.Compression())
	assert.True(t, a.LogAppendTime())
	assert.True(t, a.Transactional())
	assert.True(t, a.Control())
	assert.False(t, Attributes(0).Transactional() || Attributes(0).Control() || Attributes(0).LogAppendTime())
}

// The 69-byte batch of issue #7: CRC-valid, claiming 2^31-1 records.
func forgedCountBatch() []byte {
	b := NewBatch([]kmsg.Record{{Value: []byte("x")}}, -1, 0, 0, testTime)
	binary.BigEndian.PutUint32(b[OffLastOffsetDelta:], 1<<31-2)
	binary.BigEndian.PutUint32(b[OffNumRecords:], 1<<31-1)
	return reseal(b)
}

func TestValidateRejects(t *testing.T) {
	good := NewBatch(testRecords(3, 10), -1, 0, 0, testTime)
	tests := []struct {
		name   string
		mutate func([]byte) []byte
		want   error
	}{
		{"short", func(b []byte) []byte { return b[:40] }, ErrCorrupt},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }, ErrCorrupt},
		{"trailing bytes", func(b []byte) []byte { return append(b, 0) }, ErrCorrupt},
		{"bad magic", func(b []byte) []byte { b[OffMagic] = 1; return b }, ErrCorrupt},
		{"flipped record byte", func(b []byte) []byte { b[len(b)-3] ^= 0x40; return b }, ErrCorrupt},
		{"flipped crc", func(b []byte) []byte { b[OffCRC+1] ^= 1; return b }, ErrCorrupt},
		{"unknown codec", func(b []byte) []byte { b[OffAttributes+1] = 5; return reseal(b) }, ErrUnsupported},
		{"count vs delta", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[OffNumRecords:], 2)
			return reseal(b)
		}, ErrCorrupt},
		{"negative delta", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[OffLastOffsetDelta:], 0xffffffff)
			binary.BigEndian.PutUint32(b[OffNumRecords:], 0)
			return reseal(b)
		}, ErrCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mutate(bytes.Clone(good))
			_, err := Validate(b)
			require.ErrorIs(t, err, tc.want)
			_, err = Count(b, 0)
			require.ErrorIs(t, err, tc.want)
		})
	}
	// Base offset and leader epoch are outside the CRC.
	b := bytes.Clone(good)
	binary.BigEndian.PutUint64(b, 1234)
	binary.BigEndian.PutUint32(b[OffLeaderEpoch:], 9)
	_, err := Validate(b)
	require.NoError(t, err)
}

func TestForgedRecordCount(t *testing.T) {
	b := forgedCountBatch()
	require.Len(t, b, 69)
	_, err := Validate(b)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "claims 2147483647 records")

	// Compressed: a small body that claims more records than it holds
	// once decompressed.
	c, err := Build(testRecords(2, 10), Options{ProducerID: -1, Timestamp: testTime, Compress: Gzip})
	require.NoError(t, err)
	binary.BigEndian.PutUint32(c[OffLastOffsetDelta:], 999)
	binary.BigEndian.PutUint32(c[OffNumRecords:], 1000)
	reseal(c)
	_, err = Validate(c) // cheap bound passes: 1000 records fit in 64 MiB
	require.NoError(t, err)
	_, err = Count(c, 0)
	require.ErrorIs(t, err, ErrCorrupt)
}

func TestWalkChecksRecords(t *testing.T) {
	// A record whose offset delta skips.
	recs := testRecords(3, 10)
	b := NewBatch(recs, -1, 0, 0, testTime)
	_, err := Count(b, 0)
	require.NoError(t, err)
	// Record 1's body with a bad offset delta: rebuild by hand.
	var body []byte
	for i, r := range recs {
		r.OffsetDelta = int32(i * 2)
		enc := r.AppendTo(nil)
		body = binary.AppendVarint(body, int64(len(enc)-1))
		body = append(body, enc[1:]...)
	}
	b2 := append(bytes.Clone(b[:HeaderLen]), body...)
	binary.BigEndian.PutUint32(b2[OffLength:], uint32(len(b2)-LengthPrefix))
	_, err = Count(reseal(b2), 0)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "offset delta")
}

func TestDecompressionBomb(t *testing.T) {
	// 8 MiB of zeros compresses to a few KiB in every codec.
	big := []kmsg.Record{{Value: make([]byte, 8<<20)}}
	for _, c := range []Compression{Gzip, Snappy, LZ4, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			b, err := Build(big, Options{ProducerID: -1, Timestamp: testTime, Compress: c})
			require.NoError(t, err)
			require.Less(t, len(b), 1<<20)
			_, err = Count(b, 1<<20)
			require.ErrorIs(t, err, ErrTooLarge)
			assert.Contains(t, err.Error(), "exceed")
			_, err = Count(b, 16<<20)
			require.NoError(t, err)
		})
	}
}

func TestWalkStopsOnCallbackError(t *testing.T) {
	b := NewBatch(testRecords(5, 1), -1, 0, 0, testTime)
	stop := fmt.Errorf("stop")
	n := 0
	_, err := Walk(b, 0, func(Record) error { n++; return stop })
	require.ErrorIs(t, err, stop)
	assert.Equal(t, 1, n)
}

func TestWalkDoesNotAllocate(t *testing.T) {
	b := NewBatch(testRecords(100, 50), 1, 0, 0, testTime)
	var sum int
	allocs := testing.AllocsPerRun(20, func() {
		_, _ = Walk(b, 0, func(r Record) error {
			sum += len(r.Value)
			for k := range r.Headers() {
				sum += len(k)
			}
			return nil
		})
	})
	assert.Zero(t, allocs)
}

func BenchmarkValidate(b *testing.B) {
	bt := NewBatch(testRecords(100, 1024), 1, 0, 0, testTime)
	b.SetBytes(int64(len(bt)))
	for b.Loop() {
		if _, err := Validate(bt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWalk(b *testing.B) {
	bt := NewBatch(testRecords(100, 1024), 1, 0, 0, testTime)
	b.SetBytes(int64(len(bt)))
	for b.Loop() {
		if _, err := Count(bt, 0); err != nil {
			b.Fatal(err)
		}
	}
}
