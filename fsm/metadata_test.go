package fsm

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/transport"
)

type metaHarness struct {
	t   *testing.T
	m   *Metadata
	idx uint64
}

func newMetaHarness(t *testing.T) *metaHarness {
	return &metaHarness{t: t, m: NewMetadata(quietLogger())}
}

func (h *metaHarness) apply(cmd []byte) error {
	h.idx++
	res := h.m.Apply(&raft.Log{Index: h.idx, Term: 1, Type: raft.LogCommand, Data: cmd})
	if res == nil {
		return nil
	}
	err, ok := res.(error)
	require.True(h.t, ok, "apply returned %T", res)
	return err
}

func testTopic(t *testing.T, name string, partitions, rf int) Topic {
	as, err := Assign([]string{"n1", "n2", "n3"}, nil, partitions, rf)
	require.NoError(t, err)
	return Topic{Name: name, ReplicationFactor: rf, RetentionBytes: 1 << 30, RetentionMs: 3600_000, Partitions: as}
}

func TestMetadataBrokers(t *testing.T) {
	h := newMetaHarness(t)
	ch := h.m.Changed()
	require.NoError(t, h.apply(EncodeRegisterBroker(Broker{ID: "n2", RPCAddr: "127.0.0.2:7071", HTTPAddr: "127.0.0.2:8081"})))
	<-ch
	require.NoError(t, h.apply(EncodeRegisterBroker(Broker{ID: "n1", RPCAddr: "127.0.0.1:7071"})))
	// Re-registering the same broker unchanged is a no-op: no wake-up.
	ch = h.m.Changed()
	require.NoError(t, h.apply(EncodeRegisterBroker(Broker{ID: "n1", RPCAddr: "127.0.0.1:7071"})))
	select {
	case <-ch:
		t.Fatal("Changed closed without a change")
	default:
	}
	// An address change is an update.
	require.NoError(t, h.apply(EncodeRegisterBroker(Broker{ID: "n1", RPCAddr: "127.0.0.1:9999"})))
	<-ch
	assert.Equal(t, []Broker{
		{ID: "n1", RPCAddr: "127.0.0.1:9999"},
		{ID: "n2", RPCAddr: "127.0.0.2:7071", HTTPAddr: "127.0.0.2:8081"},
	}, h.m.Brokers())
	b, ok := h.m.Broker("n2")
	require.True(t, ok)
	assert.Equal(t, "127.0.0.2:8081", b.HTTPAddr)
	requireCode(t, h.apply(EncodeRegisterBroker(Broker{})), transport.ErrInvalidRequest)
}

func TestMetadataCreateDuplicateDelete(t *testing.T) {
	h := newMetaHarness(t)
	orders := testTopic(t, "orders", 3, 2)
	require.NoError(t, h.apply(EncodeCreateTopic(orders)))
	orders.ID = h.idx
	require.NoError(t, h.apply(EncodeCreateTopic(testTopic(t, "audit", 1, 3))))

	got, ok := h.m.Topic("orders")
	require.True(t, ok)
	assert.Equal(t, orders, got)
	names := []string{}
	for _, tp := range h.m.Topics() {
		names = append(names, tp.Name)
	}
	assert.Equal(t, []string{"audit", "orders"}, names, "sorted by name")

	requireCode(t, h.apply(EncodeCreateTopic(testTopic(t, "orders", 1, 1))), transport.ErrTopicExists)
	got, _ = h.m.Topic("orders")
	assert.Equal(t, orders, got, "a failed create changes nothing")

	// Copies are deep: changing one does not change the state.
	got.Partitions[0].Replicas[0] = "zz"
	got2, _ := h.m.Topic("orders")
	assert.Equal(t, orders, got2)

	ch := h.m.Changed()
	require.NoError(t, h.apply(EncodeDeleteTopic("orders")))
	<-ch
	_, ok = h.m.Topic("orders")
	assert.False(t, ok)
	requireCode(t, h.apply(EncodeDeleteTopic("orders")), transport.ErrUnknownTopic)
	// The name is free again.
	require.NoError(t, h.apply(EncodeCreateTopic(testTopic(t, "orders", 2, 1))))
}

