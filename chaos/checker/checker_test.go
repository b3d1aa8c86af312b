package checker

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/chaos/history"
)

const ms = int64(time.Millisecond)

// builder makes hand-written histories with explicit times.
type builder struct {
	ops []history.Op
}

func (b *builder) add(op history.Op) *history.Op {
	op.Index = int64(len(b.ops))
	if op.Topic == "" && op.IsClient() {
		op.Topic = "t"
	}
	b.ops = append(b.ops, op)
	return &b.ops[len(b.ops)-1]
}

func (b *builder) send(proc int, value string, typ history.Type, offset int64, inv, comp int64) *history.Op {
	return b.add(history.Op{Process: proc, F: history.FSend, Type: typ, Invoke: inv * ms, Complete: comp * ms, Key: "k", Value: value, Offset: offset})
}

func recs(from int64, values ...string) []history.Record {
	out := make([]history.Record, len(values))
	for i, v := range values {
		out[i] = history.Record{Offset: from + int64(i), Value: v}
	}
	return out
}

func (b *builder) poll(proc int, from int64, inv, comp int64, records []history.Record) *history.Op {
	return b.add(history.Op{Process: proc, F: history.FPoll, Type: history.OK, Invoke: inv * ms, Complete: comp * ms, Offset: from, Records: records})
}

func (b *builder) final(node string, inv, comp int64, records []history.Record) *history.Op {
	return b.add(history.Op{Process: 1000, F: history.FFinalRead, Type: history.OK, Invoke: inv * ms, Complete: comp * ms,
		Node: node, Records: records, HighWatermark: int64(len(records)), Linearizable: node == ""})
}

func (b *builder) commit(proc int, offset int64, typ history.Type, inv, comp int64) *history.Op {
	return b.add(history.Op{Process: proc, F: history.FCommit, Type: typ, Invoke: inv * ms, Complete: comp * ms, Group: "g", Offset: offset})
}

func (b *builder) fetchOffset(proc int, offset int64, inv, comp int64) *history.Op {
	return b.add(history.Op{Process: proc, F: history.FFetchOffset, Type: history.OK, Invoke: inv * ms, Complete: comp * ms, Group: "g", Offset: offset})
}

// clean is a small history that a correct store could produce: two
// producers (one of whose sends has an unknown outcome and took effect, one
// unknown that did not, one that failed), a poller, a group consumer, a
// fault and its heal, and the final reads from the leader and 3 replicas.
func clean() *builder {
	b := &builder{}
	b.add(history.Op{Process: history.NemesisProcess, F: history.FFault, Type: history.Info, Invoke: 15 * ms, Complete: 16 * ms, Fault: "kill-leader", Nodes: []string{"n1"}})
	b.send(0, "a", history.OK, 0, 0, 10)
	b.send(1, "b", history.OK, 1, 5, 12)
	b.send(0, "c", history.Info, 0, 11, 40) // took effect at offset 2
	b.send(1, "x", history.Fail, 0, 13, 14) // certainly not
	b.send(2, "d", history.OK, 3, 41, 50)
	b.send(3, "y", history.Info, 0, 45, 60) // never took effect
	b.send(2, "e", history.OK, 4, 51, 55)
	b.add(history.Op{Process: history.NemesisProcess, F: history.FHeal, Type: history.Info, Invoke: 35 * ms, Complete: 36 * ms, Fault: "kill-leader", Nodes: []string{"n1"}})
	b.poll(10, 0, 1, 2, nil)
	b.poll(10, 0, 13, 14, recs(0, "a", "b"))
	b.poll(10, 2, 56, 57, recs(2, "c", "d", "e"))
	lp := b.poll(11, 0, 56, 58, recs(0, "a"))
	lp.Linearizable, lp.HighWatermark = true, 5
	b.commit(20, 2, history.OK, 15, 16)
	b.fetchOffset(20, 2, 17, 18)
	b.commit(20, 3, history.Info, 19, 30)
	b.fetchOffset(21, 2, 31, 32) // the unknown commit has not (yet) happened
	b.commit(21, 5, history.OK, 33, 34)
	b.fetchOffset(21, 5, 35, 36)
	all := recs(0, "a", "b", "c", "d", "e")
	b.final("", 100, 110, all)
	b.final("n1", 111, 112, all)
	b.final("n2", 111, 112, all)
	b.final("n3", 111, 112, recs(0, "a", "b", "c")) // lagging is fine
	return b
}

