package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/sluice-io/sluice/agent/flow"
)

// spoolDir is Flume's SpoolDirectorySource: it reads every complete file
// dropped into spoolDir line by line, then renames it with fileSuffix or
// deletes it. Files must be immutable once there: a file that changes
// after being picked up is refused (an error, and the file is left alone
// from then on), as Flume refuses it. The read position is kept in
// trackerDir after each committed batch, so a restart resumes the file.
type spoolDir struct {
	base
	dir        string
	suffix     string
	deleteNow  bool
	include    *regexp.Regexp
	ignore     *regexp.Regexp
	trackerDir string
	order      string
	pollDelay  time.Duration
	maxBackoff time.Duration
	batch      int
	maxLine    int
	fileHeader string // "" = off
	baseHeader string

	refused map[string]fileStamp
}

// fileStamp is what must not change while a file is read.
type fileStamp struct {
	ID    fileID `json:"id"`
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime"`
}

func stampOf(fi os.FileInfo) fileStamp {
	return fileStamp{ID: idOf(fi), Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
}

// spoolTracker is the tracker file's content.
type spoolTracker struct {
	File  string    `json:"file"`
	Stamp fileStamp `json:"stamp"`
	Pos   int64     `json:"pos"`
}

func newSpoolDir(name string, p *flow.Props, proc flow.Processor, d flow.Deps) (flow.Source, error) {
	s := &spoolDir{base: newBase(name, proc, d, "spooldir"), refused: map[string]fileStamp{}}
	s.dir = p.Required("spoolDir")
	s.suffix = p.String("fileSuffix", ".COMPLETED")
	policy := p.String("deletePolicy", "never")
	include := p.String("includePattern", "^.*$")
	ignore := p.String("ignorePattern", "^$")
	s.trackerDir = p.String("trackerDir", ".flumespool")
	s.order = strings.ToLower(p.String("consumeOrder", "oldest"))
	s.pollDelay = p.Millis("pollDelay", 500*time.Millisecond)
	s.maxBackoff = p.Millis("maxBackoff", 4*time.Second)
	batch := p.Int("batchSize", 100)
	deser := p.String("deserializer", "LINE")
	maxLine := p.Int("deserializer.maxLineLength", 2048)
	if p.Bool("fileHeader", false) {
		s.fileHeader = p.String("fileHeaderKey", "file")
	}
	if p.Bool("basenameHeader", false) {
		s.baseHeader = p.String("basenameHeaderKey", "basename")
	}
	cs := p.String("inputCharset", "UTF-8")
	if err := p.Err(); err != nil {
		return nil, err
	}
	switch policy {
	case "never":
	case "immediate":
		s.deleteNow = true
	default:
		return nil, errorf(p, "deletePolicy", "%q: want never or immediate", policy)
	}
	switch s.order {
	case "oldest", "youngest", "random":
	default:
		return nil, errorf(p, "consumeOrder", "%q: want oldest, youngest or random", s.order)
	}
	if !strings.EqualFold(deser, "LINE") && deser != "org.apache.flume.serialization.LineDeserializer$Builder" {
		return nil, errorf(p, "deserializer", "%q: only LINE is supported", deser)
	}
	if !strings.EqualFold(cs, "UTF-8") && !strings.EqualFold(cs, "UTF8") {
		return nil, errorf(p, "inputCharset", "%q: only UTF-8 is supported", cs)
	}
	if s.suffix == "" && !s.deleteNow {
		return nil, errorf(p, "fileSuffix", "must not be empty with deletePolicy never")
	}
	var err error
	if s.include, err = regexp.Compile(include); err != nil {
		return nil, errorf(p, "includePattern", "%q: %v", include, err)
	}
	if s.ignore, err = regexp.Compile(ignore); err != nil {
		return nil, errorf(p, "ignorePattern", "%q: %v", ignore, err)
	}
	if err := positive(p, "batchSize", batch); err != nil {
		return nil, err
	}
	if err := positive(p, "deserializer.maxLineLength", maxLine); err != nil {
		return nil, err
	}
	s.batch, s.maxLine = int(batch), int(maxLine)
	if !filepath.IsAbs(s.trackerDir) {
		s.trackerDir = filepath.Join(s.dir, s.trackerDir)
	}
	return s, nil
}

func (s *spoolDir) trackerPath() string { return filepath.Join(s.trackerDir, ".flumespool-main.meta") }

func (s *spoolDir) Start(context.Context) error {
	fi, err := os.Stat(s.dir)
	if err != nil {
		return fmt.Errorf("source %s: spoolDir: %w", s.name, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("source %s: spoolDir %s is not a directory", s.name, s.dir)
	}
	if err := os.MkdirAll(s.trackerDir, 0o755); err != nil {
		return fmt.Errorf("source %s: trackerDir: %w", s.name, err)
	}
	s.begin()
	s.spawn(s.loop)
	return nil
}

func (s *spoolDir) Stop(ctx context.Context) error { return s.finish(ctx, nil) }

func (s *spoolDir) loop() {
	wait := s.pollDelay
	for !s.stopping() {
		path, ok := s.next()
		if !ok {
			if !s.sleep(s.pollDelay) {
				return
			}
			continue
		}
		if err := s.consume(path); err != nil {
			if s.stopping() {
				return
			}
			s.log.Error("spooled file not consumed", "file", path, "err", err)
			if !s.sleep(wait) {
				return
			}
			wait = min(2*wait, max(s.maxBackoff, s.pollDelay))
			continue
		}
		wait = s.pollDelay
	}
}

// next picks the file to read: the one the tracker names if it is still
// there, else the oldest (youngest, random) eligible file.
func (s *spoolDir) next() (string, bool) {
	if t, err := s.readTracker(); err == nil && t.File != "" {
		if _, err := os.Stat(t.File); err == nil {
			return t.File, true
		}
		_ = os.Remove(s.trackerPath())
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		s.log.Warn("cannot list spoolDir", "err", err)
		return "", false
	}
	type cand struct {
		path  string
		mtime time.Time
	}
	var cands []cand
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || (s.suffix != "" && strings.HasSuffix(name, s.suffix)) ||
			!s.include.MatchString(name) || s.ignore.MatchString(name) {
			continue
		}
		path := filepath.Join(s.dir, name)
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if st, bad := s.refused[path]; bad {
			if st == stampOf(fi) {
				continue
			}
			delete(s.refused, path) // a new file under that name
		}
		cands = append(cands, cand{path, fi.ModTime()})
	}
	if len(cands) == 0 {
		return "", false
	}
	switch s.order {
	case "random":
		return cands[rand.IntN(len(cands))].path, true
	case "youngest":
		sort.Slice(cands, func(i, j int) bool {
			if !cands[i].mtime.Equal(cands[j].mtime) {
				return cands[i].mtime.After(cands[j].mtime)
			}
			return cands[i].path < cands[j].path
		})
	default:
		sort.Slice(cands, func(i, j int) bool {
			if !cands[i].mtime.Equal(cands[j].mtime) {
				return cands[i].mtime.Before(cands[j].mtime)
			}
			return cands[i].path < cands[j].path
		})
	}
	return cands[0].path, true
}

func (s *spoolDir) readTracker() (spoolTracker, error) {
	var t spoolTracker
	data, err := os.ReadFile(s.trackerPath())
	if err != nil {
		return t, err
	}
	if err := json.Unmarshal(data, &t); err != nil {
		return spoolTracker{}, fmt.Errorf("tracker %s: %w", s.trackerPath(), err)
	}
	return t, nil
}

// errChanged is Flume's "File has been modified since being read".
var errChanged = errors.New("file has been modified since being read")

// consume reads path to its end in batches, then completes it.
func (s *spoolDir) consume(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	cur := spoolTracker{File: path, Stamp: stampOf(fi)}
	if t, err := s.readTracker(); err == nil && t.File == path {
		if t.Stamp != cur.Stamp {
			return s.refuse(path, cur.Stamp, fmt.Errorf("%w (since it was picked up before the restart)", errChanged))
		}
		cur.Pos = t.Pos
	} else if err := writeJSONAtomic(s.trackerPath(), cur); err != nil {
		return fmt.Errorf("tracker: %w", err)
	}
	for {
		if s.stopping() {
			return nil
		}
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if stampOf(fi) != cur.Stamp {
			return s.refuse(path, stampOf(fi), errChanged)
		}
		lines, next, err := readLines(f, cur.Pos, s.batch, s.maxLine, true)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if len(lines) == 0 {
			break
		}
		evs := make([]flow.Event, len(lines))
		for i, l := range lines {
			evs[i].Body = l
			if s.fileHeader != "" || s.baseHeader != "" {
				evs[i].Headers = map[string]string{}
				if s.fileHeader != "" {
					evs[i].Headers[s.fileHeader] = path
				}
				if s.baseHeader != "" {
					evs[i].Headers[s.baseHeader] = filepath.Base(path)
				}
			}
		}
		if err := s.deliver(evs); err != nil {
			return err // the batch is read again from cur.Pos
		}
		cur.Pos = next
		if err := writeJSONAtomic(s.trackerPath(), cur); err != nil {
			return fmt.Errorf("tracker: %w", err)
		}
	}
	return s.complete(path, cur)
}

// complete renames (or deletes) a file read to its end; a file changed
// meanwhile is refused instead.
func (s *spoolDir) complete(path string, cur spoolTracker) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if stampOf(fi) != cur.Stamp {
		return s.refuse(path, stampOf(fi), errChanged)
	}
	if s.deleteNow {
		if err := os.Remove(path); err != nil {
			return err
		}
	} else {
		dst := path + s.suffix
		if _, err := os.Stat(dst); err == nil {
			return s.refuse(path, cur.Stamp, fmt.Errorf("file name has been re-used with different files: %s exists", dst))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.Rename(path, dst); err != nil {
			return err
		}
	}
	if err := os.Remove(s.trackerPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	s.log.Info("spooled file completed", "file", path, "deleted", s.deleteNow)
	return nil
}

// refuse stops reading a file for good (until it is replaced): it is
// neither renamed nor deleted, and the error says why.
func (s *spoolDir) refuse(path string, st fileStamp, cause error) error {
	s.refused[path] = st
	s.c.Add(flow.EventReadFail, 1)
	_ = os.Remove(s.trackerPath())
	return fmt.Errorf("refusing %s: %w", path, cause)
}
