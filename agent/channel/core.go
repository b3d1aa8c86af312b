// Package channel holds the agent's channels: memory (events in RAM,
// lost when the agent dies), file (a write-ahead log with checkpoints,
// fsynced on every commit) and sluice (a replicated topic as the channel,
// the counterpart of Flume's KafkaChannel).
package channel

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sluice-io/sluice/agent/flow"
)

// item is one event in a channel; id orders events across restarts of
// the file channel (assigned at put commit, increasing).
type item struct {
	id uint64
	ev flow.Event
}

// persister makes a commit durable before it is applied in memory (the
// file channel's WAL). nil for the memory channel.
type persister interface {
	// enqueue adds one transaction's record to the next group commit
	// (called under commitMu, so the log order is the commit order);
	// wait returns once that group is on disk (one fsync for every
	// transaction of the group).
	enqueue(puts []item, takes []item) *flushGroup
	wait(g *flushGroup) error
	// checkPut refuses a put before it is buffered (minimumRequiredSpace).
	checkPut() error
}

// core is the transactional queue both the memory and the file channel
// are built on. Takes leave the queue at Take but keep their capacity
// until commit (Flume's MemoryChannel does the same), so a rollback can
// always put them back at the head, in order.
type core struct {
	name     string
	counters *flow.Counters

	capacity  int64
	txCap     int
	byteCap   int64 // 0: unbounded
	keepAlive time.Duration
	// atPut enforces capacity when an event is put (file channel) rather
	// than at commit (memory channel).
	atPut   bool
	persist persister

	mu       sync.Mutex
	commitMu sync.Mutex // orders id assignment and enqueueing, so the WAL order is the id order
	// applying counts commits enqueued but not yet applied in memory; a
	// checkpoint (holding commitMu) waits for it to drain.
	applying sync.WaitGroup
	q        []item
	head     int
	bytes    int64 // bodies in the queue and in in-flight takes
	inTakes  int64 // events taken, not committed
	reserved int64 // atPut: slots held by uncommitted puts
	nextID   uint64
	space    chan struct{} // closed when capacity frees
	notify   chan struct{} // closed when events are committed
	closed   bool
	openTxs  sync.WaitGroup
	// taken holds the in-flight takes when persist is set: a checkpoint
	// must still contain them.
	taken map[uint64]item
}

func newCore(name string, capacity int64, txCap int, byteCap int64, keepAlive time.Duration) *core {
	c := &core{
		name: name, counters: flow.NewCounters(flow.KindChannel, name),
		capacity: capacity, txCap: txCap, byteCap: byteCap, keepAlive: keepAlive,
		space: make(chan struct{}), notify: make(chan struct{}), nextID: 1,
	}
	c.counters.Set(flow.ChannelCapacity, capacity)
	c.counters.SetFill(func() float64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.capacity <= 0 {
			return 0
		}
		return float64(c.sizeLocked()) * 100 / float64(c.capacity)
	})
	return c
}

func (c *core) sizeLocked() int64 { return int64(len(c.q) - c.head) }

// usedLocked counts everything that holds capacity.
func (c *core) usedLocked() int64 { return c.sizeLocked() + c.inTakes + c.reserved }

func (c *core) Name() string             { return c.name }
func (c *core) Counters() *flow.Counters { return c.counters }
func (c *core) Notify() <-chan struct{}  { c.mu.Lock(); defer c.mu.Unlock(); return c.notify }
func (c *core) Size() int64              { c.mu.Lock(); defer c.mu.Unlock(); return c.sizeLocked() }

// Pending counts the events in the channel, in-flight takes included.
func (c *core) Pending() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sizeLocked() + c.inTakes
}

func (c *core) updateSizeLocked() { c.counters.Set(flow.ChannelSize, c.sizeLocked()) }

