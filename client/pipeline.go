package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/sluice-io/sluice/transport"
)

// A Producer keeps up to MaxInFlight batches of a partition in flight, as
// Kafka's idempotent producer does. The batches carry consecutive sequences
// of one producer stream and are written one after another to the leader's
// connection, which hands them to Raft in that order (transport.InOrder), so
// the leader stores them without waiting for each commit in turn.
//
// When any batch fails, no new batch is sent until every batch in flight has
// answered. Then the earliest unacknowledged batch is retried alone, with
// the full retry policy (callLeader: leader hints, metadata refreshes,
// backoff), the same bytes and so the same sequence: if an earlier attempt
// was applied the leader answers with the original offsets. Once it is
// acknowledged, the failed batches after it are sent again in order, and the
// pipeline fills up again. The server remembers the last 5 batches of each
// producer, so at most 5 are ever in flight.

// maxPipeline is the most batches of one partition a Producer keeps in
// flight: the partition's duplicate detection covers the last 5 batches.
const maxPipeline = 5

// batchFlight is one batch of a partition's pipeline.
type batchFlight struct {
	recs   []pending
	seq    int32
	batch  []byte // encoded once per stream, resent as is
	ctx    context.Context
	cancel context.CancelFunc

	waiting bool  // an asynchronous attempt has not answered yet
	done    bool  // acknowledged: base is set
	base    int64 // offset of the first record
	final   error // given up with this error: complete it at its turn
	err     error // the last attempt's error, while not done
	maybe   bool  // some attempt may have been applied
	resets  int   // times the stream restarted under this batch
}

// finished reports whether f only waits for its turn to complete.
func (f *batchFlight) finished() bool { return f.done || f.final != nil }

// attemptResult is the answer to one pipelined attempt.
type attemptResult struct {
	f    *batchFlight
	resp transport.ProduceResponse
	err  error
}

// pipeline is the sending state of one partition queue; only its sender
// goroutine (Producer.run) touches it.
type pipeline struct {
	flights    []*batchFlight // in sequence order
	waiting    int            // flights with an attempt outstanding
	recovering bool           // a batch failed: send nothing new until resolved
	results    chan attemptResult
}

func newPipeline() *pipeline {
	return &pipeline{results: make(chan attemptResult, maxPipeline)}
}

// canSend reports whether a new batch may join the pipeline.
func (pl *pipeline) canSend(limit int) bool {
	return !pl.recovering && len(pl.flights) < limit
}

// newFlight encodes batch on q's stream and starts sending it.
func (p *Producer) newFlight(q *partQueue, batch []pending) {
	ctxs := make([]context.Context, len(batch))
	for i, pd := range batch {
		ctxs[i] = pd.ctx
	}
	ctx, cancel := batchContext(p.abort, ctxs)
	f := &batchFlight{recs: batch, ctx: ctx, cancel: cancel}
	p.encode(q, f)
	q.pipe.flights = append(q.pipe.flights, f)
	p.startAttempt(q, f)
}

// encode gives f the next sequence of q's stream and builds its bytes.
func (p *Producer) encode(q *partQueue, f *batchFlight) {
	if int64(q.stream.seq)+int64(len(f.recs)) > math.MaxInt32 {
		q.stream = newStream() // sequences are int32: start over rather than wrap
	}
	recs := make([]Record, len(f.recs))
	for i, pd := range f.recs {
		recs[i] = pd.rec
	}
	f.seq = q.stream.seq
	f.batch = encodeBatch(recs, q.stream.id, f.seq, time.Now())
	q.stream.seq += int32(len(recs))
}

func (p *Producer) produceRequest(q *partQueue, f *batchFlight) *transport.ProduceRequest {
	return &transport.ProduceRequest{
		Topic:     p.cfg.Topic,
		Partition: q.part,
		Batch:     f.batch,
		TimeoutMs: (p.c.cfg.RequestTimeout * 8 / 10).Milliseconds(),
	}
}

// startAttempt writes f to the partition leader's connection (in the
// sender goroutine, so batches go out in order) and waits for the answer
// on the side. A failure to send is answered at once.
func (p *Producer) startAttempt(q *partQueue, f *batchFlight) {
	c := p.c
	f.waiting = true
	q.pipe.waiting++
	answer := func(r attemptResult) {
		q.pipe.results <- r // never blocks: at most maxPipeline outstanding
	}
	if c.isClosed() {
		answer(attemptResult{f: f, err: ErrClosed})
		return
	}
	addr, err := c.leaderFor(f.ctx, p.cfg.Topic, q.part, false)
	if err != nil {
		answer(attemptResult{f: f, err: err})
		return
	}
	actx, cancel := context.WithTimeout(f.ctx, c.cfg.RequestTimeout)
	pd, err := c.pool.Start(actx, addr, transport.MethodProduce, p.produceRequest(q, f))
	if err != nil {
		cancel()
		c.noteAddr(addr, err)
		answer(attemptResult{f: f, err: fmt.Errorf("produce to %s: %w", addr, err)})
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		var r attemptResult
		r.f = f
		err := pd.Wait(actx, &r.resp)
		cancel()
		if f.ctx.Err() == nil || err == nil {
			c.noteAddr(addr, err)
		}
		if err != nil {
			r.err = fmt.Errorf("produce to %s: %w", addr, err)
		}
		answer(r)
	}()
}

