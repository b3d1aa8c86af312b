package chaos

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/sluice-io/sluice/chaos/checker"
	"github.com/sluice-io/sluice/chaos/history"
)

// A soak (Options.Faults) checks its history in windows of WindowFaults
// fault cycles: at the end of a window the workload is quiesced (nothing in
// flight), every partition's new segment is read from its leader and each
// replica, and the window's operations are handed to the soak checker and
// dropped from memory (history.jsonl keeps them all). The checker checks
// one window at a time against what the earlier ones established
// (checker.Segments), so memory follows the log's length, not the run's
// operations, and Porcupine sees one window's operations at a time.

// plotPerSecond is how many operations of each function the report keeps
// per second of a soak (all faults and heals are kept): enough for the
// latency plots, bounded however long the soak.
const plotPerSecond = 25

type soakChecker struct {
	cfg    checker.Config
	logger *slog.Logger
	segs   *checker.Segments

	in   chan soakItem
	done chan struct{}

	// Owned by the checking goroutine until done is closed.
	windows int
	from    int64 // when the current window began
	merged  *checker.Result
	carry   []history.Op
	sample  []history.Op
	perSec  map[string]map[int64]int // function → second → ops kept
	thr     map[string][]float64
}

func newSoakChecker(cfg checker.Config, logger *slog.Logger) *soakChecker {
	s := &soakChecker{
		cfg:    cfg,
		logger: logger,
		segs:   checker.NewSegments(),
		in:     make(chan soakItem, 1),
		done:   make(chan struct{}),
		merged: &checker.Result{Counts: map[checker.Kind]int{}, Ops: map[string]map[history.Type]int{}},
		perSec: map[string]map[int64]int{},
		thr:    map[string][]float64{},
	}
	go s.loop()
	return s
}

// start is the first offset the next segment read of a partition covers.
// Safe to call only between windows, when the checker is idle (wait).
func (s *soakChecker) start(topic string) func(int32) int64 {
	return func(p int32) int64 { return s.segs.Start(topic, p) }
}

// soakItem is a window to check, or (ack set) a marker acknowledged once
// every window before it is checked.
type soakItem struct {
	ops []history.Op
	ack chan struct{}
}

// submit hands over one window; it waits while the previous one is being
// checked, so at most two windows are held at once.
func (s *soakChecker) submit(ops []history.Op) { s.in <- soakItem{ops: ops} }

// idle waits until every submitted window has been checked (the segment
// starts of the next reads depend on it).
func (s *soakChecker) idle() {
	ack := make(chan struct{})
	s.in <- soakItem{ack: ack}
	<-ack
}

// finish checks the last window and returns the merged result, the report's
// sample of operations and the per-second throughput.
func (s *soakChecker) finish(last []history.Op) (*checker.Result, []history.Op, map[string][]float64) {
	s.in <- soakItem{ops: last}
	close(s.in)
	<-s.done
	r := s.merged
	switch {
	case r.AnomalyCount() > 0:
		r.Verdict = checker.Fail
	case len(r.Inconclusive) > 0:
		r.Verdict = checker.Inconclusive
	default:
		r.Verdict = checker.Pass
	}
	return r, s.sample, s.thr
}

func (s *soakChecker) loop() {
	defer close(s.done)
	for it := range s.in {
		if it.ack != nil {
			close(it.ack)
			continue
		}
		s.check(it.ops)
	}
}

func (s *soakChecker) check(ops []history.Op) {
	s.windows++
	cfg := s.cfg
	cfg.Segments = s.segs
	cfg.From = s.from
	if cfg.VisualizeDir != "" {
		cfg.VisualizeDir = filepath.Join(cfg.VisualizeDir, fmt.Sprintf("window-%03d", s.windows))
	}
	start := time.Now()
	res := checker.Check(append(append([]history.Op(nil), s.carry...), ops...), cfg)
	s.logger.Info("soak window checked", "window", s.windows, "ops", len(ops), "verdict", res.Verdict,
		"anomalies", res.AnomalyCount(), "took", time.Since(start).Round(time.Millisecond))
	s.merge(res)
	s.segs.Advance(ops)
	s.carry = carryOver(append(s.carry, ops...))
	s.keepForPlots(ops)
	for _, op := range ops {
		s.from = max(s.from, op.Complete)
	}
}

