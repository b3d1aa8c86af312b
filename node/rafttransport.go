package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// groupTransport is one Raft group's raft.Transport. Every group of a node
// shares the node's pooled connection to each peer: an RPC is one `raft`
// request naming its group (rpcs below), heartbeats go through the
// heartbeat hub, and only InstallSnapshot, a stream, uses hashicorp/raft's
// NetworkTransport over a Raft connection of its own on the node's port.
// hashicorp's transport alone kept a pool of connections per group and
// peer, each with 512 KiB of buffers: with a thousand partitions that was
// over 2 GiB and fifteen thousand sockets a node.
//
// Replication is not pipelined (AppendEntriesPipeline is refused): a
// follower then has at most one AppendEntries of a group in flight, so RPCs
// that each run in their own goroutine on the receiving node cannot
// overtake one another. hashicorp/raft's pipeline kept at most two in
// flight anyway, and one AppendEntries carries every entry waiting (up to
// MaxAppendEntries).
type groupTransport struct {
	net  *raft.NetworkTransport // InstallSnapshot only
	name string
	hub  *heartbeatHub
	call raftCaller

	consume chan raft.RPC
	// ctx ends when the group stops; outgoing RPCs derive from it.
	ctx    context.Context
	cancel context.CancelFunc

	mu          sync.Mutex
	onHeartbeat func(raft.RPC)
	// stopped is closed before the group's Raft shuts down: Raft then
	// drops RPCs without answering them.
	stopped  chan struct{}
	stopOnce sync.Once
	// abstain is set while the group recovers a damaged log
	// (logcheck.go): it neither asks for votes nor grants them.
	abstain atomic.Bool
}

// errAbstains answers election RPCs while the group recovers a damaged
// log: its own log may lack entries it acknowledged, so its vote could
// elect a leader without them.
var errAbstains = errors.New("replica is recovering a damaged raft log: it takes no part in elections")

// raftCaller sends one Raft RPC envelope to a node's RPC address.
type raftCaller func(ctx context.Context, addr string, req *raftRPC, resp *raftRPCResponse) error

// raftRPC is the body of a transport.MethodRaft request: exactly one of the
// requests is set.
type raftRPC struct {
	Group      string                      `msgpack:"g"`
	Append     *raft.AppendEntriesRequest  `msgpack:"ae,omitempty"`
	Vote       *raft.RequestVoteRequest    `msgpack:"rv,omitempty"`
	PreVote    *raft.RequestPreVoteRequest `msgpack:"pv,omitempty"`
	TimeoutNow *raft.TimeoutNowRequest     `msgpack:"tn,omitempty"`
}

// raftRPCResponse answers a raftRPC with the matching response, or Err
// when the group failed it (the transport error Raft sees).
type raftRPCResponse struct {
	Append     *raft.AppendEntriesResponse  `msgpack:"ae,omitempty"`
	Vote       *raft.RequestVoteResponse    `msgpack:"rv,omitempty"`
	PreVote    *raft.RequestPreVoteResponse `msgpack:"pv,omitempty"`
	TimeoutNow *raft.TimeoutNowResponse     `msgpack:"tn,omitempty"`
	Err        string                       `msgpack:"e,omitempty"`
}

var (
	_ raft.Transport   = (*groupTransport)(nil)
	_ raft.WithPreVote = (*groupTransport)(nil)
	_ raft.WithClose   = (*groupTransport)(nil)
)

func newGroupTransport(nt *raft.NetworkTransport, name string, hub *heartbeatHub, call raftCaller) *groupTransport {
	ctx, cancel := context.WithCancel(context.Background())
	t := &groupTransport{net: nt, name: name, hub: hub, call: call, consume: make(chan raft.RPC),
		ctx: ctx, cancel: cancel, stopped: make(chan struct{})}
	// Snapshots arrive on the network transport: pass them on.
	go func() {
		for {
			select {
			case rpc := <-nt.Consumer():
				select {
				case t.consume <- rpc:
				case <-t.stopped:
					return
				}
			case <-t.stopped:
				return
			}
		}
	}()
	hub.register(name, t)
	return t
}

