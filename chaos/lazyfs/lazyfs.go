// Package lazyfs is a FUSE filesystem that forgets what was not fsynced, in
// the spirit of Jepsen's lazyfs: mounted over a node's data directory, it
// passes every operation through to a backing folder, and remembers
// separately what a power cut would have left on disk. Crash then throws
// away everything written since the last fsync, as a power cut would.
//
// Scheme: writes go to the backing file at once (so reads, mmap included,
// see them), and the filesystem tracks the written ranges of each file. An
// fsync copies those ranges and the file's size into a durable copy of the
// file kept in a shadow folder, keyed by a file id that survives renames.
// Directory entries become durable when their directory is fsynced
// (Strict), or, by default, when anything is fsynced, as with ext4's
// ordered journal, whose commit on an fsync carries every earlier metadata
// change. Crash rebuilds the backing folder from the durable entries and
// the durable copies: files never fsynced come back empty, entries created,
// renamed or removed since the last durable point are undone.
package lazyfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Options tune the filesystem.
type Options struct {
	// Strict makes directory entries durable only by an fsync of their
	// directory (POSIX). Otherwise any fsync makes every directory entry
	// durable (ext4 data=ordered in practice).
	Strict bool
	// Torn keeps, on a crash, a random prefix of the unsynced bytes of each
	// file's last write (a torn write), instead of none of them.
	Torn bool
	// Seed drives the torn-write choices.
	Seed int64
}

// Available says why FUSE cannot be used here ("" when it can): it needs
// root (or fusermount) and /dev/fuse.
func Available() string {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return "no /dev/fuse"
	}
	if os.Geteuid() != 0 {
		return "not root"
	}
	return ""
}

type entry struct {
	id   uint64
	mode uint32 // S_IFDIR, S_IFREG or S_IFLNK
	link string // symlink target
}

type writeRange struct{ off, end int64 }

// FS is one lazy filesystem: a backing folder, a shadow folder of durable
// file contents, and a mount point.
type FS struct {
	backing, shadow, mnt string
	opts                 Options

	mu      sync.Mutex
	rng     *rand.Rand
	nextID  uint64
	rootID  uint64
	ids     map[uint64]uint64           // backing inode -> file id
	durable map[uint64]map[string]entry // directory id -> durable entries
	dirty   map[uint64][]writeRange     // file id -> unsynced written ranges
	last    map[uint64]writeRange       // file id -> last unsynced write
	synced  map[uint64]bool             // file id has a durable copy
	nsDirty bool                        // a namespace change since the last snapshot
	server  *fuse.Server
	syncs   int
}

// New prepares a lazy filesystem over backing (created if missing) with
// durable copies in shadow, to be mounted at mnt. Whatever backing holds
// now counts as durable.
func New(backing, shadow, mnt string, opts Options) (*FS, error) {
	for _, d := range []string{backing, shadow, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("lazyfs: %w", err)
		}
	}
	f := &FS{backing: backing, shadow: shadow, mnt: mnt, opts: opts, rng: rand.New(rand.NewSource(opts.Seed))}
	f.reset()
	if err := f.adoptBacking(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *FS) reset() {
	f.ids = map[uint64]uint64{}
	f.dirty = map[uint64][]writeRange{}
	f.last = map[uint64]writeRange{}
	if f.durable == nil {
		f.durable = map[uint64]map[string]entry{}
		f.synced = map[uint64]bool{}
	}
	f.nsDirty = false
}

func (f *FS) newID() uint64 {
	f.nextID++
	return f.nextID
}

func inoOf(path string) (uint64, uint32, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return 0, 0, err
	}
	return st.Ino, st.Mode & syscall.S_IFMT, nil
}

