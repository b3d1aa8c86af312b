package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/transport"
)

func TestNewBatchMatchesIndependentEncoding(t *testing.T) {
	var recs []kmsg.Record
	for i := 0; i < 5; i++ {
		val := bytes.Repeat([]byte{byte('a' + i)}, 16)
		copy(val, fmt.Sprintf("r%d-", i))
		recs = append(recs, kmsg.Record{TimestampDelta64: int64(i), Key: []byte(fmt.Sprintf("k%d", i)), Value: val})
	}
	got := NewBatch(recs, 42, 3, 100, testTime)
	want := testBatch(t, 5, 16, 42, 3, 100, testTime)
	require.Equal(t, want, got)
}

func TestNewBatchParseRoundTrip(t *testing.T) {
	recs := []kmsg.Record{
		{Key: []byte("k1"), Value: []byte("v1"), Headers: []kmsg.Header{{Key: "h", Value: []byte("x")}}},
		{Key: nil, Value: []byte("no key"), TimestampDelta64: 7},
		{Key: []byte("k3"), Value: bytes.Repeat([]byte{1}, 1000)},
	}
	b := NewBatch(recs, -1, 5, 9, testTime)

	rb, out, err := ParseBatch(b)
	require.NoError(t, err)
	assert.Equal(t, int8(2), rb.Magic)
	assert.Equal(t, int32(2), rb.LastOffsetDelta)
	assert.Equal(t, int32(3), rb.NumRecords)
	assert.Equal(t, testTime.UnixMilli(), rb.FirstTimestamp)
	assert.Equal(t, testTime.UnixMilli()+7, rb.MaxTimestamp)
	assert.Equal(t, int64(-1), rb.ProducerID, "non-idempotent batches carry producer id -1")
	assert.Equal(t, int16(-1), rb.ProducerEpoch)
	assert.Equal(t, int32(-1), rb.FirstSequence)
	require.Len(t, out, 3)
	for i, r := range out {
		assert.Equal(t, int32(i), r.OffsetDelta)
		assert.Equal(t, recs[i].Key, r.Key)
		assert.Equal(t, recs[i].Value, r.Value)
	}
	assert.Nil(t, out[1].Key)
	assert.Equal(t, int64(7), out[1].TimestampDelta64)
	require.Len(t, out[0].Headers, 1)
	assert.Equal(t, "h", out[0].Headers[0].Key)
	assert.Equal(t, []byte("x"), out[0].Headers[0].Value)

	// The CRC is what a Kafka client would compute.
	crc := crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli))
	assert.Equal(t, crc, binary.BigEndian.Uint32(b[17:]))
}

func TestParseBatchRejects(t *testing.T) {
	good := plainBatch(t, 3)
	tests := []struct {
		name   string
		mutate func([]byte) []byte
		code   transport.ErrorCode
	}{
		{"short", func(b []byte) []byte { return b[:40] }, transport.ErrCorruptBatch},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }, transport.ErrCorruptBatch},
		{"trailing bytes", func(b []byte) []byte { return append(b, 0) }, transport.ErrCorruptBatch},
		{"bad magic", func(b []byte) []byte { b[16] = 1; return b }, transport.ErrCorruptBatch},
		{"flipped record byte", func(b []byte) []byte { b[len(b)-3] ^= 0x40; return b }, transport.ErrCorruptBatch},
		{"flipped crc", func(b []byte) []byte { b[18] ^= 1; return b }, transport.ErrCorruptBatch},
		{"not really gzip", func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[21:], 1) // gzip
			binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
			return b
		}, transport.ErrCorruptBatch},
		{"unknown codec", func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[21:], 6)
			binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
			return b
		}, transport.ErrInvalidRequest},
		{"count mismatch", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[57:], 2)
			binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
			return b
		}, transport.ErrCorruptBatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseBatch(tc.mutate(bytes.Clone(good)))
			requireCode(t, err, tc.code)
		})
	}
	// Base offset and leader epoch are outside the CRC: changing them is fine.
	b := stored(good, 1234, 9)
	_, recs, err := ParseBatch(b)
	require.NoError(t, err)
	require.Len(t, recs, 3)
}

func TestNewBatchWithoutRecordsIsRejectedOnAppend(t *testing.T) {
	b := NewBatch(nil, -1, 0, 0, testTime)
	_, err := checkBatch(b)
	requireCode(t, err, transport.ErrCorruptBatch)
}
