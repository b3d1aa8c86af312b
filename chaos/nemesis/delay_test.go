package nemesis

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/chaos/netproxy"
)

type fakeShaper struct {
	links map[netproxy.Pair]netproxy.Link
}

func (f *fakeShaper) Set(l map[netproxy.Pair]netproxy.Link) { f.links = l }
func (f *fakeShaper) Reset()                                { f.links = nil }

func TestDelayFaults(t *testing.T) {
	ctx := context.Background()
	target := newFakeTarget(3)
	target.leaders = map[string]string{"t/0": "n2"}
	shaper := &fakeShaper{}
	env := NewEnv(target, nil, 1)

	_, err := NewFault(DelayAll, env)
	require.Error(t, err, "no proxies, no delay faults")
	env.Links = shaper

	inject := func(kind string) []string {
		f, err := NewFault(kind, env)
		require.NoError(t, err)
		nodes, desc, err := f.Inject(ctx)
		require.NoError(t, err)
		require.NotEmpty(t, desc)
		require.NotEmpty(t, shaper.links)
		require.NoError(t, f.Heal(ctx))
		require.Empty(t, shaper.links, "healed")
		return nodes
	}

	inject(DelayAll)
	f, _ := NewFault(DelayAll, env)
	_, _, _ = f.Inject(ctx)
	require.Len(t, shaper.links, 6, "every ordered pair of 3 nodes")
	require.Equal(t, DelayAllLink, shaper.links[netproxy.Pair{From: "n1", To: "n3"}])

	require.Equal(t, []string{"n2"}, inject(DelayLeader))
	f, _ = NewFault(DelayLeader, env)
	_, _, _ = f.Inject(ctx)
	require.Len(t, shaper.links, 4, "both directions between the leader and each peer")
	require.Equal(t, DelayLeaderLink, shaper.links[netproxy.Pair{From: "n3", To: "n2"}])
	_, slowed := shaper.links[netproxy.Pair{From: "n1", To: "n3"}]
	require.False(t, slowed)

	nodes := inject(BlackholeOneWay)
	require.Len(t, nodes, 2)
	f, _ = NewFault(BlackholeOneWay, env)
	_, _, _ = f.Inject(ctx)
	require.Len(t, shaper.links, 1, "one direction of one link")
	for p, l := range shaper.links {
		require.True(t, l.Blackhole)
		require.NotEqual(t, p.From, p.To)
	}

	require.Equal(t, []string{"n2"}, inject(BlackholeLeaderOut))
	f, _ = NewFault(BlackholeLeaderOut, env)
	_, _, _ = f.Inject(ctx)
	require.Equal(t, map[netproxy.Pair]netproxy.Link{
		{From: "n2", To: "n1"}: {Blackhole: true},
		{From: "n2", To: "n3"}: {Blackhole: true},
	}, shaper.links)

	kinds, err := Expand([]string{"delay"})
	require.NoError(t, err)
	require.Equal(t, []string{DelayAll, DelayLeader, BlackholeOneWay, BlackholeLeaderOut}, kinds)
	kinds, err = Expand([]string{"kill-leader", "blackhole-one-way"})
	require.NoError(t, err)
	require.Equal(t, []string{BlackholeOneWay}, ProxyKinds(kinds))
	require.Equal(t, []string{KillLeader}, WithoutProxy(kinds))
	for _, k := range AllKinds() {
		require.False(t, NeedsProxy(k), "%s: delay kinds are not in all", k)
	}
}
