package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBenchCommands runs the quick forms of the bench commands against a
// 3-process cluster and checks their JSON summaries; and that the nodes
// serve pprof.
func TestBenchCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	c := startProcCluster(t, 3)
	for _, args := range [][]string{
		{"bench", "produce", "--records", "200", "--json", "--quiet"},
		{"bench", "produce", "--records", "200", "--record-size", "100", "--partitions", "2", "--producers", "2", "--max-in-flight", "7", "--json"},
		{"bench", "latency", "--records", "20", "--json", "--quiet"},
		{"bench", "latency", "--records", "50", "--rate", "200", "--json", "--quiet"},
		{"bench", "consume", "--records", "300", "--json", "--quiet"},
	} {
		out := c.run(args...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 1, "%v prints one JSON line: %s", args, out)
		var res map[string]any
		require.NoError(t, json.Unmarshal([]byte(lines[0]), &res), "%v: %s", args, out)
		for _, k := range []string{"records_per_sec", "mb_per_sec", "p50_ms", "p99_ms", "p999_ms", "max_ms"} {
			require.Contains(t, res, k, "%v", args)
		}
		require.Greater(t, res["records_per_sec"].(float64), 0.0, "%v", args)
		require.Greater(t, res["max_ms"].(float64), 0.0, "%v", args)
		require.Zero(t, res["failed"].(float64), "%v", args)
		if args[1] == "produce" && len(args) > 8 {
			require.Equal(t, 5.0, res["effective_max_in_flight"], "capped at the dedupe window")
			require.Contains(t, res["note"], "--max-in-flight 7 capped at 5")
		}
	}
	require.Contains(t, c.run("bench", "consume", "--records", "300"), "300 records of 1024 bytes", "the second run reuses the filled partition")

	resp, err := http.Get("http://" + c.http[0] + "/debug/pprof/")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "goroutine")
	resp, err = http.Get("http://" + c.http[0] + "/debug/pprof/profile?seconds=1")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotEmpty(t, body, "a CPU profile")
}