// stop leaves the hub: RPCs for the group are refused from now on.
func (t *groupTransport) stop() {
	t.stopOnce.Do(func() {
		t.hub.unregister(t.name, t)
		close(t.stopped)
		t.cancel()
	})
}

func (t *groupTransport) Consumer() <-chan raft.RPC     { return t.consume }
func (t *groupTransport) LocalAddr() raft.ServerAddress { return t.net.LocalAddr() }

func (t *groupTransport) EncodePeer(id raft.ServerID, addr raft.ServerAddress) []byte {
	return t.net.EncodePeer(id, addr)
}

func (t *groupTransport) DecodePeer(b []byte) raft.ServerAddress { return t.net.DecodePeer(b) }

// AppendEntriesPipeline is refused, so Raft replicates one AppendEntries
// at a time per follower (see the type's comment).
func (t *groupTransport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
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

func (t *groupTransport) AppendEntries(_ raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if isHeartbeat(args) {
		return t.hub.heartbeat(target, t.name, args, resp)
	}
	var r raftRPCResponse
	if err := t.rpc(target, &raftRPC{Append: args}, &r); err != nil {
		return err
	}
	if r.Append == nil {
		return errors.New("raft rpc: no AppendEntries response")
	}
	*resp = *r.Append
	return nil
}

func (t *groupTransport) RequestVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	if t.abstain.Load() {
		return errAbstains
	}
	var r raftRPCResponse
	if err := t.rpc(target, &raftRPC{Vote: args}, &r); err != nil {
		return err
	}
	if r.Vote == nil {
		return errors.New("raft rpc: no RequestVote response")
	}
	*resp = *r.Vote
	return nil
}

func (t *groupTransport) RequestPreVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	if t.abstain.Load() {
		return errAbstains
	}
	var r raftRPCResponse
	if err := t.rpc(target, &raftRPC{PreVote: args}, &r); err != nil {
		return err
	}
	if r.PreVote == nil {
		return errors.New("raft rpc: no RequestPreVote response")
	}
	*resp = *r.PreVote
	return nil
}

func (t *groupTransport) TimeoutNow(_ raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	var r raftRPCResponse
	if err := t.rpc(target, &raftRPC{TimeoutNow: args}, &r); err != nil {
		return err
	}
	if r.TimeoutNow == nil {
		return errors.New("raft rpc: no TimeoutNow response")
	}
	*resp = *r.TimeoutNow
	return nil
}

// InstallSnapshot streams the snapshot over a Raft connection of its own.
func (t *groupTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	return t.net.InstallSnapshot(id, target, args, resp, data)
}

// raftEnvelopeBytes bounds what an AppendEntries RPC adds to its entries'
// data: field names and numbers of at most 256 entries, the header.
const raftEnvelopeBytes = 64 << 10

// raftRPCTimeout bounds one Raft RPC, as NetworkTransport's I/O deadline
// did (raftIOTimeout).
const raftRPCTimeout = raftIOTimeout

// rpc sends req to target on its own. Only heartbeats are coalesced: the
// others wait for the receiving group's main loop (a vote behind a disk
// write), and a batch answers no faster than its slowest entry.
func (t *groupTransport) rpc(target raft.ServerAddress, req *raftRPC, resp *raftRPCResponse) error {
	req.Group = t.name
	ctx, cancel := context.WithTimeout(t.ctx, raftRPCTimeout)
	defer cancel()
	if err := t.call(ctx, string(target), req, resp); err != nil {
		return fmt.Errorf("raft rpc to %s: %w", target, err)
	}
	if resp.Err != "" {
		return fmt.Errorf("raft rpc to %s: %s", target, resp.Err)
	}
	return nil
}

