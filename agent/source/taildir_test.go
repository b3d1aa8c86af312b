package source

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/agent/flow"
)

func appendLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	_, err = f.WriteString(strings.Join(lines, "\n") + "\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func tailProps(dir, posFile string, kv ...string) map[string]string {
	p := map[string]string{
		"filegroups": "f1", "filegroups.f1": filepath.Join(dir, `app\.log.*`),
		"positionFile": posFile, "backoffSleepIncrement": "5", "maxBackoffSleep": "20",
		"writePosInterval": "10", "idleTimeout": "50",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	return p
}

func stopNow(t *testing.T, s flow.Source) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.Stop(ctx))
}

func TestTaildirGroupsAndHeaders(t *testing.T) {
	dir1, dir2 := t.TempDir(), t.TempDir()
	appendLines(t, filepath.Join(dir1, "a.log"), "a1", "a2")
	appendLines(t, filepath.Join(dir2, "b.txt"), "b1")
	appendLines(t, filepath.Join(dir2, "other.bin"), "not matched")
	proc := &fakeProc{}
	startSource(t, "taildir", map[string]string{
		"filegroups": "f1 f2", "filegroups.f1": filepath.Join(dir1, `.*\.log`), "filegroups.f2": filepath.Join(dir2, `.*\.txt`),
		"headers.f1.topic": "logs", "headers.f2.topic": "texts", "headers.f2.dc": "eu",
		"positionFile": filepath.Join(t.TempDir(), "pos.json"), "backoffSleepIncrement": "5", "maxBackoffSleep": "20",
		"fileHeader": "true",
	}, proc)
	proc.waitEvents(t, 3)
	appendLines(t, filepath.Join(dir1, "a.log"), "a3")
	// A partial line waits for its newline.
	f, err := os.OpenFile(filepath.Join(dir2, "b.txt"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("b2 part")
	require.NoError(t, err)
	proc.waitEvents(t, 4)
	_, err = f.WriteString("ial\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	evs := proc.waitEvents(t, 5)
	byBody := map[string]flow.Event{}
	for _, e := range evs {
		byBody[string(e.Body)] = e
	}
	require.Len(t, byBody, 5, "%v", proc.bodies())
	assert.Equal(t, map[string]string{"topic": "logs", "file": filepath.Join(dir1, "a.log")}, byBody["a3"].Headers)
	assert.Equal(t, map[string]string{"topic": "texts", "dc": "eu", "file": filepath.Join(dir2, "b.txt")}, byBody["b2 partial"].Headers)
}

// Stopped, the file grows, started again: exactly the new lines follow,
// from the JSON position file (Flume's shape: inode, pos, file).
func TestTaildirAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	posFile := filepath.Join(t.TempDir(), "pos.json")
	log := filepath.Join(dir, "app.log")
	appendLines(t, log, numbered("x", 50)...)
	proc := &fakeProc{}
	s, err := buildSource(t, "org.apache.flume.source.taildir.TaildirSource", tailProps(dir, posFile), proc)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	proc.waitEvents(t, 50)
	stopNow(t, s)

	var pos []map[string]any
	data, err := os.ReadFile(posFile)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &pos))
	require.Len(t, pos, 1)
	fi, err := os.Stat(log)
	require.NoError(t, err)
	assert.EqualValues(t, fi.Size(), pos[0]["pos"])
	assert.Equal(t, log, pos[0]["file"])
	assert.EqualValues(t, idOf(fi).Inode, pos[0]["inode"])

	appendLines(t, log, numbered("y", 20)...)
	startSource(t, "taildir", tailProps(dir, posFile), proc)
	proc.waitEvents(t, 70)
	assert.Equal(t, append(numbered("x", 50), numbered("y", 20)...), proc.bodies())

	// skipToEnd only skips files the position file does not know.
	appendLines(t, filepath.Join(dir, "app.log.new"), "old content")
	proc2 := &fakeProc{}
	s3 := startSource(t, "taildir", tailProps(dir, filepath.Join(t.TempDir(), "p2.json"), "skipToEnd", "true"), proc2)
	appendLines(t, filepath.Join(dir, "app.log.new"), "fresh")
	proc2.waitEvents(t, 1)
	assert.Equal(t, []string{"fresh"}, proc2.bodies())
	stopNow(t, s3)
}

