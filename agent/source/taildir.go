package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/sluice-io/sluice/agent/flow"
)

// taildir is Flume's TaildirSource: it follows every file of its file
// groups (a directory and a regex on file names), one event per complete
// line, and keeps each file's position in a JSON position file. Files are
// tracked by inode, not by name: a file renamed by log rotation is read
// on from where it was, never again from the start, and a file rotated out
// of the pattern is read to its end before it is let go.
type taildir struct {
	base
	groups      []*tailGroup
	posFile     string
	writePos    time.Duration
	skipToEnd   bool
	batch       int
	maxBatches  int64
	backoffStep time.Duration
	maxBackoff  time.Duration
	fileHeader  string
	idle        time.Duration

	files map[fileID]*tailFile
}

type tailGroup struct {
	name    string
	dir     string
	re      *regexp.Regexp
	headers map[string]string
}

type tailFile struct {
	id    fileID
	path  string
	group *tailGroup
	f     *os.File
	pos   int64
	seen  bool
	// gone: no longer in any group (rotated away, deleted); it is still
	// read until idleTimeout passes without new data, as writers may hold
	// it open a while after the rename.
	gone     bool
	lastData time.Time
}

// tailPosition is one entry of the position file, in Flume's shape.
type tailPosition struct {
	Inode uint64 `json:"inode"`
	Pos   int64  `json:"pos"`
	File  string `json:"file"`
}

func newTaildir(name string, p *flow.Props, proc flow.Processor, d flow.Deps) (flow.Source, error) {
	s := &taildir{base: newBase(name, proc, d, "taildir"), files: map[fileID]*tailFile{}}
	groups := p.List("filegroups")
	if len(groups) == 0 {
		p.Required("filegroups")
	}
	defPos := filepath.Join(d.DataDir, "taildir_position_"+name+".json")
	if d.DataDir == "" {
		home, _ := os.UserHomeDir()
		defPos = filepath.Join(home, ".flume", "taildir_position.json")
	}
	s.posFile = p.String("positionFile", defPos)
	s.writePos = p.Millis("writePosInterval", 3*time.Second)
	s.skipToEnd = p.Bool("skipToEnd", false)
	batch := p.Int("batchSize", 100)
	s.maxBatches = p.Int("maxBatchCount", math.MaxInt64)
	s.backoffStep = p.Millis("backoffSleepIncrement", time.Second)
	s.maxBackoff = p.Millis("maxBackoffSleep", 5*time.Second)
	if p.Bool("fileHeader", false) {
		s.fileHeader = p.String("fileHeaderKey", "file")
	}
	s.idle = p.Millis("idleTimeout", 120*time.Second)
	byteOffset := p.Bool("byteOffsetHeader", false)
	if err := p.Err(); err != nil {
		return nil, err
	}
	if byteOffset {
		return nil, errorf(p, "byteOffsetHeader", "not supported")
	}
	if err := positive(p, "batchSize", batch); err != nil {
		return nil, err
	}
	if err := positive(p, "maxBatchCount", s.maxBatches); err != nil {
		return nil, err
	}
	s.batch = int(batch)
	s.backoffStep = max(s.backoffStep, time.Millisecond)
	for _, g := range groups {
		spec := p.Required("filegroups." + g)
		if err := p.Err(); err != nil {
			return nil, err
		}
		dir, pattern := filepath.Dir(spec), filepath.Base(spec)
		if strings.ContainsAny(dir, "*?[]()|+^$\\") {
			return nil, errorf(p, "filegroups."+g, "%q: only the file name part may be a regular expression", spec)
		}
		re, err := regexp.Compile("^(?:" + pattern + ")$")
		if err != nil {
			return nil, errorf(p, "filegroups."+g, "%q: %v", pattern, err)
		}
		hp := p.Sub("headers." + g)
		tg := &tailGroup{name: g, dir: dir, re: re, headers: map[string]string{}}
		for _, k := range hp.Keys() {
			tg.headers[k] = hp.Values[k]
		}
		s.groups = append(s.groups, tg)
	}
	return s, nil
}

func (s *taildir) Start(context.Context) error {
	positions, err := s.loadPositions()
	if err != nil {
		return fmt.Errorf("source %s: %w", s.name, err)
	}
	s.begin()
	s.scan(positions, s.skipToEnd)
	s.spawn(s.loop)
	return nil
}

func (s *taildir) Stop(ctx context.Context) error { return s.finish(ctx, nil) }

func (s *taildir) loadPositions() (map[uint64]tailPosition, error) {
	out := map[uint64]tailPosition{}
	data, err := os.ReadFile(s.posFile)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("position file: %w", err)
	}
	var list []tailPosition
	if err := json.Unmarshal(data, &list); err != nil {
		// Flume starts over on a bad position file; so do we, loudly.
		s.log.Error("position file unreadable, starting every file from its beginning", "file", s.posFile, "err", err)
		return out, nil
	}
	for _, p := range list {
		out[p.Inode] = p
	}
	return out, nil
}

