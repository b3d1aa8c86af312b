package channel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/sluice-io/sluice/agent/flow"
)

// WAL record framing (see ARCHITECTURE.md, "File channel"):
//
//	u32 length of payload (big endian) | u32 CRC-32C of payload | payload
//	payload = uvarint #puts, #puts × (uvarint id, event),
//	          uvarint #takes, #takes × uvarint id
//	event   = uvarint #headers, #headers × (uvarint len, key, uvarint len, value),
//	          uvarint len, body
//
// One record is one committed transaction, so a commit is atomic: a
// record whose CRC does not match was never acknowledged (torn tail) or
// the file is damaged (corruption), and replay tells the two apart.

const (
	recordHeader = 8
	// maxRecordBytes bounds a forged length before anything is allocated.
	maxRecordBytes = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	// errShort: the buffer ends inside the record (a torn write at the
	// tail of a log).
	errShort = errors.New("record runs past the end of the file")
	// errCorrupt: the record is complete but wrong.
	errCorrupt = errors.New("corrupt record")
)

type walRecord struct {
	puts  []item
	takes []uint64
}

func appendEvent(b []byte, ev flow.Event) []byte {
	b = binary.AppendUvarint(b, uint64(len(ev.Headers)))
	for k, v := range ev.Headers {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	b = binary.AppendUvarint(b, uint64(len(ev.Body)))
	return append(b, ev.Body...)
}

// encodeRecord appends the framed record of one transaction to b.
func encodeRecord(b []byte, puts []item, takes []item) []byte {
	start := len(b)
	b = append(b, make([]byte, recordHeader)...)
	b = binary.AppendUvarint(b, uint64(len(puts)))
	for _, it := range puts {
		b = binary.AppendUvarint(b, it.id)
		b = appendEvent(b, it.ev)
	}
	b = binary.AppendUvarint(b, uint64(len(takes)))
	for _, it := range takes {
		b = binary.AppendUvarint(b, it.id)
	}
	payload := b[start+recordHeader:]
	binary.BigEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(payload, castagnoli))
	return b
}

// decodeRecord decodes the record at the start of b and returns its
// framed size. It never panics and never allocates more than b's size
// warrants, whatever the bytes.
func decodeRecord(b []byte) (walRecord, int, error) {
	if len(b) < recordHeader {
		return walRecord{}, 0, errShort
	}
	n := binary.BigEndian.Uint32(b)
	if n == 0 || n > maxRecordBytes {
		return walRecord{}, 0, fmt.Errorf("%w: length %d", errCorrupt, n)
	}
	if uint64(len(b)-recordHeader) < uint64(n) {
		return walRecord{}, 0, errShort
	}
	payload := b[recordHeader : recordHeader+int(n)]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return walRecord{}, 0, fmt.Errorf("%w: checksum mismatch", errCorrupt)
	}
	rec, err := decodePayload(payload)
	if err != nil {
		return walRecord{}, 0, err
	}
	return rec, recordHeader + int(n), nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: bad varint", errCorrupt)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a count of items that need at least min bytes each.
func (r *reader) count(min int) int {
	v := r.uvarint()
	if r.err == nil && v > uint64(len(r.b)/min) {
		r.err = fmt.Errorf("%w: count %d exceeds the record", errCorrupt, v)
		return 0
	}
	return int(v)
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: length %d exceeds the record", errCorrupt, n)
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) event() flow.Event {
	var ev flow.Event
	nh := r.count(2)
	if nh > 0 {
		ev.Headers = make(map[string]string, nh)
	}
	for i := 0; i < nh && r.err == nil; i++ {
		k := r.bytes()
		v := r.bytes()
		ev.Headers[string(k)] = string(v)
	}
	if body := r.bytes(); r.err == nil {
		ev.Body = append([]byte(nil), body...)
	}
	return ev
}

func decodePayload(p []byte) (walRecord, error) {
	r := &reader{b: p}
	var rec walRecord
	np := r.count(2)
	if np > 0 {
		rec.puts = make([]item, 0, np)
	}
	for i := 0; i < np && r.err == nil; i++ {
		id := r.uvarint()
		ev := r.event()
		rec.puts = append(rec.puts, item{id: id, ev: ev})
	}
	nt := r.count(1)
	if nt > 0 && r.err == nil {
		rec.takes = make([]uint64, 0, nt)
	}
	for i := 0; i < nt && r.err == nil; i++ {
		rec.takes = append(rec.takes, r.uvarint())
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(r.b))
	}
	if r.err != nil {
		return walRecord{}, r.err
	}
	return rec, nil
}
