package chaos

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/chaos/history"
	"github.com/sluice-io/sluice/chaos/nemesis"
)

// TestChaosDelay runs the nodes behind the proxies with every link slowed
// (delay-all) and then a leader that cannot be heard (blackhole-leader-out):
// the run passes, and while every link is slowed no append is acknowledged
// sooner than the two link trips a quorum commit needs.
func TestChaosDelay(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: skipped with -short")
	}
	if os.Getenv("SLUICE_SKIP_CHAOS") == "1" {
		t.Skip("chaos: SLUICE_SKIP_CHAOS=1")
	}
	opts := shortRun(t, "delay")
	opts.Nemeses = []string{nemesis.DelayAll, nemesis.BlackholeLeaderOut}
	opts.TimeLimit = 40 * time.Second
	opts.Interval = 8 * time.Second
	opts.Recovery = 8 * time.Second
	opts.BaseHost = 41
	res := runShort(t, opts, 4*time.Minute)
	require.Len(t, res.Faults, 2)

	ops, err := history.ReadFile(res.Dir + "/history.jsonl")
	require.NoError(t, err)
	var delayed *history.Op
	for i, op := range ops {
		if op.F == history.FFault && op.Fault == nemesis.DelayAll {
			delayed = &ops[i]
		}
	}
	require.NotNil(t, delayed, "delay-all was injected")
	var heal int64
	for _, op := range ops {
		if op.F == history.FHeal && op.Fault == nemesis.DelayAll && op.Invoke > delayed.Complete {
			heal = op.Invoke
			break
		}
	}
	minTrip := 2 * nemesis.DelayAllLink.Delay
	sends := 0
	for _, op := range ops {
		if op.F == history.FSend && op.Type == history.OK && op.Invoke > delayed.Complete && op.Complete < heal {
			sends++
			require.GreaterOrEqual(t, op.Latency(), minTrip, "an append acknowledged faster than a quorum round trip over slowed links: %+v", op)
		}
	}
	require.Greater(t, sends, 10, "appends went on while every link was slowed")
}
