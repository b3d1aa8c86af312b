// Package checker analyses a chaos history (see package history) for the
// anomalies a replicated log must never show: lost, duplicated or reordered
// records, reads of values that were never (successfully) sent, replicas that
// disagree, committed consumer offsets that go back, and appends that are not
// linearizable. It also reports unavailability, which is not an anomaly.
//
// The checker is a pure function of the history: the final reads of every
// partition (the linearizable leader read and each replica's committed log)
// are history operations too.
package checker

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/sluice-io/sluice/chaos/history"
)

// Kind names an anomaly.
type Kind string

const (
	// LostWrite: an acknowledged send (or a value a poll had seen) is missing
	// from the final read although the log reaches past its offset, or some
	// read had observed an offset beyond it.
	LostWrite Kind = "lost-write"
	// Unseen: an acknowledged send is missing from the final read and no
	// read ever reached its offset (the log was truncated below it).
	Unseen Kind = "unseen"
	// Duplicate: one value read at two or more offsets.
	Duplicate Kind = "duplicate"
	// InconsistentOffsets: one offset holding two values, or a value read at
	// another offset than its send was acknowledged with.
	InconsistentOffsets Kind = "inconsistent-offsets"
	// NonmonotonicPoll: a consumer's poll starts at or before the last offset
	// of its previous poll.
	NonmonotonicPoll Kind = "nonmonotonic-poll"
	// PollSkip: a consumer's poll starts after the offset following its
	// previous poll (offsets are dense, so something was skipped).
	PollSkip Kind = "poll-skip"
	// IntNonmonotonicPoll: offsets go back or repeat inside one poll.
	IntNonmonotonicPoll Kind = "int-nonmonotonic-poll"
	// IntPollSkip: offsets jump inside one poll, or the first record is
	// past the offset the poll asked for.
	IntPollSkip Kind = "int-poll-skip"
	// Divergence: two replicas hold different values at the same offset of
	// their committed logs.
	Divergence Kind = "divergence"
	// OffsetRegression: a group's fetched committed offset is older than a
	// commit that had already superseded it.
	OffsetRegression Kind = "committed-offset-regression"
	// PhantomOffset: a group's fetched committed offset that no commit wrote.
	PhantomOffset Kind = "phantom-committed-offset"
	// PhantomRead: a value read that no one ever sent.
	PhantomRead Kind = "phantom-read"
	// AbortedRead: a value read whose send failed (Jepsen's G1a).
	AbortedRead Kind = "aborted-read"
	// NonmonotonicSend: a later send of the same process got an offset at or
	// before an earlier one's.
	NonmonotonicSend Kind = "nonmonotonic-send"
	// NotLinearizable: Porcupine found no linearization of the partition's
	// appends and linearizable reads.
	NotLinearizable Kind = "not-linearizable"
)

// Verdict is the overall outcome of a check.
type Verdict string

const (
	Pass         Verdict = "pass"
	Fail         Verdict = "fail"
	Inconclusive Verdict = "inconclusive" // no anomaly found, but something could not be checked: never a pass
)

// Config tunes the checker. Zero values take defaults.
type Config struct {
	// LinearizabilityTimeout bounds Porcupine per partition (default 30s).
	// A timeout makes the verdict inconclusive.
	LinearizabilityTimeout time.Duration
	// SkipLinearizability turns the Porcupine check off (the verdict is then
	// inconclusive at best).
	SkipLinearizability bool
	// MaxExamples is how many anomalies of each kind are kept with details
	// (default 20); all are counted.
	MaxExamples int
	// VisualizeDir, when set, receives Porcupine's HTML timeline for every
	// partition found not linearizable.
	VisualizeDir string
	// Segments, when set, makes this a check of one window of a longer
	// history (see Segments): the final reads are the window's segment
	// reads, starting where the established log ends.
	Segments *Segments
	// From, in a window's check, is when the window began: operations that
	// completed before it are context carried over from earlier windows,
	// neither counted nor part of the window's unavailability.
	From int64
}

func (c *Config) defaults() {
	if c.LinearizabilityTimeout <= 0 {
		c.LinearizabilityTimeout = 30 * time.Second
	}
	if c.MaxExamples <= 0 {
		c.MaxExamples = 20
	}
}

