package group

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
)

// memStore is a Store in memory with the generation rule of the real one.
type memStore struct {
	mu     sync.Mutex
	groups map[string]State
	fail   bool
}

func (s *memStore) LoadGroups() ([]State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []State
	for _, st := range s.groups {
		out = append(out, st)
	}
	return out, nil
}

func (s *memStore) SaveGroup(_ context.Context, st State) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("not the leader")
	}
	if old, ok := s.groups[st.Group]; ok && st.Generation < old.Generation {
		return nil
	}
	if len(st.Members) == 0 {
		delete(s.groups, st.Group)
		return nil
	}
	s.groups[st.Group] = st
	return nil
}

func (s *memStore) get(group string) (State, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.groups[group]
	return st, ok
}

// stableGroup makes members a and b join group g and sync; it returns
// their ids and the generation.
func stableGroup(t *testing.T, c *Coordinator) (a, b string, gen int32) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	res := make([]JoinResult, 2)
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			res[i], err = c.Join(ctx, joinReq(""))
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	require.Equal(t, res[0].Generation, res[1].Generation)
	a, b, gen = res[0].MemberID, res[1].MemberID, res[0].Generation
	leader, follower := a, b
	if res[1].Leader == b {
		leader, follower = b, a
	}
	done := make(chan error, 1)
	go func() {
		_, _, _, err := c.Sync(ctx, "g", follower, gen, nil)
		done <- err
	}()
	_, _, _, err := c.Sync(ctx, "g", leader, gen, map[string][]byte{leader: []byte("asg-" + leader), follower: []byte("asg-" + follower)})
	require.NoError(t, err)
	require.NoError(t, <-done)
	return a, b, gen
}

func TestStoredGroupContinuesOnTheNextCoordinator(t *testing.T) {
	store := &memStore{groups: map[string]State{}}
	first := New(Config{Tick: 10 * time.Millisecond, InitialRebalanceDelay: 300 * time.Millisecond, Store: store})
	defer first.Close()

	// Until the store is loaded, the coordinator asks clients to retry.
	_, err := first.Join(context.Background(), joinReq(""))
	require.ErrorIs(t, err, kerr.CoordinatorLoadInProgress)
	require.NoError(t, first.Ready())

	a, b, gen := stableGroup(t, first)
	require.Eventually(t, func() bool {
		st, ok := store.get("g")
		return ok && st.Generation == gen && len(st.Members) == 2
	}, 5*time.Second, 5*time.Millisecond, "the completed rebalance is stored")

	// The coordinator fails over: the next one takes the group over with
	// its generation, members and assignments, and nobody rejoins.
	first.Reset()
	next := New(Config{Tick: 10 * time.Millisecond, InitialRebalanceDelay: 300 * time.Millisecond, Store: store})
	defer next.Close()
	require.ErrorIs(t, next.Heartbeat("g", a, gen), kerr.CoordinatorLoadInProgress)
	require.NoError(t, next.Ready())
	require.NoError(t, next.Heartbeat("g", a, gen))
	require.NoError(t, next.Heartbeat("g", b, gen))
	require.NoError(t, next.CheckCommit("g", a, gen))
	asg, _, _, err := next.Sync(context.Background(), "g", b, gen, nil)
	require.NoError(t, err)
	assert.Equal(t, "asg-"+b, string(asg), "a member's sync after the takeover returns its assignment")
	d := next.Describe("g")
	assert.Equal(t, StateStable, d.State)
	assert.Equal(t, gen, d.Generation)
	require.Len(t, d.Members, 2)

	// Both leave: the group is forgotten in the store too.
	require.NoError(t, next.Leave("g", a, b))
	require.Eventually(t, func() bool { _, ok := store.get("g"); return !ok }, 5*time.Second, 5*time.Millisecond)
}

func TestStoredMembersThatDiedExpireAfterTakeover(t *testing.T) {
	store := &memStore{groups: map[string]State{}}
	first := New(Config{Tick: 10 * time.Millisecond, InitialRebalanceDelay: 300 * time.Millisecond, Store: store})
	require.NoError(t, first.Ready())
	a, b, gen := stableGroup(t, first)
	require.Eventually(t, func() bool { st, ok := store.get("g"); return ok && st.Generation == gen }, 5*time.Second, 5*time.Millisecond)
	first.Close()

	next := New(Config{Tick: 10 * time.Millisecond, InitialRebalanceDelay: 300 * time.Millisecond, Store: store})
	defer next.Close()
	require.NoError(t, next.Ready())
	// Only a keeps heartbeating: b's session (2 s) runs out, and a is told
	// to rejoin for a rebalance without b.
	require.Eventually(t, func() bool {
		return next.Heartbeat("g", a, gen) == kerr.RebalanceInProgress
	}, 10*time.Second, 50*time.Millisecond)
	assert.ErrorIs(t, next.Heartbeat("g", b, gen), kerr.UnknownMemberID)
}

func TestUnsavedGroupFallsBackToRejoin(t *testing.T) {
	store := &memStore{groups: map[string]State{}, fail: true}
	first := New(Config{Tick: 10 * time.Millisecond, InitialRebalanceDelay: 300 * time.Millisecond, Store: store})
	require.NoError(t, first.Ready())
	a, _, gen := stableGroup(t, first)
	first.Close()

	next := New(Config{Tick: 10 * time.Millisecond, InitialRebalanceDelay: 300 * time.Millisecond, Store: store})
	defer next.Close()
	require.NoError(t, next.Ready())
	assert.ErrorIs(t, next.Heartbeat("g", a, gen), kerr.UnknownMemberID, "without a stored state the member rejoins")
}
