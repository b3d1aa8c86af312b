package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/chaos/history"
)

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("n%d", i+1)
	}
	return out
}

func sees(g Grudge, nodes []string, n string) []string {
	var out []string
	for _, p := range nodes {
		if g.Sees(n, p) {
			out = append(out, p)
		}
	}
	return out
}

func TestIsolate(t *testing.T) {
	nodes := names(5)
	g := Isolate(nodes, "n3")
	assert.Equal(t, []string{"n3"}, sees(g, nodes, "n3"))
	assert.Equal(t, []string{"n1", "n2", "n4", "n5"}, sees(g, nodes, "n1"))
	assert.Equal(t, []string{"n1", "n2", "n4", "n5"}, g["n3"])
	assert.Equal(t, []string{"n3"}, g["n1"])
}

func TestHalves(t *testing.T) {
	for _, n := range []int{3, 5} {
		nodes := names(n)
		g, parts := Halves(nodes, rand.New(rand.NewSource(1)))
		require.Len(t, parts[0], n/2)
		require.Len(t, parts[1], n-n/2)
		for _, a := range parts[0] {
			assert.ElementsMatch(t, parts[0], sees(g, nodes, a))
		}
		for _, a := range parts[1] {
			assert.ElementsMatch(t, parts[1], sees(g, nodes, a))
		}
	}
}

func TestBridge(t *testing.T) {
	for _, n := range []int{3, 5} {
		nodes := names(n)
		g, b := Bridge(nodes, rand.New(rand.NewSource(2)))
		require.NotEmpty(t, b)
		assert.ElementsMatch(t, nodes, sees(g, nodes, b), "the bridge sees everyone")
		for _, a := range nodes {
			if a == b {
				continue
			}
			s := sees(g, nodes, a)
			assert.Less(t, len(s), n, "%s must not see everyone", a)
			assert.Contains(t, s, b)
		}
	}
}

func TestMajoritiesRing(t *testing.T) {
	for _, n := range []int{4, 5, 7} {
		nodes := names(n)
		g := MajoritiesRing(nodes, rand.New(rand.NewSource(3)))
		views := map[string]bool{}
		for _, a := range nodes {
			s := sees(g, nodes, a)
			assert.GreaterOrEqual(t, len(s), n/2+1, "n=%d: %s sees a majority", n, a)
			assert.Less(t, len(s), n, "n=%d: %s does not see everyone", n, a)
			sort.Strings(s)
			views[strings.Join(s, ",")] = true
		}
		assert.Len(t, views, n, "n=%d: no two nodes see the same majority", n)
	}
	// Three nodes: the bridge.
	nodes := names(3)
	g := MajoritiesRing(nodes, rand.New(rand.NewSource(4)))
	total := 0
	for _, a := range nodes {
		total += len(sees(g, nodes, a))
	}
	assert.Equal(t, 3+2+2, total)
}

func TestRules(t *testing.T) {
	g := Isolate([]string{"n1", "n2", "n3"}, "n1")
	host := func(n string) string { return "127.0.0.1" + n[1:] }
	rules := Rules(g, host)
	assert.Equal(t, []Rule{
		{Src: "127.0.0.12", Dst: "127.0.0.11"},
		{Src: "127.0.0.13", Dst: "127.0.0.11"},
		{Src: "127.0.0.11", Dst: "127.0.0.12"},
		{Src: "127.0.0.11", Dst: "127.0.0.13"},
	}, rules)
}

func TestExpand(t *testing.T) {
	kinds, err := Expand([]string{"kill", "pause-leader", "kill-leader"})
	require.NoError(t, err)
	assert.Equal(t, []string{KillRandom, KillLeader, KillMajority, PauseLeader}, kinds)
	all, err := Expand([]string{"all"})
	require.NoError(t, err)
	assert.Equal(t, AllKinds(), all)
	_, err = Expand([]string{"flood"})
	require.Error(t, err)
	none, err := Expand([]string{"none"})
	require.NoError(t, err)
	assert.Empty(t, none)
	assert.Equal(t, []string{KillRandom, Combo}, WithoutNetwork([]string{KillRandom, PartitionOne, Combo}))
}

func TestPlan(t *testing.T) {
	kinds := []string{KillLeader, PauseRandom, PartitionOne}
	plan := Plan(kinds, 10*time.Second, 95*time.Second, rand.New(rand.NewSource(5)))
	require.Len(t, plan, 4) // faults at 10, 30, 50, 70; 90+10 > 95
	for i, w := range plan {
		assert.Equal(t, time.Duration(10+20*i)*time.Second, w.Start)
		assert.Equal(t, w.Start+10*time.Second, w.End)
	}
	var first []string
	for _, w := range plan[:3] {
		first = append(first, w.Kind)
	}
	assert.ElementsMatch(t, kinds, first, "each kind once per round")
	assert.Empty(t, Plan(nil, time.Second, time.Minute, rand.New(rand.NewSource(1))))
	assert.Empty(t, Plan(kinds, time.Minute, time.Minute, rand.New(rand.NewSource(1))))
}