func TestMetadataCreateValidation(t *testing.T) {
	h := newMetaHarness(t)
	base := testTopic(t, "t", 2, 2)
	cases := map[string]func(tp *Topic){
		"bad name":           func(tp *Topic) { tp.Name = "a/b" },
		"no partitions":      func(tp *Topic) { tp.Partitions = nil },
		"rf zero":            func(tp *Topic) { tp.ReplicationFactor = 0 },
		"replica count":      func(tp *Topic) { tp.Partitions[1].Replicas = tp.Partitions[1].Replicas[:1] },
		"repeated replica":   func(tp *Topic) { tp.Partitions[0].Replicas[1] = tp.Partitions[0].Replicas[0] },
		"empty replica":      func(tp *Topic) { tp.Partitions[0].Replicas[1] = "" },
		"partition ids":      func(tp *Topic) { tp.Partitions[1].ID = 5 },
		"leader not replica": func(tp *Topic) { tp.Partitions[0].Leader = "n9" },
	}
	for name, mut := range cases {
		t.Run(name, func(t *testing.T) {
			tp := base.clone()
			mut(&tp)
			err := h.apply(EncodeCreateTopic(tp))
			require.Error(t, err)
			code := transport.CodeOf(err)
			assert.Contains(t, []transport.ErrorCode{transport.ErrInvalidRequest, transport.ErrInvalidTopic}, code)
		})
	}
	assert.Empty(t, h.m.Topics())
	requireCode(t, h.apply([]byte{metaCreateTopic, 0xc1}), transport.ErrInvalidRequest)
	requireCode(t, h.apply([]byte{77}), transport.ErrInvalidRequest)
	requireCode(t, h.apply(nil), transport.ErrInvalidRequest)
}

func TestMetadataSetLeader(t *testing.T) {
	h := newMetaHarness(t)
	tp := testTopic(t, "orders", 2, 3)
	require.NoError(t, h.apply(EncodeCreateTopic(tp)))
	leaderOf := func(p int32) (string, uint64) {
		got, ok := h.m.Topic("orders")
		require.True(t, ok)
		return got.Partitions[p].Leader, got.Partitions[p].LeaderTerm
	}
	r := tp.Partitions[1].Replicas

	require.NoError(t, h.apply(EncodeSetLeader("orders", 0, 1, r[1], 5)))
	l, term := leaderOf(1)
	assert.Equal(t, r[1], l)
	assert.Equal(t, uint64(5), term)

	// A stale term is ignored.
	ch := h.m.Changed()
	require.NoError(t, h.apply(EncodeSetLeader("orders", 0, 1, r[2], 4)))
	l, term = leaderOf(1)
	assert.Equal(t, r[1], l)
	assert.Equal(t, uint64(5), term)
	// So is a repeat of what is known.
	require.NoError(t, h.apply(EncodeSetLeader("orders", 0, 1, r[1], 5)))
	select {
	case <-ch:
		t.Fatal("no change expected")
	default:
	}
	// A newer term wins.
	require.NoError(t, h.apply(EncodeSetLeader("orders", 0, 1, r[2], 6)))
	<-ch
	l, term = leaderOf(1)
	assert.Equal(t, r[2], l)
	assert.Equal(t, uint64(6), term)
	l, _ = leaderOf(0)
	assert.Empty(t, l, "other partitions untouched")

	requireCode(t, h.apply(EncodeSetLeader("orders", 0, 1, "stranger", 7)), transport.ErrInvalidRequest)
	// Gone topic or partition: ignored.
	require.NoError(t, h.apply(EncodeSetLeader("nope", 0, 0, "n1", 9)))
	require.NoError(t, h.apply(EncodeSetLeader("orders", 0, 7, "n1", 9)))
	require.NoError(t, h.apply(EncodeSetLeader("orders", 0, -1, "n1", 9)))
}

