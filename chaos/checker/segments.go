package checker

import "github.com/sluice-io/sluice/chaos/history"

// Segments carries, for a history checked window by window (a soak),
// what the earlier windows established of each partition's log: the value
// at every offset below the window's start, as a hash, taken from the
// linearizable segment reads that ended each window. A window's check then
// needs only that window's operations: records read below the start are
// compared with what was established, and the linearizability model starts
// from the established log instead of an empty one. Memory grows with the
// log (8 bytes a record), not with the operations.
type Segments struct {
	parts map[tp]*segment
}

type segment struct {
	hashes []uint64 // value hash by offset
	h      uint64   // the model's rolling hash over hashes
}

// NewSegments starts with every log empty.
func NewSegments() *Segments { return &Segments{parts: map[tp]*segment{}} }

// Start is the first offset the next window's segment read covers.
func (s *Segments) Start(topic string, partition int32) int64 {
	if seg := s.get(tp{topic, partition}); seg != nil {
		return int64(len(seg.hashes))
	}
	return 0
}

func (s *Segments) get(k tp) *segment {
	if s == nil {
		return nil
	}
	return s.parts[k]
}

// Advance adds what a checked window's linearizable segment reads (final
// reads from the leader, starting at the window's start) established.
func (s *Segments) Advance(ops []history.Op) {
	last := map[tp]history.Op{}
	for _, op := range ops {
		if op.F == history.FFinalRead && op.Node == "" && op.Type == history.OK && op.Error == "" {
			last[tp{op.Topic, op.Partition}] = op
		}
	}
	for k, op := range last {
		seg := s.parts[k]
		if seg == nil {
			seg = &segment{}
			s.parts[k] = seg
		}
		if op.Offset != int64(len(seg.hashes)) {
			continue // not a read of the next segment
		}
		for i, r := range op.Records {
			if r.Offset != op.Offset+int64(i) {
				break // a hole: keep what is dense
			}
			vh := valueHash(r.Value)
			seg.hashes = append(seg.hashes, vh)
			seg.h = extend(seg.h, vh)
		}
	}
}

// below checks a record read (or acknowledged) below the window's start
// against the established log; false when it disagrees.
func (seg *segment) agrees(r history.Record) bool {
	if seg == nil || r.Offset < 0 || r.Offset >= int64(len(seg.hashes)) {
		return true
	}
	return seg.hashes[r.Offset] == valueHash(r.Value)
}

func (seg *segment) start() int64 {
	if seg == nil {
		return 0
	}
	return int64(len(seg.hashes))
}

func (seg *segment) hash() uint64 {
	if seg == nil {
		return 0
	}
	return seg.h
}
