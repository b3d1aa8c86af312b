//go:build failpoints

package node

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sluice-io/sluice/fsm"
	"github.com/sluice-io/sluice/transport"
)

// predicted is the next offset the ack-before-commit failpoint hands out,
// per replica.
var predicted = struct {
	sync.Mutex
	next map[*replica]int64
}{next: map[*replica]int64{}}

// ackBeforeCommit is the ack-before-commit failpoint: it hands the batch to
// Raft and acknowledges it at once with the offset it would get if it
// committed, without waiting for the commit.
func ackBeforeCommit(r *replica, batch []byte, timeout time.Duration) (*transport.ProduceResponse, error) {
	_, recs, err := fsm.ParseBatch(batch)
	if err != nil {
		return nil, err
	}
	predicted.Lock()
	defer predicted.Unlock()
	base := max(predicted.next[r], r.fsm.HighWatermark())
	predicted.next[r] = base + int64(len(recs))
	r.raft().Apply(fsm.EncodeAppend(batch), timeout) // not waited for
	return &transport.ProduceResponse{BaseOffset: base, LastOffset: base + int64(len(recs)) - 1}, nil
}

// beyondCommit is the serve-beyond-commit failpoint: a fetch at the end of
// the committed log also gets the batches of the Raft entries this replica
// stores but has not applied, numbered as if they had committed.
func beyondCommit(r *replica, offset int64, batches [][]byte) [][]byte {
	next := r.fsm.HighWatermark()
	if len(batches) > 0 || offset != next {
		return batches
	}
	last, err := r.group.store.LastIndex()
	if err != nil {
		return batches
	}
	for i := r.fsm.AppliedIndex() + 1; i <= last; i++ {
		var l raft.Log
		if r.group.store.GetLog(i, &l) != nil {
			continue
		}
		stored, ok := fsm.AppendedBatch(&l)
		if !ok {
			continue
		}
		b := append([]byte(nil), stored...)
		_, recs, err := fsm.ParseBatch(b)
		if err != nil {
			continue
		}
		// The base offset is outside the batch's CRC.
		binary.BigEndian.PutUint64(b, uint64(next))
		next += int64(len(recs))
		batches = append(batches, b)
	}
	return batches
}
