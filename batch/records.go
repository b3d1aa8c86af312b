package batch

import (
	"encoding/binary"
	"iter"
)

// Record is one record of a batch. Key, Value and the header bytes alias
// the batch (or its decompressed body): copy them to keep them past the
// buffer's life. A nil Key or Value was encoded as null.
type Record struct {
	Attributes     int8
	TimestampDelta int64
	OffsetDelta    int32
	Key            []byte
	Value          []byte
	// NumHeaders is the number of headers; Headers iterates them.
	NumHeaders int
	headers    []byte // validated header bytes
}

// Headers yields each header's key and value (nil when null) in order.
func (r Record) Headers() iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		src := r.headers
		for range r.NumHeaders {
			var k, v []byte
			var ok bool
			// The bytes were validated by Walk, so these cannot fail.
			if k, src, ok = readBytes(src); !ok {
				return
			}
			if v, src, ok = readBytes(src); !ok {
				return
			}
			if !yield(k, v) {
				return
			}
		}
	}
}

// Walk validates b (see Validate), decompresses its records if needed (at
// most maxDecompressed bytes; <= 0 means DefaultMaxDecompressed) and calls
// fn for each record in order. It checks every record's framing, that offset
// deltas rise from 0 to LastOffsetDelta one by one, and that the batch holds
// exactly NumRecords records. An error from fn stops the walk and is
// returned as is.
func Walk(b []byte, maxDecompressed int, fn func(Record) error) (Header, error) {
	if maxDecompressed <= 0 {
		maxDecompressed = DefaultMaxDecompressed
	}
	h, err := validate(b, maxDecompressed)
	if err != nil {
		return h, err
	}
	body := b[HeaderLen:]
	if c := h.Attributes.Compression(); c != None {
		if body, err = Decompress(c, body, maxDecompressed); err != nil {
			return h, err
		}
		if int64(h.NumRecords) > int64(len(body))/MinRecordBytes {
			return h, corrupt("batch claims %d records but its %d decompressed bytes hold at most %d", h.NumRecords, len(body), len(body)/MinRecordBytes)
		}
	}
	return h, walkRecords(h, body, fn)
}

// Count walks b and returns its header; the records are checked, not kept.
func Count(b []byte, maxDecompressed int) (Header, error) {
	return Walk(b, maxDecompressed, func(Record) error { return nil })
}

func walkRecords(h Header, src []byte, fn func(Record) error) error {
	var n int32
	for len(src) > 0 {
		if n == h.NumRecords {
			return corrupt("%d bytes after the last of %d records", len(src), h.NumRecords)
		}
		l, k := binary.Varint(src)
		if k <= 0 || l < MinRecordBytes-1 || l > int64(len(src)-k) {
			return corrupt("record %d: invalid length", n)
		}
		rec := src[k : k+int(l)]
		src = src[k+int(l):]
		r, err := parseRecord(rec)
		if err != nil {
			return corrupt("record %d: %v", n, err)
		}
		if r.OffsetDelta != n {
			return corrupt("record %d has offset delta %d", n, r.OffsetDelta)
		}
		if err := fn(r); err != nil {
			return err
		}
		n++
	}
	if n != h.NumRecords {
		return corrupt("batch declares %d records but holds %d", h.NumRecords, n)
	}
	return nil
}

type recordError string

func (e recordError) Error() string { return string(e) }

// parseRecord decodes one record's fields (after its length), which must
// use every byte of rec.
func parseRecord(rec []byte) (Record, error) {
	var r Record
	if len(rec) < 1 {
		return r, recordError("no attributes")
	}
	r.Attributes = int8(rec[0])
	src := rec[1:]
	var ok bool
	var v int64
	if r.TimestampDelta, src, ok = readVarint(src); !ok {
		return r, recordError("bad timestamp delta")
	}
	if v, src, ok = readVarint(src); !ok || v < 0 || v > 1<<31-1 {
		return r, recordError("bad offset delta")
	}
	r.OffsetDelta = int32(v)
	if r.Key, src, ok = readBytes(src); !ok {
		return r, recordError("bad key")
	}
	if r.Value, src, ok = readBytes(src); !ok {
		return r, recordError("bad value")
	}
	if v, src, ok = readVarint(src); !ok || v < 0 || v > int64(len(src))/2 {
		return r, recordError("bad header count")
	}
	r.NumHeaders = int(v)
	r.headers = src
	for range r.NumHeaders {
		var key []byte
		if key, src, ok = readBytes(src); !ok || key == nil {
			return r, recordError("bad header key")
		}
		if _, src, ok = readBytes(src); !ok {
			return r, recordError("bad header value")
		}
	}
	if len(src) != 0 {
		return r, recordError("trailing bytes")
	}
	r.headers = r.headers[:len(r.headers)-len(src)]
	return r, nil
}

func readVarint(src []byte) (int64, []byte, bool) {
	v, n := binary.Varint(src)
	if n <= 0 {
		return 0, src, false
	}
	return v, src[n:], true
}

// readBytes reads a varint length (-1: null) and that many bytes.
func readBytes(src []byte) ([]byte, []byte, bool) {
	l, rest, ok := readVarint(src)
	if !ok || l < -1 || l > int64(len(rest)) {
		return nil, src, false
	}
	if l == -1 {
		return nil, rest, true
	}
	return rest[:l:l], rest[l:], true
}
