package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-io/sluice/transport"
)

// ProducerConfig configures a Producer.
type ProducerConfig struct {
	// Topic receives every record (Record.Topic is ignored on Send).
	Topic string
	// BatchBytes caps a batch's encoded size; default 1 MiB. A record
	// bigger than that (but within MaxRecordBytes) travels alone.
	BatchBytes int
	// BatchRecords caps a batch's record count; default 10000.
	BatchRecords int
	// Linger is how long a partition waits for more records before sending
	// a batch that is not full; default 5ms, negative sends at once.
	Linger time.Duration
	// MaxRecordBytes rejects locally (never sent), with an
	// ErrRecordTooLarge error, a record whose batch would exceed it were
	// the record sent alone: header included, so it matches the server's
	// batch limit (node MaxBatchBytes); default 1 MiB, the server default.
	MaxRecordBytes int
	// MaxBufferedBytes bounds records accepted but not yet acknowledged;
	// Send blocks while it is exceeded; default 64 MiB.
	MaxBufferedBytes int
	// ManualPartition makes Send use Record.Partition as given instead of
	// the key hash / round-robin partitioner.
	ManualPartition bool
	// MaxInFlight is how many batches of one partition may await their
	// acknowledgement at once (Kafka's max.in.flight.requests.per.connection);
	// default and most 5, the batches a partition remembers per producer
	// for duplicate detection. Order is kept either way.
	MaxInFlight int
}

func (cfg *ProducerConfig) setDefaults() {
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = 1 << 20
	}
	if cfg.BatchRecords <= 0 {
		cfg.BatchRecords = 10000
	}
	if cfg.Linger == 0 {
		cfg.Linger = 5 * time.Millisecond
	}
	if cfg.MaxRecordBytes <= 0 {
		cfg.MaxRecordBytes = 1 << 20
	}
	if cfg.MaxBufferedBytes <= 0 {
		cfg.MaxBufferedBytes = 64 << 20
	}
	if cfg.MaxInFlight <= 0 || cfg.MaxInFlight > maxPipeline {
		cfg.MaxInFlight = maxPipeline
	}
}

// Producer batches records per partition and sends them as idempotent
// batches, up to MaxInFlight of them in flight per partition, retried in
// order so a partition's records are never reordered (pipeline.go). Records with a key go to KeyPartition(key); records
// without one stick to one partition until its batch is cut, then move on
// round-robin. It is safe for concurrent use.
//
// Done callbacks run on the partition's sending goroutine, in the order the
// records were sent to that partition; they must not block for long.
type Producer struct {
	c   *Client
	cfg ProducerConfig

	// abort ends every batch still retrying when a close gives up.
	abort  context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.Mutex
	closed      bool
	parts       map[int32]*partQueue
	sticky      int32 // partition of keyless records; -1: pick the next
	rr          uint32
	buffered    int           // bytes accepted, not yet completed
	space       chan struct{} // closed when buffered shrinks
	outstanding int           // records accepted, not yet completed
	idle        chan struct{} // closed when outstanding drops to 0
	flushing    int           // Flush calls waiting: ignore linger
}

// pending is one accepted record.
type pending struct {
	rec  Record
	ctx  context.Context
	done func(Record, error)
	size int
	at   time.Time
	// state is queued (0), taken into a batch (1) or withdrawn by SendSync
	// (2), which then no longer wants the callback.
	state *atomic.Int32
}

// partQueue is one partition's buffer; its goroutine sends it in batches.
type partQueue struct {
	part   int32
	recs   pendingQueue
	bytes  int
	wake   chan struct{}
	stream stream    // the sender goroutine's
	pipe   *pipeline // the sender goroutine's
}

