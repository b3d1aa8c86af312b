package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/vmihailenco/msgpack/v5"
)

// Wire format of a client RPC frame:
//
//	uint32 big-endian length N | N bytes: one msgpack array
//	[id uint, method uint, kind uint, error (nil or Error map), body (any msgpack value)]
//
// The body is embedded as the raw msgpack value of the request or response,
// so it is encoded once and never copied into a bin string. Decoders skip
// array elements beyond the fifth, so fields can be appended later.

// DefaultMaxFrameBytes bounds a frame (length prefix excluded) when no other
// limit is configured.
const DefaultMaxFrameBytes = 64 << 20

// maxNesting bounds how deeply msgpack containers may nest inside a frame
// (the envelope counts as one level). The msgpack library skips unknown
// fields recursively, so an unbounded depth would let one frame exhaust the
// goroutine stack, which is a fatal error rather than a recoverable panic.
// Sluice's messages nest a few levels at most.
const maxNesting = 32

// frameFields is the number of envelope fields this version writes.
const frameFields = 5

// Frame errors. ReadFrame wraps them with detail; test with errors.Is.
var (
	ErrFrameTooLarge  = errors.New("frame too large")
	ErrMalformedFrame = errors.New("malformed frame")
)

// FrameKind tells requests from responses.
type FrameKind uint8

const (
	KindRequest  FrameKind = 1
	KindResponse FrameKind = 2
)

func (k FrameKind) String() string {
	switch k {
	case KindRequest:
		return "request"
	case KindResponse:
		return "response"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Frame is one client RPC message.
type Frame struct {
	// ID correlates a response with its request on one connection.
	ID     uint64
	Method Method
	Kind   FrameKind
	// Err is set on a response whose call failed; Body is then meaningless.
	Err *Error
	// Body is exactly one msgpack value: the encoded request or response.
	// Empty means msgpack nil.
	Body []byte
}

// WriteFrame encodes f and writes it to w in a single Write call, so that
// writers serialised by a mutex never interleave partial frames. It does
// not enforce a size limit; see appendFrame's callers for that.
func WriteFrame(w io.Writer, f Frame) error {
	buf, err := appendFrame(nil, f)
	if err != nil {
		return err
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("transport: write frame: %w", err)
	}
	return nil
}

// appendFrame appends the wire encoding of f (length prefix included) to dst.
func appendFrame(dst []byte, f Frame) ([]byte, error) {
	if len(f.Body) > 0 {
		// Catch a bad body here rather than have the peer drop the whole
		// connection when it fails to decode the frame.
		end, err := valueEnd(f.Body, maxNesting-1)
		if err != nil {
			return nil, fmt.Errorf("transport: frame body: %w", err)
		}
		if end != len(f.Body) {
			return nil, fmt.Errorf("transport: frame body: %d trailing bytes after msgpack value", len(f.Body)-end)
		}
	}

	// Room for the body plus a typical envelope, so large bodies are copied once.
	dst = slices.Grow(dst, 4+32+len(f.Body))
	buf := bytes.NewBuffer(dst)
	start := buf.Len()
	buf.Write([]byte{0, 0, 0, 0}) // length, patched below

	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(buf)
	// Writes to a bytes.Buffer cannot fail; only Encode(f.Err) could, and
	// *Error is a plain struct.
	_ = enc.EncodeArrayLen(frameFields)
	_ = enc.EncodeUint(f.ID)
	_ = enc.EncodeUint(uint64(f.Method))
	_ = enc.EncodeUint(uint64(f.Kind))
	if f.Err == nil {
		_ = enc.EncodeNil()
	} else if err := enc.Encode(f.Err); err != nil {
		return nil, fmt.Errorf("transport: encode frame error: %w", err)
	}
	if len(f.Body) == 0 {
		_ = enc.EncodeNil()
	} else {
		buf.Write(f.Body)
	}

	out := buf.Bytes()
	n := len(out) - start - 4
	if n > math.MaxUint32 {
		return nil, fmt.Errorf("transport: %w: %d bytes", ErrFrameTooLarge, n)
	}
	binary.BigEndian.PutUint32(out[start:], uint32(n))
	return out, nil
}

// ReadFrame reads one frame from r. max bounds the frame's length (prefix
// excluded); max <= 0 means DefaultMaxFrameBytes. It returns io.EOF, unwrapped,
// when r ends cleanly between frames; oversized and undecodable frames give
// errors wrapping ErrFrameTooLarge and ErrMalformedFrame. After any error
// the stream is out of sync and must be closed.
func ReadFrame(r *bufio.Reader, max int) (Frame, error) {
	if max <= 0 {
		max = DefaultMaxFrameBytes
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return Frame{}, io.EOF
		}
		return Frame{}, fmt.Errorf("transport: read frame length: %w", err)
	}
	n, err := checkFrameLen(hdr, max)
	if err != nil {
		return Frame{}, err
	}
	return readFrameBody(r, n)
}

// readFrameLen reads a frame's length prefix and checks it against max,
// before anything is allocated for the frame.
func readFrameLen(r io.Reader, max int) (int, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, fmt.Errorf("transport: read frame length: %w", err)
	}
	return checkFrameLen(hdr, max)
}