// Anomaly is one finding.
type Anomaly struct {
	Kind      Kind    `json:"kind"`
	Topic     string  `json:"topic,omitempty"`
	Partition int32   `json:"partition"`
	Detail    string  `json:"detail"`
	Ops       []int64 `json:"ops,omitempty"` // history indexes involved
}

// LinResult is the linearizability result of one partition.
type LinResult struct {
	Topic     string        `json:"topic"`
	Partition int32         `json:"partition"`
	Result    string        `json:"result"` // ok, illegal, inconclusive, skipped
	Ops       int           `json:"ops"`
	Duration  time.Duration `json:"duration_ns"`
	Reason    string        `json:"reason,omitempty"`
	// Visualization is the path of Porcupine's HTML timeline, if written.
	Visualization string `json:"visualization,omitempty"`
}

// Window is a time interval in ns since the start of the run.
type Window struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// Duration of the window.
func (w Window) Duration() time.Duration { return time.Duration(w.End - w.Start) }

// PartitionSummary is what the checker saw of one partition.
type PartitionSummary struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	SendsOK   int    `json:"sends_ok"`
	SendsInfo int    `json:"sends_info"`
	SendsFail int    `json:"sends_fail"`
	// FinalLength is the length of the final linearizable read, -1 if none.
	FinalLength int64 `json:"final_length"`
	// ReplicaLengths are the lengths of each replica's final committed log.
	ReplicaLengths map[string]int64 `json:"replica_lengths,omitempty"`
	// InfoSendsPresent counts unknown-outcome sends found in the final read.
	InfoSendsPresent int `json:"info_sends_present"`
	// LongestUnavailable is the longest window without a successful append.
	LongestUnavailable Window `json:"longest_unavailable"`
}

// Recovery is how long the cluster took to serve appends again after a heal.
type Recovery struct {
	Fault  string `json:"fault"`
	HealAt int64  `json:"heal_at"` // ns since start, when the heal completed
	// Max is the slowest partition's recovery, -1 when some partition did
	// not recover before the next fault (or the end).
	Max        time.Duration            `json:"max_ns"`
	Partitions map[string]time.Duration `json:"partitions_ns"` // "topic/partition" → recovery, -1: not recovered
}

// Result is the outcome of a check.
type Result struct {
	Verdict Verdict `json:"verdict"`
	// Counts of anomalies per kind (all of them); Anomalies keeps examples.
	Counts       map[Kind]int `json:"anomaly_counts"`
	Anomalies    []Anomaly    `json:"anomalies"`
	Inconclusive []string     `json:"inconclusive,omitempty"`

	Linearizability []LinResult        `json:"linearizability"`
	Partitions      []PartitionSummary `json:"partitions"`
	Recoveries      []Recovery         `json:"recoveries"`
	// Ops counts client operations per function and outcome.
	Ops map[string]map[history.Type]int `json:"ops"`
}

// AnomalyCount is the total number of anomalies found.
func (r *Result) AnomalyCount() int {
	n := 0
	for _, c := range r.Counts {
		n += c
	}
	return n
}

// Valid reports whether the check passed (no anomaly, nothing inconclusive).
func (r *Result) Valid() bool { return r.Verdict == Pass }

type tp struct {
	topic     string
	partition int32
}

func (t tp) String() string { return fmt.Sprintf("%s/%d", t.topic, t.partition) }

// infinity stands for the return time of operations whose outcome is unknown.
const infinity = int64(math.MaxInt64)

type checker struct {
	cfg Config
	res *Result
}

func (c *checker) add(a Anomaly) {
	c.res.Counts[a.Kind]++
	if c.res.Counts[a.Kind] <= c.cfg.MaxExamples {
		c.res.Anomalies = append(c.res.Anomalies, a)
	}
}

func (c *checker) inconclusive(format string, args ...any) {
	c.res.Inconclusive = append(c.res.Inconclusive, fmt.Sprintf(format, args...))
}