// waitSpace waits, with c.mu held, until fits() or keep-alive passes.
func (c *core) waitSpaceLocked(fits func() bool) bool {
	deadline := time.Now().Add(c.keepAlive)
	for !fits() {
		if c.closed {
			return false
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		ch := c.space
		c.mu.Unlock()
		t := time.NewTimer(left)
		select {
		case <-ch:
		case <-t.C:
		}
		t.Stop()
		c.mu.Lock()
	}
	return true
}

func (c *core) freedLocked() {
	close(c.space)
	c.space = make(chan struct{})
}

func (c *core) Begin() (flow.Transaction, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("channel %s: %w", c.name, flow.ErrClosed)
	}
	c.openTxs.Add(1)
	return &tx{c: c}, nil
}

// drain waits for open transactions to finish (or ctx to end), then
// refuses new ones.
func (c *core) drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() { c.openTxs.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("channel %s: transactions still open: %w", c.name, ctx.Err())
	}
	c.mu.Lock()
	c.closed = true
	c.freedLocked()
	c.mu.Unlock()
	return err
}

type tx struct {
	c        *core
	puts     []flow.Event
	putBytes int64
	takes    []item
	done     bool
}

func (t *tx) finish() {
	if !t.done {
		t.done = true
		t.c.openTxs.Done()
	}
}

func (t *tx) Put(ev flow.Event) error {
	c := t.c
	if t.done {
		return fmt.Errorf("channel %s: put on a finished transaction", c.name)
	}
	c.counters.Add(flow.EventPutAttemptCount, 1)
	if len(t.puts) >= c.txCap {
		return fmt.Errorf("channel %s: put list of %d events is full (transactionCapacity %d; lower the source's batchSize or raise the channel's transactionCapacity): %w", c.name, len(t.puts), c.txCap, flow.ErrTxFull)
	}
	if c.persist != nil {
		if err := c.persist.checkPut(); err != nil {
			return err
		}
	}
	if c.atPut {
		c.mu.Lock()
		ok := c.waitSpaceLocked(func() bool { return c.usedLocked() < c.capacity })
		if ok {
			c.reserved++
		}
		c.mu.Unlock()
		if !ok {
			return fmt.Errorf("channel %s has reached its capacity of %d events: %w", c.name, c.capacity, flow.ErrChannelFull)
		}
	}
	t.puts = append(t.puts, ev)
	t.putBytes += int64(ev.Size())
	return nil
}

