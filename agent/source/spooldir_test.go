package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/agent/flow"
)

// spool drops a complete file into dir the way Flume requires: written
// elsewhere, then renamed in.
func spool(t *testing.T, dir, name string, lines ...string) {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	require.NoError(t, os.Rename(tmp, filepath.Join(dir, name)))
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

func spoolProps(dir string, kv ...string) map[string]string {
	p := map[string]string{"spoolDir": dir, "pollDelay": "10", "maxBackoff": "20"}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	return p
}

func TestSpoolDirRenamePolicy(t *testing.T) {
	dir := t.TempDir()
	spool(t, dir, "a.log", numbered("a", 150)...)
	spool(t, dir, "skip.tmp", "ignored")
	spool(t, dir, ".hidden", "ignored")
	proc := &fakeProc{}
	startSource(t, "spooldir", spoolProps(dir, "ignorePattern", `\.tmp$`, "fileHeader", "true", "basenameHeader", "true"), proc)
	evs := proc.waitEvents(t, 150)
	require.Eventually(t, func() bool { return exists(filepath.Join(dir, "a.log.COMPLETED")) }, 10*time.Second, 5*time.Millisecond)
	assert.False(t, exists(filepath.Join(dir, "a.log")))
	assert.Equal(t, filepath.Join(dir, "a.log"), evs[0].Headers["file"])
	assert.Equal(t, "a.log", evs[0].Headers["basename"])
	assert.Equal(t, numbered("a", 150), proc.bodies())

	spool(t, dir, "b.log", numbered("b", 3)...)
	proc.waitEvents(t, 153)
	require.Eventually(t, func() bool { return exists(filepath.Join(dir, "b.log.COMPLETED")) }, 10*time.Second, 5*time.Millisecond)
	assert.True(t, exists(filepath.Join(dir, "skip.tmp")), "ignorePattern")
	assert.True(t, exists(filepath.Join(dir, ".hidden")), "hidden files are not spooled")
	assert.Len(t, proc.events(), 153)
}

func TestSpoolDirDeletePolicyAndOrder(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-time.Hour)
	spool(t, dir, "2-new.log", "new")
	spool(t, dir, "1-old.log", "old")
	require.NoError(t, os.Chtimes(filepath.Join(dir, "1-old.log"), old, old))
	proc := &fakeProc{}
	startSource(t, "org.apache.flume.source.SpoolDirectorySource", spoolProps(dir, "deletePolicy", "immediate", "includePattern", `\.log$`), proc)
	proc.waitEvents(t, 2)
	assert.Equal(t, []string{"old", "new"}, proc.bodies(), "consumeOrder oldest")
	require.Eventually(t, func() bool {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if !e.IsDir() {
				return false
			}
		}
		return true
	}, 10*time.Second, 5*time.Millisecond, "files deleted, nothing renamed")
}

// A file appended to after it was picked up is refused as Flume refuses
// it: not renamed, not deleted, counted; the other files go on.
func TestSpoolDirRefusesChangedFile(t *testing.T) {
	dir := t.TempDir()
	spool(t, dir, "a.log", numbered("a", 10)...)
	proc := &fakeProc{full: true}
	s := startSource(t, "spooldir", spoolProps(dir, "batchSize", "5"), proc)
	require.Eventually(t, func() bool { return proc.refusals() >= 1 }, 10*time.Second, 5*time.Millisecond)
	// The first batch is in flight: now the file changes under the source.
	f, err := os.OpenFile(filepath.Join(dir, "a.log"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("late line\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	proc.setFull(false)
	require.Eventually(t, func() bool { return s.Counters().Get(flow.EventReadFail) >= 1 }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, numbered("a", 5), proc.bodies(), "the batch read before the change, no more")
	assert.True(t, exists(filepath.Join(dir, "a.log")))
	assert.False(t, exists(filepath.Join(dir, "a.log.COMPLETED")))

	spool(t, dir, "b.log", "b")
	proc.waitEvents(t, 6)
	require.Eventually(t, func() bool { return exists(filepath.Join(dir, "b.log.COMPLETED")) }, 10*time.Second, 5*time.Millisecond)
	assert.True(t, exists(filepath.Join(dir, "a.log")), "the refused file stays refused")
	assert.Len(t, proc.events(), 6)
}

// Stopped mid-file, a new source on the same directory resumes at the
// tracked position: nothing lost, nothing read twice.
func TestSpoolDirResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	spool(t, dir, "a.log", numbered("a", 100)...)
	proc := &fakeProc{capacity: 30}
	s, err := buildSource(t, "spooldir", spoolProps(dir, "batchSize", "10"), proc)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	require.Eventually(t, func() bool { return proc.refusals() >= 1 }, 10*time.Second, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = s.Stop(ctx)
	assert.Len(t, proc.events(), 30)

	proc.mu.Lock()
	proc.capacity = 0
	proc.mu.Unlock()
	startSource(t, "spooldir", spoolProps(dir, "batchSize", "10"), proc)
	proc.waitEvents(t, 100)
	require.Eventually(t, func() bool { return exists(filepath.Join(dir, "a.log.COMPLETED")) }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, numbered("a", 100), proc.bodies())
}

func TestSpoolDirLongLinesAreCut(t *testing.T) {
	dir := t.TempDir()
	spool(t, dir, "a.log", strings.Repeat("x", 25), "short")
	proc := &fakeProc{}
	startSource(t, "spooldir", spoolProps(dir, "deserializer.maxLineLength", "10"), proc)
	proc.waitEvents(t, 4)
	assert.Equal(t, []string{"xxxxxxxxxx", "xxxxxxxxxx", "xxxxx", "short"}, proc.bodies())
}

func TestSpoolDirBadConfig(t *testing.T) {
	for key, props := range map[string]map[string]string{
		"spoolDir":       {},
		"deletePolicy":   {"spoolDir": "/x", "deletePolicy": "later"},
		"consumeOrder":   {"spoolDir": "/x", "consumeOrder": "biggest"},
		"ignorePattern":  {"spoolDir": "/x", "ignorePattern": "("},
		"deserializer":   {"spoolDir": "/x", "deserializer": "AVRO"},
		"batchSize":      {"spoolDir": "/x", "batchSize": "0"},
		"includePattern": {"spoolDir": "/x", "includePattern": "[z-a]"},
	} {
		_, err := buildSource(t, "spooldir", props, &fakeProc{})
		assert.ErrorContains(t, err, "a1.sources.r1."+key)
	}
}
