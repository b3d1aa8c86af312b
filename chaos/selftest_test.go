package chaos

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/chaos/lazyfs"
)

// TestSelfTest shows the checker catches planted bugs: a failpoints build
// that skips the Raft log's fsync loses acknowledged records under
// power-loss-all, one that acknowledges before the commit loses them under
// a leader partition. (The clean build's passing runs are TestChaosShort
// and TestChaosPowerLoss.) SLUICE_SELFTEST_FULL=1 (make chaos-selftest)
// runs the clean run and every failpoint instead.
func TestSelfTest(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: skipped with -short")
	}
	if os.Getenv("SLUICE_SKIP_CHAOS") == "1" {
		t.Skip("chaos: SLUICE_SKIP_CHAOS=1")
	}
	names := []string{"skip-raft-fsync", "ack-before-commit"}
	if os.Getenv("SLUICE_SELFTEST_FULL") == "1" {
		names = nil
		for _, c := range SelfTestCases() {
			names = append(names, c.Name)
		}
	}
	bin := buildSluice(t, "-tags=failpoints")
	for i, name := range names {
		c, err := SelfTestCaseNamed(name)
		require.NoError(t, err)
		t.Run(name, func(t *testing.T) {
			if why := lazyfs.Available(); why != "" && slicesHasPower(c.Nemeses) {
				t.Skipf("needs power loss, which needs root and FUSE (%s): SKIPPED, not passed", why)
			}
			opts := shortRun(t, "selftest")
			opts.Binary = bin
			c.Apply(&opts)
			opts.TimeLimit = 20 * time.Second
			opts.Interval = 8 * time.Second
			opts.Recovery = 8 * time.Second
			opts.LinearizabilityTimeout = 20 * time.Second
			opts.BaseHost = 61 + i*10
			if c.Failpoint == "" {
				opts.TimeLimit = 50 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			res, err := Run(ctx, opts)
			if res != nil {
				t.Log("\n" + res.Summary())
			}
			ok, why := c.Judge(res)
			require.True(t, ok, "%s (err %v)", why, err)
			t.Log(why)
		})
	}
}

func slicesHasPower(nemeses []string) bool {
	for _, n := range nemeses {
		if n == "power-loss" || n == "power-loss-all" {
			return true
		}
	}
	return false
}
