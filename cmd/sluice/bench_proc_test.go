package main

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSampleOwnProcess(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "n1.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644))
	pids, err := nodePids(dir)
	require.NoError(t, err)
	require.Equal(t, map[string]int{"n1": os.Getpid()}, pids)

	// Burn CPU while "sleeping" so the sample cannot read zero.
	burn := func(d time.Duration) error {
		x := 0
		for end := time.Now().Add(d); time.Now().Before(end); x++ {
		}
		_ = x
		return nil
	}
	s, err := sampleProcs(pids, 300*time.Millisecond, burn)
	require.NoError(t, err)
	require.Greater(t, s["n1"].CPUPct, 0.0)
	require.Greater(t, s["n1"].RSSMB, 1.0)
	require.False(t, procGone(os.Getpid()))
	require.True(t, procGone(1<<30))

	_, err = nodePids(t.TempDir())
	require.ErrorContains(t, err, "no node pid files")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "n2.pid"), []byte("junk"), 0o644))
	_, err = nodePids(dir)
	require.ErrorContains(t, err, "not a pid")
}
