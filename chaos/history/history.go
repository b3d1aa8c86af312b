// Package history records the operations of a chaos run, one JSON object per
// line, in the spirit of Jepsen: every operation carries its invocation and
// completion times, the logical process that ran it and its outcome.
package history

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"
)

// Type is the outcome of an operation.
type Type string

const (
	// OK: the operation certainly took effect, with the recorded result.
	OK Type = "ok"
	// Fail: the operation certainly did not take effect.
	Fail Type = "fail"
	// Info: the outcome is unknown; the operation may or may not have taken
	// effect. The process that ran it is retired (Jepsen discipline).
	Info Type = "info"
)

// Operation functions (the Op.F field).
const (
	FSend        = "send"         // append one record; Offset is its offset when ok
	FPoll        = "poll"         // read from Offset; Records are what came back
	FCommit      = "commit"       // commit Offset for Group
	FFetchOffset = "fetch-offset" // read Group's committed offset into Offset
	FFinalRead   = "final-read"   // whole-partition read at the end (Node: replica, or "" for a linearizable leader read)
	FFault       = "fault"        // a nemesis fault started (Invoke) and was in place (Complete)
	FHeal        = "heal"         // a nemesis heal started (Invoke) and finished (Complete)
)

// NemesisProcess is the process id of nemesis operations.
const NemesisProcess = -1

// Record is one record as a read returned it.
type Record struct {
	Offset int64  `json:"offset"`
	Key    string `json:"key,omitempty"`
	Value  string `json:"value"`
}

// Op is one completed (or abandoned) operation.
type Op struct {
	Index    int64  `json:"index"`
	Process  int    `json:"process"`
	F        string `json:"f"`
	Type     Type   `json:"type"`
	Invoke   int64  `json:"invoke"`   // ns since the start of the run
	Complete int64  `json:"complete"` // ns since the start of the run

	Topic     string `json:"topic,omitempty"`
	Partition int32  `json:"partition"`
	Key       string `json:"key,omitempty"`
	Value     string `json:"value,omitempty"`
	// Offset: a send's assigned offset (ok only), a poll's start offset, a
	// commit's offset, a fetched committed offset (-1: none).
	Offset        int64    `json:"offset"`
	Records       []Record `json:"records,omitempty"`
	HighWatermark int64    `json:"hw,omitempty"`
	Linearizable  bool     `json:"linearizable,omitempty"`
	Group         string   `json:"group,omitempty"`
	Node          string   `json:"node,omitempty"`
	// Fault names a nemesis fault (fault and heal operations); Nodes are the
	// nodes it touched.
	Fault string   `json:"fault,omitempty"`
	Nodes []string `json:"nodes,omitempty"`
	Error string   `json:"error,omitempty"`
}

// Latency is how long the operation took.
func (o Op) Latency() time.Duration { return time.Duration(o.Complete - o.Invoke) }

// IsClient reports whether the op is a client operation (not nemesis).
func (o Op) IsClient() bool { return o.F != FFault && o.F != FHeal }

// Recorder appends operations to a history, safe for concurrent use. When
// given a writer it streams each operation as a JSON line as it completes, so
// a crashed run still leaves its history behind.
type Recorder struct {
	start time.Time

	mu   sync.Mutex
	ops  []Op
	next int64
	w    *bufio.Writer
	enc  *json.Encoder
	err  error
}

// NewRecorder starts a history whose clock begins at start. w may be nil.
func NewRecorder(start time.Time, w io.Writer) *Recorder {
	r := &Recorder{start: start}
	if w != nil {
		r.w = bufio.NewWriterSize(w, 64<<10)
		r.enc = json.NewEncoder(r.w)
	}
	return r
}

// Now is the time since the start of the history, in ns.
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

// Start is the time the history's clock began.
func (r *Recorder) Start() time.Time { return r.start }

// Add records a completed operation, assigning its index, and returns it.
func (r *Recorder) Add(op Op) Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	op.Index = r.next
	r.next++
	r.ops = append(r.ops, op)
	if r.enc != nil && r.err == nil {
		if err := r.enc.Encode(op); err != nil {
			r.err = fmt.Errorf("write history: %w", err)
		}
	}
	return op
}

// Ops returns a copy of the operations recorded so far, in recording order.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.ops...)
}

// Drain returns the operations recorded since the last Drain and forgets
// them (the history file keeps them): a soak checks its history window by
// window without holding all of it.
func (r *Recorder) Drain() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.ops
	r.ops = nil
	return out
}

// Flush writes buffered lines out and reports the first write error.
func (r *Recorder) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w != nil && r.err == nil {
		if err := r.w.Flush(); err != nil {
			r.err = fmt.Errorf("flush history: %w", err)
		}
	}
	return r.err
}

// Write writes ops as JSON lines.
func Write(w io.Writer, ops []Op) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, op := range ops {
		if err := enc.Encode(op); err != nil {
			return fmt.Errorf("encode op %d: %w", op.Index, err)
		}
	}
	return bw.Flush()
}

// Read parses a JSON-lines history. A torn last line (a run that died while
// writing) is ignored.
func Read(r io.Reader) ([]Op, error) {
	dec := json.NewDecoder(r)
	var ops []Op
	for {
		var op Op
		err := dec.Decode(&op)
		if errors.Is(err, io.EOF) {
			return ops, nil
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return ops, nil
		}
		if err != nil {
			return ops, fmt.Errorf("decode op after index %d: %w", len(ops), err)
		}
		ops = append(ops, op)
	}
}

// ReadFile reads a history file.
func ReadFile(path string) ([]Op, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open history: %w", err)
	}
	defer f.Close()
	return Read(f)
}

// SortByInvoke orders ops by invocation time (then index), in place.
func SortByInvoke(ops []Op) {
	sort.SliceStable(ops, func(i, j int) bool {
		if ops[i].Invoke != ops[j].Invoke {
			return ops[i].Invoke < ops[j].Invoke
		}
		return ops[i].Index < ops[j].Index
	})
}