func checkFrameLen(hdr [4]byte, max int) (int, error) {
	n := uint64(binary.BigEndian.Uint32(hdr[:]))
	if n > uint64(max) {
		return 0, fmt.Errorf("transport: %w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	if n == 0 {
		return 0, fmt.Errorf("transport: %w: empty frame", ErrMalformedFrame)
	}
	return int(n), nil
}

// readFrameBody reads and decodes a frame body of n bytes.
func readFrameBody(r io.Reader, n int) (Frame, error) {
	buf, err := readN(r, n)
	if err != nil {
		return Frame{}, fmt.Errorf("transport: read frame body: %w", err)
	}
	f, err := decodeFrame(buf)
	if err != nil {
		return Frame{}, fmt.Errorf("transport: %w: %w", ErrMalformedFrame, err)
	}
	return f, nil
}

// readN reads exactly n bytes. Large frames are read in growing chunks so
// that a peer cannot make us allocate max bytes by sending a length prefix
// alone.
func readN(r io.Reader, n int) ([]byte, error) {
	const chunk = 1 << 20
	if n <= chunk {
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, noEOF(err)
		}
		return buf, nil
	}
	buf := make([]byte, 0, chunk)
	for len(buf) < n {
		// Double the buffer at most, and only as data actually arrives.
		k := min(n-len(buf), max(len(buf), chunk))
		buf = slices.Grow(buf, k)
		m, err := io.ReadFull(r, buf[len(buf):len(buf)+k])
		buf = buf[:len(buf)+m]
		if err != nil {
			return nil, noEOF(err)
		}
	}
	return buf, nil
}

// noEOF turns a clean EOF inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decodeFrame decodes a frame body (length prefix already stripped).
func decodeFrame(buf []byte) (Frame, error) {
	// Validate the whole structure and its nesting depth first, so that the
	// library decoder below never recurses deeper than maxNesting.
	end, err := valueEnd(buf, maxNesting)
	if err != nil {
		return Frame{}, err
	}
	if end != len(buf) {
		return Frame{}, fmt.Errorf("%d trailing bytes", len(buf)-end)
	}

	rd := bytes.NewReader(buf)
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	// bytes.Reader is an io.ByteScanner, so the decoder reads it directly
	// without buffering and rd.Len() tracks the decoder's position.
	dec.Reset(rd)

	n, err := dec.DecodeArrayLen()
	if err != nil {
		return Frame{}, fmt.Errorf("envelope: %w", err)
	}
	if n < frameFields {
		return Frame{}, fmt.Errorf("envelope has %d fields, want at least %d", n, frameFields)
	}
	var f Frame
	if f.ID, err = dec.DecodeUint64(); err != nil {
		return Frame{}, fmt.Errorf("id: %w", err)
	}
	method, err := dec.DecodeUint64()
	if err != nil || method > math.MaxUint8 {
		return Frame{}, fmt.Errorf("method %d: %v", method, err)
	}
	f.Method = Method(method)
	kind, err := dec.DecodeUint64()
	if err != nil {
		return Frame{}, fmt.Errorf("kind: %w", err)
	}
	f.Kind = FrameKind(kind)
	if kind > math.MaxUint8 || (f.Kind != KindRequest && f.Kind != KindResponse) {
		return Frame{}, fmt.Errorf("unknown frame kind %d", kind)
	}
	code, err := dec.PeekCode()
	if err != nil {
		return Frame{}, fmt.Errorf("error field: %w", err)
	}
	if code == nilCode {
		_ = dec.DecodeNil()
	} else {
		f.Err = new(Error)
		if err := dec.Decode(f.Err); err != nil {
			return Frame{}, fmt.Errorf("error field: %w", err)
		}
	}
	// The body is already validated: slice it out of buf without copying.
	off := len(buf) - rd.Len()
	bodyLen, _ := valueEnd(buf[off:], maxNesting)
	f.Body = buf[off : off+bodyLen : off+bodyLen]
	// Later fields, if any, are from a newer version; they are already
	// validated and the array ends the frame, so nothing more to read.
	return f, nil
}