// adoptBacking makes the current backing tree the durable state.
func (f *FS) adoptBacking() error {
	ino, _, err := inoOf(f.backing)
	if err != nil {
		return fmt.Errorf("lazyfs: %w", err)
	}
	f.rootID = f.newID()
	f.ids[ino] = f.rootID
	err = filepath.Walk(f.backing, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p == f.backing {
			return nil
		}
		ino, mode, err := inoOf(p)
		if err != nil {
			return err
		}
		id := f.newID()
		f.ids[ino] = id
		if mode == syscall.S_IFREG {
			if err := copyFile(p, f.shadowPath(id)); err != nil {
				return err
			}
			f.synced[id] = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("lazyfs: adopt %s: %w", f.backing, err)
	}
	return f.snapshotAllLocked()
}

func (f *FS) shadowPath(id uint64) string {
	return filepath.Join(f.shadow, strconv.FormatUint(id, 10))
}

// Mount mounts the filesystem at its mount point.
func (f *FS) Mount() error {
	lr := &fs.LoopbackRoot{Path: f.backing}
	var st syscall.Stat_t
	if err := syscall.Stat(f.backing, &st); err != nil {
		return fmt.Errorf("lazyfs: %w", err)
	}
	lr.Dev = uint64(st.Dev)
	//lint:ignore SA1019 NewNode gives every node the FS pointer with less code than NodeWrapChilder
	lr.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
		return &node{LoopbackNode: fs.LoopbackNode{RootData: r}, lfs: f}
	}
	root := &node{LoopbackNode: fs.LoopbackNode{RootData: lr}, lfs: f}
	lr.RootNode = root
	sec := time.Second
	srv, err := fs.Mount(f.mnt, root, &fs.Options{
		EntryTimeout: &sec, AttrTimeout: &sec,
		MountOptions: fuse.MountOptions{FsName: "lazyfs:" + f.backing, Name: "lazyfs", DirectMount: true, MaxBackground: 64},
	})
	if err != nil {
		return fmt.Errorf("lazyfs: mount %s: %w", f.mnt, err)
	}
	f.mu.Lock()
	f.server = srv
	f.mu.Unlock()
	return nil
}

// Unmount unmounts the filesystem, lazily when it is still busy (a killed
// process's files are released asynchronously).
func (f *FS) Unmount() error {
	f.mu.Lock()
	srv := f.server
	f.server = nil
	f.mu.Unlock()
	if srv == nil {
		return nil
	}
	var err error
	for i := 0; i < 20; i++ {
		if err = srv.Unmount(); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		if derr := syscall.Unmount(f.mnt, syscall.MNT_DETACH); derr != nil {
			return fmt.Errorf("lazyfs: unmount %s: %w", f.mnt, errors.Join(err, derr))
		}
	}
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("lazyfs: %s: server did not stop", f.mnt)
	}
	return nil
}

// Syncs counts the fsyncs served so far.
func (f *FS) Syncs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncs
}

// Crash discards everything not fsynced: it unmounts the filesystem,
// rebuilds the backing folder from the durable state and mounts it again.
// No process may have files open on it (kill them first).
func (f *FS) Crash() error {
	if err := f.Unmount(); err != nil {
		return err
	}
	if err := f.restore(); err != nil {
		return err
	}
	return f.Mount()
}