// Check analyses a history. ops need not be sorted.
func Check(ops []history.Op, cfg Config) *Result {
	cfg.defaults()
	c := &checker{cfg: cfg, res: &Result{
		Counts: map[Kind]int{},
		Ops:    map[string]map[history.Type]int{},
	}}
	sorted := append([]history.Op(nil), ops...)
	history.SortByInvoke(sorted)

	byTP := map[tp][]history.Op{}
	type gtp struct {
		group string
		tp
	}
	byGroup := map[gtp][]history.Op{}
	var heals []history.Op
	var faults []history.Op
	var workloadEnd int64
	var workloadStart int64 = -1
	for _, op := range sorted {
		switch op.F {
		case history.FHeal:
			heals = append(heals, op)
			continue
		case history.FFault:
			faults = append(faults, op)
			continue
		}
		context := op.Complete < cfg.From
		if !context {
			m := c.res.Ops[op.F]
			if m == nil {
				m = map[history.Type]int{}
				c.res.Ops[op.F] = m
			}
			m[op.Type]++
		}
		k := tp{op.Topic, op.Partition}
		switch op.F {
		case history.FSend, history.FPoll, history.FFinalRead:
			byTP[k] = append(byTP[k], op)
		case history.FCommit, history.FFetchOffset:
			byGroup[gtp{op.Group, k}] = append(byGroup[gtp{op.Group, k}], op)
		}
		if op.F == history.FSend && !context {
			if workloadStart < 0 {
				workloadStart = op.Invoke
			}
			if op.Invoke > workloadEnd {
				workloadEnd = op.Invoke
			}
		}
	}
	if workloadStart < 0 {
		workloadStart = 0
	}

	keys := make([]tp, 0, len(byTP))
	for k := range byTP {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].topic != keys[j].topic {
			return keys[i].topic < keys[j].topic
		}
		return keys[i].partition < keys[j].partition
	})
	for _, k := range keys {
		sum := c.checkPartition(k, byTP[k], Window{workloadStart, workloadEnd})
		c.res.Partitions = append(c.res.Partitions, sum)
	}

	gkeys := make([]gtp, 0, len(byGroup))
	for k := range byGroup {
		gkeys = append(gkeys, k)
	}
	sort.Slice(gkeys, func(i, j int) bool {
		if gkeys[i].group != gkeys[j].group {
			return gkeys[i].group < gkeys[j].group
		}
		if gkeys[i].topic != gkeys[j].topic {
			return gkeys[i].topic < gkeys[j].topic
		}
		return gkeys[i].partition < gkeys[j].partition
	})
	for _, k := range gkeys {
		c.checkGroupOffsets(k.group, k.tp, byGroup[k])
	}

	c.res.Recoveries = recoveries(keys, byTP, heals, faults, workloadEnd)

	switch {
	case c.res.AnomalyCount() > 0:
		c.res.Verdict = Fail
	case len(c.res.Inconclusive) > 0:
		c.res.Verdict = Inconclusive
	default:
		c.res.Verdict = Pass
	}
	return c.res
}

