package source

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExecLinesInBatches(t *testing.T) {
	proc := &fakeProc{}
	startSource(t, "exec", map[string]string{
		"command": "for i in $(seq 0 44); do echo line $i; done", "shell": "/bin/sh -c", "batchSize": "20",
	}, proc)
	evs := proc.waitEvents(t, 45)
	for i, ev := range evs {
		assert.Equal(t, "line "+strconv.Itoa(i), string(ev.Body))
	}
	proc.mu.Lock()
	sizes := []int{}
	for _, b := range proc.batches {
		sizes = append(sizes, len(b))
	}
	proc.mu.Unlock()
	assert.Equal(t, []int{20, 20, 5}, sizes)
}

func TestExecRestart(t *testing.T) {
	// Each run appends a mark, prints the run count and exits: restart
	// runs it again after restartThrottle.
	dir := t.TempDir()
	marks := filepath.Join(dir, "runs")
	proc := &fakeProc{}
	startSource(t, "org.apache.flume.source.ExecSource", map[string]string{
		"command":         "echo x >> " + marks + "; wc -l < " + marks,
		"shell":           "/bin/sh -c",
		"restart":         "true",
		"restartThrottle": "10",
		"batchTimeout":    "10",
	}, proc)
	evs := proc.waitEvents(t, 3)
	for i, ev := range evs[:3] {
		assert.Equal(t, strconv.Itoa(i+1), string(ev.Body))
	}
	_, err := os.Stat(marks)
	require.NoError(t, err)
}

func TestExecWithoutShellSplitsTheCommand(t *testing.T) {
	proc := &fakeProc{}
	startSource(t, "exec", map[string]string{"command": "echo a  b", "batchTimeout": "10"}, proc)
	evs := proc.waitEvents(t, 1)
	assert.Equal(t, "a b", string(evs[0].Body))
}

func TestExecBadConfig(t *testing.T) {
	_, err := buildSource(t, "exec", map[string]string{}, &fakeProc{})
	assert.ErrorContains(t, err, "a1.sources.r1.command")
	_, err = buildSource(t, "exec", map[string]string{"command": "true", "batchSize": "0"}, &fakeProc{})
	assert.ErrorContains(t, err, "a1.sources.r1.batchSize")
}

func TestExecStopEndsTheCommand(t *testing.T) {
	proc := &fakeProc{}
	s, err := buildSource(t, "exec", map[string]string{"command": "echo up; exec sleep 60", "shell": "/bin/sh -c", "restart": "true", "batchTimeout": "10"}, proc)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	proc.waitEvents(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.Stop(ctx), "the command is terminated, not waited for")
	assert.Equal(t, []string{"up"}, proc.bodies())
}
