package nemesis

import (
	"context"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIptablesHookedIntoDockerUser(t *testing.T) {
	ctx := context.Background()
	f := newFakeIptables()
	f.chain[DockerHook] = []string{"-j RETURN"}
	ipt, err := NewIptablesHooked(ctx, "iptables", "SLUICE-CHAOS-D7", DockerHook, f.run, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"-j SLUICE-CHAOS-D7", "-j RETURN"}, f.chain[DockerHook], "jumped to first, before Docker's RETURN")
	assert.Empty(t, f.chain["INPUT"], "INPUT untouched")

	require.NoError(t, ipt.Apply(ctx, []Rule{{Src: "172.28.1.12", Dst: "172.28.1.11"}}))
	assert.Equal(t, []string{"-s 172.28.1.12 -d 172.28.1.11 -j DROP"}, f.chain["SLUICE-CHAOS-D7"])
	require.NoError(t, ipt.Close(ctx))
	assert.NotContains(t, f.chain, "SLUICE-CHAOS-D7")
	assert.Equal(t, []string{"-j RETURN"}, f.chain[DockerHook])
	for _, c := range f.cmds {
		assert.Contains(t, c, "SLUICE-CHAOS-D7", c)
	}
}

func TestBridgeNetfilter(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sysctl := filepath.Join(dir, "bridge-nf-call-iptables")
	var ran []string
	run := func(_ context.Context, bin string, args ...string) (string, error) {
		ran = append(ran, bin+" "+strings.Join(args, " "))
		return "", os.WriteFile(sysctl, []byte("0\n"), 0o644) // the module loads with it off
	}

	// Missing: modprobe, then switched on; restore puts the 0 back.
	restore, note, err := BridgeNetfilter(ctx, sysctl, run)
	require.NoError(t, err)
	assert.Equal(t, []string{"modprobe br_netfilter"}, ran)
	assert.Contains(t, note, "loaded br_netfilter")
	assert.Contains(t, note, "to 1")
	b, _ := os.ReadFile(sysctl)
	assert.Equal(t, "1\n", string(b))
	require.NotNil(t, restore)
	require.NoError(t, restore())
	b, _ = os.ReadFile(sysctl)
	assert.Equal(t, "0\n", string(b))

	// Already on: nothing to do.
	require.NoError(t, os.WriteFile(sysctl, []byte("1\n"), 0o644))
	ran = nil
	restore, note, err = BridgeNetfilter(ctx, sysctl, run)
	require.NoError(t, err)
	assert.Nil(t, restore)
	assert.Empty(t, note)
	assert.Empty(t, ran)

	// Cannot load the module.
	require.NoError(t, os.Remove(sysctl))
	fail := func(context.Context, string, ...string) (string, error) { return "", errors.New("modprobe: not found") }
	_, _, err = BridgeNetfilter(ctx, sysctl, fail)
	require.ErrorContains(t, err, "modprobe br_netfilter failed")
}

// fakeDisconnector models docker network disconnect/connect.
type fakeDisconnector struct {
	*fakeTarget
	mu  sync.Mutex
	off map[string]bool
	log []string
}

func (f *fakeDisconnector) Disconnect(_ context.Context, n string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.off[n] = true
	f.log = append(f.log, "disconnect "+n)
	return nil
}

func (f *fakeDisconnector) Connect(_ context.Context, n string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.off, n)
	f.log = append(f.log, "connect "+n)
	return nil
}

