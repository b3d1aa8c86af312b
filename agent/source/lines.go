package source

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// readLines reads up to maxLines lines of f from offset off and returns
// them (EOL removed) with the offset just past the last one. A line longer
// than maxLine (> 0) is cut into pieces of maxLine bytes, none lost. At
// the end of the data a line without EOL is returned only when final
// (the file is complete); otherwise it waits for its newline, so a writer
// caught mid-line is never split.
func readLines(f io.ReaderAt, off int64, maxLines, maxLine int, final bool) ([][]byte, int64, error) {
	var (
		lines   [][]byte
		pending []byte
		pos     = off
		readAt  = off
		buf     = make([]byte, 64<<10)
	)
	emit := func(b []byte, consumed int) {
		lines = append(lines, bytes.Clone(bytes.TrimSuffix(b, []byte("\r"))))
		pos += int64(consumed)
	}
	for len(lines) < maxLines {
		n, err := f.ReadAt(buf, readAt)
		readAt += int64(n)
		data := buf[:n]
		for len(data) > 0 && len(lines) < maxLines {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				pending = append(pending, data...)
				data = nil
			} else {
				pending = append(pending, data[:i]...)
				data = data[i+1:]
			}
			for maxLine > 0 && len(pending) > maxLine && len(lines) < maxLines {
				emit(pending[:maxLine], maxLine)
				pending = pending[maxLine:]
			}
			if i >= 0 && len(lines) < maxLines {
				emit(pending, len(pending)+1)
				pending = nil
			} else if i >= 0 {
				// Batch full in the middle of a cut line: resume at pos.
				return lines, pos, nil
			}
		}
		if err == io.EOF || (err == nil && n == 0) {
			if final && len(pending) > 0 && len(lines) < maxLines {
				emit(pending, len(pending))
			}
			return lines, pos, nil
		}
		if err != nil {
			return lines, pos, err
		}
	}
	return lines, pos, nil
}

// fileID is what identifies a file across renames: its inode (and
// device).
type fileID struct {
	Dev   uint64 `json:"dev"`
	Inode uint64 `json:"inode"`
}

func idOf(fi os.FileInfo) fileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{Dev: uint64(st.Dev), Inode: st.Ino}
	}
	return fileID{}
}

// writeJSONAtomic replaces path with v's JSON: temp file, fsync, rename,
// so a crash leaves the old or the new content, never a torn one.
func writeJSONAtomic(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", tmp, werr)
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
