package batch

import (
	"encoding/binary"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Options say how Build encodes a batch.
type Options struct {
	// ProducerID < 0 means a non-idempotent producer: epoch and sequence
	// are then written as -1.
	ProducerID    int64
	ProducerEpoch int16
	BaseSequence  int32
	// Timestamp is the first timestamp; record timestamp deltas count from it.
	Timestamp time.Time
	// Compress compresses the records with this codec (None by default).
	Compress Compression
}

// NewBatch encodes records as one uncompressed record batch v2 with a valid
// CRC-32C. Records get offset deltas 0..n-1; their timestamp deltas are kept
// and counted from ts. The base offset is 0 and the leader epoch -1: the
// partition assigns both when it appends. records must not be empty: a
// batch without records is rejected on append.
func NewBatch(records []kmsg.Record, producerID int64, producerEpoch int16, baseSequence int32, ts time.Time) []byte {
	b, _ := Build(records, Options{ProducerID: producerID, ProducerEpoch: producerEpoch, BaseSequence: baseSequence, Timestamp: ts})
	return b // uncompressed encoding cannot fail
}

// recordOverhead bounds a record's encoding besides its key, value and
// headers: length, attributes, timestamp and offset deltas, key and value
// lengths, header count.
const recordOverhead = 1 + 4*binary.MaxVarintLen32 + 2*binary.MaxVarintLen64

// Build encodes records as one record batch v2 per o.
func Build(records []kmsg.Record, o Options) ([]byte, error) {
	first := o.Timestamp.UnixMilli()
	maxTS := first
	// Size the body once: growing it by appends copied a large batch
	// several times over.
	est := 0
	for i := range records {
		r := &records[i]
		est += recordOverhead + len(r.Key) + len(r.Value)
		for _, h := range r.Headers {
			est += 2*binary.MaxVarintLen32 + len(h.Key) + len(h.Value)
		}
	}
	body := make([]byte, 0, est)
	var scratch []byte
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
	var attrs int16
	if o.Compress != None {
		c, err := compress(o.Compress, body)
		if err != nil {
			return nil, err
		}
		body, attrs = c, int16(o.Compress)
	}
	pid, epoch, seq := o.ProducerID, o.ProducerEpoch, o.BaseSequence
	if pid < 0 {
		pid, epoch, seq = -1, -1, -1
	}
	rb := kmsg.RecordBatch{
		FirstOffset:          0,
		Length:               int32(MinLength + len(body)),
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           attrs,
		LastOffsetDelta:      int32(len(records) - 1),
		FirstTimestamp:       first,
		MaxTimestamp:         maxTS,
		ProducerID:           pid,
		ProducerEpoch:        epoch,
		FirstSequence:        seq,
		NumRecords:           int32(len(records)),
		Records:              body,
	}
	out := rb.AppendTo(make([]byte, 0, HeaderLen+len(body)))
	binary.BigEndian.PutUint32(out[OffCRC:], Checksum(out))
	return out, nil
}
