package report

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/chaos/checker"
	"github.com/sluice-io/sluice/chaos/history"
)

func synthetic() []history.Op {
	var ops []history.Op
	add := func(op history.Op) {
		op.Index = int64(len(ops))
		ops = append(ops, op)
	}
	sec := int64(time.Second)
	add(history.Op{Process: -1, F: history.FFault, Type: history.OK, Invoke: 3 * sec, Complete: 3*sec + 1e6, Fault: "kill-leader", Nodes: []string{"n1"}, Value: "leader of t/0"})
	add(history.Op{Process: -1, F: history.FHeal, Type: history.OK, Invoke: 6 * sec, Complete: 6*sec + 1e6, Fault: "kill-leader"})
	add(history.Op{Process: -1, F: history.FFault, Type: history.OK, Invoke: 8 * sec, Complete: 8 * sec, Fault: "partition-one"})
	var vals []history.Record
	for i := 0; i < 400; i++ {
		t := int64(i) * sec / 40
		typ, lat := history.OK, int64(2e6+i*1e4)
		if t > 3*sec && t < 6*sec {
			typ, lat = history.Info, 5*sec/2
		}
		op := history.Op{Process: i % 4, F: history.FSend, Type: typ, Invoke: t, Complete: t + lat, Topic: "t", Value: fmt.Sprint(i)}
		if typ == history.OK {
			op.Offset = int64(len(vals))
			vals = append(vals, history.Record{Offset: op.Offset, Value: op.Value})
		}
		add(op)
	}
	add(history.Op{Process: 99, F: history.FPoll, Type: history.Fail, Invoke: 4 * sec, Complete: 5 * sec, Topic: "t", Error: "timeout"})
	add(history.Op{Process: 99, F: history.FPoll, Type: history.OK, Invoke: 9 * sec, Complete: 9*sec + 3e6, Topic: "t", Records: vals[:10]})
	add(history.Op{Process: 100, F: history.FFinalRead, Type: history.OK, Invoke: 12 * sec, Complete: 12*sec + 5e6, Topic: "t", Records: vals, HighWatermark: int64(len(vals)), Linearizable: true})
	return ops
}

func TestFaultWindows(t *testing.T) {
	w := FaultWindows(synthetic())
	require.Len(t, w, 2)
	assert.Equal(t, FaultWindow{Fault: "kill-leader", Nodes: []string{"n1"}, Desc: "leader of t/0", Start: 3 * time.Second, End: 6*time.Second + time.Millisecond}, w[0])
	assert.Equal(t, "partition-one", w[1].Fault)
	assert.Equal(t, 12*time.Second+5*time.Millisecond, w[1].End, "an unhealed fault lasts to the end")
}

func TestWrite(t *testing.T) {
	ops := synthetic()
	res := checker.Check(ops, checker.Config{})
	require.Equal(t, checker.Pass, res.Verdict, "%+v", res.Anomalies)
	dir := filepath.Join(t.TempDir(), "run")
	require.NoError(t, Write(Input{
		Title: "chaos test", Dir: dir, Ops: ops, Check: res,
		Facts: [][2]string{{"nodes", "3"}}, Notes: []string{"a note"},
		Links: [][2]string{{"history", "history.jsonl"}},
	}))
	for _, f := range []string{"index.html", "latency-send.png", "latency-poll.png", "throughput.png"} {
		st, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err, f)
		assert.Greater(t, st.Size(), int64(1000), f)
	}
	html, err := os.ReadFile(filepath.Join(dir, "index.html"))
	require.NoError(t, err)
	for _, want := range []string{"PASS", "kill-leader", "latency-send.png", "throughput.png", "a note", "history.jsonl", "t/0"} {
		assert.Contains(t, string(html), want)
	}
}
