package group

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
)

func joinReq(member string) JoinRequest {
	return JoinRequest{
		Group: "g", MemberID: member, ClientID: "c", ProtocolType: "consumer",
		SessionTimeout: 2 * time.Second, RebalanceTimeout: 2 * time.Second,
		Protocols: []Protocol{{Name: "range", Metadata: []byte(member)}, {Name: "roundrobin"}},
	}
}

func TestJoinSyncAndRebalance(t *testing.T) {
	c := New(Config{Tick: 10 * time.Millisecond})
	defer c.Close()
	ctx := context.Background()

	// v4+ style: a new member first gets its id.
	r := joinReq("")
	r.RequireKnownMember = true
	res, err := c.Join(ctx, r)
	require.ErrorIs(t, err, kerr.MemberIDRequired)
	a := res.MemberID
	require.NotEmpty(t, a)

	res, err = c.Join(ctx, joinReq(a))
	require.NoError(t, err)
	assert.Equal(t, a, res.Leader)
	assert.Equal(t, "range", res.Protocol)
	require.Len(t, res.Members, 1)
	gen := res.Generation
	asg, _, _, err := c.Sync(ctx, "g", a, gen, map[string][]byte{a: []byte("all")})
	require.NoError(t, err)
	assert.Equal(t, "all", string(asg))
	require.NoError(t, c.Heartbeat("g", a, gen))

	// A second member joins: the first is told to rejoin by heartbeat.
	var wg sync.WaitGroup
	var resB JoinResult
	wg.Add(1)
	go func() {
		defer wg.Done()
		var err error
		resB, err = c.Join(ctx, joinReq(""))
		assert.NoError(t, err)
	}()
	require.Eventually(t, func() bool { return c.Heartbeat("g", a, gen) == kerr.RebalanceInProgress }, 5*time.Second, 5*time.Millisecond)
	resA, err := c.Join(ctx, joinReq(a))
	require.NoError(t, err)
	wg.Wait()
	assert.Equal(t, resA.Generation, resB.Generation)
	assert.Greater(t, resA.Generation, gen)
	assert.Equal(t, a, resA.Leader, "the leader stays the leader")
	assert.Len(t, resA.Members, 2)
	assert.Empty(t, resB.Members, "only the leader gets the member list")

	// The follower's sync waits for the leader's assignment.
	b := resB.MemberID
	done := make(chan []byte)
	go func() {
		asg, _, _, err := c.Sync(ctx, "g", b, resB.Generation, nil)
		assert.NoError(t, err)
		done <- asg
	}()
	_, _, _, err = c.Sync(ctx, "g", a, resA.Generation, map[string][]byte{a: []byte("p0"), b: []byte("p1")})
	require.NoError(t, err)
	assert.Equal(t, "p1", string(<-done))
	assert.Equal(t, StateStable, c.Describe("g").State)

	// Stale generations are refused; commits are checked the same way.
	assert.ErrorIs(t, c.Heartbeat("g", a, gen), kerr.IllegalGeneration)
	assert.ErrorIs(t, c.CheckCommit("g", "nobody", resA.Generation), kerr.UnknownMemberID)
	assert.NoError(t, c.CheckCommit("g", a, resA.Generation))

	// b stops heartbeating: its session expires and a is asked to rejoin.
	require.Eventually(t, func() bool {
		_ = c.Heartbeat("g", a, resA.Generation)
		d := c.Describe("g")
		return len(d.Members) == 1 && d.State == StatePreparingRebalance
	}, 10*time.Second, 20*time.Millisecond)
	res, err = c.Join(ctx, joinReq(a))
	require.NoError(t, err)
	assert.Len(t, res.Members, 1)

	require.NoError(t, c.Leave("g", a))
	assert.Equal(t, StateEmpty, c.Describe("g").State)
	require.NoError(t, c.Delete("g"))
	assert.Equal(t, StateDead, c.Describe("g").State)
}

func TestInconsistentProtocolAndReset(t *testing.T) {
	c := New(Config{Tick: 10 * time.Millisecond})
	defer c.Close()
	ctx := context.Background()
	res, err := c.Join(ctx, joinReq(""))
	require.NoError(t, err)
	other := joinReq("")
	other.Protocols = []Protocol{{Name: "sticky"}}
	_, err = c.Join(ctx, other)
	assert.ErrorIs(t, err, kerr.InconsistentGroupProtocol)

	// A pending sync fails with NOT_COORDINATOR when leadership is lost.
	errs := make(chan error, 1)
	go func() {
		_, _, _, err := c.Sync(ctx, "g", "someone-else", res.Generation, nil)
		errs <- err
	}()
	assert.ErrorIs(t, <-errs, kerr.UnknownMemberID)
	c.Reset()
	assert.Equal(t, StateDead, c.Describe("g").State)
	assert.ErrorIs(t, c.Heartbeat("g", res.MemberID, res.Generation), kerr.UnknownMemberID)
	// A coordinator that took over accepts commits for groups it never saw.
	assert.NoError(t, c.CheckCommit("g", res.MemberID, res.Generation))
}

func TestTakeoverHoldsFirstRebalanceForOldMembers(t *testing.T) {
	c := New(Config{Tick: 10 * time.Millisecond, TakeoverDelay: 300 * time.Millisecond})
	defer c.Close()
	ctx := context.Background()
	// Two members of the previous coordinator's generation 7 heartbeat.
	require.ErrorIs(t, c.Heartbeat("g", "old-a", 7), kerr.UnknownMemberID)
	start := time.Now()
	var wg sync.WaitGroup
	results := make([]JoinResult, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 1 {
				// The second old member learns a little later.
				time.Sleep(100 * time.Millisecond)
				require.ErrorIs(t, c.Heartbeat("g", "old-b", 7), kerr.UnknownMemberID)
			}
			var err error
			results[i], err = c.Join(ctx, joinReq(""))
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	// Both are in the first generation: nobody was handed everything alone.
	assert.Equal(t, results[0].Generation, results[1].Generation)
	assert.GreaterOrEqual(t, time.Since(start), 250*time.Millisecond)
	d := c.Describe("g")
	assert.Len(t, d.Members, 2)
}