func (c *checker) checkPartition(k tp, ops []history.Op, workload Window) PartitionSummary {
	sum := PartitionSummary{Topic: k.topic, Partition: k.partition, FinalLength: -1}
	an := func(kind Kind, detail string, opIdx ...int64) {
		c.add(Anomaly{Kind: kind, Topic: k.topic, Partition: k.partition, Detail: detail, Ops: opIdx})
	}
	seg := c.cfg.Segments.get(k)
	if seg != nil {
		ops = c.belowSegment(k, seg, ops)
	}

	// Sends by value. Values are unique by construction of the workload.
	sends := map[string][]history.Op{}
	var okSends []history.Op
	var polls []history.Op
	var final *history.Op
	var replicas []history.Op
	for i := range ops {
		op := ops[i]
		switch op.F {
		case history.FSend:
			sends[op.Value] = append(sends[op.Value], op)
			if op.Complete < c.cfg.From {
				continue // context from an earlier window, counted there
			}
			switch op.Type {
			case history.OK:
				sum.SendsOK++
				okSends = append(okSends, op)
			case history.Info:
				sum.SendsInfo++
			case history.Fail:
				sum.SendsFail++
			}
		case history.FPoll:
			if op.Type == history.OK {
				polls = append(polls, op)
			}
		case history.FFinalRead:
			if op.Type != history.OK {
				continue
			}
			if op.Node == "" {
				final = &ops[i] // the last linearizable final read wins
			} else {
				replicas = append(replicas, op)
			}
		}
	}

	// Where each value was read and what each offset held, from the polls
	// and the final linearizable read (replica reads are compared apart).
	valueAt := map[string]map[int64][]int64{}  // value → offset → ops
	atOffset := map[int64]map[string][]int64{} // offset → value → ops
	maxReadOffset := int64(-1)
	note := func(op int64, r history.Record) {
		if valueAt[r.Value] == nil {
			valueAt[r.Value] = map[int64][]int64{}
		}
		valueAt[r.Value][r.Offset] = append(valueAt[r.Value][r.Offset], op)
		if atOffset[r.Offset] == nil {
			atOffset[r.Offset] = map[string][]int64{}
		}
		atOffset[r.Offset][r.Value] = append(atOffset[r.Offset][r.Value], op)
		if r.Offset > maxReadOffset {
			maxReadOffset = r.Offset
		}
	}
	reads := polls
	if final != nil {
		reads = append(append([]history.Op(nil), polls...), *final)
	}
	for _, op := range reads {
		for _, r := range op.Records {
			note(op.Index, r)
		}
	}
	// The acknowledged offset of an ok send is a claim about that offset.
	claimed := map[int64]map[string][]int64{}
	for _, s := range okSends {
		if claimed[s.Offset] == nil {
			claimed[s.Offset] = map[string][]int64{}
		}
		claimed[s.Offset][s.Value] = append(claimed[s.Offset][s.Value], s.Index)
	}

	// Inconsistent offsets: one offset, several values.
	offsets := make([]int64, 0, len(atOffset)+len(claimed))
	seenOff := map[int64]bool{}
	for o := range atOffset {
		offsets = append(offsets, o)
		seenOff[o] = true
	}
	for o := range claimed {
		if !seenOff[o] {
			offsets = append(offsets, o)
		}
	}
	sort.Slice(offsets, func(i, j int) bool { return offsets[i] < offsets[j] })
	for _, o := range offsets {
		vals := map[string][]int64{}
		for v, idx := range atOffset[o] {
			vals[v] = append(vals[v], idx...)
		}
		for v, idx := range claimed[o] {
			vals[v] = append(vals[v], idx...)
		}
		if len(vals) > 1 {
			names := sortedKeys(vals)
			var idx []int64
			for _, v := range names {
				idx = append(idx, firstN(vals[v], 3)...)
			}
			an(InconsistentOffsets, fmt.Sprintf("offset %d holds %d values: %v", o, len(names), names), idx...)
		}
	}

	// Duplicates: one value read at several offsets.
	for _, v := range sortedKeys(valueAt) {
		if len(valueAt[v]) > 1 {
			var offs []int64
			var idx []int64
			for o, ids := range valueAt[v] {
				offs = append(offs, o)
				idx = append(idx, ids[0])
			}
			sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
			an(Duplicate, fmt.Sprintf("value %q read at offsets %v", v, offs), idx...)
		}
	}

	// Every value read must have been sent, and not by a failed send.
	checkRead := func(v string, opIdx int64, o int64, what string) {
		ss, ok := sends[v]
		if !ok {
			an(PhantomRead, fmt.Sprintf("%s read value %q at offset %d, never sent to this partition", what, v, o), opIdx)
			return
		}
		for _, s := range ss {
			if s.Type != history.Fail {
				return
			}
		}
		an(AbortedRead, fmt.Sprintf("%s read value %q at offset %d whose send failed", what, v, o), opIdx, ss[0].Index)
	}
	for _, v := range sortedKeys(valueAt) {
		o, idx := firstRead(valueAt[v])
		checkRead(v, idx, o, "a read")
	}
	for _, r := range replicas {
		for _, rec := range r.Records {
			if _, seen := valueAt[rec.Value]; seen {
				continue // already judged above
			}
			checkRead(rec.Value, r.Index, rec.Offset, "replica "+r.Node)
		}
	}

	// An ok send read at another offset than the one it was acknowledged with.
	for _, s := range okSends {
		for o, idx := range valueAt[s.Value] {
			if o != s.Offset {
				an(InconsistentOffsets, fmt.Sprintf("value %q acknowledged at offset %d but read at offset %d", s.Value, s.Offset, o), s.Index, idx[0])
			}
		}
	}

	// Lost and unseen writes against the final linearizable read.
	if final == nil {
		c.inconclusive("%s: no successful final linearizable read, lost writes cannot be ruled out", k)
	} else {
		sum.FinalLength = final.Offset + int64(len(final.Records))
		if final.HighWatermark > sum.FinalLength {
			sum.FinalLength = final.HighWatermark
		}
		inFinal := map[string]int64{}
		for _, r := range final.Records {
			inFinal[r.Value] = r.Offset
		}
		for _, s := range okSends {
			if _, ok := inFinal[s.Value]; ok {
				continue
			}
			if s.Offset < sum.FinalLength || s.Offset < maxReadOffset {
				an(LostWrite, fmt.Sprintf("value %q acknowledged at offset %d is missing from the final read (length %d, highest offset read %d)", s.Value, s.Offset, sum.FinalLength, maxReadOffset), s.Index, final.Index)
			} else {
				an(Unseen, fmt.Sprintf("value %q acknowledged at offset %d was never read; the final read ends at %d", s.Value, s.Offset, sum.FinalLength), s.Index, final.Index)
			}
		}
		// A value a poll saw is committed: it must still be there at the end.
		// (Acknowledged sends were reported above.)
		reported := map[string]bool{}
		for _, p := range polls {
			for _, r := range p.Records {
				if _, ok := inFinal[r.Value]; ok || reported[r.Value] || len(sends[r.Value]) == 0 {
					continue
				}
				reported[r.Value] = true
				acked := false
				for _, s := range sends[r.Value] {
					acked = acked || s.Type == history.OK
				}
				if !acked {
					an(LostWrite, fmt.Sprintf("value %q polled at offset %d is missing from the final read (length %d)", r.Value, r.Offset, sum.FinalLength), p.Index, final.Index)
				}
			}
		}
		for v, ss := range sends {
			if _, ok := inFinal[v]; ok && ss[0].Type == history.Info {
				sum.InfoSendsPresent++
			}
		}
	}

	// Order inside each read, and between the polls of each consumer.
	c.checkPolls(k, polls)
	if final != nil {
		c.checkIntRead(k, *final, "final read")
	}
	for _, r := range replicas {
		c.checkIntRead(k, r, "replica "+r.Node+" final read")
	}

	// Divergence: every replica's committed log must agree with the
	// linearizable read (or, without one, with the longest replica log).
	sum.ReplicaLengths = map[string]int64{}
	for _, r := range replicas {
		sum.ReplicaLengths[r.Node] = int64(len(r.Records))
	}
	ref := final
	if ref == nil {
		for i := range replicas {
			if ref == nil || len(replicas[i].Records) > len(ref.Records) {
				ref = &replicas[i]
			}
		}
	}
	if ref != nil {
		refAt := map[int64]string{}
		for _, r := range ref.Records {
			refAt[r.Offset] = r.Value
		}
		refName := "the linearizable final read"
		if ref.Node != "" {
			refName = "replica " + ref.Node
		}
		for _, r := range replicas {
			if r.Index == ref.Index {
				continue
			}
			for _, rec := range r.Records {
				if v, ok := refAt[rec.Offset]; ok && v != rec.Value {
					an(Divergence, fmt.Sprintf("replica %s holds %q at offset %d where %s holds %q", r.Node, rec.Value, rec.Offset, refName, v), r.Index, ref.Index)
					break // the first difference says it all
				}
			}
		}
	}

	// A process's sends are sequential: their offsets must grow.
	lastByProc := map[int]history.Op{}
	for _, s := range okSends { // sorted by invoke
		if prev, ok := lastByProc[s.Process]; ok && s.Offset <= prev.Offset {
			an(NonmonotonicSend, fmt.Sprintf("process %d sent %q at offset %d after %q at offset %d", s.Process, s.Value, s.Offset, prev.Value, prev.Offset), prev.Index, s.Index)
		}
		lastByProc[s.Process] = s
	}

	// Linearizability of appends and linearizable reads.
	c.res.Linearizability = append(c.res.Linearizability, c.checkLinearizable(k, ops, sends, final, valueAt, seg))

	sum.LongestUnavailable = longestGap(okSends, workload)
	return sum
}

