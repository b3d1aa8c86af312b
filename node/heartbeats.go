package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Every hashicorp/raft group sends each follower an empty AppendEntries
// (a heartbeat) every HeartbeatTimeout/10 to 2×HeartbeatTimeout/10: with a
// thousand partitions that is tens of thousands of RPCs a second between
// three nodes, each its own frame, syscalls and goroutine on both sides.
// The hub coalesces them: a heartbeat waits up to raftBatchTick for the
// others bound to the same node, and all go in one request. The receiving
// node hands each to its group's Raft exactly as hashicorp/raft's own
// transport does (the heartbeat fast path, which needs no main loop), and
// the answers come back in one response. Nothing about a heartbeat changes
// but its envelope: each is answered by the real Raft instance with its
// real term, so the protocol's guarantees are untouched (CockroachDB
// coalesces heartbeats this way). Other RPCs go on their own
// (rafttransport.go).

// raftBatchTick is the longest an RPC waits for others to the same node:
// small against the heartbeat interval (50-100 ms at the default 500 ms
// HeartbeatTimeout), the leader lease and election timeouts.
const raftBatchTick = 10 * time.Millisecond

// raftBatchTimeout bounds one coalesced round trip; an RPC that fails is
// one Raft sees lost (a heartbeat: the follower counts as not contacted).
const raftBatchTimeout = 2 * time.Second

// raftBatch is the body of a transport.MethodRaftHeartbeats request.
type raftBatch struct {
	Beats []raftHeartbeat `msgpack:"b"`
}

// raftBatchResponse answers a raftBatch, heartbeat by heartbeat, in order.
type raftBatchResponse struct {
	Beats []raftHeartbeatReply `msgpack:"b"`
}

// raftHeartbeat is a heartbeat of one group: the fields of an
// AppendEntriesRequest a heartbeat sets.
type raftHeartbeat struct {
	Group    string `msgpack:"g"`
	Term     uint64 `msgpack:"t"`
	Protocol int    `msgpack:"p"`
	ID       []byte `msgpack:"i"`
	Addr     []byte `msgpack:"a"`
	Leader   []byte `msgpack:"l,omitempty"`
}

// raftHeartbeatReply is the group's AppendEntriesResponse, or Err when it
// could not take the heartbeat (not hosted here, shutting down).
type raftHeartbeatReply struct {
	Term           uint64 `msgpack:"t"`
	LastLog        uint64 `msgpack:"l"`
	Success        bool   `msgpack:"s"`
	NoRetryBackoff bool   `msgpack:"n,omitempty"`
	Protocol       int    `msgpack:"p"`
	ID             []byte `msgpack:"i"`
	Addr           []byte `msgpack:"a"`
	Err            string `msgpack:"e,omitempty"`
}

// raftBatchCaller sends one coalesced request to a node's RPC address.
type raftBatchCaller func(ctx context.Context, addr string, req *raftBatch, resp *raftBatchResponse) error

// heartbeatHub is a node's end of coalesced heartbeats, both ways, and the
// registry of its groups' transports.
type heartbeatHub struct {
	call   raftBatchCaller
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// sentBeats counts heartbeats sent, sentRequests the requests that
	// carried them.
	sentBeats, sentRequests atomic.Uint64

	mu       sync.Mutex
	closed   bool
	peers    map[raft.ServerAddress]*hubPeer
	handlers map[string]*groupTransport // receiving groups by name
}

// hubPeer queues the heartbeats bound for one node.
type hubPeer struct {
	queue []*hubCall // under hub.mu
	wake  chan struct{}
}

// hubCall is one queued heartbeat.
type hubCall struct {
	beat  raftHeartbeat
	reply raftHeartbeatReply
	err   error
	done  chan struct{}
}

func newHeartbeatHub(call raftBatchCaller) *heartbeatHub {
	ctx, cancel := context.WithCancel(context.Background())
	return &heartbeatHub{
		call:     call,
		ctx:      ctx,
		cancel:   cancel,
		peers:    map[raft.ServerAddress]*hubPeer{},
		handlers: map[string]*groupTransport{},
	}
}

// errHubClosed fails queued heartbeats once the node shuts down.
var errHubClosed = errors.New("raft hub closed")

// close fails queued heartbeats and stops the senders.
func (h *heartbeatHub) close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
}

// heartbeat sends group's heartbeat to target and waits for its reply.
func (h *heartbeatHub) heartbeat(target raft.ServerAddress, group string, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	c := &hubCall{beat: raftHeartbeat{
		Group: group, Term: args.Term, Protocol: int(args.ProtocolVersion),
		ID: args.ID, Addr: args.Addr, Leader: args.Leader, //nolint:staticcheck // Leader is what older peers read
	}}
	if err := h.roundTrip(target, c); err != nil {
		return err
	}
	r := c.reply
	*resp = raft.AppendEntriesResponse{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersion(r.Protocol), ID: r.ID, Addr: r.Addr},
		Term:      r.Term, LastLog: r.LastLog, Success: r.Success, NoRetryBackoff: r.NoRetryBackoff,
	}
	return nil
}

