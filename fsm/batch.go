package fsm

import (
	"encoding/binary"
	"hash/crc32"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/transport"
)

// Byte layout of a Kafka record batch v2 header (big endian). Base offset,
// length and partition leader epoch precede the CRC-covered bytes, so the
// log can rewrite them without recomputing the CRC.
const (
	offBaseOffset      = 0
	offLength          = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offNumRecords      = 57

	batchHeaderLen = 61
	// lengthPrefix is the bytes before the ones the Length field counts.
	lengthPrefix = 12
	// minBatchLength is the smallest valid value of the Length field.
	minBatchLength = batchHeaderLen - lengthPrefix

	compressionMask = 0x07
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// batchInfo is what the log and the partition FSM need from a batch header.
type batchInfo struct {
	baseOffset    int64
	count         int32 // records: LastOffsetDelta + 1
	maxTimestamp  int64
	producerID    int64
	producerEpoch int16
	baseSequence  int32
}

// checkBatch validates one complete batch (exactly len(b) bytes): length,
// magic, CRC-32C and record count. Errors are *transport.Error with
// ErrCorruptBatch so they can go back to a producer unchanged.
func checkBatch(b []byte) (batchInfo, error) {
	if len(b) < batchHeaderLen {
		return batchInfo{}, transport.Errorf(transport.ErrCorruptBatch, "batch of %d bytes is shorter than the %d-byte header", len(b), batchHeaderLen)
	}
	length := int32(binary.BigEndian.Uint32(b[offLength:]))
	if int64(length)+lengthPrefix != int64(len(b)) {
		return batchInfo{}, transport.Errorf(transport.ErrCorruptBatch, "batch length field %d does not match %d bytes received", length, len(b)-lengthPrefix)
	}
	if magic := int8(b[offMagic]); magic != 2 {
		return batchInfo{}, transport.Errorf(transport.ErrCorruptBatch, "unsupported batch magic %d (want 2)", magic)
	}
	want := binary.BigEndian.Uint32(b[offCRC:])
	if got := crc32.Checksum(b[offAttributes:], castagnoli); got != want {
		return batchInfo{}, transport.Errorf(transport.ErrCorruptBatch, "batch CRC mismatch: stored %#08x, computed %#08x", want, got)
	}
	lastDelta := int32(binary.BigEndian.Uint32(b[offLastOffsetDelta:]))
	if lastDelta < 0 || lastDelta == 1<<31-1 {
		return batchInfo{}, transport.Errorf(transport.ErrCorruptBatch, "batch has invalid last offset delta %d", lastDelta)
	}
	num := int32(binary.BigEndian.Uint32(b[offNumRecords:]))
	if num != lastDelta+1 {
		return batchInfo{}, transport.Errorf(transport.ErrCorruptBatch, "batch record count %d does not match last offset delta %d", num, lastDelta)
	}
	return batchInfo{
		baseOffset:    int64(binary.BigEndian.Uint64(b[offBaseOffset:])),
		count:         num,
		maxTimestamp:  int64(binary.BigEndian.Uint64(b[offMaxTimestamp:])),
		producerID:    int64(binary.BigEndian.Uint64(b[offProducerID:])),
		producerEpoch: int16(binary.BigEndian.Uint16(b[offProducerEpoch:])),
		baseSequence:  int32(binary.BigEndian.Uint32(b[offBaseSequence:])),
	}, nil
}

// NewBatch encodes records as one uncompressed Kafka record batch v2 with a
// valid CRC-32C. Records get offset deltas 0..n-1; their timestamp deltas are
// kept and counted from ts. The base offset is 0 and the leader epoch -1: the
// partition assigns both when it appends. A producerID < 0 means a
// non-idempotent producer (epoch and sequence are then written as -1).
// records must not be empty: a batch without records is rejected on append.
func NewBatch(records []kmsg.Record, producerID int64, producerEpoch int16, baseSequence int32, ts time.Time) []byte {
	first := ts.UnixMilli()
	maxTS := first
	var body, scratch []byte
	for i := range records {
		r := records[i]
		r.OffsetDelta = int32(i)
		d := r.TimestampDelta64
		if d == 0 {
			d = int64(r.TimestampDelta)
		}
		r.TimestampDelta64, r.TimestampDelta = d, int32(d)
		if first+d > maxTS || i == 0 {
			maxTS = first + d
		}
		// Encode with a zero length (one varint byte), then prefix the
		// real length of what follows it.
		r.Length = 0
		scratch = r.AppendTo(scratch[:0])
		body = binary.AppendVarint(body, int64(len(scratch)-1))
		body = append(body, scratch[1:]...)
	}
	if producerID < 0 {
		producerID, producerEpoch, baseSequence = -1, -1, -1
	}
	rb := kmsg.RecordBatch{
		FirstOffset:          0,
		Length:               int32(minBatchLength + len(body)),
		PartitionLeaderEpoch: -1,
		Magic:                2,
		LastOffsetDelta:      int32(len(records) - 1),
		FirstTimestamp:       first,
		MaxTimestamp:         maxTS,
		ProducerID:           producerID,
		ProducerEpoch:        producerEpoch,
		FirstSequence:        baseSequence,
		NumRecords:           int32(len(records)),
		Records:              body,
	}
	out := rb.AppendTo(make([]byte, 0, batchHeaderLen+len(body)))
	binary.BigEndian.PutUint32(out[offCRC:], crc32.Checksum(out[offAttributes:], castagnoli))
	return out
}

// ParseBatch validates one stored or produced batch (length, magic, CRC) and
// decodes its records. Only uncompressed batches are supported. The returned
// records' keys and values alias b.
func ParseBatch(b []byte) (kmsg.RecordBatch, []kmsg.Record, error) {
	var rb kmsg.RecordBatch
	info, err := checkBatch(b)
	if err != nil {
		return rb, nil, err
	}
	attrs := int16(binary.BigEndian.Uint16(b[offAttributes:]))
	if codec := attrs & compressionMask; codec != 0 {
		return rb, nil, transport.Errorf(transport.ErrInvalidRequest, "compressed batches are not supported (compression codec %d)", codec)
	}
	if err := rb.ReadFrom(b); err != nil {
		return rb, nil, transport.Errorf(transport.ErrCorruptBatch, "decode batch header: %v", err)
	}
	records := make([]kmsg.Record, 0, info.count)
	src := rb.Records
	for len(src) > 0 {
		l, n := binary.Varint(src)
		if n <= 0 || l < 0 || int64(n)+l > int64(len(src)) {
			return rb, nil, transport.Errorf(transport.ErrCorruptBatch, "record %d: invalid length", len(records))
		}
		var r kmsg.Record
		if err := r.ReadFrom(src[:int64(n)+l]); err != nil {
			return rb, nil, transport.Errorf(transport.ErrCorruptBatch, "record %d: %v", len(records), err)
		}
		records = append(records, r)
		src = src[int64(n)+l:]
	}
	if int32(len(records)) != info.count {
		return rb, nil, transport.Errorf(transport.ErrCorruptBatch, "batch declares %d records but holds %d", info.count, len(records))
	}
	return rb, records, nil
}