// Log rotation by rename, both ways: renamed to a name the group still
// matches (followed by inode, not read again), and renamed out of the
// group (read to its end, including lines written through the old file
// after the rename). Nothing lost, nothing twice.
func TestTaildirRotationByRename(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	appendLines(t, log, numbered("a", 30)...)
	proc := &fakeProc{}
	startSource(t, "taildir", map[string]string{
		"filegroups": "f1", "filegroups.f1": filepath.Join(dir, `app\.log(\.1)?`),
		"positionFile": filepath.Join(t.TempDir(), "pos.json"), "backoffSleepIncrement": "5", "maxBackoffSleep": "20",
		"writePosInterval": "10", "idleTimeout": "50",
	}, proc)
	proc.waitEvents(t, 30)

	// Rotation 1: app.log -> app.log.1 (still in the group), new app.log.
	w, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = w.WriteString(strings.Join(numbered("b", 10), "\n") + "\n")
	require.NoError(t, err)
	require.NoError(t, os.Rename(log, log+".1"))
	_, err = w.WriteString(strings.Join(numbered("c", 10), "\n") + "\n") // the writer has not reopened yet
	require.NoError(t, err)
	require.NoError(t, w.Close())
	appendLines(t, log, numbered("d", 10)...)
	proc.waitEvents(t, 60)

	// Rotation 2: app.log.1 -> app.log.2 (out of the group), app.log ->
	// app.log.1, new app.log; the old file gets a last line meanwhile.
	old, err := os.OpenFile(log+".1", os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	require.NoError(t, os.Rename(log+".1", log+".2"))
	require.NoError(t, os.Rename(log, log+".1"))
	_, err = old.WriteString("last of the oldest\n")
	require.NoError(t, err)
	require.NoError(t, old.Close())
	appendLines(t, log+".1", "e-0")
	appendLines(t, log, "f-0")
	evs := proc.waitEvents(t, 63)

	counts := map[string]int{}
	for _, e := range evs {
		counts[string(e.Body)]++
	}
	want := append(append(append(numbered("a", 30), numbered("b", 10)...), numbered("c", 10)...), numbered("d", 10)...)
	want = append(want, "last of the oldest", "e-0", "f-0")
	for _, w := range want {
		assert.Equal(t, 1, counts[w], "line %q", w)
	}
	assert.Len(t, evs, len(want), "nothing read twice")
}

func TestTaildirBadConfig(t *testing.T) {
	for key, props := range map[string]map[string]string{
		"filegroups":    {},
		"filegroups.f1": {"filegroups": "f1"},
		"batchSize":     {"filegroups": "f1", "filegroups.f1": "/tmp/x.log", "batchSize": "0"},
	} {
		_, err := buildSource(t, "taildir", props, &fakeProc{})
		assert.ErrorContains(t, err, "a1.sources.r1."+key)
	}
	_, err := buildSource(t, "taildir", map[string]string{"filegroups": "f1", "filegroups.f1": "/var/log/*/x.log"}, &fakeProc{})
	assert.ErrorContains(t, err, "a1.sources.r1.filegroups.f1")
	_, err = buildSource(t, "taildir", map[string]string{"filegroups": "f1", "filegroups.f1": "/var/log/(x"}, &fakeProc{})
	assert.ErrorContains(t, err, "a1.sources.r1.filegroups.f1")
}

// A crash leaves the position file as it was at its last write: the next
// start reads the lines since then again (counted here), never fewer.
func TestTaildirStalePositionFileMeansDuplicatesNotLoss(t *testing.T) {
	dir := t.TempDir()
	posFile := filepath.Join(t.TempDir(), "pos.json")
	log := filepath.Join(dir, "app.log")
	appendLines(t, log, numbered("a", 20)...)
	proc := &fakeProc{}
	s, err := buildSource(t, "taildir", tailProps(dir, posFile), proc)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	proc.waitEvents(t, 20)
	require.Eventually(t, func() bool {
		data, err := os.ReadFile(posFile)
		return err == nil && strings.Contains(string(data), `"pos":`) && !strings.Contains(string(data), `"pos":0`)
	}, 10*time.Second, 5*time.Millisecond)
	stale, err := os.ReadFile(posFile)
	require.NoError(t, err)
	appendLines(t, log, numbered("b", 20)...)
	proc.waitEvents(t, 40)
	stopNow(t, s)
	require.NoError(t, os.WriteFile(posFile, stale, 0o644)) // as if killed before the next write

	appendLines(t, log, numbered("c", 5)...)
	proc2 := &fakeProc{}
	startSource(t, "taildir", tailProps(dir, posFile), proc2)
	proc2.waitEvents(t, 25)
	seen := map[string]int{}
	for _, b := range append(proc.bodies(), proc2.bodies()...) {
		seen[b]++
	}
	for _, want := range append(append(numbered("a", 20), numbered("b", 20)...), numbered("c", 5)...) {
		assert.GreaterOrEqual(t, seen[want], 1, want)
	}
	t.Logf("%d lines read again after the stale position", len(proc2.bodies())-5)
}