func TestMetadataSnapshotRestore(t *testing.T) {
	h := newMetaHarness(t)
	require.NoError(t, h.apply(EncodeRegisterBroker(Broker{ID: "n1", RPCAddr: "a:1", HTTPAddr: "a:2"})))
	require.NoError(t, h.apply(EncodeRegisterBroker(Broker{ID: "n2", RPCAddr: "b:1"})))
	require.NoError(t, h.apply(EncodeCreateTopic(testTopic(t, "x", 3, 2))))
	require.NoError(t, h.apply(EncodeCreateTopic(testTopic(t, "y", 1, 1))))
	tx, _ := h.m.Topic("x")
	require.NoError(t, h.apply(EncodeSetLeader("x", 0, 2, tx.Partitions[2].Replicas[1], 3)))

	snap := persist(t, h.m)

	other := newMetaHarness(t)
	require.NoError(t, other.apply(EncodeCreateTopic(testTopic(t, "stale", 1, 1))))
	ch := other.m.Changed()
	require.NoError(t, other.m.Restore(io.NopCloser(bytes.NewReader(snap))))
	<-ch
	assert.Equal(t, h.m.Brokers(), other.m.Brokers())
	assert.Equal(t, h.m.Topics(), other.m.Topics(), "previous state is discarded")

	// The restored state keeps applying the same way.
	requireCode(t, other.apply(EncodeCreateTopic(testTopic(t, "x", 1, 1))), transport.ErrTopicExists)
	require.NoError(t, other.apply(EncodeSetLeader("x", 0, 2, tx.Partitions[2].Replicas[0], 2))) // stale
	got, _ := other.m.Topic("x")
	assert.Equal(t, tx.Partitions[2].Replicas[1], got.Partitions[2].Leader)

	require.Error(t, other.m.Restore(io.NopCloser(strings.NewReader("garbage"))))
}

func TestValidateTopicName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"orders", true},
		{"Orders.v2_final-3", true},
		{"a", true},
		{strings.Repeat("x", 249), true},
		{"...", true},
		{"", false},
		{".", false},
		{"..", false},
		{strings.Repeat("x", 250), false},
		{"has space", false},
		{"slash/name", false},
		{"colon:name", false},
		{"ünïcode", false},
		{"tab\t", false},
		{"star*", false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%.20q", tc.name), func(t *testing.T) {
			err := ValidateTopicName(tc.name)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			requireCode(t, err, transport.ErrInvalidTopic)
			assert.NotEmpty(t, err.(*transport.Error).Message)
		})
	}
	err := ValidateTopicName("bad/name")
	require.ErrorContains(t, err, `'/'`)
}

func leaderCounts(as []PartitionAssignment) map[string]int {
	c := map[string]int{}
	for _, a := range as {
		c[a.Replicas[0]]++
	}
	return c
}

func replicaCounts(as []PartitionAssignment) map[string]int {
	c := map[string]int{}
	for _, a := range as {
		for _, r := range a.Replicas {
			c[r]++
		}
	}
	return c
}

func TestAssignSpreadsLeadersAndReplicas(t *testing.T) {
	live := []string{"n3", "n1", "n2"}
	for _, rf := range []int{1, 2, 3} {
		as, err := Assign(live, nil, 6, rf)
		require.NoError(t, err)
		require.Len(t, as, 6)
		for i, a := range as {
			assert.Equal(t, int32(i), a.ID)
			assert.Len(t, a.Replicas, rf)
			seen := map[string]bool{}
			for _, r := range a.Replicas {
				assert.False(t, seen[r], "replicas are distinct")
				seen[r] = true
			}
		}
		assert.Equal(t, map[string]int{"n1": 2, "n2": 2, "n3": 2}, leaderCounts(as), "rf %d", rf)
		assert.Equal(t, map[string]int{"n1": 2 * rf, "n2": 2 * rf, "n3": 2 * rf}, replicaCounts(as), "rf %d", rf)
	}
}

func TestAssignDeterministic(t *testing.T) {
	a, err := Assign([]string{"b", "a", "c", "d"}, nil, 7, 3)
	require.NoError(t, err)
	b, err := Assign([]string{"d", "c", "b", "a", "a"}, nil, 7, 3)
	require.NoError(t, err)
	assert.Equal(t, a, b, "live is a set: order and repeats do not matter")
}

