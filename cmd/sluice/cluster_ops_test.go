package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCLIClusterOps(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	c := startProcCluster(t, 3)
	c.run("topic", "create", "ops", "--partitions", "2", "--replicas", "3")

	require.Contains(t, c.run("cluster", "status"), "LAG (records)")
	out := c.run("cluster", "rebalance-leaders", "--json")
	require.Contains(t, out, `"moves"`)

	require.Contains(t, c.run("topic", "alter", "ops", "--partitions", "3"), "topic ops has 3 partitions")
	// The node answering describe may apply the metadata a moment after
	// the controller committed it.
	require.Eventually(t, func() bool {
		return strings.Contains(c.run("topic", "describe", "ops", "--json"), `"partition": 2`)
	}, 15*time.Second, 100*time.Millisecond, "the third partition never appeared in describe")

	cmd := exec.Command(c.bin, "topic", "alter", "ops", "--partitions", "1", "--server", strings.Join(c.rpc, ","))
	var errb bytes.Buffer
	cmd.Stderr = &errb
	require.Error(t, cmd.Run(), "a decrease is refused")
	require.Contains(t, errb.String(), "keyed ordering")
}
