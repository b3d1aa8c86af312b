package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-io/sluice/fsm"
)

// Replica directories are named partitions/<topic>@<topic id>-<partition>.
// '@' cannot occur in a topic name, so the name parses without ambiguity,
// and a re-created topic (new id) never finds its predecessor's files.
const (
	partitionsDirName = "partitions"
	trashDirName      = ".trash" // replicas being deleted: renamed here first, then removed
)

// replicaDirName is the directory name of one replica of one incarnation.
func replicaDirName(topic string, id uint64, partition int32) string {
	return fmt.Sprintf("%s@%d-%d", topic, id, partition)
}

// parseReplicaDirName is the inverse of replicaDirName.
func parseReplicaDirName(name string) (topic string, id uint64, partition int32, ok bool) {
	at := strings.LastIndexByte(name, '@')
	if at <= 0 {
		return "", 0, 0, false
	}
	topic = name[:at]
	rest := name[at+1:]
	dash := strings.IndexByte(rest, '-')
	if dash <= 0 {
		return "", 0, 0, false
	}
	id, err := strconv.ParseUint(rest[:dash], 10, 64)
	if err != nil {
		return "", 0, 0, false
	}
	p, err := strconv.ParseInt(rest[dash+1:], 10, 32)
	if err != nil || p < 0 || fsm.ValidateTopicName(topic) != nil {
		return "", 0, 0, false
	}
	return topic, id, int32(p), true
}

// parseLegacyDirName parses the layout before topic ids: <topic>-<p>.
func parseLegacyDirName(name string) (topic string, partition int32, ok bool) {
	dash := strings.LastIndexByte(name, '-')
	if dash <= 0 {
		return "", 0, false
	}
	p, err := strconv.ParseInt(name[dash+1:], 10, 32)
	if err != nil || p < 0 || fsm.ValidateTopicName(name[:dash]) != nil {
		return "", 0, false
	}
	return name[:dash], int32(p), true
}

// prepareLayout runs at start-up, before any replica opens: it finishes
// deletions a crash interrupted and migrates replica directories of the
// layout without topic ids. A legacy <topic>-<p> becomes <topic>@0-<p>,
// the name of a topic created before ids existed (id 0). Whether that is
// still the topic the metadata knows is decided later, once this node has
// caught up with the metadata leader: if the topic was deleted (and maybe
// re-created, with a real id) meanwhile, the @0 directory is unknown and
// is deleted like any other. Anything else in partitions/ is refused: the
// node will not guess what it is.
func prepareLayout(dataDir string) error {
	parts := filepath.Join(dataDir, partitionsDirName)
	if err := os.RemoveAll(filepath.Join(parts, trashDirName)); err != nil {
		return fmt.Errorf("finish deleting replicas: %w", err)
	}
	entries, err := os.ReadDir(parts)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", parts, err)
	}
	moved := false
	for _, e := range entries {
		name := e.Name()
		if _, _, _, ok := parseReplicaDirName(name); ok && e.IsDir() {
			continue
		}
		topic, p, ok := parseLegacyDirName(name)
		if !ok || !e.IsDir() {
			return fmt.Errorf("%s holds %q, which is no replica directory (<topic>@<id>-<partition>); move it out of the data directory and start again", parts, name)
		}
		to := filepath.Join(parts, replicaDirName(topic, 0, p))
		if _, err := os.Stat(to); err == nil {
			return fmt.Errorf("%s holds both %q (layout without topic ids) and %q; remove the one that is not current (or both, the replicas are rebuilt from their peers) and start again", parts, name, filepath.Base(to))
		}
		if err := os.Rename(filepath.Join(parts, name), to); err != nil {
			return fmt.Errorf("migrate %s to the layout with topic ids: %w", name, err)
		}
		moved = true
	}
	if moved {
		return syncDir(parts)
	}
	return nil
}

// removeReplicaDir deletes a replica's directory so that a crash midway
// never leaves a half-deleted replica under a valid name: rename into the
// trash (atomic), fsync, then remove.
func removeReplicaDir(dir string) error {
	parts := filepath.Dir(dir)
	trash := filepath.Join(parts, trashDirName)
	if err := os.MkdirAll(trash, 0o755); err != nil {
		return fmt.Errorf("trash dir: %w", err)
	}
	to := filepath.Join(trash, fmt.Sprintf("%s.%d", filepath.Base(dir), time.Now().UnixNano()))
	if err := os.Rename(dir, to); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("move %s to the trash: %w", dir, err)
	}
	if err := syncDir(parts); err != nil {
		return err
	}
	if err := os.RemoveAll(to); err != nil {
		return fmt.Errorf("remove %s: %w", to, err)
	}
	return nil
}

// unknownReplicaDirs lists replica directories under partitions/ that are
// not in keep (directory names).
func unknownReplicaDirs(dataDir string, keep map[string]bool) ([]string, error) {
	parts := filepath.Join(dataDir, partitionsDirName)
	entries, err := os.ReadDir(parts)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", parts, err)
	}
	var out []string
	for _, e := range entries {
		if _, _, _, ok := parseReplicaDirName(e.Name()); ok && !keep[e.Name()] {
			out = append(out, filepath.Join(parts, e.Name()))
		}
	}
	return out, nil
}

// syncDir fsyncs a directory so that entries created, renamed or removed
// in it survive a power loss.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir for fsync: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
