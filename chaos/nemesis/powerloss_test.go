package nemesis

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakePower records power cuts on a fake target.
type fakePower struct{ t *fakeTarget }

func (p fakePower) PowerLoss(ctx context.Context, n string) error {
	p.t.mu.Lock()
	p.t.log = append(p.t.log, "power-cut "+n)
	p.t.mu.Unlock()
	return p.t.Kill(ctx, n)
}

func TestPowerLossFaults(t *testing.T) {
	ctx := context.Background()
	kinds, err := Expand([]string{"power-loss"})
	require.NoError(t, err)
	require.Equal(t, []string{PowerLoss, PowerLossAll}, kinds)
	require.Equal(t, []string{KillRandom}, WithoutPower([]string{KillRandom, PowerLoss}))

	target := newFakeTarget(3)
	_, err = NewFault(PowerLoss, NewEnv(target, nil, 1))
	require.ErrorContains(t, err, "FUSE", "no power cutter: refused, not silently passed")

	env := NewEnv(target, nil, 1)
	env.Power = fakePower{target}
	f, err := NewFault(PowerLoss, env)
	require.NoError(t, err)
	nodes, _, err := f.Inject(ctx)
	require.NoError(t, err)
	require.Len(t, nodes, 1)
	require.False(t, target.healthy(), "down until healed")
	require.NoError(t, f.Heal(ctx))
	require.True(t, target.healthy())

	target.log = nil
	f, err = NewFault(PowerLossAll, env)
	require.NoError(t, err)
	nodes, _, err = f.Inject(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"n1", "n2", "n3"}, nodes)
	require.True(t, target.healthy(), "every node restarted at once")
	require.ElementsMatch(t, []string{"power-cut n1", "power-cut n2", "power-cut n3", "kill n1", "kill n2", "kill n3", "start n1", "start n2", "start n3"}, target.log)
	require.NoError(t, f.Heal(ctx))
}
