package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

// The state file records, on its own, what the segments alone cannot
// prove once retention has deleted them: the Raft index of the last batch
// known durable and the log's start offset. Without it a log whose sealed
// segments were all deleted and whose active segment is empty would report
// Raft index 0, and Raft would re-apply old entries at new offsets.
//
// Layout (big endian, 36 bytes), replaced atomically (write "state.tmp",
// fsync, rename, fsync the directory):
//
//	0  magic "SLUICEST"
//	8  version                      uint32 (1)
//	12 start offset                 int64
//	20 last durable Raft index      uint64
//	28 next offset when written     int64 (informational)
//	36 CRC-32C of bytes 0..36       uint32
//
// A directory written before the file existed is migrated on open: the
// values are derived from the segments (as before) and the file written.
const (
	stateFileName = "state"
	stateFileLen  = 40
	stateVersion  = 1
)

var stateMagic = [8]byte{'S', 'L', 'U', 'I', 'C', 'E', 'S', 'T'}

type logState struct {
	start    int64
	lastRaft uint64
	next     int64
}

func (s logState) encode() []byte {
	b := make([]byte, 0, stateFileLen)
	b = append(b, stateMagic[:]...)
	b = binary.BigEndian.AppendUint32(b, stateVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(s.start))
	b = binary.BigEndian.AppendUint64(b, s.lastRaft)
	b = binary.BigEndian.AppendUint64(b, uint64(s.next))
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// errCorruptState marks a state file that exists but fails its checks.
var errCorruptState = fmt.Errorf("%w: corrupt partition state file", ErrCorruptLog)

func decodeState(b []byte) (logState, error) {
	if len(b) != stateFileLen {
		return logState{}, fmt.Errorf("%w: %d bytes, want %d", errCorruptState, len(b), stateFileLen)
	}
	if [8]byte(b[:8]) != stateMagic {
		return logState{}, fmt.Errorf("%w: bad magic", errCorruptState)
	}
	if got, want := crc32.Checksum(b[:36], castagnoli), binary.BigEndian.Uint32(b[36:]); got != want {
		return logState{}, fmt.Errorf("%w: CRC mismatch (stored %#08x, computed %#08x)", errCorruptState, want, got)
	}
	if v := binary.BigEndian.Uint32(b[8:]); v != stateVersion {
		return logState{}, fmt.Errorf("partition state file version %d is not supported (this build writes %d)", v, stateVersion)
	}
	s := logState{
		start:    int64(binary.BigEndian.Uint64(b[12:])),
		lastRaft: binary.BigEndian.Uint64(b[20:]),
		next:     int64(binary.BigEndian.Uint64(b[28:])),
	}
	if s.start < 0 || s.next < s.start {
		return logState{}, fmt.Errorf("%w: offsets start %d, next %d", errCorruptState, s.start, s.next)
	}
	return s, nil
}

// readState returns the state file of dir; ok is false when there is none.
func readState(dir string) (logState, bool, error) {
	p := filepath.Join(dir, stateFileName)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return logState{}, false, nil
	}
	if err != nil {
		return logState{}, false, fmt.Errorf("read %s: %w", p, err)
	}
	s, err := decodeState(b)
	if err != nil {
		return logState{}, false, fmt.Errorf("%s: %w", p, err)
	}
	return s, true, nil
}

// writeState replaces dir's state file durably.
func writeState(dir string, s logState) error {
	p := filepath.Join(dir, stateFileName)
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write partition state: %w", err)
	}
	_, werr := f.Write(s.encode())
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, p)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("write partition state %s: %w", p, werr)
	}
	return syncDir(dir)
}
