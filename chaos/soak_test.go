package chaos

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/chaos/checker"
	"github.com/sluice-io/sluice/chaos/history"
)

func TestCarryOver(t *testing.T) {
	ops := []history.Op{
		{Index: 1, F: history.FSend, Type: history.OK, Value: "1"},
		{Index: 2, F: history.FSend, Type: history.Info, Value: "2"},
		{Index: 3, F: history.FCommit, Type: history.OK, Group: "g", Topic: "t", Offset: 5, Invoke: 10},
		{Index: 4, F: history.FCommit, Type: history.Info, Group: "g", Topic: "t", Offset: 6, Invoke: 5},
		{Index: 5, F: history.FCommit, Type: history.OK, Group: "g", Topic: "t", Offset: 7, Invoke: 20},
		{Index: 6, F: history.FCommit, Type: history.Info, Group: "g", Topic: "t", Offset: 8, Invoke: 30},
		{Index: 7, F: history.FCommit, Type: history.Fail, Group: "g", Topic: "t", Offset: 9, Invoke: 40},
		{Index: 8, F: history.FPoll, Type: history.OK},
	}
	var kept []int64
	for _, op := range carryOver(ops) {
		kept = append(kept, op.Index)
	}
	// The info send, the last ok commit and the unknown commit after it.
	require.Equal(t, []int64{2, 5, 6}, kept)
}

// TestSoakCheckerWindows: three windows of a correct log pass as one; the
// merged result counts each window's operations once, and the report's
// sample is bounded per second while throughput counts everything.
func TestSoakCheckerWindows(t *testing.T) {
	s := newSoakChecker(checker.Config{}, slog.New(slog.DiscardHandler))
	var next int64
	const perWindow = 100
	sec := int64(time.Second)
	window := func(w int) []history.Op {
		var ops []history.Op
		lo := next
		var recs []history.Record
		for i := 0; i < perWindow; i++ {
			at := int64(w)*10*sec + int64(i)*sec/perWindow
			v := fmt.Sprint(next)
			ops = append(ops, history.Op{Index: next, Process: w, F: history.FSend, Type: history.OK, Invoke: at, Complete: at + 1000,
				Topic: "t", Value: v, Offset: next})
			recs = append(recs, history.Record{Offset: next, Value: v})
			next++
		}
		end := int64(w)*10*sec + 2*sec
		ops = append(ops, history.Op{Index: 1e6 + int64(w), Process: 99, F: history.FFinalRead, Type: history.OK, Invoke: end, Complete: end + 1000,
			Topic: "t", Offset: lo, Records: recs, HighWatermark: next, Linearizable: true})
		return ops
	}
	s.submit(window(0))
	s.idle()
	require.Equal(t, int64(perWindow), s.start("t")(0))
	s.submit(window(1))
	res, sample, thr := s.finish(window(2))
	require.Equal(t, checker.Pass, res.Verdict, "%+v %v", res.Anomalies, res.Inconclusive)
	require.Equal(t, 3*perWindow, res.Ops[history.FSend][history.OK])
	require.Len(t, res.Linearizability, 3)
	sends := 0
	for _, op := range sample {
		if op.F == history.FSend {
			sends++
		}
		require.Nil(t, op.Records, "the sample keeps no records")
	}
	require.Equal(t, 3*plotPerSecond, sends, "one second of sends per window, %d kept per second", plotPerSecond)
	total := 0.0
	for _, n := range thr[history.FSend] {
		total += n
	}
	require.Equal(t, float64(3*perWindow), total)
}
