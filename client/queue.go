package client

// pendingQueue is a partition's FIFO of accepted records. Taking from the
// front advances an index instead of re-slicing the rest forward, which
// with a full buffer (tens of thousands of records) cost a copy of the whole
// queue for every batch cut.
type pendingQueue struct {
	recs []pending
	head int
}

func (q *pendingQueue) len() int { return len(q.recs) - q.head }

func (q *pendingQueue) push(pd pending) { q.recs = append(q.recs, pd) }

// at returns the i-th queued record.
func (q *pendingQueue) at(i int) *pending { return &q.recs[q.head+i] }

// take removes and returns the first n records.
func (q *pendingQueue) take(n int) []pending {
	out := make([]pending, n)
	copy(out, q.recs[q.head:q.head+n])
	clear(q.recs[q.head : q.head+n]) // drop references for the GC
	q.head += n
	switch {
	case q.head == len(q.recs):
		q.recs, q.head = q.recs[:0], 0
	case q.head >= 1024 && q.head*2 >= len(q.recs):
		// Move the rest to the front once the taken part is the larger:
		// each record is moved at most once on average.
		m := copy(q.recs, q.recs[q.head:])
		clear(q.recs[m:])
		q.recs, q.head = q.recs[:m], 0
	}
	return out
}

// drain removes and returns every record.
func (q *pendingQueue) drain() []pending { return q.take(q.len()) }
