package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Byte layout of a record batch v2 header (big endian). Base offset, length
// and partition leader epoch precede the CRC-covered bytes, so a log can
// rewrite them without recomputing the CRC.
const (
	OffBaseOffset      = 0
	OffLength          = 8
	OffLeaderEpoch     = 12
	OffMagic           = 16
	OffCRC             = 17
	OffAttributes      = 21
	OffLastOffsetDelta = 23
	OffFirstTimestamp  = 27
	OffMaxTimestamp    = 35
	OffProducerID      = 43
	OffProducerEpoch   = 51
	OffBaseSequence    = 53
	OffNumRecords      = 57

	// HeaderLen is the size of the header before the records.
	HeaderLen = 61
	// LengthPrefix is the bytes before the ones the Length field counts.
	LengthPrefix = 12
	// MinLength is the smallest valid value of the Length field.
	MinLength = HeaderLen - LengthPrefix
	// MinRecordBytes is the smallest encoded record: length, attributes,
	// timestamp delta, offset delta, key length, value length and header
	// count, one byte each.
	MinRecordBytes = 7
	// DefaultMaxDecompressed bounds the records of a compressed batch once
	// decompressed, when the caller gives no bound of its own.
	DefaultMaxDecompressed = 64 << 20
)

// Errors every failure wraps, so callers can map them to their own codes.
var (
	// ErrCorrupt: the bytes are not a well-formed record batch.
	ErrCorrupt = errors.New("corrupt record batch")
	// ErrUnsupported: a well-formed batch this codec cannot handle
	// (another magic, an unknown compression codec).
	ErrUnsupported = errors.New("unsupported record batch")
	// ErrTooLarge: the records decompress to more than the allowed bytes.
	ErrTooLarge = errors.New("record batch too large once decompressed")
)

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum is the CRC-32C Kafka stores at OffCRC, over attributes..end.
func Checksum(b []byte) uint32 { return crc32.Checksum(b[OffAttributes:], castagnoli) }

// Compression is the codec in the low three attribute bits.
type Compression int8

// Compression codecs of Kafka's record batch attributes.
const (
	None   Compression = 0
	Gzip   Compression = 1
	Snappy Compression = 2
	LZ4    Compression = 3
	Zstd   Compression = 4
)

func (c Compression) String() string {
	switch c {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case Snappy:
		return "snappy"
	case LZ4:
		return "lz4"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("compression(%d)", int8(c))
}

// Attribute bits of a record batch.
const (
	AttrCompressionMask = 0x07
	AttrLogAppendTime   = 0x08
	AttrTransactional   = 0x10
	AttrControl         = 0x20
)

// Attributes are a batch's attribute bits.
type Attributes int16

// Compression is the batch's compression codec.
func (a Attributes) Compression() Compression { return Compression(a & AttrCompressionMask) }

// LogAppendTime reports whether timestamps are the broker's append time
// (MaxTimestamp) rather than the producer's create time.
func (a Attributes) LogAppendTime() bool { return a&AttrLogAppendTime != 0 }

// Transactional reports whether the batch belongs to a transaction.
func (a Attributes) Transactional() bool { return a&AttrTransactional != 0 }

// Control reports whether the batch is a control batch (transaction
// markers), which carries no user records.
func (a Attributes) Control() bool { return a&AttrControl != 0 }

// Header is a decoded record batch header.
type Header struct {
	BaseOffset      int64
	Length          int32
	LeaderEpoch     int32
	Magic           int8
	CRC             uint32
	Attributes      Attributes
	LastOffsetDelta int32
	FirstTimestamp  int64
	MaxTimestamp    int64
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	NumRecords      int32
}

// Records is the number of offsets the batch covers (LastOffsetDelta+1).
func (h Header) Records() int32 { return h.LastOffsetDelta + 1 }

// NextOffset is the offset after the batch's last record.
func (h Header) NextOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) + 1 }