// fakeIptables records commands and keeps a model of the chain.
type fakeIptables struct {
	mu    sync.Mutex
	cmds  []string
	chain map[string][]string // chain → rules
	fail  map[string]bool     // command prefix → fail
}

func newFakeIptables() *fakeIptables {
	return &fakeIptables{chain: map[string][]string{"INPUT": nil}, fail: map[string]bool{}}
}

func (f *fakeIptables) run(_ context.Context, bin string, args ...string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Equal(nil, []string{"-w", "5"}, args[:2])
	args = args[2:]
	cmd := strings.Join(args, " ")
	f.cmds = append(f.cmds, cmd)
	for p := range f.fail {
		if strings.HasPrefix(cmd, p) {
			return "", errors.New("injected failure")
		}
	}
	switch args[0] {
	case "-N":
		if _, ok := f.chain[args[1]]; ok {
			return "", errors.New("chain exists")
		}
		f.chain[args[1]] = []string{}
	case "-F":
		if _, ok := f.chain[args[1]]; !ok {
			return "", errors.New("no chain")
		}
		f.chain[args[1]] = []string{}
	case "-X":
		if _, ok := f.chain[args[1]]; !ok {
			return "", errors.New("no chain")
		}
		delete(f.chain, args[1])
	case "-A":
		f.chain[args[1]] = append(f.chain[args[1]], strings.Join(args[2:], " "))
	case "-I":
		f.chain[args[1]] = append([]string{strings.Join(args[3:], " ")}, f.chain[args[1]]...)
	case "-C", "-D":
		rule := strings.Join(args[2:], " ")
		for i, r := range f.chain[args[1]] {
			if r == rule {
				if args[0] == "-D" {
					f.chain[args[1]] = append(f.chain[args[1]][:i], f.chain[args[1]][i+1:]...)
				}
				return "", nil
			}
		}
		return "", errors.New("no such rule")
	}
	return "", nil
}

func TestIptablesLifecycle(t *testing.T) {
	ctx := context.Background()
	f := newFakeIptables()
	ipt, err := NewIptables(ctx, "iptables", "", f.run, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"-j SLUICE-CHAOS"}, f.chain["INPUT"])

	rules := []Rule{{Src: "127.0.0.12", Dst: "127.0.0.11"}, {Src: "127.0.0.11", Dst: "127.0.0.12"}}
	require.NoError(t, ipt.Apply(ctx, rules))
	assert.Equal(t, []string{"-s 127.0.0.12 -d 127.0.0.11 -j DROP", "-s 127.0.0.11 -d 127.0.0.12 -j DROP"}, f.chain[DefaultChain])
	assert.Equal(t, rules, ipt.Active())
	// Applying again replaces, never accumulates.
	require.NoError(t, ipt.Apply(ctx, rules[:1]))
	assert.Len(t, f.chain[DefaultChain], 1)

	require.NoError(t, ipt.Heal(ctx))
	assert.Empty(t, f.chain[DefaultChain])
	assert.Empty(t, ipt.Active())

	require.NoError(t, ipt.Apply(ctx, rules))
	require.NoError(t, ipt.Close(ctx))
	assert.NotContains(t, f.chain, DefaultChain)
	assert.Empty(t, f.chain["INPUT"])
	require.NoError(t, ipt.Close(ctx), "close is idempotent")

	// Every command touched only our chain (or the jump to it).
	for _, c := range f.cmds {
		assert.Contains(t, c, DefaultChain, c)
	}
}

func TestIptablesLossyRule(t *testing.T) {
	ctx := context.Background()
	f := newFakeIptables()
	ipt, err := NewIptables(ctx, "iptables", "", f.run, nil)
	require.NoError(t, err)
	require.NoError(t, ipt.Apply(ctx, []Rule{{Src: "127.0.0.12", Dst: "127.0.0.11", Loss: 0.2}}))
	assert.Equal(t, []string{"-s 127.0.0.12 -d 127.0.0.11 -m statistic --mode random --probability 0.20 -j DROP"}, f.chain[DefaultChain])
}

func TestLossyFaultCoversEveryPair(t *testing.T) {
	target := newFakeTarget(3)
	net := &fakeNet{}
	f, err := NewFault(PartitionLossy, NewEnv(target, net, 1))
	require.NoError(t, err)
	_, desc, err := f.Inject(context.Background())
	require.NoError(t, err)
	assert.Contains(t, desc, "20% packet loss")
	require.Len(t, net.rules, 6, "both directions of every pair of 3 nodes")
	for _, r := range net.rules {
		assert.Equal(t, LossyShare, r.Loss, r.String())
		assert.NotEqual(t, r.Src, r.Dst)
	}
}