func (s *soakChecker) merge(res *checker.Result) {
	m := s.merged
	w := s.windows
	for k, n := range res.Counts {
		m.Counts[k] += n
	}
	for _, a := range res.Anomalies {
		if len(m.Anomalies) < 200 {
			a.Detail = fmt.Sprintf("window %d: %s", w, a.Detail)
			m.Anomalies = append(m.Anomalies, a)
		}
	}
	for _, in := range res.Inconclusive {
		m.Inconclusive = append(m.Inconclusive, fmt.Sprintf("window %d: %s", w, in))
	}
	for _, l := range res.Linearizability {
		if l.Visualization != "" {
			l.Visualization = filepath.Join(fmt.Sprintf("window-%03d", w), filepath.Base(l.Visualization))
		}
		l.Reason = fmt.Sprintf("window %d %s", w, l.Reason)
		m.Linearizability = append(m.Linearizability, l)
	}
	for f, byType := range res.Ops {
		if m.Ops[f] == nil {
			m.Ops[f] = map[history.Type]int{}
		}
		for t, n := range byType {
			m.Ops[f][t] += n
		}
	}
	// Context carried from earlier windows is counted there, not again.
	for i := range res.Partitions {
		p := res.Partitions[i]
		found := false
		for j := range m.Partitions {
			q := &m.Partitions[j]
			if q.Topic != p.Topic || q.Partition != p.Partition {
				continue
			}
			found = true
			q.SendsOK += p.SendsOK
			q.SendsFail += p.SendsFail
			q.FinalLength = max(q.FinalLength, p.FinalLength)
			q.ReplicaLengths = p.ReplicaLengths
			q.InfoSendsPresent += p.InfoSendsPresent
			if p.LongestUnavailable.Duration() > q.LongestUnavailable.Duration() {
				q.LongestUnavailable = p.LongestUnavailable
			}
		}
		if !found {
			m.Partitions = append(m.Partitions, p)
		}
	}
	m.Recoveries = append(m.Recoveries, res.Recoveries...)
}

// carryOver keeps what a later window needs of earlier ones: sends of
// unknown outcome (their values may still show up), and per group and
// partition the last acknowledged commit with the unknown commits after
// it (a later fetch may return any of them).
func carryOver(ops []history.Op) []history.Op {
	type gk struct {
		group, topic string
		part         int32
	}
	lastOK := map[gk]history.Op{}
	for _, op := range ops {
		if op.F == history.FCommit && op.Type == history.OK {
			k := gk{op.Group, op.Topic, op.Partition}
			if prev, ok := lastOK[k]; !ok || op.Invoke > prev.Invoke {
				lastOK[k] = op
			}
		}
	}
	var out []history.Op
	for _, op := range ops {
		switch {
		case op.F == history.FSend && op.Type == history.Info:
			out = append(out, op)
		case op.F == history.FCommit && op.Type != history.Fail:
			last, ok := lastOK[gk{op.Group, op.Topic, op.Partition}]
			if (op.Type == history.OK && ok && op.Index == last.Index) || (op.Type == history.Info && (!ok || op.Invoke >= last.Invoke)) {
				out = append(out, op)
			}
		}
	}
	return out
}

// keepForPlots samples the window for the report: every fault and heal,
// every info and fail, and up to plotPerSecond operations of each function
// per second, without their records; ok completions are counted per second
// for the throughput plot.
func (s *soakChecker) keepForPlots(ops []history.Op) {
	for _, op := range ops {
		if op.IsClient() && op.Type == history.OK {
			sec := op.Complete / int64(time.Second)
			c := s.thr[op.F]
			for int64(len(c)) <= sec {
				c = append(c, 0)
			}
			c[sec]++
			s.thr[op.F] = c
		}
		if op.IsClient() && op.Type == history.OK {
			sec := op.Invoke / int64(time.Second)
			m := s.perSec[op.F]
			if m == nil {
				m = map[int64]int{}
				s.perSec[op.F] = m
			}
			if m[sec] >= plotPerSecond {
				continue
			}
			m[sec]++
		}
		op.Records = nil
		s.sample = append(s.sample, op)
	}
}
