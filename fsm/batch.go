package fsm

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/batch"
	"github.com/sluice-io/sluice/transport"
)

// Byte layout of a Kafka record batch v2 header, as the log uses it.
const (
	offBaseOffset  = batch.OffBaseOffset
	offLength      = batch.OffLength
	offLeaderEpoch = batch.OffLeaderEpoch
	offAttributes  = batch.OffAttributes

	batchHeaderLen = batch.HeaderLen
	lengthPrefix   = batch.LengthPrefix
	minBatchLength = batch.MinLength
)

// batchInfo is what the log and the partition FSM need from a batch header.
type batchInfo struct {
	baseOffset    int64
	count         int32 // records: LastOffsetDelta + 1
	length        int   // bytes of the batch
	crc           uint32
	attrs         batch.Attributes
	maxTimestamp  int64
	producerID    int64
	producerEpoch int16
	baseSequence  int32
}

func infoOf(h batch.Header) batchInfo {
	return batchInfo{
		baseOffset:    h.BaseOffset,
		count:         h.NumRecords,
		length:        int(h.Length) + lengthPrefix,
		crc:           h.CRC,
		attrs:         h.Attributes,
		maxTimestamp:  h.MaxTimestamp,
		producerID:    h.ProducerID,
		producerEpoch: h.ProducerEpoch,
		baseSequence:  h.BaseSequence,
	}
}

// batchError turns a batch codec error into the *transport.Error a
// producer gets back.
func batchError(err error) error {
	var te *transport.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &te):
		return err
	case errors.Is(err, batch.ErrTooLarge):
		return transport.Errorf(transport.ErrRecordTooLarge, "%v", err)
	case errors.Is(err, batch.ErrUnsupported):
		return transport.Errorf(transport.ErrInvalidRequest, "%v", err)
	default:
		return transport.Errorf(transport.ErrCorruptBatch, "%v", err)
	}
}

// checkBatch validates one complete batch in place (see batch.Validate):
// length, magic, CRC-32C, and the record count against LastOffsetDelta and
// the bytes present. Errors are *transport.Error.
func checkBatch(b []byte) (batchInfo, error) {
	h, err := batch.Validate(b)
	if err != nil {
		return batchInfo{}, batchError(err)
	}
	return infoOf(h), nil
}

// ValidateProduce checks a batch a native client produced before it enters
// the Raft log: every record is walked (compressed ones decompressed up to
// batch.DefaultMaxDecompressed), and control or transactional batches are
// refused since Sluice has no transactions. Errors are *transport.Error.
func ValidateProduce(b []byte) error {
	h, err := batch.Count(b, 0)
	if err != nil {
		return batchError(err)
	}
	return checkProduceAttrs(h.Attributes)
}

func checkProduceAttrs(a batch.Attributes) error {
	if a.Control() || a.Transactional() {
		return transport.Errorf(transport.ErrInvalidRequest, "transactional and control batches are not supported (attributes %#x)", int16(a))
	}
	return nil
}

// NewBatch encodes records as one uncompressed record batch; see
// batch.NewBatch.
//
// Deprecated: use batch.NewBatch.
func NewBatch(records []kmsg.Record, producerID int64, producerEpoch int16, baseSequence int32, ts time.Time) []byte {
	return batch.NewBatch(records, producerID, producerEpoch, baseSequence, ts)
}

// ParseBatch validates a batch and decodes its records into kmsg form. The
// records' keys and values alias b (or its decompressed body).
//
// Deprecated: use batch.Walk, which allocates nothing per record.
func ParseBatch(b []byte) (kmsg.RecordBatch, []kmsg.Record, error) {
	var rb kmsg.RecordBatch
	var records []kmsg.Record
	h, err := batch.Walk(b, 0, func(r batch.Record) error {
		kr := kmsg.Record{
			Attributes:       r.Attributes,
			TimestampDelta64: r.TimestampDelta,
			TimestampDelta:   int32(r.TimestampDelta),
			OffsetDelta:      r.OffsetDelta,
			Key:              r.Key,
			Value:            r.Value,
		}
		for k, v := range r.Headers() {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: string(k), Value: v})
		}
		records = append(records, kr)
		return nil
	})
	if err != nil {
		return rb, nil, batchError(err)
	}
	rb = kmsg.RecordBatch{
		FirstOffset:          h.BaseOffset,
		Length:               h.Length,
		PartitionLeaderEpoch: h.LeaderEpoch,
		Magic:                h.Magic,
		CRC:                  int32(h.CRC),
		Attributes:           int16(h.Attributes),
		LastOffsetDelta:      h.LastOffsetDelta,
		FirstTimestamp:       h.FirstTimestamp,
		MaxTimestamp:         h.MaxTimestamp,
		ProducerID:           h.ProducerID,
		ProducerEpoch:        h.ProducerEpoch,
		FirstSequence:        h.BaseSequence,
		NumRecords:           h.NumRecords,
		Records:              b[batchHeaderLen:],
	}
	return rb, records, nil
}