func TestDisconnects(t *testing.T) {
	ctx := context.Background()
	fd := &fakeDisconnector{fakeTarget: newFakeTarget(5), off: map[string]bool{}}
	d := NewDisconnects(fd)
	nodes := fd.Nodes()

	require.NoError(t, d.Apply(ctx, Rules(Isolate(nodes, "n3"), fd.Host)))
	assert.Equal(t, []string{"n3"}, d.Cut())
	assert.Equal(t, []string{"disconnect n3"}, fd.log)

	// A new partition replaces the old one.
	two := Rules(Complete([]string{"n1"}, []string{"n2"}, []string{"n3", "n4", "n5"}), fd.Host)
	require.NoError(t, d.Apply(ctx, two))
	assert.Equal(t, []string{"n1", "n2"}, d.Cut())
	assert.Equal(t, []string{"disconnect n3", "connect n3", "disconnect n1", "disconnect n2"}, fd.log)

	// Anything but whole nodes cut off is refused, and changes nothing.
	g, _ := Halves(nodes, rand.New(rand.NewSource(1)))
	require.Error(t, d.Apply(ctx, Rules(g, fd.Host)))
	gb, _ := Bridge(nodes, rand.New(rand.NewSource(1)))
	require.Error(t, d.Apply(ctx, Rules(gb, fd.Host)))
	require.Error(t, d.Apply(ctx, []Rule{{Src: fd.Host("n1"), Dst: fd.Host("n2")}}), "one direction only")
	assert.Equal(t, []string{"n1", "n2"}, d.Cut())

	require.NoError(t, d.Heal(ctx))
	assert.Empty(t, d.Cut())
	assert.Empty(t, fd.off)
	require.NoError(t, d.Apply(ctx, nil), "no rules: nobody cut")
	assert.Empty(t, fd.off)

	assert.True(t, d.CanPartition(PartitionOne, 5))
	assert.True(t, d.CanPartition(PartitionLeader, 5))
	assert.True(t, d.CanPartition(PartitionHalves, 3))
	assert.False(t, d.CanPartition(PartitionHalves, 5))
	assert.False(t, d.CanPartition(PartitionRing, 5))
	assert.False(t, d.CanPartition(PartitionBridge, 3))

	// Halves of three nodes is one node isolated: the fallback can do it.
	fd3 := &fakeDisconnector{fakeTarget: newFakeTarget(3), off: map[string]bool{}}
	g3, parts := Halves(fd3.Nodes(), rand.New(rand.NewSource(2)))
	d3 := NewDisconnects(fd3)
	require.NoError(t, d3.Apply(ctx, Rules(g3, fd3.Host)))
	assert.Equal(t, parts[0], d3.Cut())
}

func TestSupported(t *testing.T) {
	all := AllKinds()
	fd := &fakeDisconnector{fakeTarget: newFakeTarget(5), off: map[string]bool{}}
	assert.Equal(t, all, Supported(all, &fakeNet{}, 5), "a full network makes everything")
	assert.Equal(t, WithoutNetwork(all), Supported(all, nil, 5))
	got := Supported(all, NewDisconnects(fd), 5)
	assert.Contains(t, got, PartitionOne)
	assert.Contains(t, got, PartitionLeader)
	assert.Contains(t, got, Combo)
	assert.NotContains(t, got, PartitionHalves)
	assert.NotContains(t, got, PartitionRing)
	assert.Contains(t, Supported(all, NewDisconnects(fd), 3), PartitionHalves)

	_, err := NewFault(PartitionRing, NewEnv(fd, NewDisconnects(fd), 1))
	require.Error(t, err)
}

func TestComboWithDisconnects(t *testing.T) {
	ctx := context.Background()
	seen := map[string]bool{}
	for seed := int64(0); seed < 60; seed++ {
		fd := &fakeDisconnector{fakeTarget: newFakeTarget(5), off: map[string]bool{}}
		f, err := NewFault(Combo, NewEnv(fd, NewDisconnects(fd), seed))
		require.NoError(t, err)
		_, desc, err := f.Inject(ctx)
		require.NoError(t, err, "seed %d: %s", seed, desc)
		seen[strings.Fields(desc)[0]] = true
		require.NoError(t, f.Heal(ctx))
		assert.Empty(t, fd.off)
		assert.True(t, fd.healthy())
	}
	kinds := make([]string, 0, len(seen))
	for k := range seen {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	assert.Subset(t, []string{PartitionOne, PartitionLeader, KillLeader}, kinds)
	assert.Contains(t, kinds, PartitionOne, "partitions still take part")
}