// serve hands a peer's RPC to the group's Raft and waits for its answer.
func (t *groupTransport) serve(ctx context.Context, req *raftRPC) *raftRPCResponse {
	ctx, cancel := context.WithTimeout(ctx, raftRPCWait)
	defer cancel()
	var cmd any
	switch {
	case req.Append != nil:
		cmd = req.Append
	case req.Vote != nil:
		cmd = req.Vote
	case req.PreVote != nil:
		cmd = req.PreVote
	case req.TimeoutNow != nil:
		cmd = req.TimeoutNow
	default:
		return &raftRPCResponse{Err: "empty raft rpc"}
	}
	if req.Append == nil && t.abstain.Load() {
		return &raftRPCResponse{Err: errAbstains.Error()}
	}
	ch := make(chan raft.RPCResponse, 1)
	select {
	case t.consume <- raft.RPC{Command: cmd, RespChan: ch}:
	case <-t.stopped:
		return &raftRPCResponse{Err: "raft group " + t.name + " is shutting down"}
	case <-ctx.Done():
		return &raftRPCResponse{Err: "raft group " + t.name + " busy: " + ctx.Err().Error()}
	}
	var r raft.RPCResponse
	select {
	case r = <-ch:
	case <-t.stopped:
		return &raftRPCResponse{Err: "raft group " + t.name + " is shutting down"}
	case <-ctx.Done():
		return &raftRPCResponse{Err: "raft group " + t.name + " did not answer: " + ctx.Err().Error()}
	}
	if r.Error != nil {
		return &raftRPCResponse{Err: r.Error.Error()}
	}
	var out raftRPCResponse
	switch v := r.Response.(type) {
	case *raft.AppendEntriesResponse:
		out.Append = v
	case *raft.RequestVoteResponse:
		out.Vote = v
	case *raft.RequestPreVoteResponse:
		out.PreVote = v
	case *raft.TimeoutNowResponse:
		out.TimeoutNow = v
	default:
		out.Err = fmt.Sprintf("raft group %s answered with %T", t.name, r.Response)
	}
	return &out
}

// SetHeartbeatHandler is how Raft registers its heartbeat fast path; the
// hub calls it for the heartbeats that arrive coalesced.
func (t *groupTransport) SetHeartbeatHandler(cb func(raft.RPC)) {
	t.net.SetHeartbeatHandler(cb)
	t.mu.Lock()
	t.onHeartbeat = cb
	t.mu.Unlock()
}

// Close leaves the hub and closes the network transport.
func (t *groupTransport) Close() error {
	t.stop()
	return t.net.Close()
}

// takeHeartbeat runs one heartbeat through Raft's fast path. Raft answers
// on the RPC's channel, or not at all once it shut down.
func (t *groupTransport) takeHeartbeat(ctx context.Context, b raftHeartbeat) raftHeartbeatReply {
	t.mu.Lock()
	fn := t.onHeartbeat
	t.mu.Unlock()
	if fn == nil {
		return raftHeartbeatReply{Err: "raft group " + t.name + " is not running"}
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
		return raftHeartbeatReply{Err: "raft group " + t.name + " is shutting down"}
	case <-ctx.Done():
		return raftHeartbeatReply{Err: "raft group " + t.name + " did not answer its heartbeat: " + ctx.Err().Error()}
	}
	if r.Error != nil {
		return raftHeartbeatReply{Err: r.Error.Error()}
	}
	a, ok := r.Response.(*raft.AppendEntriesResponse)
	if !ok {
		return raftHeartbeatReply{Err: fmt.Sprintf("raft group %s answered a heartbeat with %T", t.name, r.Response)}
	}
	return raftHeartbeatReply{
		Term: a.Term, LastLog: a.LastLog, Success: a.Success, NoRetryBackoff: a.NoRetryBackoff,
		Protocol: int(a.ProtocolVersion), ID: a.ID, Addr: a.Addr,
	}
}

// raftRPCWait bounds how long a peer's RPC waits for a busy group; Raft's
// own deadline on the sending side is raftRPCTimeout.
const raftRPCWait = 5 * time.Second
