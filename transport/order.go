package transport

import (
	"context"
	"sync"
)

// Requests of the ordered methods (Config.OrderedMethods) that arrive on
// one connection pass their ordered section one at a time, in the order they
// were read: a client keeps several produce batches of a partition in flight
// and the node still hands them to Raft in sequence order, although each
// request runs in its own goroutine. Only the section between InOrder and
// its release is serialised; the rest of each request (waiting for the Raft
// commit) overlaps.

// turnKey is the context key of a request's *turn.
type turnKey struct{}

// turn is one ordered request's place in its connection's chain: it may
// enter once prev is closed, and closes next when it leaves, which only
// happens after prev closed, so the chain keeps its order even when a
// request finishes without ever entering.
type turn struct {
	prev <-chan struct{}
	next chan struct{}
	once sync.Once
}

// leave lets the following ordered request in, once this one's turn came.
func (t *turn) leave() {
	t.once.Do(func() {
		select {
		case <-t.prev:
			close(t.next)
		default:
			go func() {
				<-t.prev
				close(t.next)
			}()
		}
	})
}

// orderChain hands out turns to the ordered requests of one connection.
type orderChain struct {
	last <-chan struct{}
}

func newOrderChain() *orderChain {
	done := make(chan struct{})
	close(done)
	return &orderChain{last: done}
}

// next returns the turn of the request read next.
func (c *orderChain) next() *turn {
	t := &turn{prev: c.last, next: make(chan struct{})}
	c.last = t.next
	return t
}

// InOrder waits until every ordered request read before this one on its
// connection has left its ordered section, and returns the function that
// leaves this one's (call it as soon as the order-sensitive step is done;
// it is also called when the handler returns). Outside an ordered request
// (another method, or an in-process call) it returns at once. It fails
// only when ctx ends first.
func InOrder(ctx context.Context) (leave func(), err error) {
	t, ok := ctx.Value(turnKey{}).(*turn)
	if !ok {
		return func() {}, nil
	}
	select {
	case <-t.prev:
		return t.leave, nil
	case <-ctx.Done():
		t.leave()
		return func() {}, ctx.Err()
	}
}
