package lazyfs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/stretchr/testify/require"
)

// mount mounts a lazy filesystem in a temporary folder, skipping the test
// where FUSE cannot be used.
func mount(t *testing.T, opts Options) (*FS, string) {
	t.Helper()
	if why := Available(); why != "" {
		t.Skipf("lazyfs: FUSE unavailable (%s): the filesystem tests need root and /dev/fuse", why)
	}
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	f, err := New(filepath.Join(dir, "backing"), filepath.Join(dir, "shadow"), mnt, opts)
	require.NoError(t, err)
	require.NoError(t, f.Mount())
	t.Cleanup(func() { require.NoError(t, f.Unmount()) })
	return f, mnt
}

func writeFile(t *testing.T, path, data string, sync bool) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	_, err = fh.WriteString(data)
	require.NoError(t, err)
	if sync {
		require.NoError(t, fh.Sync())
	}
	require.NoError(t, fh.Close())
}

func syncDir(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	require.NoError(t, err)
	require.NoError(t, d.Sync())
	require.NoError(t, d.Close())
}

func content(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

func TestFsyncKeepsNoFsyncForgets(t *testing.T) {
	f, mnt := mount(t, Options{})
	p := filepath.Join(mnt, "a")
	writeFile(t, p, "synced;", true)
	writeFile(t, p, "lost;", false)
	require.Equal(t, "synced;lost;", content(t, p), "reads see unsynced writes before the crash")
	writeFile(t, filepath.Join(mnt, "never"), "never synced", false)

	require.NoError(t, f.Crash())
	require.Equal(t, "synced;", content(t, p))
	_, err := os.Stat(filepath.Join(mnt, "never"))
	require.ErrorIs(t, err, os.ErrNotExist, "a file created after the last fsync is gone")

	// A truncation not synced is undone too.
	require.NoError(t, os.Truncate(p, 2))
	require.NoError(t, f.Crash())
	require.Equal(t, "synced;", content(t, p))
	// Overwrites in the middle, synced.
	fh, err := os.OpenFile(p, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = fh.WriteAt([]byte("SY"), 0)
	require.NoError(t, err)
	require.NoError(t, fh.Sync())
	_, err = fh.WriteAt([]byte("XX"), 4)
	require.NoError(t, err)
	require.NoError(t, fh.Close())
	require.NoError(t, f.Crash())
	require.Equal(t, "SYnced;", content(t, p))
}

func TestDirectoryEntriesStrict(t *testing.T) {
	f, mnt := mount(t, Options{Strict: true})
	sub := filepath.Join(mnt, "sub")
	require.NoError(t, os.Mkdir(sub, 0o755))
	writeFile(t, filepath.Join(sub, "x"), "x", true)
	// The file is synced but neither mnt (holding sub) nor sub was.
	require.NoError(t, f.Crash())
	_, err := os.Stat(sub)
	require.ErrorIs(t, err, os.ErrNotExist)

	require.NoError(t, os.Mkdir(sub, 0o755))
	syncDir(t, mnt)
	writeFile(t, filepath.Join(sub, "x"), "x", true)
	require.NoError(t, f.Crash())
	require.DirExists(t, sub)
	_, err = os.Stat(filepath.Join(sub, "x"))
	require.ErrorIs(t, err, os.ErrNotExist, "sub was not fsynced after x was created")

	writeFile(t, filepath.Join(sub, "x"), "x", true)
	syncDir(t, sub)
	require.NoError(t, f.Crash())
	require.Equal(t, "x", content(t, filepath.Join(sub, "x")))

	// A removal without a directory fsync comes back.
	require.NoError(t, os.Remove(filepath.Join(sub, "x")))
	require.NoError(t, f.Crash())
	require.Equal(t, "x", content(t, filepath.Join(sub, "x")))
	require.NoError(t, os.Remove(filepath.Join(sub, "x")))
	syncDir(t, sub)
	require.NoError(t, f.Crash())
	_, err = os.Stat(filepath.Join(sub, "x"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestRename(t *testing.T) {
	f, mnt := mount(t, Options{Strict: true})
	final := filepath.Join(mnt, "final")
	writeFile(t, final, "old", true)
	syncDir(t, mnt)
	tmp := filepath.Join(mnt, "tmp")
	writeFile(t, tmp, "new", true)
	require.NoError(t, os.Rename(tmp, final))
	require.Equal(t, "new", content(t, final))
	require.NoError(t, f.Crash())
	require.Equal(t, "old", content(t, final), "the rename was not made durable")

	writeFile(t, tmp, "new", true)
	require.NoError(t, os.Rename(tmp, final))
	syncDir(t, mnt)
	require.NoError(t, f.Crash())
	require.Equal(t, "new", content(t, final))
	_, err := os.Stat(tmp)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestOrderedModeFileFsyncKeepsEntries(t *testing.T) {
	f, mnt := mount(t, Options{})
	sub := filepath.Join(mnt, "d")
	require.NoError(t, os.Mkdir(sub, 0o755))
	writeFile(t, filepath.Join(sub, "y"), "y", true)
	require.NoError(t, os.Rename(filepath.Join(sub, "y"), filepath.Join(mnt, "z")))
	writeFile(t, filepath.Join(mnt, "other"), "", true) // commits the rename
	require.NoError(t, f.Crash())
	require.Equal(t, "y", content(t, filepath.Join(mnt, "z")))
	_, err := os.Stat(filepath.Join(sub, "y"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestTornWriteKeepsAPrefix(t *testing.T) {
	f, mnt := mount(t, Options{Torn: true, Seed: 3})
	p := filepath.Join(mnt, "t")
	writeFile(t, p, "base;", true)
	writeFile(t, p, "0123456789", false)
	require.NoError(t, f.Crash())
	got := content(t, p)
	require.LessOrEqual(t, len(got), len("base;0123456789"))
	require.Equal(t, "base;0123456789"[:len(got)], got)
	require.GreaterOrEqual(t, len(got), len("base;"))
}

// TestBoltThroughFS checks that raft-boltdb (mmap reads, write + fdatasync)
// works on the filesystem: synced logs survive a crash, NoSync ones do not.
// Bolt runs in a child process, as the nodes do: a page fault on the mmap
// served by FUSE in the same Go process can deadlock against the garbage
// collector.
func TestBoltThroughFS(t *testing.T) {
	f, mnt := mount(t, Options{})
	bolt := func(from, to uint64, noSync bool) uint64 {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run", "^TestBoltHelper$")
		cmd.Env = append(os.Environ(), "LAZYFS_BOLT="+fmt.Sprintf("%s,%d,%d,%t", filepath.Join(mnt, "raft.db"), from, to, noSync))
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		m := regexp.MustCompile(`last=(\d+)`).FindSubmatch(out)
		require.NotNil(t, m, "%s", out)
		last, err := strconv.ParseUint(string(m[1]), 10, 64)
		require.NoError(t, err)
		return last
	}
	require.Equal(t, uint64(200), bolt(1, 200, false))
	require.NoError(t, f.Crash())
	require.Equal(t, uint64(300), bolt(201, 300, true))
	require.NoError(t, f.Crash())
	// Bolt still fsyncs when it grows the file, which makes some of the
	// NoSync logs durable; the ones after the last growth are forgotten.
	last := bolt(0, 0, false)
	require.GreaterOrEqual(t, last, uint64(200))
	require.Less(t, last, uint64(300), "NoSync writes are forgotten")
	require.Positive(t, f.Syncs())
}

// TestBoltHelper is the child process of TestBoltThroughFS: it opens the
// store, appends logs from..to (none when from is 0), reads them back and
// prints the last index.
func TestBoltHelper(t *testing.T) {
	spec := os.Getenv("LAZYFS_BOLT")
	if spec == "" {
		t.Skip("child process of TestBoltThroughFS")
	}
	var path string
	var from, to uint64
	var noSync bool
	parts := strings.Split(spec, ",")
	require.Len(t, parts, 4)
	path = parts[0]
	from, _ = strconv.ParseUint(parts[1], 10, 64)
	to, _ = strconv.ParseUint(parts[2], 10, 64)
	noSync = parts[3] == "true"
	s, err := raftboltdb.New(raftboltdb.Options{Path: path, NoSync: noSync})
	require.NoError(t, err)
	for i := from; i >= 1 && i <= to; i++ {
		require.NoError(t, s.StoreLog(&raft.Log{Index: i, Term: 1, Data: make([]byte, 1000)}))
	}
	last, err := s.LastIndex()
	require.NoError(t, err)
	for i := uint64(1); i <= last; i++ {
		var l raft.Log
		require.NoError(t, s.GetLog(i, &l))
	}
	// No Close: the power is cut.
	fmt.Printf("last=%d\n", last)
}
