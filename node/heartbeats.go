package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sluice-io/sluice/transport"
)

// Every hashicorp/raft group sends each follower an empty AppendEntries
// (a heartbeat) every HeartbeatTimeout/10 to 2×HeartbeatTimeout/10: with a
// thousand partitions that is tens of thousands of RPCs a second between
// three nodes, each its own frame, syscalls and decode on both sides. The
// heartbeat hub coalesces them: a group's heartbeat to a node waits up to
// heartbeatTick for others bound there, and all go in one request; the
// receiving node hands each to its group's Raft exactly as hashicorp/raft's
// own transport does (the heartbeat fast path), and the replies come back in
// one response. Nothing about a heartbeat changes but its envelope: each is
// answered by the real Raft instance with its real term, so the protocol's
// guarantees are untouched (this is CockroachDB's coalesced heartbeats).

// heartbeatTick is the longest a heartbeat waits for others to the same
// node: small against the heartbeat interval (50-100 ms at the default
// 500 ms HeartbeatTimeout) and the leader lease.
const heartbeatTick = 10 * time.Millisecond

// heartbeatTimeout bounds one coalesced round trip; a heartbeat that fails
// makes Raft back off and count the follower as not contacted, as a lost
// heartbeat would.
const heartbeatTimeout = 2 * time.Second

// heartbeatCaller sends one coalesced request to a node's RPC address.
type heartbeatCaller func(ctx context.Context, addr string, req *transport.RaftHeartbeatsRequest, resp *transport.RaftHeartbeatsResponse) error

// heartbeatHub is a node's end of coalesced heartbeats, both ways.
type heartbeatHub struct {
	call   heartbeatCaller
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// sentBeats counts heartbeats sent, sentRequests the requests that
	// carried them.
	sentBeats, sentRequests atomic.Uint64

	mu       sync.Mutex
	closed   bool
	peers    map[raft.ServerAddress]*heartbeatPeer
	handlers map[string]*groupTransport // receiving groups by name
}

// heartbeatPeer queues the heartbeats bound for one node.
type heartbeatPeer struct {
	queue []*heartbeatCall // under hub.mu
	wake  chan struct{}
}

type heartbeatCall struct {
	beat  transport.RaftHeartbeat
	reply transport.RaftHeartbeatReply
	err   error
	done  chan struct{}
}

func newHeartbeatHub(call heartbeatCaller) *heartbeatHub {
	ctx, cancel := context.WithCancel(context.Background())
	return &heartbeatHub{
		call:     call,
		ctx:      ctx,
		cancel:   cancel,
		peers:    map[raft.ServerAddress]*heartbeatPeer{},
		handlers: map[string]*groupTransport{},
	}
}

// errHubClosed fails heartbeats once the node shuts down.
var errHubClosed = errors.New("heartbeat hub closed")

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
	c := &heartbeatCall{
		beat: transport.RaftHeartbeat{
			Group: group, Term: args.Term, Protocol: int(args.ProtocolVersion),
			ID: args.ID, Addr: args.Addr, Leader: args.Leader, //nolint:staticcheck // Leader is what older peers read
		},
		done: make(chan struct{}),
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errHubClosed
	}
	p := h.peers[target]
	if p == nil {
		p = &heartbeatPeer{wake: make(chan struct{}, 1)}
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
	if c.err != nil {
		return c.err
	}
	r := c.reply
	*resp = raft.AppendEntriesResponse{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersion(r.Protocol), ID: r.ID, Addr: r.Addr},
		Term:      r.Term, LastLog: r.LastLog, Success: r.Success, NoRetryBackoff: r.NoRetryBackoff,
	}
	return nil
}

// send delivers the heartbeats queued for target, a tick's worth at a time.
func (h *heartbeatHub) send(target raft.ServerAddress, p *heartbeatPeer) {
	defer h.wg.Done()
	tick := time.NewTimer(heartbeatTick)
	defer tick.Stop()
	for {
		select {
		case <-p.wake:
		case <-h.ctx.Done():
			h.fail(p, errHubClosed)
			return
		}
		// Let the other groups' heartbeats of this tick join.
		tick.Reset(heartbeatTick)
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
		if len(calls) == 0 {
			continue
		}
		req := &transport.RaftHeartbeatsRequest{Beats: make([]transport.RaftHeartbeat, len(calls))}
		for i, c := range calls {
			req.Beats[i] = c.beat
		}
		h.sentRequests.Add(1)
		h.sentBeats.Add(uint64(len(calls)))
		var resp transport.RaftHeartbeatsResponse
		ctx, cancel := context.WithTimeout(h.ctx, heartbeatTimeout)
		err := h.call(ctx, string(target), req, &resp)
		cancel()
		if err == nil && len(resp.Replies) != len(calls) {
			err = fmt.Errorf("heartbeats to %s: %d replies for %d heartbeats", target, len(resp.Replies), len(calls))
		}
		for i, c := range calls {
			switch {
			case err != nil:
				c.err = fmt.Errorf("heartbeat to %s: %w", target, err)
			case resp.Replies[i].Err != "":
				c.err = fmt.Errorf("heartbeat to %s: %s", target, resp.Replies[i].Err)
			default:
				c.reply = resp.Replies[i]
			}
			close(c.done)
		}
	}
}