// NewProducer returns a producer for cfg.Topic. It does no I/O.
func (c *Client) NewProducer(cfg ProducerConfig) (*Producer, error) {
	if cfg.Topic == "" {
		return nil, errors.New("client: producer needs a topic")
	}
	cfg.setDefaults()
	abort, cancel := context.WithCancel(context.Background())
	return &Producer{
		c:      c,
		cfg:    cfg,
		abort:  abort,
		cancel: cancel,
		parts:  map[int32]*partQueue{},
		sticky: -1,
		space:  make(chan struct{}),
		idle:   closedChan(),
	}, nil
}

func closedChan() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

// errTooLarge is wrapped by the error of a record rejected locally for
// exceeding MaxRecordBytes, so transport.CodeOf gives ErrRecordTooLarge.
var errTooLarge = &transport.Error{Code: transport.ErrRecordTooLarge}

// Send queues r for the producer's topic and calls done (if not nil) once
// it is acknowledged, with the record's Topic, Partition and Offset set, or
// has failed. ctx bounds waiting for buffer space and the record's delivery:
// a record whose ctx ended before its batch was sent fails without being
// sent; a batch is given up (unknown outcome) once every record's ctx in it
// has ended.
func (p *Producer) Send(ctx context.Context, r Record, done func(Record, error)) {
	p.send(ctx, r, -1, done, nil)
}

// SendTo is Send to a given partition.
func (p *Producer) SendTo(ctx context.Context, partition int32, r Record, done func(Record, error)) {
	if partition < 0 {
		if done != nil {
			done(r, fmt.Errorf("client: invalid partition %d", partition))
		}
		return
	}
	p.send(ctx, r, partition, done, nil)
}

// SendSync sends r and waits for its acknowledgement. If ctx ends first, a
// record still queued is withdrawn (a plain ctx error); one already in
// flight yields an error for which IsUnknownOutcome is true.
func (p *Producer) SendSync(ctx context.Context, r Record) (Record, error) {
	type result struct {
		r   Record
		err error
	}
	ch := make(chan result, 1)
	state := new(atomic.Int32)
	part := int32(-1)
	if p.cfg.ManualPartition {
		part = r.Partition
	}
	p.send(ctx, r, part, func(r Record, err error) { ch <- result{r, err} }, state)
	select {
	case res := <-ch:
		return res.r, res.err
	case <-ctx.Done():
	}
	if state.CompareAndSwap(0, 2) {
		return r, fmt.Errorf("produce %s: %w", p.cfg.Topic, ctx.Err())
	}
	select {
	case res := <-ch: // completed meanwhile
		return res.r, res.err
	default:
		return r, fmt.Errorf("produce %s: %w: %w", p.cfg.Topic, ErrUnknownOutcome, ctx.Err())
	}
}

