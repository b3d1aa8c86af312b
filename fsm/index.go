package fsm

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
)

// The offset index is dense: one fixed-size entry per stored batch, in
// offset order (which is also Raft index order). Entries are derived data:
// every field can be rebuilt by scanning the segment's frames, which is what
// OpenLog does when an index is missing, short or disagrees with its log.
//
// Entry layout (big endian, 40 bytes):
//
//	0  base offset of the batch   int64
//	8  frame position in .log     int64
//	16 Raft index of the batch    uint64
//	24 record count               uint32
//	28 frame size in bytes        uint32
//	32 batch max timestamp (ms)   int64
const indexEntrySize = 40

type indexEntry struct {
	offset       int64
	pos          int64
	raftIndex    uint64
	count        uint32
	size         uint32 // frame bytes, frame header included
	maxTimestamp int64
}

// next is the offset after the batch's last record.
func (e indexEntry) next() int64 { return e.offset + int64(e.count) }

// end is the file position after the frame.
func (e indexEntry) end() int64 { return e.pos + int64(e.size) }

// batchLen is the stored batch's size without the frame header.
func (e indexEntry) batchLen() int { return int(e.size) - frameHeaderLen }

func (e indexEntry) appendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.offset))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.pos))
	dst = binary.BigEndian.AppendUint64(dst, e.raftIndex)
	dst = binary.BigEndian.AppendUint32(dst, e.count)
	dst = binary.BigEndian.AppendUint32(dst, e.size)
	return binary.BigEndian.AppendUint64(dst, uint64(e.maxTimestamp))
}

func decodeIndexEntry(b []byte) indexEntry {
	return indexEntry{
		offset:       int64(binary.BigEndian.Uint64(b[0:])),
		pos:          int64(binary.BigEndian.Uint64(b[8:])),
		raftIndex:    binary.BigEndian.Uint64(b[16:]),
		count:        binary.BigEndian.Uint32(b[24:]),
		size:         binary.BigEndian.Uint32(b[28:]),
		maxTimestamp: int64(binary.BigEndian.Uint64(b[32:])),
	}
}

// readIndexEntries reads entries [from, to) of an index file.
func readIndexEntries(f *os.File, from, to int) ([]indexEntry, error) {
	if to <= from {
		return nil, nil
	}
	buf := make([]byte, (to-from)*indexEntrySize)
	if _, err := f.ReadAt(buf, int64(from)*indexEntrySize); err != nil {
		return nil, fmt.Errorf("read index %s entries [%d, %d): %w", f.Name(), from, to, err)
	}
	out := make([]indexEntry, to-from)
	for i := range out {
		out[i] = decodeIndexEntry(buf[i*indexEntrySize:])
	}
	return out, nil
}

// A frame is how a batch sits in a .log file: a 12-byte header, then the
// Kafka record batch bytes exactly as served.
//
//	0 Raft index of the entry that carried the batch   uint64
//	8 CRC-32C of bytes 0..8 and of the batch's first 21 bytes (base offset,
//	  length, leader epoch, magic, CRC)                 uint32
//
// The batch's own CRC covers attributes..end; the frame CRC covers what it
// leaves out, so every stored byte is checked and the Raft index of each
// batch survives the loss of the index file.
const frameHeaderLen = 12

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func frameCRC(frame []byte) uint32 {
	c := crc32.Update(0, castagnoli, frame[:8])
	return crc32.Update(c, castagnoli, frame[frameHeaderLen:frameHeaderLen+offAttributes])
}

// sealFrame fills in the frame header of frame (header space + batch).
func sealFrame(frame []byte, raftIndex uint64) {
	binary.BigEndian.PutUint64(frame[0:], raftIndex)
	binary.BigEndian.PutUint32(frame[8:], frameCRC(frame))
}

// checkFrame validates a complete frame and its batch.
func checkFrame(frame []byte) (raftIndex uint64, info batchInfo, err error) {
	if len(frame) < frameHeaderLen+batchHeaderLen {
		return 0, info, fmt.Errorf("frame of %d bytes is too short", len(frame))
	}
	if got, want := frameCRC(frame), binary.BigEndian.Uint32(frame[8:]); got != want {
		return 0, info, fmt.Errorf("frame header CRC mismatch: stored %#08x, computed %#08x", want, got)
	}
	info, err = checkBatch(frame[frameHeaderLen:])
	if err != nil {
		return 0, info, err
	}
	return binary.BigEndian.Uint64(frame), info, nil
}

// frameSizeFromPrefix returns the full frame size given at least the first
// frameHeaderLen+lengthPrefix bytes of a frame, or -1 if the length field is
// impossible.
func frameSizeFromPrefix(prefix []byte) int64 {
	length := int32(binary.BigEndian.Uint32(prefix[frameHeaderLen+offLength:]))
	if length < minBatchLength {
		return -1
	}
	return frameHeaderLen + lengthPrefix + int64(length)
}