// restore rebuilds the backing folder from the durable entries.
func (f *FS) restore() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	tmp := f.backing + ".restore"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("lazyfs: %w", err)
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fmt.Errorf("lazyfs: %w", err)
	}
	torn := map[uint64]string{} // file id -> its path in the old backing
	if f.opts.Torn {
		_ = filepath.Walk(f.backing, func(p string, info os.FileInfo, err error) error {
			if err == nil && info.Mode().IsRegular() {
				if ino, _, err := inoOf(p); err == nil {
					if id, ok := f.ids[ino]; ok {
						torn[id] = p
					}
				}
			}
			return nil
		})
	}
	newIDs := map[uint64]uint64{}
	first := map[uint64]string{}
	var build func(dirID uint64, dir string) error
	build = func(dirID uint64, dir string) error {
		ents := f.durable[dirID]
		names := make([]string, 0, len(ents))
		for n := range ents {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			e := ents[name]
			p := filepath.Join(dir, name)
			switch e.mode {
			case syscall.S_IFDIR:
				if err := os.Mkdir(p, 0o755); err != nil {
					return err
				}
				if err := build(e.id, p); err != nil {
					return err
				}
			case syscall.S_IFLNK:
				if err := os.Symlink(e.link, p); err != nil {
					return err
				}
			default:
				if fp, ok := first[e.id]; ok {
					if err := os.Link(fp, p); err != nil {
						return err
					}
					continue
				}
				first[e.id] = p
				if f.synced[e.id] {
					if err := copyFile(f.shadowPath(e.id), p); err != nil {
						return err
					}
				} else if err := os.WriteFile(p, nil, 0o644); err != nil {
					return err
				}
				if old, ok := torn[e.id]; ok {
					if err := f.tear(e.id, old, p); err != nil {
						return err
					}
				}
			}
			ino, _, err := inoOf(p)
			if err != nil {
				return err
			}
			newIDs[ino] = e.id
		}
		return nil
	}
	if err := build(f.rootID, tmp); err != nil {
		return fmt.Errorf("lazyfs: restore: %w", err)
	}
	ino, _, err := inoOf(tmp)
	if err != nil {
		return fmt.Errorf("lazyfs: %w", err)
	}
	newIDs[ino] = f.rootID
	old := f.backing + ".old"
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("lazyfs: %w", err)
	}
	if err := os.Rename(f.backing, old); err != nil {
		return fmt.Errorf("lazyfs: %w", err)
	}
	if err := os.Rename(tmp, f.backing); err != nil {
		return fmt.Errorf("lazyfs: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("lazyfs: %w", err)
	}
	f.reset()
	f.ids = newIDs
	return nil
}