// absorb applies one attempt's answer.
func (p *Producer) absorb(q *partQueue, r attemptResult) {
	f := r.f
	f.waiting = false
	q.pipe.waiting--
	if r.err == nil {
		f.done, f.err, f.base = true, nil, r.resp.BaseOffset
		if n := r.resp.LastOffset - r.resp.BaseOffset + 1; n != int64(len(f.recs)) {
			p.c.log.Warn("produce: offset range does not match the record count",
				"topic", p.cfg.Topic, "partition", q.part, "base", r.resp.BaseOffset, "last", r.resp.LastOffset, "records", len(f.recs))
		}
		return
	}
	f.err = r.err
	if attemptOutcome(r.err) == maybeApplied {
		f.maybe = true
	}
	if code := transport.CodeOf(r.err); code == transport.ErrNotLeader {
		// Follow the reply's hint (or look the leader up again) next time.
		var te *transport.Error
		errors.As(r.err, &te)
		p.c.setHint(partKey{p.cfg.Topic, q.part}, te.Leader)
	}
	p.c.log.Debug("producer: pipelined batch failed", "topic", p.cfg.Topic, "partition", q.part,
		"seq", f.seq, "records", len(f.recs), "err", r.err)
	q.pipe.recovering = true
}

// completeHead completes the finished batches at the head of the
// pipeline, in order, so callbacks run in the order records were sent.
func (p *Producer) completeHead(q *partQueue) {
	pl := q.pipe
	for len(pl.flights) > 0 && pl.flights[0].finished() {
		f := pl.flights[0]
		pl.flights = pl.flights[1:]
		f.cancel()
		if f.final != nil {
			p.complete(f.recs, f.final)
			continue
		}
		for i := range f.recs {
			f.recs[i].rec.Offset = f.base + int64(i)
		}
		p.complete(f.recs, nil)
	}
}

// recover resolves a pipeline in which a batch failed, once no attempt is
// outstanding: it retries the earliest unacknowledged batch on its own until
// it is acknowledged or given up, then resends the failed batches after it.
func (p *Producer) recover(q *partQueue) {
	pl := q.pipe
	for {
		p.completeHead(q)
		if len(pl.flights) == 0 {
			pl.recovering = false
			return
		}
		head := pl.flights[0]
		var resp transport.ProduceResponse
		maybe, err := p.c.callLeader(head.ctx, leaderCall{
			topic: p.cfg.Topic, part: q.part, method: transport.MethodProduce,
			req: p.produceRequest(q, head), resp: &resp,
		})
		head.maybe = head.maybe || maybe
		if err == nil {
			head.done, head.err, head.base = true, nil, resp.BaseOffset
			p.completeHead(q)
			// Send the batches after it again, in order; those already
			// acknowledged wait for their turn to complete.
			for _, f := range pl.flights {
				if !f.finished() {
					f.err = nil
					p.startAttempt(q, f)
				}
			}
			pl.recovering = false
			return
		}
		head.err = err
		// A stream the partition no longer knows (its producer state was
		// evicted) restarts at sequence 0 under a fresh producer id, once,
		// when no attempt can have been applied.
		if head.resets == 0 && !head.maybe && head.seq != 0 && restartable(err) && head.ctx.Err() == nil {
			p.c.log.Debug("produce: sequence rejected, restarting producer stream", "topic", p.cfg.Topic, "partition", q.part, "err", err)
			head.resets++
			p.restream(q, 0)
			continue
		}
		// Give the head up; the batches after it move to a fresh stream,
		// since its sequence will never be acknowledged.
		if head.maybe && !IsUnknownOutcome(err) {
			err = fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
		}
		p.c.log.Debug("producer: batch failed", "topic", p.cfg.Topic, "partition", q.part,
			"records", len(head.recs), "unknown_outcome", IsUnknownOutcome(err), "err", err)
		head.final = err
		p.restream(q, 1)
	}
}

// restream moves the unacknowledged batches from index from on to a fresh
// stream. One whose earlier attempt may have been applied under the old
// stream cannot be resent under a new one (it could be stored twice): it
// fails with an unknown outcome instead.
func (p *Producer) restream(q *partQueue, from int) {
	q.stream = newStream()
	for _, f := range q.pipe.flights[from:] {
		switch {
		case f.finished():
		case f.maybe:
			err := f.err
			if err == nil || !IsUnknownOutcome(err) {
				err = fmt.Errorf("produce %s/%d: %w: an earlier batch failed (last error: %v)", p.cfg.Topic, q.part, ErrUnknownOutcome, f.err)
			}
			f.final = err
		default:
			p.encode(q, f)
		}
	}
}