// belowSegment takes out of a window's operations what lies below the
// established log (records read there, acknowledgements of offsets there),
// reporting each that disagrees with it, so the window's own checks see
// only its segment.
func (c *checker) belowSegment(k tp, seg *segment, ops []history.Op) []history.Op {
	lo := seg.start()
	out := make([]history.Op, 0, len(ops))
	for _, op := range ops {
		switch {
		case op.F == history.FSend && op.Type == history.OK && op.Offset < lo:
			if !seg.agrees(history.Record{Offset: op.Offset, Value: op.Value}) {
				c.add(Anomaly{Kind: InconsistentOffsets, Topic: k.topic, Partition: k.partition, Ops: []int64{op.Index},
					Detail: fmt.Sprintf("value %q acknowledged at offset %d, which an earlier window's read found holding another value", op.Value, op.Offset)})
			}
			// Its offset was checked with the earlier segment: it is
			// context now, as an unknown outcome would be.
			op.Type = history.Info
		case op.F == history.FPoll || op.F == history.FFinalRead:
			kept := op.Records[:0:0]
			for _, r := range op.Records {
				if r.Offset >= lo {
					kept = append(kept, r)
					continue
				}
				if !seg.agrees(r) {
					c.add(Anomaly{Kind: InconsistentOffsets, Topic: k.topic, Partition: k.partition, Ops: []int64{op.Index},
						Detail: fmt.Sprintf("%s read value %q at offset %d, which an earlier window's read found holding another value", op.F, r.Value, r.Offset)})
				}
			}
			op.Records = kept
			if op.F == history.FPoll && op.Offset < lo {
				op.Offset = lo
			}
		}
		out = append(out, op)
	}
	return out
}