func TestCleanHistoryPasses(t *testing.T) {
	res := Check(clean().ops, Config{})
	require.Empty(t, res.Anomalies, "anomalies: %+v", res.Anomalies)
	require.Empty(t, res.Inconclusive)
	require.Equal(t, Pass, res.Verdict)
	require.True(t, res.Valid())
	require.Len(t, res.Linearizability, 1)
	assert.Equal(t, "ok", res.Linearizability[0].Result)

	require.Len(t, res.Partitions, 1)
	p := res.Partitions[0]
	assert.Equal(t, 4, p.SendsOK)
	assert.Equal(t, 2, p.SendsInfo)
	assert.Equal(t, 1, p.SendsFail)
	assert.Equal(t, int64(5), p.FinalLength)
	assert.Equal(t, 1, p.InfoSendsPresent)
	assert.Equal(t, map[string]int64{"n1": 5, "n2": 5, "n3": 3}, p.ReplicaLengths)
	// Ok appends completed at 10, 12, 50, 55: the longest gap is 12→50.
	assert.Equal(t, Window{12 * ms, 50 * ms}, p.LongestUnavailable)

	require.Len(t, res.Recoveries, 1)
	assert.Equal(t, "kill-leader", res.Recoveries[0].Fault)
	assert.Equal(t, time.Duration(50*ms-36*ms), res.Recoveries[0].Max)
	assert.Equal(t, 4, res.Ops[history.FSend][history.OK])
}

func TestCleanConcurrentHistoryPasses(t *testing.T) {
	// Many concurrent producers whose appends overlap in time; the offsets
	// order them, and every read agrees.
	b := &builder{}
	var all []string
	n := 0
	for round := int64(0); round < 50; round++ {
		for p := 0; p < 4; p++ {
			v := fmt.Sprintf("v%d", n)
			b.send(p, v, history.OK, int64(n), round*10, round*10+9)
			all = append(all, v)
			n++
		}
	}
	b.poll(9, 0, 600, 601, recs(0, all[:100]...))
	b.poll(9, 100, 602, 603, recs(100, all[100:]...))
	b.final("", 700, 701, recs(0, all...))
	res := Check(b.ops, Config{})
	require.Equal(t, Pass, res.Verdict, "%+v %v", res.Anomalies, res.Inconclusive)
}

func kinds(res *Result) []Kind {
	var out []Kind
	for k, n := range res.Counts {
		if n > 0 {
			out = append(out, k)
		}
	}
	return out
}