// ParseHeader decodes the fixed header of b without any check beyond its
// length.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, corrupt("batch of %d bytes is shorter than the %d-byte header", len(b), HeaderLen)
	}
	be := binary.BigEndian
	return Header{
		BaseOffset:      int64(be.Uint64(b[OffBaseOffset:])),
		Length:          int32(be.Uint32(b[OffLength:])),
		LeaderEpoch:     int32(be.Uint32(b[OffLeaderEpoch:])),
		Magic:           int8(b[OffMagic]),
		CRC:             be.Uint32(b[OffCRC:]),
		Attributes:      Attributes(be.Uint16(b[OffAttributes:])),
		LastOffsetDelta: int32(be.Uint32(b[OffLastOffsetDelta:])),
		FirstTimestamp:  int64(be.Uint64(b[OffFirstTimestamp:])),
		MaxTimestamp:    int64(be.Uint64(b[OffMaxTimestamp:])),
		ProducerID:      int64(be.Uint64(b[OffProducerID:])),
		ProducerEpoch:   int16(be.Uint16(b[OffProducerEpoch:])),
		BaseSequence:    int32(be.Uint32(b[OffBaseSequence:])),
		NumRecords:      int32(be.Uint32(b[OffNumRecords:])),
	}, nil
}

// Size returns the full size of the batch starting at b (from its length
// field), or an error if fewer than LengthPrefix bytes are given or the
// length is impossible. It does not check that the bytes are present.
func Size(b []byte) (int64, error) {
	if len(b) < LengthPrefix {
		return 0, corrupt("%d bytes cannot hold a batch length", len(b))
	}
	length := int32(binary.BigEndian.Uint32(b[OffLength:]))
	if length < MinLength {
		return 0, corrupt("batch length field %d is below the minimum %d", length, MinLength)
	}
	return LengthPrefix + int64(length), nil
}

// Validate checks one complete batch (exactly len(b) bytes) in place: the
// length field, magic 2, CRC-32C, the record count against LastOffsetDelta,
// and the count against the bytes present. For a compressed batch the count
// is bounded by what DefaultMaxDecompressed bytes could hold; Walk checks
// the real records. It does not allocate.
func Validate(b []byte) (Header, error) {
	return validate(b, DefaultMaxDecompressed)
}

func validate(b []byte, maxDecompressed int) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if int64(h.Length)+LengthPrefix != int64(len(b)) {
		return h, corrupt("batch length field %d does not match the %d bytes present", h.Length, len(b)-LengthPrefix)
	}
	if h.Magic != 2 {
		return h, corrupt("batch magic %d (want 2)", h.Magic)
	}
	if got := Checksum(b); got != h.CRC {
		return h, corrupt("batch CRC mismatch: stored %#08x, computed %#08x", h.CRC, got)
	}
	if h.LastOffsetDelta < 0 || h.LastOffsetDelta == 1<<31-1 {
		return h, corrupt("invalid last offset delta %d", h.LastOffsetDelta)
	}
	if h.NumRecords != h.LastOffsetDelta+1 {
		return h, corrupt("record count %d does not match last offset delta %d", h.NumRecords, h.LastOffsetDelta)
	}
	body := len(b) - HeaderLen
	if c := h.Attributes.Compression(); c == None {
		if int64(h.NumRecords) > int64(body)/MinRecordBytes {
			return h, corrupt("batch claims %d records but its %d bytes hold at most %d", h.NumRecords, body, body/MinRecordBytes)
		}
	} else {
		if c > Zstd {
			return h, fmt.Errorf("%w: compression codec %d", ErrUnsupported, c)
		}
		if int64(h.NumRecords) > int64(maxDecompressed)/MinRecordBytes {
			return h, corrupt("compressed batch claims %d records, more than %d decompressed bytes can hold", h.NumRecords, maxDecompressed)
		}
	}
	return h, nil
}
