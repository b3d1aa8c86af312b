package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// xerialMagic starts the framing the Java client's snappy-java writes: a
// 16-byte header (magic and two versions), then blocks each preceded by a
// 4-byte big-endian length.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderLen = 16

// Decompress returns the records of a batch compressed with c, refusing
// (with ErrTooLarge) to produce more than max bytes. It never allocates more
// than the bytes it has actually decoded, plus max+1 at worst for streams.
func Decompress(c Compression, src []byte, max int) ([]byte, error) {
	var out []byte
	var err error
	switch c {
	case None:
		return src, nil
	case Gzip:
		var r *gzip.Reader
		if r, err = gzip.NewReader(bytes.NewReader(src)); err == nil {
			out, err = readBounded(r, max)
		}
	case Snappy:
		out, err = decodeSnappy(src, max)
	case LZ4:
		out, err = readBounded(lz4.NewReader(bytes.NewReader(src)), max)
	case Zstd:
		var d *zstd.Decoder
		d, err = zstd.NewReader(bytes.NewReader(src), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(max)+1))
		if err == nil {
			out, err = readBounded(d, max)
			d.Close()
		}
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			err = fmt.Errorf("%w: %s records exceed %d bytes", ErrTooLarge, c, max)
		}
	default:
		return nil, fmt.Errorf("%w: compression codec %d", ErrUnsupported, c)
	}
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, err
		}
		return nil, corrupt("decompress %s records: %v", c, err)
	}
	return out, nil
}

// readBounded reads r to its end, failing once it yields more than max.
func readBounded(r io.Reader, max int) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(out) > max {
		return nil, fmt.Errorf("%w: records exceed %d bytes", ErrTooLarge, max)
	}
	return out, nil
}

// decodeSnappy handles both raw snappy blocks and xerial framing; each
// block's decoded length is checked before anything is allocated for it.
func decodeSnappy(src []byte, max int) ([]byte, error) {
	if !bytes.HasPrefix(src, xerialMagic) {
		n, err := snappy.DecodedLen(src)
		if err != nil {
			return nil, err
		}
		if n > max {
			return nil, fmt.Errorf("%w: snappy records of %d bytes exceed %d", ErrTooLarge, n, max)
		}
		return snappy.Decode(make([]byte, n), src)
	}
	if len(src) < xerialHeaderLen {
		return nil, errors.New("truncated xerial snappy header")
	}
	// First pass: sizes only, so a forged block length costs nothing.
	total := 0
	for rest := src[xerialHeaderLen:]; len(rest) > 0; {
		block, next, err := xerialBlock(rest)
		if err != nil {
			return nil, err
		}
		n, err := snappy.DecodedLen(block)
		if err != nil {
			return nil, err
		}
		if total += n; total > max {
			return nil, fmt.Errorf("%w: snappy records exceed %d bytes", ErrTooLarge, max)
		}
		rest = next
	}
	out := make([]byte, 0, total)
	for rest := src[xerialHeaderLen:]; len(rest) > 0; {
		block, next, _ := xerialBlock(rest)
		n, _ := snappy.DecodedLen(block)
		d, err := snappy.Decode(out[len(out):len(out)+n], block)
		if err != nil {
			return nil, err
		}
		out = out[:len(out)+len(d)]
		rest = next
	}
	return out, nil
}

func xerialBlock(src []byte) (block, rest []byte, err error) {
	if len(src) < 4 {
		return nil, nil, errors.New("truncated xerial block length")
	}
	n := binary.BigEndian.Uint32(src)
	if uint64(n) > uint64(len(src)-4) {
		return nil, nil, fmt.Errorf("xerial block of %d bytes, %d present", n, len(src)-4)
	}
	return src[4 : 4+n], src[4+n:], nil
}

// compress encodes records with c (raw snappy blocks, lz4 frames).
func compress(c Compression, src []byte) ([]byte, error) {
	var buf bytes.Buffer
	var w io.WriteCloser
	switch c {
	case None:
		return src, nil
	case Snappy:
		return snappy.Encode(nil, src), nil
	case Gzip:
		w = gzip.NewWriter(&buf)
	case LZ4:
		w = lz4.NewWriter(&buf)
	case Zstd:
		e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		defer e.Close()
		return e.EncodeAll(src, nil), nil
	default:
		return nil, fmt.Errorf("%w: compression codec %d", ErrUnsupported, c)
	}
	if _, err := w.Write(src); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
