package node

import (
	"context"
	"sync"
	"time"

	"github.com/sluice-io/sluice/transport"
)

// readiness tells whether a partition leader may serve reads in its
// current term. A freshly elected leader may not have applied its
// predecessor's last entries yet (they commit only with an entry of the
// new term), so its FSM can be behind what clients already read: it
// serves only after a barrier of the current term has been applied, as the
// metadata controller does. One barrier per term is shared by all waiters.
type readiness struct {
	mu   sync.Mutex
	term uint64        // term of the barrier in flight or done
	done chan struct{} // closed when that barrier finished
	err  error         // its outcome, valid once done is closed
}

// readyWait bounds how long one fetch waits for readiness before it
// answers with a retriable error.
const readyWait = 2 * time.Second

// start begins (once per term) the barrier for term and returns the
// channel closed when it ends.
func (r *replica) startReady(term uint64) chan struct{} {
	s := &r.ready
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil && s.term == term {
		select {
		case <-s.done:
			if s.err == nil {
				return s.done
			}
			// Failed (e.g. enqueue timeout): try again below.
		default:
			return s.done
		}
	}
	done := make(chan struct{})
	s.term, s.done, s.err = term, done, nil
	go func() {
		err := r.raft().Barrier(10 * time.Second).Error()
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(done)
	}()
	return done
}

// waitReady returns nil once this leader has applied a barrier of its
// current term, or a retriable error (not leader / not ready yet).
func (n *Node) waitReady(ctx context.Context, r *replica) error {
	term := r.raft().CurrentTerm()
	done := r.startReady(term)
	t := time.NewTimer(readyWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		return transport.Errorf(transport.ErrUnavailable, "new leader of %s is still applying its predecessor's entries", r.key)
	case <-ctx.Done():
		return transport.Errorf(transport.ErrUnavailable, "new leader of %s not ready before the request ended", r.key)
	case <-r.done:
		return transport.Errorf(transport.ErrShuttingDown, "replica %s is closing", r.key)
	}
	r.ready.mu.Lock()
	err := r.ready.err
	r.ready.mu.Unlock()
	if err != nil {
		addr, _ := r.raft().LeaderWithID()
		return raftErr(err, string(addr))
	}
	if now := r.raft().CurrentTerm(); now != term {
		// Lost and maybe regained leadership meanwhile: the client retries.
		return transport.Errorf(transport.ErrUnavailable, "leadership of %s changed (term %d to %d)", r.key, term, now)
	}
	return nil
}