func (t *tx) Take() (flow.Event, bool, error) {
	c := t.c
	if t.done {
		return flow.Event{}, false, fmt.Errorf("channel %s: take on a finished transaction", c.name)
	}
	c.counters.Add(flow.EventTakeAttemptCount, 1)
	if len(t.takes) >= c.txCap {
		return flow.Event{}, false, fmt.Errorf("channel %s: take list of %d events is full (transactionCapacity %d; lower the sink's batch size): %w", c.name, len(t.takes), c.txCap, flow.ErrTxFull)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sizeLocked() == 0 {
		return flow.Event{}, false, nil
	}
	it := c.q[c.head]
	c.q[c.head] = item{}
	c.head++
	if c.head == len(c.q) {
		c.q, c.head = c.q[:0], 0
	}
	c.inTakes++
	if c.taken != nil {
		c.taken[it.id] = it
	}
	c.updateSizeLocked()
	t.takes = append(t.takes, it)
	return it.ev, true, nil
}

func (t *tx) Commit() error {
	c := t.c
	if t.done {
		return fmt.Errorf("channel %s: commit on a finished transaction", c.name)
	}
	if len(t.puts) == 0 && len(t.takes) == 0 {
		t.finish()
		return nil
	}
	c.mu.Lock()
	if !c.atPut {
		need := int64(len(t.puts)) - int64(len(t.takes))
		fits := func() bool {
			if c.usedLocked()+need > c.capacity {
				return false
			}
			return c.byteCap <= 0 || c.bytes+t.putBytes-takeBytes(t.takes) <= c.byteCap
		}
		if !c.waitSpaceLocked(fits) {
			c.mu.Unlock()
			return fmt.Errorf("channel %s: space for commit to queue couldn't be acquired (capacity %d events, byteCapacity %d): %w", c.name, c.capacity, c.byteCap, flow.ErrChannelFull)
		}
		// Hold the space: the puts count as reserved until applied.
		c.reserved += int64(len(t.puts))
	}
	c.mu.Unlock()

	c.commitMu.Lock()
	c.mu.Lock()
	items := make([]item, len(t.puts))
	for i, ev := range t.puts {
		items[i] = item{id: c.nextID, ev: ev}
		c.nextID++
	}
	c.mu.Unlock()
	if c.persist != nil {
		g := c.persist.enqueue(items, t.takes)
		c.applying.Add(1)
		c.commitMu.Unlock()
		err := c.persist.wait(g)
		if err != nil {
			c.applying.Done()
			if !c.atPut {
				c.mu.Lock()
				c.reserved -= int64(len(t.puts))
				c.freedLocked()
				c.mu.Unlock()
			}
			return fmt.Errorf("channel %s: commit: %w", c.name, err)
		}
		defer c.applying.Done()
	} else {
		defer c.commitMu.Unlock()
	}
	c.mu.Lock()
	c.q = append(c.q, items...)
	c.reserved -= int64(len(t.puts))
	c.inTakes -= int64(len(t.takes))
	c.forgetTakenLocked(t.takes)
	c.bytes += t.putBytes - takeBytes(t.takes)
	c.updateSizeLocked()
	if len(t.takes) > 0 {
		c.freedLocked()
	}
	if len(items) > 0 {
		close(c.notify)
		c.notify = make(chan struct{})
	}
	c.mu.Unlock()
	c.counters.Add(flow.EventPutSuccessCount, int64(len(t.puts)))
	c.counters.Add(flow.EventTakeSuccessCount, int64(len(t.takes)))
	t.puts, t.takes = nil, nil
	t.finish()
	return nil
}

func takeBytes(takes []item) int64 {
	var n int64
	for _, it := range takes {
		n += int64(it.ev.Size())
	}
	return n
}

func (t *tx) Rollback() error {
	c := t.c
	if t.done {
		return nil
	}
	c.mu.Lock()
	if n := len(t.takes); n > 0 {
		// Back at the head, in the order they were taken.
		if c.head >= n {
			c.head -= n
			copy(c.q[c.head:], t.takes)
		} else {
			q := make([]item, 0, n+len(c.q)-c.head)
			q = append(q, t.takes...)
			q = append(q, c.q[c.head:]...)
			c.q, c.head = q, 0
		}
		c.inTakes -= int64(n)
		c.forgetTakenLocked(t.takes)
		c.updateSizeLocked()
		close(c.notify)
		c.notify = make(chan struct{})
	}
	if c.atPut && len(t.puts) > 0 {
		c.reserved -= int64(len(t.puts))
		c.freedLocked()
	}
	c.mu.Unlock()
	t.puts, t.takes = nil, nil
	t.finish()
	return nil
}

// load fills the queue at start (file channel replay).
func (c *core) load(items []item, nextID uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.q = items
	c.head = 0
	c.bytes = 0
	for _, it := range items {
		c.bytes += int64(it.ev.Size())
	}
	if nextID > c.nextID {
		c.nextID = nextID
	}
	c.updateSizeLocked()
}

func (c *core) forgetTakenLocked(takes []item) {
	if c.taken == nil {
		return
	}
	for _, it := range takes {
		delete(c.taken, it.id)
	}
}

// snapshot returns every event the channel holds durably, in id order:
// the queue and the in-flight takes (they stay in the channel until their
// transaction commits). Called with commitMu held.
func (c *core) snapshot() []item {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]item, 0, c.sizeLocked()+c.inTakes)
	for _, it := range c.taken {
		out = append(out, it)
	}
	out = append(out, c.q[c.head:]...)
	slices.SortFunc(out, func(a, b item) int { return cmp.Compare(a.id, b.id) })
	return out
}