func TestAnomaliesAreFound(t *testing.T) {
	finalOf := func(b *builder) *history.Op {
		for i := range b.ops {
			if b.ops[i].F == history.FFinalRead && b.ops[i].Node == "" {
				return &b.ops[i]
			}
		}
		t.Fatal("no final read")
		return nil
	}
	replica := func(b *builder, node string) *history.Op {
		for i := range b.ops {
			if b.ops[i].F == history.FFinalRead && b.ops[i].Node == node {
				return &b.ops[i]
			}
		}
		t.Fatal("no replica read")
		return nil
	}
	cases := []struct {
		name   string
		mutate func(b *builder)
		want   Kind
	}{
		{"lost write: acked value missing from the final read", func(b *builder) {
			f := finalOf(b)
			f.Records = recs(0, "a", "c", "d", "e") // b vanished, the rest moved down
			for _, n := range []string{"n1", "n2", "n3"} {
				replica(b, n).Records = f.Records
			}
		}, LostWrite},
		{"lost write: polled value missing from the final read", func(b *builder) {
			b.send(5, "p", history.Info, 0, 60, 70)
			b.poll(10, 5, 71, 72, recs(5, "p"))
		}, LostWrite},
		{"unseen: acked beyond the end of the log", func(b *builder) {
			b.send(4, "z", history.OK, 5, 60, 61)
		}, Unseen},
		{"duplicate: one value at two offsets", func(b *builder) {
			f := finalOf(b)
			f.Records = recs(0, "a", "b", "c", "d", "e", "c")
		}, Duplicate},
		{"inconsistent offsets: one offset, two values", func(b *builder) {
			b.poll(12, 3, 60, 61, recs(3, "e"))
		}, InconsistentOffsets},
		{"inconsistent offsets: acknowledged at one offset, read at another", func(b *builder) {
			b.send(4, "w", history.OK, 7, 60, 61)
			f := finalOf(b)
			f.Records = recs(0, "a", "b", "c", "d", "e", "w")
		}, InconsistentOffsets},
		{"nonmonotonic poll", func(b *builder) {
			b.poll(10, 4, 60, 61, recs(4, "e"))
			b.poll(10, 5, 62, 63, recs(3, "d", "e"))
		}, NonmonotonicPoll},
		{"poll skip", func(b *builder) {
			b.poll(13, 0, 60, 61, recs(0, "a", "b"))
			b.poll(13, 3, 62, 63, recs(3, "d"))
		}, PollSkip},
		{"int nonmonotonic poll", func(b *builder) {
			b.poll(13, 0, 60, 61, []history.Record{{Offset: 0, Value: "a"}, {Offset: 2, Value: "c"}, {Offset: 1, Value: "b"}})
		}, IntNonmonotonicPoll},
		{"int poll skip", func(b *builder) {
			b.poll(13, 0, 60, 61, []history.Record{{Offset: 0, Value: "a"}, {Offset: 1, Value: "b"}, {Offset: 3, Value: "d"}})
		}, IntPollSkip},
		{"int poll skip: began past the asked offset", func(b *builder) {
			b.poll(13, 1, 60, 61, recs(2, "c"))
		}, IntPollSkip},
		{"divergence between replicas", func(b *builder) {
			replica(b, "n2").Records = recs(0, "a", "b", "d", "c", "e")
		}, Divergence},
		{"committed offset regression", func(b *builder) {
			b.commit(22, 6, history.OK, 60, 61)
			b.fetchOffset(22, 5, 62, 63)
		}, OffsetRegression},
		{"committed offset back to none", func(b *builder) {
			b.fetchOffset(22, -1, 62, 63)
		}, OffsetRegression},
		{"phantom committed offset", func(b *builder) {
			b.fetchOffset(22, 42, 62, 63)
		}, PhantomOffset},
		{"phantom read: value never sent", func(b *builder) {
			f := finalOf(b)
			f.Records = recs(0, "a", "b", "c", "d", "e", "ghost")
		}, PhantomRead},
		{"phantom read on a replica only", func(b *builder) {
			replica(b, "n3").Records = recs(0, "a", "b", "c", "ghost")
		}, PhantomRead},
		{"aborted read: value whose send failed", func(b *builder) {
			f := finalOf(b)
			f.Records = recs(0, "a", "b", "c", "d", "e", "x")
		}, AbortedRead},
		{"nonmonotonic send", func(b *builder) {
			// Process 7 sends f then g, and g lands before f.
			b.send(7, "f", history.OK, 6, 60, 61)
			b.send(7, "g", history.OK, 5, 62, 63)
			f := finalOf(b)
			f.Records = recs(0, "a", "b", "c", "d", "e", "g", "f")
		}, NonmonotonicSend},
		{"not linearizable: an append ordered before one that completed earlier", func(b *builder) {
			b.send(7, "f", history.OK, 6, 60, 61)
			b.send(8, "g", history.OK, 5, 62, 63)
			f := finalOf(b)
			f.Records = recs(0, "a", "b", "c", "d", "e", "g", "f")
		}, NotLinearizable},
		{"not linearizable: a stale linearizable read", func(b *builder) {
			p := b.poll(14, 0, 60, 61, recs(0, "a"))
			p.Linearizable, p.HighWatermark = true, 3 // 5 appends had completed
		}, NotLinearizable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := clean()
			tc.mutate(b)
			res := Check(b.ops, Config{})
			require.Equal(t, Fail, res.Verdict)
			require.Greater(t, res.Counts[tc.want], 0, "want %s, found %v: %+v", tc.want, kinds(res), res.Anomalies)
			var found bool
			for _, a := range res.Anomalies {
				if a.Kind == tc.want {
					found = true
					require.NotEmpty(t, a.Detail)
					require.Equal(t, "t", a.Topic)
				}
			}
			require.True(t, found, "examples must include the kind")
		})
	}
}

