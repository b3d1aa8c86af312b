package chaos

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/chaos/lazyfs"
)

// TestChaosPowerLoss cuts the power of one node, then of all three at once,
// on data directories that forget unsynced writes; no acknowledged record
// may be lost.
func TestChaosPowerLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: skipped with -short")
	}
	if os.Getenv("SLUICE_SKIP_CHAOS") == "1" {
		t.Skip("chaos: SLUICE_SKIP_CHAOS=1")
	}
	if why := lazyfs.Available(); why != "" {
		t.Skipf("chaos: power loss needs root and FUSE (%s): SKIPPED, not passed", why)
	}
	opts := shortRun(t, "power-loss")
	opts.Nemeses = []string{"power-loss", "power-loss-all"}
	opts.TimeLimit = 34 * time.Second
	opts.Interval = 8 * time.Second
	opts.Recovery = 8 * time.Second
	opts.BaseHost = 31
	res := runShort(t, opts, 4*time.Minute)
	require.Len(t, res.Faults, 2)
	require.Empty(t, res.Skipped)
	for _, f := range res.Faults {
		require.Contains(t, []string{"power-loss", "power-loss-all"}, f.Fault)
	}
}