func (c *checker) checkIntRead(k tp, op history.Op, what string) {
	an := func(kind Kind, detail string) {
		c.add(Anomaly{Kind: kind, Topic: k.topic, Partition: k.partition, Detail: detail, Ops: []int64{op.Index}})
	}
	if len(op.Records) == 0 {
		return
	}
	if first := op.Records[0].Offset; first > op.Offset {
		an(IntPollSkip, fmt.Sprintf("%s (process %d) asked for offset %d but began at %d", what, op.Process, op.Offset, first))
	}
	for i := 1; i < len(op.Records); i++ {
		prev, cur := op.Records[i-1].Offset, op.Records[i].Offset
		switch {
		case cur <= prev:
			an(IntNonmonotonicPoll, fmt.Sprintf("%s (process %d) went from offset %d to %d", what, op.Process, prev, cur))
		case cur > prev+1:
			an(IntPollSkip, fmt.Sprintf("%s (process %d) skipped from offset %d to %d", what, op.Process, prev, cur))
		}
	}
}

func (c *checker) checkPolls(k tp, polls []history.Op) {
	last := map[int]history.Op{} // process → last non-empty poll
	for _, p := range polls {    // sorted by invoke; a process's polls are sequential
		c.checkIntRead(k, p, "poll")
		if len(p.Records) == 0 {
			continue
		}
		if prev, ok := last[p.Process]; ok {
			end := prev.Records[len(prev.Records)-1].Offset
			first := p.Records[0].Offset
			switch {
			case first <= end:
				c.add(Anomaly{Kind: NonmonotonicPoll, Topic: k.topic, Partition: k.partition, Ops: []int64{prev.Index, p.Index},
					Detail: fmt.Sprintf("process %d polled offset %d after having read up to %d", p.Process, first, end)})
			case first > end+1:
				c.add(Anomaly{Kind: PollSkip, Topic: k.topic, Partition: k.partition, Ops: []int64{prev.Index, p.Index},
					Detail: fmt.Sprintf("process %d polled offset %d after having read up to %d, skipping %d", p.Process, first, end, first-end-1)})
			}
		}
		last[p.Process] = p
	}
}