// msgpack type codes used by valueEnd.
const (
	nilCode = 0xc0
)

// valueEnd returns the length of the single msgpack value at the start of
// b, checking that it is well formed, complete and nests containers at most
// depth levels deep. It works iteratively, so hostile input cannot exhaust
// the stack.
func valueEnd(b []byte, depth int) (int, error) {
	pos := 0
	// left[i] counts the values still to read in the i-th open container;
	// the implicit outermost "container" holds the one value we want.
	left := make([]uint64, 1, 8)
	left[0] = 1
	for {
		top := len(left) - 1
		if left[top] == 0 {
			if top == 0 {
				return pos, nil
			}
			left = left[:top]
			continue
		}
		left[top]--
		if pos >= len(b) {
			return 0, io.ErrUnexpectedEOF
		}
		c := b[pos]
		pos++

		var (
			payload uint64 // bytes to skip after the header
			items   uint64 // values inside a container
			isCont  bool
			lenSize int // size of a length field following c
		)
		switch {
		case c <= 0x7f, c >= 0xe0: // positive / negative fixint
		case c <= 0x8f: // fixmap
			items, isCont = 2*uint64(c&0x0f), true
		case c <= 0x9f: // fixarray
			items, isCont = uint64(c&0x0f), true
		case c <= 0xbf: // fixstr
			payload = uint64(c & 0x1f)
		default:
			switch c {
			case 0xc0, 0xc2, 0xc3: // nil, false, true
			case 0xc4, 0xd9: // bin8, str8
				lenSize = 1
			case 0xc5, 0xda: // bin16, str16
				lenSize = 2
			case 0xc6, 0xdb: // bin32, str32
				lenSize = 4
			case 0xc7: // ext8: length, type, data
				lenSize, payload = 1, 1
			case 0xc8: // ext16
				lenSize, payload = 2, 1
			case 0xc9: // ext32
				lenSize, payload = 4, 1
			case 0xca: // float32
				payload = 4
			case 0xcb: // float64
				payload = 8
			case 0xcc, 0xd0: // uint8, int8
				payload = 1
			case 0xcd, 0xd1: // uint16, int16
				payload = 2
			case 0xce, 0xd2: // uint32, int32
				payload = 4
			case 0xcf, 0xd3: // uint64, int64
				payload = 8
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16
				payload = 1 + 1<<(c-0xd4)
			case 0xdc, 0xde: // array16, map16
				lenSize, isCont = 2, true
			case 0xdd, 0xdf: // array32, map32
				lenSize, isCont = 4, true
			default: // 0xc1 is never used
				return 0, fmt.Errorf("invalid msgpack code 0x%02x at %d", c, pos-1)
			}
		}
		if lenSize > 0 {
			if len(b)-pos < lenSize {
				return 0, io.ErrUnexpectedEOF
			}
			var n uint64
			for _, x := range b[pos : pos+lenSize] {
				n = n<<8 | uint64(x)
			}
			pos += lenSize
			if isCont {
				items = n
				if c == 0xde || c == 0xdf {
					items *= 2
				}
			} else {
				payload += n
			}
		}
		if payload > uint64(len(b)-pos) {
			return 0, io.ErrUnexpectedEOF
		}
		pos += int(payload)
		if isCont && items > 0 {
			// Every item takes at least one byte: reject impossible counts
			// early instead of walking to the end.
			if items > uint64(len(b)-pos) {
				return 0, io.ErrUnexpectedEOF
			}
			if len(left) > depth {
				return 0, fmt.Errorf("msgpack nesting deeper than %d", depth)
			}
			left = append(left, items)
		}
	}
}