func (s *taildir) savePositions() {
	list := make([]tailPosition, 0, len(s.files))
	for _, f := range s.files {
		list = append(list, tailPosition{Inode: f.id.Inode, Pos: f.pos, File: f.path})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].File < list[j].File })
	if err := writeJSONAtomic(s.posFile, list); err != nil {
		s.log.Error("cannot write the position file", "file", s.posFile, "err", err)
	}
}

func (s *taildir) loop() {
	defer func() {
		s.savePositions()
		for _, f := range s.files {
			f.f.Close()
		}
	}()
	lastSave := time.Now()
	idle := time.Duration(0)
	for !s.stopping() {
		s.scan(nil, false)
		read, err := s.readAll()
		if err != nil {
			if s.run.Err() != nil {
				return
			}
			s.log.Warn("batch not accepted, retrying", "err", err)
		}
		s.retire()
		if time.Since(lastSave) >= s.writePos {
			s.savePositions()
			lastSave = time.Now()
		}
		if read > 0 {
			idle = 0
			continue
		}
		idle = min(idle+s.backoffStep, s.maxBackoff)
		if !s.sleep(idle) {
			return
		}
	}
}

// scan lists the groups' directories: new files are opened (at their
// recorded position, at their end with skipToEnd, else at 0), renamed
// ones get their new name, and files gone from every group are marked.
func (s *taildir) scan(positions map[uint64]tailPosition, skipToEnd bool) {
	for _, f := range s.files {
		f.seen = false
	}
	for _, g := range s.groups {
		entries, err := os.ReadDir(g.dir)
		if err != nil {
			s.log.Debug("cannot list file group directory", "group", g.name, "dir", g.dir, "err", err)
			continue
		}
		for _, e := range entries {
			if !g.re.MatchString(e.Name()) || !e.Type().IsRegular() {
				continue
			}
			path := filepath.Join(g.dir, e.Name())
			if path == s.posFile || path == s.posFile+".tmp" {
				continue
			}
			fi, err := os.Stat(path)
			if err != nil {
				continue
			}
			id := idOf(fi)
			if f, ok := s.files[id]; ok {
				if f.gone {
					f.gone = false
				}
				if f.path != path {
					s.log.Info("followed a renamed file", "from", f.path, "to", path)
					f.path = path
				}
				f.seen = true
				continue
			}
			fh, err := os.Open(path)
			if err != nil {
				s.log.Warn("cannot open file", "file", path, "err", err)
				continue
			}
			// Check the open file is the one we stat'ed (no rename between).
			if ofi, err := fh.Stat(); err != nil || idOf(ofi) != id {
				fh.Close()
				continue
			}
			f := &tailFile{id: id, path: path, group: g, f: fh, seen: true, lastData: time.Now()}
			if p, ok := positions[id.Inode]; ok && p.Pos <= fi.Size() {
				f.pos = p.Pos
			} else if skipToEnd {
				f.pos = fi.Size()
			}
			s.files[id] = f
		}
	}
	for _, f := range s.files {
		if !f.seen && !f.gone {
			f.gone, f.lastData = true, time.Now()
		}
	}
}

// retire lets go of files gone from every group once idle for
// idleTimeout, after reading what is left, their last line too.
func (s *taildir) retire() {
	for id, f := range s.files {
		if !f.gone || time.Since(f.lastData) < s.idle {
			continue
		}
		if err := s.drain(f); err != nil {
			s.log.Warn("file left before it was read to its end", "file", f.path, "err", err)
			continue // try again next round
		}
		f.f.Close()
		delete(s.files, id)
	}
}

func (s *taildir) drain(f *tailFile) error {
	for {
		n, err := s.readFile(f, true)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

// readAll reads every file once round, up to maxBatchCount batches each.
func (s *taildir) readAll() (int, error) {
	ids := make([]*tailFile, 0, len(s.files))
	for _, f := range s.files {
		ids = append(ids, f)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].path < ids[j].path })
	total := 0
	for _, f := range ids {
		for b := int64(0); b < s.maxBatches && !s.stopping(); b++ {
			n, err := s.readFile(f, false)
			total += n
			if err != nil {
				return total, err
			}
			if n < s.batch {
				break
			}
		}
	}
	return total, nil
}

// readFile delivers one batch of f's complete lines (with final, a last
// line without EOL too) and advances its position once committed.
func (s *taildir) readFile(f *tailFile, final bool) (int, error) {
	fi, err := f.f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Size() < f.pos {
		s.log.Warn("file shrank: truncated, reading it again from the start", "file", f.path)
		f.pos = 0
	}
	lines, next, err := readLines(f.f, f.pos, s.batch, 0, final)
	if err != nil || len(lines) == 0 {
		return 0, err
	}
	evs := make([]flow.Event, len(lines))
	for i, l := range lines {
		evs[i].Body = l
		if len(f.group.headers) > 0 || s.fileHeader != "" {
			evs[i].Headers = make(map[string]string, len(f.group.headers)+1)
			for k, v := range f.group.headers {
				evs[i].Headers[k] = v
			}
			if s.fileHeader != "" {
				evs[i].Headers[s.fileHeader] = f.path
			}
		}
	}
	if err := s.deliver(evs); err != nil {
		return 0, err
	}
	f.pos = next
	f.lastData = time.Now()
	return len(lines), nil
}