// checkGroupOffsets checks each fetched committed offset against the commits
// that could be current at that time: a commit X is a legal answer to fetch F
// unless it failed, began after F ended, or was superseded by an ok commit Y
// that began after X ended and ended before F began. Unknown outcomes never
// end. With no ok commit ended before F began, "none" (-1) is legal too.
func (c *checker) checkGroupOffsets(group string, k tp, ops []history.Op) {
	var commits, fetches []history.Op
	for _, op := range ops {
		switch {
		case op.F == history.FCommit && op.Type != history.Fail:
			commits = append(commits, op)
		case op.F == history.FFetchOffset && op.Type == history.OK:
			fetches = append(fetches, op)
		}
	}
	end := func(op history.Op) int64 {
		if op.Type == history.Info {
			return infinity
		}
		return op.Complete
	}
	for _, f := range fetches {
		// The latest start of an ok commit that ended before f began.
		m := int64(math.MinInt64)
		var latest *history.Op
		for i, y := range commits {
			if y.Type == history.OK && y.Complete < f.Invoke && y.Invoke > m {
				m = y.Invoke
				latest = &commits[i]
			}
		}
		legal := map[int64]bool{}
		if latest == nil {
			legal[-1] = true
		}
		maxLegal := int64(-1)
		written := false
		for _, x := range commits {
			if x.Offset == f.Offset {
				written = true
			}
			if x.Invoke > f.Complete || end(x) < m {
				continue
			}
			legal[x.Offset] = true
			if x.Offset > maxLegal {
				maxLegal = x.Offset
			}
		}
		if legal[f.Offset] {
			continue
		}
		a := Anomaly{Topic: k.topic, Partition: k.partition, Ops: []int64{f.Index}}
		if latest != nil {
			a.Ops = append(a.Ops, latest.Index)
		}
		switch {
		case f.Offset < maxLegal || (f.Offset == -1 && latest != nil):
			a.Kind = OffsetRegression
			a.Detail = fmt.Sprintf("group %q fetched committed offset %d, but offset %d had been committed before and nothing since could bring it back", group, f.Offset, maxLegal)
		case !written && f.Offset != -1:
			a.Kind = PhantomOffset
			a.Detail = fmt.Sprintf("group %q fetched committed offset %d, which no commit wrote", group, f.Offset)
		default:
			a.Kind = OffsetRegression
			a.Detail = fmt.Sprintf("group %q fetched committed offset %d, which was not current (legal: %v)", group, f.Offset, sortedInts(legal))
		}
		c.add(a)
	}
}

// longestGap is the longest window of the workload without an ok append.
func longestGap(okSends []history.Op, w Window) Window {
	done := make([]int64, 0, len(okSends)+2)
	done = append(done, w.Start)
	for _, s := range okSends {
		done = append(done, s.Complete)
	}
	sort.Slice(done, func(i, j int) bool { return done[i] < done[j] })
	if last := done[len(done)-1]; w.End > last {
		done = append(done, w.End)
	}
	best := Window{w.Start, w.Start}
	for i := 1; i < len(done); i++ {
		if done[i]-done[i-1] > best.End-best.Start {
			best = Window{done[i-1], done[i]}
		}
	}
	return best
}

// recoveries measures, after each heal, how long until every partition had
// an ok append again (an append retried across the heal counts when it
// completes).
func recoveries(keys []tp, byTP map[tp][]history.Op, heals, faults []history.Op, end int64) []Recovery {
	var out []Recovery
	for _, h := range heals {
		// The next fault bounds the wait: after it, failures are its own.
		limit := int64(math.MaxInt64)
		for _, f := range faults {
			if f.Invoke > h.Complete && f.Invoke < limit {
				limit = f.Invoke
			}
		}
		r := Recovery{Fault: h.Fault, HealAt: h.Complete, Partitions: map[string]time.Duration{}}
		for _, k := range keys {
			first := int64(-1)
			for _, op := range byTP[k] {
				if op.F == history.FSend && op.Type == history.OK && op.Complete >= h.Complete && op.Complete <= limit {
					if first < 0 || op.Complete < first {
						first = op.Complete
					}
				}
			}
			d := time.Duration(-1)
			if first >= 0 {
				d = time.Duration(first - h.Complete)
			}
			r.Partitions[k.String()] = d
			if r.Max >= 0 && (d < 0 || d > r.Max) {
				r.Max = d
			}
		}
		out = append(out, r)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedInts(m map[int64]bool) []int64 {
	out := make([]int64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func firstN(s []int64, n int) []int64 {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func firstRead(m map[int64][]int64) (offset, op int64) {
	offset = math.MaxInt64
	for o, ids := range m {
		if o < offset {
			offset, op = o, ids[0]
		}
	}
	return offset, op
}