// roundTrip queues c for target and waits until its batch was answered.
func (h *heartbeatHub) roundTrip(target raft.ServerAddress, c *hubCall) error {
	c.done = make(chan struct{})
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errHubClosed
	}
	p := h.peers[target]
	if p == nil {
		p = &hubPeer{wake: make(chan struct{}, 1)}
		h.peers[target] = p
		h.wg.Add(1)
		go h.send(target, p)
	}
	p.queue = append(p.queue, c)
	h.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	<-c.done
	return c.err
}

// send delivers the heartbeats queued for target, a tick's worth at a time.
func (h *heartbeatHub) send(target raft.ServerAddress, p *hubPeer) {
	defer h.wg.Done()
	tick := time.NewTimer(raftBatchTick)
	defer tick.Stop()
	for {
		select {
		case <-p.wake:
		case <-h.ctx.Done():
			h.fail(p, errHubClosed)
			return
		}
		// Let the other groups' heartbeats of this tick join.
		tick.Reset(raftBatchTick)
		select {
		case <-tick.C:
		case <-h.ctx.Done():
			h.fail(p, errHubClosed)
			return
		}
		h.mu.Lock()
		calls := p.queue
		p.queue = nil
		h.mu.Unlock()
		if len(calls) > 0 {
			h.sendBatch(target, calls)
		}
	}
}

func (h *heartbeatHub) sendBatch(target raft.ServerAddress, calls []*hubCall) {
	req := raftBatch{Beats: make([]raftHeartbeat, len(calls))}
	for i, c := range calls {
		req.Beats[i] = c.beat
	}
	h.sentRequests.Add(1)
	h.sentBeats.Add(uint64(len(calls)))
	var resp raftBatchResponse
	ctx, cancel := context.WithTimeout(h.ctx, raftBatchTimeout)
	err := h.call(ctx, string(target), &req, &resp)
	cancel()
	if err == nil && len(resp.Beats) != len(calls) {
		err = fmt.Errorf("%d answers for %d heartbeats", len(resp.Beats), len(calls))
	}
	for i, c := range calls {
		switch {
		case err != nil:
			c.err = fmt.Errorf("heartbeat to %s: %w", target, err)
		case resp.Beats[i].Err != "":
			c.err = fmt.Errorf("heartbeat to %s: %s", target, resp.Beats[i].Err)
		default:
			c.reply = resp.Beats[i]
		}
		close(c.done)
	}
}

func (h *heartbeatHub) fail(p *hubPeer, err error) {
	h.mu.Lock()
	calls := p.queue
	p.queue = nil
	h.mu.Unlock()
	for _, c := range calls {
		c.err = err
		close(c.done)
	}
}

// register makes t's group take the RPCs peers send it; replacing a group
// of the same name (a reopened replica) is what a re-registration does,
// and unregister only removes t itself.
func (h *heartbeatHub) register(name string, t *groupTransport) {
	h.mu.Lock()
	h.handlers[name] = t
	h.mu.Unlock()
}

func (h *heartbeatHub) unregister(name string, t *groupTransport) {
	h.mu.Lock()
	if h.handlers[name] == t {
		delete(h.handlers, name)
	}
	h.mu.Unlock()
}

// group returns the local group registered under name, or nil.
func (h *heartbeatHub) group(name string) *groupTransport {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.handlers[name]
}

// deliverDeadline bounds how long a batch's answer waits for its slowest
// heartbeat. A group whose Raft is slow to answer (persisting a new term)
// must not hold up the answers of the others, or their heartbeats would
// time out together and start elections everywhere: a heartbeat not
// answered in time is answered with an error, which Raft takes as that one
// heartbeat lost.
const deliverDeadline = 100 * time.Millisecond

// deliver hands each heartbeat of a peer's batch to its group's Raft and
// collects the answers given within deliverDeadline.
func (h *heartbeatHub) deliver(ctx context.Context, req *raftBatch) *raftBatchResponse {
	resp := &raftBatchResponse{Beats: make([]raftHeartbeatReply, len(req.Beats))}
	type done struct {
		i     int
		reply raftHeartbeatReply
	}
	// Heartbeats still running at the deadline finish on their own
	// context (their answers are dropped); the buffer lets them finish
	// unread.
	results := make(chan done, len(req.Beats))
	work, cancel := context.WithTimeout(context.WithoutCancel(ctx), raftBatchTimeout)
	// One goroutine a heartbeat, as hashicorp's transport had one a
	// connection: each group's heartbeat is independent of the others'.
	for i, b := range req.Beats {
		go func() {
			var r raftHeartbeatReply
			if t := h.group(b.Group); t == nil {
				r.Err = "unknown raft group " + b.Group
			} else {
				r = t.takeHeartbeat(work, b)
			}
			results <- done{i: i, reply: r}
		}()
	}
	answered := make([]bool, len(req.Beats))
	deadline := time.NewTimer(deliverDeadline)
	defer deadline.Stop()
	pending := len(req.Beats)
collect:
	for ; pending > 0; pending-- {
		select {
		case d := <-results:
			resp.Beats[d.i], answered[d.i] = d.reply, true
		case <-deadline.C:
			break collect
		case <-ctx.Done():
			break collect
		}
	}
	if pending == 0 {
		cancel()
		return resp
	}
	go func() {
		for ; pending > 0; pending-- {
			<-results
		}
		cancel()
	}()
	for i := range req.Beats {
		if !answered[i] {
			resp.Beats[i].Err = "raft group " + req.Beats[i].Group + " did not answer in time"
		}
	}
	return resp
}