func TestStaleReadIsOnlyALinearizabilityViolation(t *testing.T) {
	// No order rule catches a read that misses completed appends: Porcupine
	// must.
	b := clean()
	p := b.poll(14, 0, 60, 61, recs(0, "a"))
	p.Linearizable, p.HighWatermark = true, 3
	res := Check(b.ops, Config{})
	require.Equal(t, map[Kind]int{NotLinearizable: 1}, nonzero(res.Counts))
}

func nonzero(m map[Kind]int) map[Kind]int {
	out := map[Kind]int{}
	for k, v := range m {
		if v > 0 {
			out[k] = v
		}
	}
	return out
}

func TestMissingFinalReadIsInconclusive(t *testing.T) {
	b := clean()
	var ops []history.Op
	for _, op := range b.ops {
		if op.F == history.FFinalRead && op.Node == "" {
			continue
		}
		ops = append(ops, op)
	}
	res := Check(ops, Config{})
	require.Equal(t, Inconclusive, res.Verdict, "%+v", res.Anomalies)
	require.False(t, res.Valid())
	require.NotEmpty(t, res.Inconclusive)
}

func TestLinearizabilityTimeoutIsInconclusive(t *testing.T) {
	b := &builder{}
	var all []string
	for i := 0; i < 20000; i++ {
		v := fmt.Sprintf("v%d", i)
		b.send(i%3, v, history.OK, int64(i), int64(i), int64(i)+1)
		all = append(all, v)
	}
	b.final("", 30000, 30001, recs(0, all...))
	res := Check(b.ops, Config{LinearizabilityTimeout: time.Nanosecond})
	require.Equal(t, Inconclusive, res.Verdict)
	require.Equal(t, "inconclusive", res.Linearizability[0].Result)
	require.Zero(t, res.AnomalyCount())
}

func TestSkippedLinearizabilityIsNotAPass(t *testing.T) {
	res := Check(clean().ops, Config{SkipLinearizability: true})
	require.Equal(t, Inconclusive, res.Verdict)
}

func TestExamplesAreCapped(t *testing.T) {
	b := clean()
	f := b.ops[len(b.ops)-4] // the linearizable final read
	require.Equal(t, "", f.Node)
	for i := 0; i < 50; i++ {
		b.final("", 120, 121, append(recs(0, "a", "b", "c", "d", "e"), history.Record{Offset: 5, Value: fmt.Sprintf("ghost%d", i)}))
		b.poll(30+i, 5, 60, 61, recs(5, fmt.Sprintf("ghost%d", i)))
	}
	res := Check(b.ops, Config{MaxExamples: 5})
	require.Equal(t, 50, res.Counts[PhantomRead])
	n := 0
	for _, a := range res.Anomalies {
		if a.Kind == PhantomRead {
			n++
		}
	}
	require.Equal(t, 5, n)
}

func TestVisualizationOfIllegalPartition(t *testing.T) {
	b := clean()
	p := b.poll(14, 0, 60, 61, recs(0, "a"))
	p.Linearizable, p.HighWatermark = true, 3
	dir := t.TempDir()
	res := Check(b.ops, Config{VisualizeDir: dir})
	require.Equal(t, "illegal", res.Linearizability[0].Result)
	require.FileExists(t, res.Linearizability[0].Visualization)
}

func TestNoRecoveryBeforeNextFault(t *testing.T) {
	b := &builder{}
	b.add(history.Op{Process: -1, F: history.FHeal, Type: history.Info, Invoke: 10 * ms, Complete: 11 * ms, Fault: "pause-leader"})
	b.add(history.Op{Process: -1, F: history.FFault, Type: history.Info, Invoke: 20 * ms, Complete: 21 * ms, Fault: "kill-random"})
	b.send(0, "a", history.OK, 0, 0, 1)
	b.send(0, "b", history.OK, 1, 25, 30)
	b.final("", 40, 41, recs(0, "a", "b"))
	res := Check(b.ops, Config{})
	require.Equal(t, Pass, res.Verdict)
	require.Len(t, res.Recoveries, 1)
	require.Equal(t, time.Duration(-1), res.Recoveries[0].Max)
}