// send implements Send; part < 0 means "use the partitioner".
func (p *Producer) send(ctx context.Context, r Record, part int32, done func(Record, error), state *atomic.Int32) {
	if done == nil {
		done = func(Record, error) {}
	}
	if err := ctx.Err(); err != nil {
		done(r, fmt.Errorf("produce %s: %w", p.cfg.Topic, err))
		return
	}
	if state == nil {
		state = new(atomic.Int32)
	}
	r.Topic = p.cfg.Topic
	r.Offset = -1
	if r.Timestamp.IsZero() {
		r.Timestamp = time.Now()
	}
	size := recordSize(&r)
	if size+batchOverhead > p.cfg.MaxRecordBytes {
		done(r, fmt.Errorf("client: record of %d bytes needs a batch of %d, more than MaxRecordBytes %d: %w", size, size+batchOverhead, p.cfg.MaxRecordBytes, errTooLarge))
		return
	}
	if part < 0 && p.cfg.ManualPartition {
		part = r.Partition
	}
	n, err := p.c.partitionCount(ctx, p.cfg.Topic)
	if err != nil {
		done(r, fmt.Errorf("produce %s: %w", p.cfg.Topic, err))
		return
	}
	if part >= int32(n) || (part < 0 && p.cfg.ManualPartition) {
		done(r, transport.Errorf(transport.ErrUnknownPartition, "%s/%d (topic has %d partitions)", p.cfg.Topic, part, n))
		return
	}

	p.mu.Lock()
	// Wait for buffer space; a lone record always fits.
	for !p.closed && p.buffered > 0 && p.buffered+size > p.cfg.MaxBufferedBytes {
		space := p.space
		p.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			done(r, fmt.Errorf("produce %s: waiting for buffer space: %w", p.cfg.Topic, ctx.Err()))
			return
		}
		p.mu.Lock()
	}
	if p.closed {
		p.mu.Unlock()
		done(r, ErrClosed)
		return
	}
	switch {
	case part >= 0:
	case r.Key != nil:
		part = KeyPartition(r.Key, n)
	default:
		if p.sticky < 0 || p.sticky >= int32(n) {
			p.sticky = int32(p.rr % uint32(n))
			p.rr++
		}
		part = p.sticky
	}
	r.Partition = part
	q := p.parts[part]
	if q == nil {
		q = &partQueue{part: part, wake: make(chan struct{}, 1), stream: newStream(), pipe: newPipeline()}
		p.parts[part] = q
		p.wg.Add(1)
		go p.run(q)
	}
	q.recs.push(pending{rec: r, ctx: ctx, done: done, size: size, at: time.Now(), state: state})
	q.bytes += size
	p.buffered += size
	if p.outstanding == 0 {
		p.idle = make(chan struct{})
	}
	p.outstanding++
	p.mu.Unlock()
	poke(q.wake)
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// run sends q's records in batches until the producer closes.
func (p *Producer) run(q *partQueue) {
	defer p.wg.Done()
	pl := q.pipe
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		// Take the answers that are in, and complete what they finished.
	drain:
		for {
			select {
			case r := <-pl.results:
				p.absorb(q, r)
			default:
				break drain
			}
		}
		p.completeHead(q)
		if pl.recovering && pl.waiting == 0 {
			p.recover(q)
			continue
		}

		var linger time.Duration
		p.mu.Lock()
		if p.abort.Err() != nil && q.recs.len() > 0 {
			failed := q.recs.drain()
			q.bytes = 0
			p.mu.Unlock()
			p.complete(failed, ErrClosed)
			continue
		}
		if q.recs.len() > 0 && pl.canSend(p.cfg.MaxInFlight) {
			full := q.bytes+batchOverhead >= p.cfg.BatchBytes || q.recs.len() >= p.cfg.BatchRecords
			linger = time.Until(q.recs.at(0).at.Add(p.cfg.Linger))
			if full || p.closed || p.flushing > 0 || linger <= 0 {
				batch := p.cut(q)
				p.mu.Unlock()
				if len(batch) > 0 {
					p.newFlight(q, batch)
				}
				continue
			}
		}
		queued := q.recs.len() > 0
		if !queued && len(pl.flights) == 0 && (p.closed || p.abort.Err() != nil) {
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()

		var tick <-chan time.Time
		if linger > 0 {
			if timer == nil {
				timer = time.NewTimer(linger)
			} else {
				timer.Reset(linger)
			}
			tick = timer.C
		}
		var abort <-chan struct{}
		if queued || len(pl.flights) == 0 {
			abort = p.abort.Done() // with batches in flight, their answers tell
		}
		select {
		case r := <-pl.results:
			p.absorb(q, r)
		case <-q.wake:
		case <-tick:
		case <-abort:
		}
		if timer != nil {
			// Since Go 1.23 a stopped timer never delivers a stale tick,
			// so no draining is needed before the next Reset.
			timer.Stop()
		}
	}
}