func TestIptablesReusesLeftoverChain(t *testing.T) {
	ctx := context.Background()
	f := newFakeIptables()
	f.chain["SLUICE-CHAOS"] = []string{"-s 1.2.3.4 -d 5.6.7.8 -j DROP"}
	f.chain["INPUT"] = []string{"-j SLUICE-CHAOS"}
	ipt, err := NewIptables(ctx, "iptables", "", f.run, nil)
	require.NoError(t, err)
	assert.Empty(t, f.chain[DefaultChain], "leftover rules flushed")
	assert.Equal(t, []string{"-j SLUICE-CHAOS"}, f.chain["INPUT"], "not hooked twice")
	require.NoError(t, ipt.Close(ctx))
}

// fakeTarget is a cluster in memory.
type fakeTarget struct {
	mu      sync.Mutex
	nodes   []string
	down    map[string]bool
	paused  map[string]bool
	leaders map[string]string
	log     []string
}

func newFakeTarget(n int) *fakeTarget {
	return &fakeTarget{nodes: names(n), down: map[string]bool{}, paused: map[string]bool{},
		leaders: map[string]string{"t/0": "n2", "t/1": "n2"}}
}

func (f *fakeTarget) Nodes() []string         { return f.nodes }
func (f *fakeTarget) Host(node string) string { return "127.0.0.1" + node[1:] }
func (f *fakeTarget) Kill(_ context.Context, n string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[n] = true
	f.log = append(f.log, "kill "+n)
	return nil
}
func (f *fakeTarget) Start(_ context.Context, n string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down[n] {
		f.log = append(f.log, "start "+n)
	}
	delete(f.down, n)
	return nil
}
func (f *fakeTarget) Pause(n string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused[n] = true
	f.log = append(f.log, "pause "+n)
	return nil
}
func (f *fakeTarget) Resume(n string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.paused[n] {
		f.log = append(f.log, "resume "+n)
	}
	delete(f.paused, n)
	return nil
}
func (f *fakeTarget) Leaders(context.Context) (map[string]string, error) { return f.leaders, nil }

func (f *fakeTarget) healthy() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.down) == 0 && len(f.paused) == 0
}

type fakeNet struct {
	mu    sync.Mutex
	rules []Rule
}

func (n *fakeNet) Apply(_ context.Context, r []Rule) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rules = r
	return nil
}
func (n *fakeNet) Heal(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rules = nil
	return nil
}

func TestFaultsInjectAndHeal(t *testing.T) {
	ctx := context.Background()
	for _, kind := range AllKinds() {
		if kind == TopicLifecycle {
			continue // needs a topic admin: lifecycle_test.go
		}
		t.Run(kind, func(t *testing.T) {
			target := newFakeTarget(5)
			net := &fakeNet{}
			env := NewEnv(target, net, 7)
			env.Power = fakePower{target}
			f, err := NewFault(kind, env)
			require.NoError(t, err)
			nodes, _, err := f.Inject(ctx)
			require.NoError(t, err)
			require.NotEmpty(t, nodes)
			switch kind {
			case KillLeader, PauseLeader, PartitionLeader:
				assert.Equal(t, []string{"n2"}, nodes, "the leader is the victim")
			case KillMajority:
				assert.Len(t, target.down, 3)
			case RestartAll:
				assert.Empty(t, target.down, "everyone restarted")
				assert.Len(t, target.log, 10)
			}
			if NeedsNetwork(kind) {
				assert.NotEmpty(t, net.rules)
			}
			if kind != RestartAll && kind != PowerLossAll && kind != Combo && !NeedsNetwork(kind) {
				assert.False(t, target.healthy())
			}
			require.NoError(t, f.Heal(ctx))
			assert.True(t, target.healthy())
			assert.Empty(t, net.rules)
		})
	}
}

func TestPartitionNeedsNetwork(t *testing.T) {
	_, err := NewFault(PartitionOne, NewEnv(newFakeTarget(3), nil, 1))
	require.Error(t, err)
	// A combo without network still works (kills and pauses only).
	f, err := NewFault(Combo, NewEnv(newFakeTarget(3), nil, 1))
	require.NoError(t, err)
	_, _, err = f.Inject(context.Background())
	require.NoError(t, err)
}

type rec struct {
	mu    sync.Mutex
	start time.Time
	ops   []history.Op
}

func (r *rec) Now() int64 { return int64(time.Since(r.start)) }
func (r *rec) Add(op history.Op) history.Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op)
	return op
}

