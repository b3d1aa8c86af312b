package nemesis

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeAdmin is a one-partition topic on a fake cluster: each node keeps
// its own copy of the log; a node that is down misses deletes, creates and
// appends, and catches up when it is back unless stale is set (then it
// keeps serving what it had, as a node that reused its old replica would).
type fakeAdmin struct {
	mu       sync.Mutex
	target   *fakeTarget
	exists   bool
	replicas []string
	logs     map[string][]string
	stale    bool
	lose     bool // drop the last acknowledged record on catch-up
}

func (a *fakeAdmin) up(n string) bool {
	a.target.mu.Lock()
	defer a.target.mu.Unlock()
	return !a.target.down[n]
}

func (a *fakeAdmin) CreateTopic(_ context.Context, _ string, rf int) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.exists {
		return errors.New("topic exists")
	}
	a.exists, a.replicas = true, nil
	for _, n := range a.target.nodes {
		if len(a.replicas) < rf && a.up(n) {
			a.replicas = append(a.replicas, n)
		}
	}
	for _, n := range a.replicas {
		a.logs[n] = nil
	}
	return nil
}

func (a *fakeAdmin) DeleteTopic(context.Context, string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.exists = false
	for n := range a.logs {
		if a.up(n) {
			delete(a.logs, n)
		}
	}
	return nil
}

func (a *fakeAdmin) Produce(_ context.Context, _, v string) (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.exists {
		return 0, errors.New("unknown topic")
	}
	for _, n := range a.replicas {
		if a.up(n) {
			a.logs[n] = append(a.logs[n], v)
		}
	}
	return int64(len(a.logs[a.replicas[0]]) - 1), nil
}

func (a *fakeAdmin) Replicas(context.Context, string) ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.replicas), nil
}

func (a *fakeAdmin) ReadReplica(_ context.Context, node, _ string) ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.up(node) {
		return nil, errors.New("down")
	}
	if !a.stale && !slices.Contains(a.replicas, node) {
		delete(a.logs, node) // caught up: the deletion reached it
	}
	if slices.Contains(a.replicas, node) && !a.stale {
		a.logs[node] = slices.Clone(a.logs[a.replicas[0]])
	}
	vals, ok := a.logs[node]
	if !ok {
		return nil, errors.New("no replica")
	}
	if a.lose && len(vals) > 0 {
		vals = vals[:len(vals)-1]
	}
	return slices.Clone(vals), nil
}

func lifecycleEnv(t *testing.T, a *fakeAdmin) Env {
	env := NewEnv(a.target, nil, 1)
	env.Admin = a
	return env
}

func runLifecycle(t *testing.T, env Env) error {
	t.Helper()
	f, err := NewFault(TopicLifecycle, env)
	require.NoError(t, err)
	lf := f.(*lifecycleFault)
	lf.settle, lf.checkFor = time.Millisecond, 20*time.Millisecond
	ctx := context.Background()
	nodes, desc, err := f.Inject(ctx)
	require.NoError(t, err)
	require.Len(t, nodes, 1)
	assert.Contains(t, desc, "re-created")
	return f.Heal(ctx)
}

func TestLifecycleFault(t *testing.T) {
	target := newFakeTarget(3)
	a := &fakeAdmin{target: target, logs: map[string][]string{}}
	env := lifecycleEnv(t, a)
	require.NoError(t, runLifecycle(t, env), "a correct store passes")
	require.NoError(t, runLifecycle(t, env), "and again, one incarnation later")
	assert.True(t, target.healthy(), "the node is back")
	assert.Contains(t, target.log[0], "kill")

	t.Run("old incarnation served", func(t *testing.T) {
		a := &fakeAdmin{target: newFakeTarget(3), logs: map[string][]string{}, stale: true}
		err := runLifecycle(t, lifecycleEnv(t, a))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "of incarnation 1")
	})
	t.Run("acknowledged record lost", func(t *testing.T) {
		a := &fakeAdmin{target: newFakeTarget(3), logs: map[string][]string{}, lose: true}
		err := runLifecycle(t, lifecycleEnv(t, a))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "lacks acknowledged")
	})
	t.Run("needs an admin", func(t *testing.T) {
		_, err := NewFault(TopicLifecycle, NewEnv(newFakeTarget(3), nil, 1))
		require.Error(t, err)
	})
	t.Run("partitioned instead of killed", func(t *testing.T) {
		a := &fakeAdmin{target: newFakeTarget(3), logs: map[string][]string{}}
		netw := &fakeNet{}
		env := NewEnv(a.target, netw, 3)
		env.Admin = a
		for range 6 {
			require.NoError(t, runLifecycle(t, env))
		}
		kills := 0
		for _, l := range a.target.log {
			if strings.HasPrefix(l, "kill ") {
				kills++
			}
		}
		assert.Less(t, kills, 6, "some rounds partition instead of killing")
		netw.mu.Lock()
		assert.Empty(t, netw.rules, "healed")
		netw.mu.Unlock()
	})
}

func TestIncarnationOf(t *testing.T) {
	assert.Equal(t, 3, incarnationOf(lifecycleValue(3, 17)))
	for _, v := range []string{"", "inc-", "inc-x-1", "v-1", "inc-2"} {
		assert.Equal(t, -1, incarnationOf(v), v)
	}
}

func TestExpandLifecycle(t *testing.T) {
	kinds, err := Expand([]string{"lifecycle"})
	require.NoError(t, err)
	assert.Equal(t, []string{TopicLifecycle}, kinds)
	all, err := Expand([]string{"all"})
	require.NoError(t, err)
	assert.Contains(t, all, TopicLifecycle)
}

// A cut-off node may serve the old incarnation until it catches up after
// the heal; one that keeps serving it fails the check.
func TestLifecycleCutNodeMayLagBriefly(t *testing.T) {
	a := &fakeAdmin{target: newFakeTarget(3), logs: map[string][]string{}, stale: true}
	f := &lifecycleFault{env: lifecycleEnv(t, a), admin: a, state: &lifecycleState{}, settle: time.Millisecond, checkFor: 20 * time.Millisecond}
	ctx := context.Background()
	_, _, err := f.Inject(ctx)
	require.NoError(t, err)
	require.NoError(t, a.target.Start(ctx, f.node))
	f.cut = true // as if isolated: the check waits for convergence
	err = f.check(ctx)
	require.Error(t, err, "a stale replica that never catches up fails")
	assert.Contains(t, err.Error(), "of incarnation 1")
}
