package checker

import (
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/sluice-io/sluice/chaos/history"
)

// The partition model: the log is a list, summarised by its length and an
// order-sensitive hash of its values. An append with a known offset must land
// at the end (offset == length); a linearizable read must see exactly the
// current length (and, when it read everything, the same hash).

type logState struct {
	n int64
	h uint64
}

type appendIn struct {
	value string
	vh    uint64
}

type appendOut struct {
	offset int64
	known  bool
}

type readIn struct{}

type readOut struct {
	hw      int64
	h       uint64
	hasHash bool
}

func valueHash(v string) uint64 {
	f := fnv.New64a()
	_, _ = f.Write([]byte(v))
	return f.Sum64()
}

func extend(h, vh uint64) uint64 { return (h^vh)*1099511628211 + 0x9e3779b97f4a7c15 }

// listHashFrom extends h, the hash of the log before recs, over recs.
func listHashFrom(h uint64, recs []history.Record) uint64 {
	for _, r := range recs {
		h = extend(h, valueHash(r.Value))
	}
	return h
}

var logModel = porcupine.Model{
	Init: func() any { return logState{} },
	Step: func(state, input, output any) (bool, any) {
		s := state.(logState)
		switch in := input.(type) {
		case appendIn:
			out := output.(appendOut)
			if out.known && out.offset != s.n {
				return false, s
			}
			return true, logState{n: s.n + 1, h: extend(s.h, in.vh)}
		case readIn:
			out := output.(readOut)
			ok := out.hw == s.n && (!out.hasHash || out.h == s.h)
			return ok, s
		}
		return false, s
	},
	Equal: func(a, b any) bool { return a.(logState) == b.(logState) },
	Hash:  func(s any) uint64 { st := s.(logState); return st.h ^ uint64(st.n) },
	DescribeOperation: func(input, output any) string {
		switch in := input.(type) {
		case appendIn:
			out := output.(appendOut)
			if !out.known {
				return fmt.Sprintf("append(%s) → ?", in.value)
			}
			return fmt.Sprintf("append(%s) → %d", in.value, out.offset)
		case readIn:
			out := output.(readOut)
			return fmt.Sprintf("read → hw %d", out.hw)
		}
		return "?"
	},
	DescribeState: func(s any) string { return fmt.Sprintf("length %d", s.(logState).n) },
}

// checkLinearizable runs Porcupine over one partition. Unknown-outcome
// appends whose value was read somewhere get the offset they were read at
// (values are unique) and never return; those never read are left out when a
// final linearizable read exists, since nothing observed them (they may take
// effect after everything else). Without a final read the check is skipped:
// the verdict is inconclusive anyway.
func (c *checker) checkLinearizable(k tp, ops []history.Op, sends map[string][]history.Op, final *history.Op, valueAt map[string]map[int64][]int64, seg *segment) LinResult {
	res := LinResult{Topic: k.topic, Partition: k.partition}
	if c.cfg.SkipLinearizability {
		res.Result = "skipped"
		res.Reason = "disabled"
		c.inconclusive("%s: linearizability check disabled", k)
		return res
	}
	if final == nil {
		res.Result = "skipped"
		res.Reason = "no final linearizable read"
		return res
	}
	clients := map[int]int{}
	client := func(p int) int {
		id, ok := clients[p]
		if !ok {
			id = len(clients)
			clients[p] = id
		}
		return id
	}
	var pops []porcupine.Operation
	for _, op := range ops {
		switch {
		case op.F == history.FSend && op.Type == history.OK:
			pops = append(pops, porcupine.Operation{
				ClientId: client(op.Process), Call: op.Invoke, Return: op.Complete,
				Input: appendIn{op.Value, valueHash(op.Value)}, Output: appendOut{op.Offset, true},
			})
		case op.F == history.FSend && op.Type == history.Info:
			at, read := valueAt[op.Value]
			if !read {
				continue
			}
			o, _ := firstRead(at)
			pops = append(pops, porcupine.Operation{
				ClientId: client(op.Process), Call: op.Invoke, Return: infinity,
				Input: appendIn{op.Value, valueHash(op.Value)}, Output: appendOut{o, true},
			})
		case op.F == history.FPoll && op.Type == history.OK && op.Linearizable:
			pops = append(pops, porcupine.Operation{
				ClientId: client(op.Process), Call: op.Invoke, Return: op.Complete,
				Input: readIn{}, Output: readOut{hw: op.HighWatermark},
			})
		case op.F == history.FFinalRead && op.Index == final.Index:
			pops = append(pops, porcupine.Operation{
				ClientId: client(op.Process), Call: op.Invoke, Return: op.Complete,
				Input: readIn{}, Output: readOut{hw: op.Offset + int64(len(op.Records)), h: listHashFrom(seg.hash(), op.Records), hasHash: true},
			})
		}
	}
	res.Ops = len(pops)
	start := time.Now()
	model := logModel
	if seg != nil {
		// A window starts from the log the earlier windows established.
		init := logState{n: seg.start(), h: seg.hash()}
		model.Init = func() any { return init }
	}
	out := porcupine.CheckOperationsTimeout(model, pops, c.cfg.LinearizabilityTimeout)
	res.Duration = time.Since(start)
	switch out {
	case porcupine.Ok:
		res.Result = "ok"
	case porcupine.Illegal:
		res.Result = "illegal"
		c.add(Anomaly{Kind: NotLinearizable, Topic: k.topic, Partition: k.partition,
			Detail: fmt.Sprintf("no linearization of %d appends and reads exists", len(pops))})
		if c.cfg.VisualizeDir != "" {
			res.Visualization = c.visualize(k, model, pops)
		}
	default:
		res.Result = "inconclusive"
		res.Reason = fmt.Sprintf("porcupine timed out after %s", c.cfg.LinearizabilityTimeout)
		c.inconclusive("%s: linearizability check timed out after %s over %d operations", k, c.cfg.LinearizabilityTimeout, len(pops))
	}
	return res
}

// visualize writes Porcupine's HTML timeline; best effort.
func (c *checker) visualize(k tp, model porcupine.Model, pops []porcupine.Operation) string {
	_, info := porcupine.CheckOperationsVerbose(model, pops, c.cfg.LinearizabilityTimeout)
	path := filepath.Join(c.cfg.VisualizeDir, fmt.Sprintf("linearizability-%s-%d.html", k.topic, k.partition))
	if err := os.MkdirAll(c.cfg.VisualizeDir, 0o755); err != nil {
		return ""
	}
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		return ""
	}
	return path
}