func (h *heartbeatHub) fail(p *heartbeatPeer, err error) {
	h.mu.Lock()
	calls := p.queue
	p.queue = nil
	h.mu.Unlock()
	for _, c := range calls {
		c.err = err
		close(c.done)
	}
}

// register makes t's group take the heartbeats peers send it; replacing a
// group of the same name (a reopened replica) is what a re-registration
// does, and unregister only removes t itself.
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

// deliver hands each heartbeat of a peer's request to its group's Raft and
// collects the replies.
func (h *heartbeatHub) deliver(ctx context.Context, req *transport.RaftHeartbeatsRequest) *transport.RaftHeartbeatsResponse {
	resp := &transport.RaftHeartbeatsResponse{Replies: make([]transport.RaftHeartbeatReply, len(req.Beats))}
	ctx, cancel := context.WithTimeout(ctx, heartbeatTimeout)
	defer cancel()
	for i, b := range req.Beats {
		h.mu.Lock()
		t := h.handlers[b.Group]
		h.mu.Unlock()
		if t == nil {
			resp.Replies[i].Err = "unknown raft group " + b.Group
			continue
		}
		resp.Replies[i] = t.takeHeartbeat(ctx, b)
	}
	return resp
}

// groupTransport is one Raft group's transport: hashicorp/raft's
// NetworkTransport over the node's port, with heartbeats sent through the
// hub instead.
type groupTransport struct {
	*raft.NetworkTransport
	name string
	hub  *heartbeatHub

	mu          sync.Mutex
	onHeartbeat func(raft.RPC)
	// stopped is closed before the group's Raft shuts down: Raft then
	// drops heartbeats without answering them.
	stopped  chan struct{}
	stopOnce sync.Once
}

func newGroupTransport(nt *raft.NetworkTransport, name string, hub *heartbeatHub) *groupTransport {
	t := &groupTransport{NetworkTransport: nt, name: name, hub: hub, stopped: make(chan struct{})}
	hub.register(name, t)
	return t
}

// stop leaves the hub: heartbeats for the group are refused from now on.
func (t *groupTransport) stop() {
	t.stopOnce.Do(func() {
		t.hub.unregister(t.name, t)
		close(t.stopped)
	})
}

// isHeartbeat is hashicorp/raft's own test for an AppendEntries that is a
// heartbeat (net_transport.go).
func isHeartbeat(a *raft.AppendEntriesRequest) bool {
	leader := a.Addr
	if len(leader) == 0 {
		leader = a.Leader //nolint:staticcheck // as hashicorp/raft falls back to it
	}
	return a.Term != 0 && leader != nil && a.PrevLogEntry == 0 && a.PrevLogTerm == 0 &&
		len(a.Entries) == 0 && a.LeaderCommitIndex == 0
}

// AppendEntries sends heartbeats through the hub and everything else as
// hashicorp/raft would.
func (t *groupTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if isHeartbeat(args) {
		return t.hub.heartbeat(target, t.name, args, resp)
	}
	return t.NetworkTransport.AppendEntries(id, target, args, resp)
}

// SetHeartbeatHandler is how Raft registers its heartbeat fast path; the
// hub calls it for the heartbeats that arrive coalesced.
func (t *groupTransport) SetHeartbeatHandler(cb func(raft.RPC)) {
	t.NetworkTransport.SetHeartbeatHandler(cb)
	t.mu.Lock()
	t.onHeartbeat = cb
	t.mu.Unlock()
}

// Close leaves the hub and closes the network transport.
func (t *groupTransport) Close() error {
	t.stop()
	return t.NetworkTransport.Close()
}

// takeHeartbeat runs one heartbeat through Raft's fast path. Raft answers
// on the RPC's channel, or not at all once it shut down.
func (t *groupTransport) takeHeartbeat(ctx context.Context, b transport.RaftHeartbeat) transport.RaftHeartbeatReply {
	t.mu.Lock()
	fn := t.onHeartbeat
	t.mu.Unlock()
	if fn == nil {
		return transport.RaftHeartbeatReply{Err: "raft group " + t.name + " is not running"}
	}
	req := &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersion(b.Protocol), ID: b.ID, Addr: b.Addr},
		Term:      b.Term,
		Leader:    b.Leader, //nolint:staticcheck // kept as sent
	}
	ch := make(chan raft.RPCResponse, 1)
	fn(raft.RPC{Command: req, RespChan: ch})
	var r raft.RPCResponse
	select {
	case r = <-ch:
	case <-t.stopped:
		return transport.RaftHeartbeatReply{Err: "raft group " + t.name + " is shutting down"}
	case <-ctx.Done():
		return transport.RaftHeartbeatReply{Err: "raft group " + t.name + " did not answer its heartbeat: " + ctx.Err().Error()}
	}
	if r.Error != nil {
		return transport.RaftHeartbeatReply{Err: r.Error.Error()}
	}
	a, ok := r.Response.(*raft.AppendEntriesResponse)
	if !ok {
		return transport.RaftHeartbeatReply{Err: fmt.Sprintf("raft group %s answered a heartbeat with %T", t.name, r.Response)}
	}
	return transport.RaftHeartbeatReply{
		Term: a.Term, LastLog: a.LastLog, Success: a.Success, NoRetryBackoff: a.NoRetryBackoff,
		Protocol: int(a.ProtocolVersion), ID: a.ID, Addr: a.Addr,
	}
}
