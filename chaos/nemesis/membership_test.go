package nemesis

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// spareTarget is a fake cluster with one spare node, n4, down at first.
type spareTarget struct{ *fakeTarget }

func (s spareTarget) Spares() []string { return []string{"n4"} }

// fakeMover moves at once: a reassign sets the target as the replicas.
type fakeMover struct {
	mu       sync.Mutex
	t        *fakeTarget
	replicas [][]string
	decom    map[string]bool
	moves    int
}

func (m *fakeMover) Placement(context.Context) (string, [][]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([][]string, len(m.replicas))
	for i, r := range m.replicas {
		out[i] = slices.Clone(r)
	}
	return "w", out, nil
}

func (m *fakeMover) Alive(context.Context) ([]string, error) {
	m.t.mu.Lock()
	defer m.t.mu.Unlock()
	var out []string
	for _, n := range []string{"n1", "n2", "n3", "n4"} {
		if !m.t.down[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

func (m *fakeMover) Reassign(_ context.Context, _ string, p int32, replicas []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.replicas[p] = slices.Clone(replicas)
	m.moves++
	return nil
}

func (m *fakeMover) WaitMove(_ context.Context, _ string, p int32) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.replicas[p]), nil
}

func (m *fakeMover) Decommission(_ context.Context, node string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.decom[node] = true
	for p, r := range m.replicas {
		if i := slices.Index(r, node); i >= 0 {
			for _, n := range []string{"n1", "n2", "n3"} {
				if !slices.Contains(r, n) {
					m.replicas[p][i] = n
					m.moves++
					break
				}
			}
		}
	}
	return nil
}

func (m *fakeMover) Recommission(_ context.Context, node string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.decom, node)
	return nil
}

func TestMembershipAddsMovesAndRemovesANode(t *testing.T) {
	ft := newFakeTarget(3)
	ft.down["n4"] = true
	mover := &fakeMover{t: ft, replicas: [][]string{{"n1", "n2", "n3"}, {"n2", "n3", "n1"}}, decom: map[string]bool{"n4": true}}
	env := NewEnv(spareTarget{ft}, nil, 3)
	env.Mover = mover
	f, err := NewFault(Membership, env)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nodes, desc, err := f.Inject(ctx)
	require.NoError(t, err)
	require.Contains(t, desc, "added n4")
	require.Contains(t, desc, "moving w/")
	require.Contains(t, nodes, "n4")
	require.False(t, mover.decom["n4"], "the added node was recommissioned")
	mf := f.(*membershipFault)
	require.Contains(t, mf.target, "n4", "the replica moves onto the added node")
	require.Len(t, mf.target, 3)
	require.Contains(t, ft.log, "kill "+mf.killed)

	require.NoError(t, f.Heal(ctx))
	for _, r := range mover.replicas {
		require.NotContains(t, r, "n4", "the added node holds nothing after the heal")
	}
	require.True(t, ft.down["n4"], "the added node is stopped again")
	require.False(t, ft.down[mf.killed] && mf.killed != "n4", "the killed node is back")
	require.Equal(t, 2, mover.moves)
}

func TestMembershipWithoutSpareRotates(t *testing.T) {
	ft := newFakeTarget(3)
	ft.down["n4"] = true
	mover := &fakeMover{t: ft, replicas: [][]string{{"n1", "n2", "n3"}}, decom: map[string]bool{}}
	env := NewEnv(ft, nil, 1)
	env.Mover = mover
	f, err := NewFault(Membership, env)
	require.NoError(t, err)
	ctx := context.Background()
	_, _, err = f.Inject(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"n2", "n3", "n1"}, f.(*membershipFault).target, "no node outside the set: a rotation")
	require.NoError(t, f.Heal(ctx))
	require.True(t, ft.healthy() || ft.down["n4"])

	_, err = NewFault(Membership, NewEnv(ft, nil, 1))
	require.Error(t, err, "no mover")
	kinds, err := Expand([]string{"membership"})
	require.NoError(t, err)
	require.Equal(t, []string{Membership}, kinds)
}