// cut takes the next batch off q (p.mu held), dropping records that were
// withdrawn or whose context already ended.
func (p *Producer) cut(q *partQueue) []pending {
	n, bytes := 0, batchOverhead
	for n < q.recs.len() && n < p.cfg.BatchRecords {
		if n > 0 && bytes+q.recs.at(n).size > p.cfg.BatchBytes {
			break
		}
		bytes += q.recs.at(n).size
		n++
	}
	taken := q.recs.take(n)
	batch := taken[:0]
	var dropped []pending
	for _, pd := range taken {
		q.bytes -= pd.size
		if pd.ctx.Err() != nil || !pd.state.CompareAndSwap(0, 1) {
			dropped = append(dropped, pd)
			continue
		}
		batch = append(batch, pd)
	}
	if p.sticky == q.part {
		p.sticky = -1 // the next keyless record starts a batch elsewhere
	}
	if len(dropped) > 0 {
		// Callbacks must not run under p.mu: finish them on the side.
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for _, pd := range dropped {
				if pd.state.Load() != 2 {
					pd.done(pd.rec, fmt.Errorf("produce %s: %w", p.cfg.Topic, pd.ctx.Err()))
				}
			}
			p.release(dropped)
		}()
	}
	return batch
}

// complete runs the callbacks of finished records and releases their
// buffer space.
func (p *Producer) complete(batch []pending, err error) {
	for _, pd := range batch {
		pd.done(pd.rec, err)
	}
	p.release(batch)
}

func (p *Producer) release(batch []pending) {
	if len(batch) == 0 {
		return
	}
	bytes := 0
	for _, pd := range batch {
		bytes += pd.size
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buffered -= bytes
	close(p.space)
	p.space = make(chan struct{})
	p.outstanding -= len(batch)
	if p.outstanding == 0 {
		close(p.idle)
	}
}

// batchContext returns a context that ends when abort ends or when every
// record's context has ended: a batch stays worth retrying while anyone
// still waits for it.
func batchContext(abort context.Context, ctxs []context.Context) (context.Context, context.CancelFunc) {
	distinct := ctxs[:1]
	for _, c := range ctxs[1:] {
		if c != distinct[len(distinct)-1] {
			distinct = append(distinct, c)
		}
	}
	if len(distinct) == 1 {
		ctx, cancel := context.WithCancel(distinct[0])
		stop := context.AfterFunc(abort, cancel)
		return ctx, func() { stop(); cancel() }
	}
	ctx, cancel := context.WithCancel(context.Background())
	stops := make([]func() bool, 0, len(distinct)+1)
	var left atomic.Int32
	left.Store(int32(len(distinct)))
	for _, c := range distinct {
		stops = append(stops, context.AfterFunc(c, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		}))
	}
	stops = append(stops, context.AfterFunc(abort, cancel))
	return ctx, func() {
		for _, s := range stops {
			s()
		}
		cancel()
	}
}

// Flush sends every buffered record at once (ignoring Linger) and waits
// until all records accepted so far have completed, or ctx ends.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	if p.outstanding == 0 {
		p.mu.Unlock()
		return nil
	}
	idle := p.idle
	p.flushing++
	queues := make([]*partQueue, 0, len(p.parts))
	for _, q := range p.parts {
		queues = append(queues, q)
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.flushing--
		p.mu.Unlock()
	}()
	for _, q := range queues {
		poke(q.wake)
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("flush: %w", ctx.Err())
	}
}

// Close flushes and stops the producer, waiting as long as the records'
// own contexts allow. Later sends fail with ErrClosed.
func (p *Producer) Close() error {
	return p.CloseContext(context.Background())
}

// CloseContext flushes and stops the producer. If ctx ends first, batches
// still retrying are given up (their callbacks get unknown-outcome errors)
// and queued records fail with ErrClosed.
func (p *Producer) CloseContext(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	close(p.space) // wake senders waiting for space: they now fail
	p.space = make(chan struct{})
	for _, q := range p.parts {
		poke(q.wake)
	}
	p.mu.Unlock()
	err := p.Flush(ctx)
	if err != nil {
		p.cancel()
	}
	p.mu.Lock()
	for _, q := range p.parts {
		poke(q.wake)
	}
	p.mu.Unlock()
	p.wg.Wait()
	p.cancel()
	return err
}