func TestSchedulerRunsPlan(t *testing.T) {
	target := newFakeTarget(3)
	net := &fakeNet{}
	r := &rec{start: time.Now()}
	s := &Scheduler{Env: NewEnv(target, net, 1), Recorder: r}
	plan := Plan([]string{KillLeader, PauseRandom, PartitionOne}, 20*time.Millisecond, 130*time.Millisecond, rand.New(rand.NewSource(1)))
	require.Len(t, plan, 3)
	require.NoError(t, s.Run(context.Background(), plan))
	require.Len(t, r.ops, 6)
	for i := 0; i < 6; i += 2 {
		assert.Equal(t, history.FFault, r.ops[i].F)
		assert.Equal(t, history.FHeal, r.ops[i+1].F)
		assert.Equal(t, r.ops[i].Fault, r.ops[i+1].Fault)
		assert.GreaterOrEqual(t, r.ops[i+1].Invoke-r.ops[i].Complete, int64(15*time.Millisecond))
	}
	assert.True(t, target.healthy())
}

func TestSchedulerHealsOnCancel(t *testing.T) {
	target := newFakeTarget(3)
	r := &rec{start: time.Now()}
	s := &Scheduler{Env: NewEnv(target, nil, 1), Recorder: r}
	ctx, cancel := context.WithCancel(context.Background())
	plan := []Window{{Kind: KillRandom, Start: 0, End: time.Hour}}
	done := make(chan error)
	go func() { done <- s.Run(ctx, plan) }()
	require.Eventually(t, func() bool { return !target.healthy() }, 5*time.Second, time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("scheduler did not stop")
	}
	assert.True(t, target.healthy())
	require.Len(t, r.ops, 2)
}

func TestHealAll(t *testing.T) {
	target := newFakeTarget(3)
	net := &fakeNet{rules: []Rule{{Src: "a", Dst: "b"}}}
	target.down["n1"] = true
	target.paused["n2"] = true
	require.NoError(t, HealAll(context.Background(), target, net))
	assert.True(t, target.healthy())
	assert.Empty(t, net.rules)
}

// TestIptablesForReal partitions two loopback addresses with a chain of a
// unique name and checks that a connection times out, then heals it.
func TestIptablesForReal(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	ctx := context.Background()
	bin, why := IptablesAvailable(ctx, nil)
	if bin == "" {
		t.Skipf("iptables not usable: %s", why)
	}
	chain := fmt.Sprintf("SLUICE-T%d", os.Getpid())
	ipt, err := NewIptables(ctx, bin, chain, nil, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, ipt.Close(ctx)) }()

	ln, err := net.Listen("tcp", "127.0.0.222:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dial := func() error {
		d := net.Dialer{Timeout: 500 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.221")}}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err
	}
	require.NoError(t, dial())
	require.NoError(t, ipt.Apply(ctx, Rules(Isolate([]string{"a", "b"}, "a"), func(n string) string {
		return map[string]string{"a": "127.0.0.221", "b": "127.0.0.222"}[n]
	})))
	require.Error(t, dial(), "partitioned")
	require.NoError(t, ipt.Heal(ctx))
	require.NoError(t, dial())

	// A lossy rule drops some packets, not all: 200 datagrams at 50% loss
	// arrive between 40 and 160 times unless the rule is wrong (the
	// binomial's standard deviation is about 7).
	require.NoError(t, ipt.Apply(ctx, []Rule{{Src: "127.0.0.221", Dst: "127.0.0.222", Loss: 0.5}}))
	rx, err := net.ListenPacket("udp", "127.0.0.222:0")
	require.NoError(t, err)
	defer rx.Close()
	tx, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.221")}, rx.LocalAddr().(*net.UDPAddr))
	require.NoError(t, err)
	defer tx.Close()
	const sent = 200
	for range sent {
		_, err := tx.Write([]byte("x"))
		require.NoError(t, err)
	}
	got := 0
	buf := make([]byte, 16)
	for {
		require.NoError(t, rx.SetReadDeadline(time.Now().Add(500*time.Millisecond)))
		if _, _, err := rx.ReadFrom(buf); err != nil {
			break
		}
		got++
	}
	assert.Greater(t, got, 40, "received %d of %d", got, sent)
	assert.Less(t, got, 160, "received %d of %d", got, sent)
}

func TestComboHitsDifferentNodes(t *testing.T) {
	for seed := int64(0); seed < 30; seed++ {
		target := newFakeTarget(3)
		target.leaders = map[string]string{"t/0": "n1"}
		f, err := NewFault(Combo, NewEnv(target, &fakeNet{}, seed))
		require.NoError(t, err)
		nodes, desc, err := f.Inject(context.Background())
		require.NoError(t, err)
		if len(nodes) == 2 && !strings.Contains(desc, "partition-ring") && !strings.Contains(desc, "kill-leader") {
			require.NotEqual(t, nodes[0], nodes[1], "seed %d: %s", seed, desc)
		}
		require.NoError(t, f.Heal(context.Background()))
	}
}