// tear copies a random prefix of the file's last unsynced write from the
// old backing file into the restored one.
func (f *FS) tear(id uint64, oldPath, newPath string) error {
	w, ok := f.last[id]
	if !ok || w.end <= w.off {
		return nil
	}
	n := f.rng.Int63n(w.end - w.off + 1)
	if n == 0 {
		return nil
	}
	src, err := os.Open(oldPath)
	if err != nil {
		return err
	}
	defer src.Close()
	buf := make([]byte, n)
	m, err := src.ReadAt(buf, w.off)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	dst, err := os.OpenFile(newPath, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer dst.Close()
	_, err = dst.WriteAt(buf[:m], w.off)
	return err
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// idOfPath maps a backing path to its file id, giving unknown inodes (or,
// with fresh, a newly created file that may reuse a dead inode) a new id.
func (f *FS) idOfPath(p string, fresh bool) (uint64, error) {
	ino, _, err := inoOf(p)
	if err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.idOfInoLocked(ino, fresh), nil
}

func (f *FS) idOfInoLocked(ino uint64, fresh bool) uint64 {
	id, ok := f.ids[ino]
	if !ok || fresh {
		id = f.newID()
		f.ids[ino] = id
	}
	return id
}

func (f *FS) namespaceChanged() {
	f.mu.Lock()
	f.nsDirty = true
	f.mu.Unlock()
}

func (f *FS) wrote(id uint64, off int64, n int) {
	if n <= 0 {
		return
	}
	w := writeRange{off, off + int64(n)}
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.dirty[id]
	// Appends extend the last range: the common case stays one range.
	if k := len(rs); k > 0 && rs[k-1].end >= w.off && rs[k-1].off <= w.off {
		if w.end > rs[k-1].end {
			rs[k-1].end = w.end
		}
	} else {
		rs = append(rs, w)
	}
	if len(rs) > 256 {
		rs = mergeRanges(rs)
	}
	f.dirty[id] = rs
	f.last[id] = w
}

func mergeRanges(rs []writeRange) []writeRange {
	if len(rs) == 0 {
		return nil
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].off < rs[j].off })
	out := rs[:1]
	for _, r := range rs[1:] {
		l := &out[len(out)-1]
		if r.off <= l.end {
			if r.end > l.end {
				l.end = r.end
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// syncFile makes a file's contents durable: its unsynced ranges and its
// size go to the durable copy. read reads the live file.
func (f *FS) syncFile(id uint64, size int64, read func(buf []byte, off int64) (int, error)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncs++
	sp := f.shadowPath(id)
	ranges := f.dirty[id]
	if !f.synced[id] {
		// First durable copy: all of the file.
		ranges = []writeRange{{0, size}}
	}
	out, err := os.OpenFile(sp, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := out.Truncate(size); err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	for _, r := range mergeRanges(ranges) {
		end := min(r.end, size)
		for off := r.off; off < end; {
			n := int(min(int64(len(buf)), end-off))
			m, err := read(buf[:n], off)
			if m > 0 {
				if _, werr := out.WriteAt(buf[:m], off); werr != nil {
					return werr
				}
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if m == 0 {
				break
			}
			off += int64(m)
		}
	}
	f.synced[id] = true
	delete(f.dirty, id)
	delete(f.last, id)
	if !f.opts.Strict && f.nsDirty {
		return f.snapshotAllLocked()
	}
	return nil
}

// syncDir makes a directory's entries durable.
func (f *FS) syncDir(path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncs++
	if !f.opts.Strict {
		if f.nsDirty {
			return f.snapshotAllLocked()
		}
		return nil
	}
	ino, _, err := inoOf(path)
	if err != nil {
		return err
	}
	return f.snapshotDirLocked(f.idOfInoLocked(ino, false), path, false)
}

func (f *FS) snapshotAllLocked() error {
	f.nsDirty = false
	return f.snapshotDirLocked(f.rootID, f.backing, true)
}

func (f *FS) snapshotDirLocked(id uint64, path string, recursive bool) error {
	des, err := os.ReadDir(path)
	if err != nil {
		return err
	}
	ents := make(map[string]entry, len(des))
	for _, de := range des {
		p := filepath.Join(path, de.Name())
		ino, mode, err := inoOf(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return err
		}
		e := entry{id: f.idOfInoLocked(ino, false), mode: mode}
		if mode == syscall.S_IFLNK {
			e.link, _ = os.Readlink(p)
		}
		ents[de.Name()] = e
		if recursive && mode == syscall.S_IFDIR {
			if err := f.snapshotDirLocked(e.id, p, true); err != nil {
				return err
			}
		}
	}
	f.durable[id] = ents
	return nil
}

// node is a loopback node that reports namespace changes and wraps file
// and directory handles.
type node struct {
	fs.LoopbackNode
	lfs *FS
}

func (n *node) backingPath() string {
	return filepath.Join(n.RootData.Path, n.Path(nil))
}

func (n *node) newChild(name string) {
	if _, err := n.lfs.idOfPath(filepath.Join(n.backingPath(), name), true); err == nil {
		n.lfs.namespaceChanged()
	}
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	in, fh, ff, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return in, fh, ff, errno
	}
	fh, errno = n.lfs.wrap(ctx, fh, filepath.Join(n.backingPath(), name), true, flags)
	return in, fh, ff, errno
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, ff, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return fh, ff, errno
	}
	fh, errno = n.lfs.wrap(ctx, fh, n.backingPath(), false, flags)
	return fh, ff, errno
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	in, errno := n.LoopbackNode.Mkdir(ctx, name, mode, out)
	if errno == 0 {
		n.newChild(name)
	}
	return in, errno
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	in, errno := n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
	if errno == 0 {
		n.newChild(name)
	}
	return in, errno
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	in, errno := n.LoopbackNode.Symlink(ctx, target, name, out)
	if errno == 0 {
		n.newChild(name)
	}
	return in, errno
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	in, errno := n.LoopbackNode.Link(ctx, target, name, out)
	if errno == 0 {
		n.lfs.namespaceChanged()
	}
	return in, errno
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	errno := n.LoopbackNode.Unlink(ctx, name)
	if errno == 0 {
		n.lfs.namespaceChanged()
	}
	return errno
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	errno := n.LoopbackNode.Rmdir(ctx, name)
	if errno == 0 {
		n.lfs.namespaceChanged()
	}
	return errno
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
	if errno == 0 {
		n.lfs.namespaceChanged()
	}
	return errno
}

// Fsync without a handle (fsync on a directory the kernel routes here when
// the handle has no Fsyncdir).
func (n *node) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	if fsy, ok := fh.(fs.FileFsyncer); ok {
		return fsy.Fsync(ctx, flags)
	}
	if n.StableAttr().Mode&syscall.S_IFMT == syscall.S_IFDIR {
		return fs.ToErrno(n.lfs.syncDir(n.backingPath()))
	}
	return 0
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, ff, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return fh, ff, errno
	}
	return &dirHandle{inner: fh, n: n}, ff, 0
}

// dirHandle passes a directory stream through and makes fsyncdir record
// the directory's entries.
type dirHandle struct {
	inner fs.FileHandle
	n     *node
}

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	return d.inner.(fs.FileReaddirenter).Readdirent(ctx)
}

func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if s, ok := d.inner.(fs.FileSeekdirer); ok {
		return s.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	if r, ok := d.inner.(fs.FileReleasedirer); ok {
		r.Releasedir(ctx, flags)
	}
}

func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	return fs.ToErrno(d.n.lfs.syncDir(d.n.backingPath()))
}

