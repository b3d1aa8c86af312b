package workload

import (
	"context"
	"errors"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/chaos/checker"
	"github.com/sluice-io/sluice/chaos/history"
)

var errMaybe = errors.New("maybe applied")

// memStore is a correct in-memory log store shared by all clients, which
// now and then fails a call before or after applying it. Bugs can be
// switched on to check that the checker sees them through the workload.
type memStore struct {
	mu      sync.Mutex
	logs    map[int32][]history.Record
	offsets map[int32]int64
	rng     *rand.Rand

	loseEvery int // acknowledge but drop every n-th append
	appends   int
	// beyondCommit makes replica n2 serve, at the end of its log, the last
	// append that failed with an unknown outcome and was never applied (a
	// deposed leader's uncommitted entry).
	beyondCommit bool
	pending      map[int32]string
}

func newMemStore() *memStore {
	return &memStore{logs: map[int32][]history.Record{}, offsets: map[int32]int64{}, rng: rand.New(rand.NewSource(1))}
}

type memClient struct{ s *memStore }

func (c memClient) Produce(_ context.Context, _ string, p int32, key, value string) (int64, error) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.rng.Intn(20) {
	case 0:
		return 0, errors.New("definitely not applied")
	case 1:
		s.logs[p] = append(s.logs[p], history.Record{Offset: int64(len(s.logs[p])), Key: key, Value: value})
		return 0, errMaybe
	case 2:
		if s.pending == nil {
			s.pending = map[int32]string{}
		}
		s.pending[p] = value
		return 0, errMaybe
	}
	s.appends++
	off := int64(len(s.logs[p]))
	if s.loseEvery > 0 && s.appends%s.loseEvery == 0 {
		return off, nil // acknowledged, never stored
	}
	s.logs[p] = append(s.logs[p], history.Record{Offset: off, Key: key, Value: value})
	return off, nil
}

func (c memClient) read(req FetchRequest) FetchResult {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	log := s.logs[req.Partition]
	res := FetchResult{HighWatermark: int64(len(log))}
	for i := req.Offset; i < int64(len(log)) && len(res.Records) < req.MaxRecords; i++ {
		res.Records = append(res.Records, log[i])
	}
	return res
}

func (c memClient) Fetch(_ context.Context, req FetchRequest) (FetchResult, error) {
	return c.read(req), nil
}

func (c memClient) FetchFromNode(_ context.Context, node string, req FetchRequest) (FetchResult, error) {
	res := c.read(req)
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.pending[req.Partition]; s.beyondCommit && node == "n2" && len(res.Records) == 0 && v != "" {
		res.Records = append(res.Records, history.Record{Offset: res.HighWatermark, Value: v})
	}
	return res, nil
}

func (c memClient) CommitOffset(_ context.Context, _, _ string, p int32, off int64) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offsets[p] = off
	return nil
}

func (c memClient) FetchOffset(_ context.Context, _, _ string, p int32) (int64, error) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if off, ok := s.offsets[p]; ok {
		return off, nil
	}
	return -1, nil
}

func (c memClient) Replicas(context.Context, string) (map[int32][]string, error) {
	return map[int32][]string{0: {"n1", "n2"}, 1: {"n1", "n2"}}, nil
}

func (c memClient) Close() error { return nil }

func run(t *testing.T, s *memStore) []history.Op {
	t.Helper()
	rec := history.NewRecorder(time.Now(), nil)
	w, err := New(Config{
		Topic: "t", Partitions: 2, Producers: 3, Rate: 600, PollWait: 5 * time.Millisecond,
		Open:     func() (Store, error) { return memClient{s}, nil },
		Unknown:  func(err error) bool { return errors.Is(err, errMaybe) },
		Recorder: rec,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	require.NoError(t, w.Run(ctx))
	require.NoError(t, w.FinalReads(context.Background(), 0))
	return rec.Ops()
}

func TestWorkloadOnCorrectStorePasses(t *testing.T) {
	ops := run(t, newMemStore())
	res := checker.Check(ops, checker.Config{})
	require.Equal(t, checker.Pass, res.Verdict, "anomalies %+v inconclusive %v", res.Anomalies, res.Inconclusive)

	// The history has every kind of operation, and info sends moved their
	// producers to new processes.
	require.Greater(t, res.Ops[history.FSend][history.OK], 50)
	require.Greater(t, res.Ops[history.FSend][history.Info], 0)
	require.Greater(t, res.Ops[history.FSend][history.Fail], 0)
	require.Greater(t, res.Ops[history.FPoll][history.OK], 10)
	require.Greater(t, res.Ops[history.FCommit][history.OK], 0)
	require.Greater(t, res.Ops[history.FFetchOffset][history.OK], 0)
	require.Equal(t, 2+2*2, res.Ops[history.FFinalRead][history.OK])
	infoAt := map[int]int64{} // process → completion of its info send
	for _, op := range ops {
		if op.F == history.FSend && op.Type == history.Info {
			_, dup := infoAt[op.Process]
			require.False(t, dup, "a process has at most one info op")
			infoAt[op.Process] = op.Complete
		}
	}
	for _, op := range ops {
		if end, ok := infoAt[op.Process]; ok {
			require.LessOrEqual(t, op.Invoke, end, "a process does nothing after its info op")
		}
	}
	var lin bool
	for _, op := range ops {
		lin = lin || (op.F == history.FPoll && op.Linearizable)
	}
	require.True(t, lin, "some polls are linearizable")
}

func TestWorkloadSeesLostWrites(t *testing.T) {
	s := newMemStore()
	s.loseEvery = 17
	res := checker.Check(run(t, s), checker.Config{})
	require.Equal(t, checker.Fail, res.Verdict)
	require.Greater(t, res.Counts[checker.LostWrite]+res.Counts[checker.Unseen], 0, "%v", res.Counts)
}

// TestWorkloadSeesReplicaServingUncommitted: a replica that serves an
// entry that never commits is caught by the replica followers.
func TestWorkloadSeesReplicaServingUncommitted(t *testing.T) {
	s := newMemStore()
	s.beyondCommit = true
	ops := run(t, s)
	res := checker.Check(ops, checker.Config{})
	require.Equal(t, checker.Fail, res.Verdict)
	require.Greater(t, res.Counts[checker.InconsistentOffsets], 0, "%v", res.Counts)
	nodes := map[string]bool{}
	for _, op := range ops {
		if op.F == history.FPoll && op.Node != "" {
			nodes[op.Node] = true
		}
	}
	require.Equal(t, map[string]bool{"n1": true, "n2": true}, nodes, "every replica is followed")
}

func TestHomePartitions(t *testing.T) {
	require.Equal(t, []int32{1}, homePartitions(5, 8, 4))
	require.Equal(t, []int32{0, 2, 4}, homePartitions(0, 2, 5))
	require.Equal(t, []int32{1, 3}, homePartitions(1, 2, 5))
	covered := map[int32]bool{}
	for i := 0; i < 3; i++ {
		for _, p := range homePartitions(i, 3, 7) {
			covered[p] = true
		}
	}
	require.Len(t, covered, 7)
}