func TestAssignAccountsForExistingLoad(t *testing.T) {
	live := []string{"n1", "n2", "n3"}
	// n1 already leads two partitions and holds replicas of both.
	existing := []Topic{{Name: "old", ReplicationFactor: 2, Partitions: []PartitionAssignment{
		{ID: 0, Replicas: []string{"n1", "n2"}},
		{ID: 1, Replicas: []string{"n1", "n3"}},
		{ID: 2, Replicas: []string{"gone", "n1"}}, // dead nodes are ignored
	}}}
	as, err := Assign(live, existing, 1, 1)
	require.NoError(t, err)
	assert.NotEqual(t, "n1", as[0].Replicas[0])

	as, err = Assign(live, existing, 4, 2)
	require.NoError(t, err)
	total := leaderCounts(as)
	total["n1"] += 2
	assert.Equal(t, map[string]int{"n1": 2, "n2": 2, "n3": 2}, total, "leaders even out across topics")
	rc := replicaCounts(as)
	rc["n1"] += 3
	rc["n2"]++
	rc["n3"]++
	for _, n := range live {
		assert.InDelta(t, 13.0/3, rc[n], 1, "replicas even out across topics: %v", rc)
	}
}

func TestAssignErrors(t *testing.T) {
	_, err := Assign([]string{"n1", "n2"}, nil, 3, 3)
	requireCode(t, err, transport.ErrNotEnoughReplicas)
	_, err = Assign([]string{"n1", "n1", "n1"}, nil, 3, 2)
	requireCode(t, err, transport.ErrNotEnoughReplicas)
	_, err = Assign(nil, nil, 1, 1)
	requireCode(t, err, transport.ErrNotEnoughReplicas)
	_, err = Assign([]string{"n1"}, nil, 0, 1)
	requireCode(t, err, transport.ErrInvalidRequest)
	_, err = Assign([]string{"n1"}, nil, 1, 0)
	requireCode(t, err, transport.ErrInvalidRequest)
}

func TestMetadataTopicIDsNeverReused(t *testing.T) {
	h := newMetaHarness(t)
	tp := testTopic(t, "orders", 1, 3)
	tp.ID = 999 // whatever the command carries, the FSM decides
	require.NoError(t, h.apply(EncodeCreateTopic(tp)))
	first, ok := h.m.TopicID("orders")
	require.True(t, ok)
	assert.Equal(t, h.idx, first, "id is the Raft index of the create")
	require.NoError(t, h.apply(EncodeDeleteTopic("orders")))
	require.NoError(t, h.apply(EncodeCreateTopic(tp)))
	second, _ := h.m.TopicID("orders")
	assert.Greater(t, second, first)
	got, _ := h.m.Topic("orders")
	assert.Equal(t, second, got.ID)

	// A leader report of the old incarnation is ignored.
	r := got.Partitions[0].Replicas
	require.NoError(t, h.apply(EncodeSetLeader("orders", first, 0, r[1], 9)))
	got, _ = h.m.Topic("orders")
	assert.Empty(t, got.Partitions[0].Leader)
	require.NoError(t, h.apply(EncodeSetLeader("orders", second, 0, r[1], 9)))
	got, _ = h.m.Topic("orders")
	assert.Equal(t, r[1], got.Partitions[0].Leader)

	// Ids and sync markers survive a snapshot.
	require.NoError(t, h.apply(EncodeSync("n2", 42)))
	assert.True(t, h.m.Synced("n2", 42))
	assert.False(t, h.m.Synced("n2", 41))
	assert.False(t, h.m.Synced("n1", 42))
	other := newMetaHarness(t)
	require.NoError(t, other.m.Restore(io.NopCloser(bytes.NewReader(persist(t, h.m)))))
	id, _ := other.m.TopicID("orders")
	assert.Equal(t, second, id)
	assert.True(t, other.m.Synced("n2", 42))
	requireCode(t, h.apply(EncodeSync("", 1)), transport.ErrInvalidRequest)
}