// file passes a file through, recording its writes and making fsync copy
// them to the durable copy.
type file struct {
	*fs.LoopbackFile
	lfs  *FS
	id   uint64
	sync bool     // opened O_SYNC or O_DSYNC: every write is durable
	ro   *os.File // the backing file, for fsync to read from
}

// wrap wraps a loopback file handle of the backing file at path.
func (f *FS) wrap(ctx context.Context, fh fs.FileHandle, path string, fresh bool, flags uint32) (fs.FileHandle, syscall.Errno) {
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok {
		return fh, 0
	}
	ro, err := os.Open(path)
	if err != nil {
		lf.Release(ctx)
		return nil, fs.ToErrno(err)
	}
	st, err := ro.Stat()
	if err != nil {
		ro.Close()
		lf.Release(ctx)
		return nil, fs.ToErrno(err)
	}
	f.mu.Lock()
	id := f.idOfInoLocked(st.Sys().(*syscall.Stat_t).Ino, fresh)
	if fresh {
		f.nsDirty = true
	}
	f.mu.Unlock()
	return &file{LoopbackFile: lf, lfs: f, id: id, ro: ro, sync: flags&(syscall.O_SYNC|syscall.O_DSYNC) != 0}, 0
}

// PassthroughFd is refused: kernel passthrough would bypass the write log.
func (f *file) PassthroughFd() (int, bool) { return -1, false }

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	n, errno := f.LoopbackFile.Write(ctx, data, off)
	f.lfs.wrote(f.id, off, int(n))
	if errno == 0 && f.sync {
		errno = f.Fsync(ctx, 0)
	}
	return n, errno
}

func (f *file) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	n, errno := f.LoopbackFile.Writev(ctx, data, off)
	f.lfs.wrote(f.id, off, int(n))
	if errno == 0 && f.sync {
		errno = f.Fsync(ctx, 0)
	}
	return n, errno
}

func (f *file) Allocate(ctx context.Context, off uint64, sz uint64, mode uint32) syscall.Errno {
	errno := f.LoopbackFile.Allocate(ctx, off, sz, mode)
	if errno == 0 {
		f.lfs.wrote(f.id, int64(off), int(sz))
	}
	return errno
}

// Fsync copies the unsynced ranges to the durable copy. The backing file
// itself is not fsynced: the harness's machine does not lose power.
func (f *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	st, err := f.ro.Stat()
	if err != nil {
		return fs.ToErrno(err)
	}
	return fs.ToErrno(f.lfs.syncFile(f.id, st.Size(), f.ro.ReadAt))
}

func (f *file) Release(ctx context.Context) syscall.Errno {
	f.ro.Close()
	return f.LoopbackFile.Release(ctx)
}
