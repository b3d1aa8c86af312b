package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sluice-io/sluice/fsm"
	"github.com/sluice-io/sluice/transport"
)

// Replica movement. The metadata records a move (fsm/moves.go); the
// controller (metadata leader) drives it through Raft membership changes
// of the partition's group, asked of the group's leader:
//
//	adding:       each new replica joins as a non-voter (AddNonvoter), is
//	              promoted (AddVoter) once it has applied to within
//	              moveMaxLag entries of the leader's commit index;
//	removing:     recorded before the first old replica leaves; then, if
//	              the leader is to leave, leadership moves to a remaining
//	              replica, and the old replicas are removed (RemoveServer);
//	finish:       the new replica set is recorded; the leadership is
//	              moved to the preferred (first) replica when it can be.
//
// Every step is read off the group's current configuration, so a new
// controller resumes where the old one stopped. A move that makes no
// progress for ReassignStallTimeout while adding (a new replica's node
// is down, say) rolls back: the new replicas leave again and the origin
// set is recorded. The reconcile loop hosts the union of replicas and
// target while a move runs and deletes a replica only once no move or
// assignment names it.

// moveMaxLag is how far (Raft entries) a new replica may trail the
// leader's commit index and be promoted; the same bound leader balancing
// uses.
const moveMaxLag = leaderTransferMaxLag

// membershipTimeout bounds one Raft configuration change on the leader.
const membershipTimeout = 10 * time.Second

// moveLoop runs on every node; on the metadata leader it runs one driver
// per move in progress, and the optional replacement of dead nodes.
func (n *Node) moveLoop() {
	var (
		term    uint64
		lctx    context.Context // this node's leadership term; drivers stop with it
		lead    leadership
		mu      sync.Mutex
		running = map[uint64]bool{}
		dead    = map[string]time.Time{}
	)
	stop := func() {
		lead.end()
		lctx = nil
	}
	defer stop()
	for {
		changed := n.meta.Changed()
		if !n.isMetaLeader() {
			stop()
			clear(dead)
		} else if t := n.metaRG.raft.CurrentTerm(); lctx == nil || t != term {
			stop()
			// A new leader's FSM is current only after a barrier.
			if err := n.metaRG.raft.Barrier(5 * time.Second).Error(); err == nil {
				term = t
				lctx = lead.begin(n.ctx)
			}
		}
		if lctx != nil {
			for _, t := range n.meta.Topics() {
				for _, p := range t.Partitions {
					if p.Move == nil {
						continue
					}
					mu.Lock()
					busy := running[p.Move.ID]
					running[p.Move.ID] = true
					mu.Unlock()
					if busy {
						continue
					}
					topic, part, id, ctx := t.Name, p.ID, p.Move.ID, lctx
					n.goLoop("move "+topic, func() {
						n.driveMove(ctx, topic, part, id)
						mu.Lock()
						delete(running, id)
						mu.Unlock()
					})
				}
			}
			if n.cfg.ReplaceDeadNodesAfter > 0 {
				n.replaceDeadNodes(dead)
			}
		}
		if !n.sleep(time.Second, changed) {
			return
		}
	}
}

// leadership holds the context of one metadata leadership term.
type leadership struct{ cancel context.CancelFunc }

func (l *leadership) begin(parent context.Context) context.Context {
	ctx, cancel := context.WithCancel(parent)
	l.cancel = cancel
	return ctx
}

func (l *leadership) end() {
	if l.cancel != nil {
		l.cancel()
		l.cancel = nil
	}
}

// moveDriver carries one move forward on the controller.
type moveDriver struct {
	n         *Node
	topic     string
	partition int32
	id        uint64
	progress  time.Time // last configuration change or phase change
	preferred bool      // the transfer to the preferred replica was tried
	lastErr   string
}

func (n *Node) driveMove(ctx context.Context, topic string, partition int32, id uint64) {
	d := &moveDriver{n: n, topic: topic, partition: partition, id: id, progress: time.Now()}
	n.logger.Info("driving replica move", "partition", partKey{topic, partition}.String(), "move", id)
	for ctx.Err() == nil {
		changed := n.meta.Changed()
		done, progressed, err := d.step(ctx)
		if done {
			return
		}
		if progressed {
			d.progress = time.Now()
			continue
		}
		if err != nil && err.Error() != d.lastErr && ctx.Err() == nil {
			d.lastErr = err.Error()
			n.logger.Info("replica move waiting", "partition", partKey{topic, partition}.String(), "move", id, "reason", err)
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// step does at most one change. done: the move is no longer in progress
// (finished here or elsewhere); progressed: something changed.
func (d *moveDriver) step(ctx context.Context) (done, progressed bool, err error) {
	n := d.n
	t, ok := n.meta.Topic(d.topic)
	if !ok || int(d.partition) >= len(t.Partitions) {
		return true, false, nil
	}
	p := t.Partitions[d.partition]
	mv := p.Move
	if mv == nil || mv.ID != d.id {
		return true, false, nil
	}
	key := partKey{d.topic, d.partition}.String()
	goal := mv.Target
	if mv.Phase == fsm.MoveRollingBack {
		goal = mv.Origin
	}
	stalled := func(why error) (bool, bool, error) {
		if mv.Phase == fsm.MoveAdding && time.Since(d.progress) > n.cfg.ReassignStallTimeout {
			n.logger.Warn("replica move stalled; rolling back", "partition", key, "move", d.id, "reason", why)
			if err := n.applyMetaLocal(fsm.EncodeMovePhase(d.topic, t.ID, d.partition, d.id, fsm.MoveRollingBack)); err != nil {
				return false, false, fmt.Errorf("record rollback: %w", err)
			}
			return false, true, nil
		}
		return false, false, why
	}
	change := func(op, node string) (bool, bool, error) {
		req := transport.PartitionMembershipRequest{Topic: d.topic, TopicID: t.ID, Partition: d.partition, Op: op, Node: node, Addr: n.brokerAddr(node)}
		if _, err := n.callPartitionLeader(ctx, t, p, req); err != nil {
			// A change that keeps failing ends in a rollback too.
			return stalled(fmt.Errorf("%s %s: %w", op, node, err))
		}
		n.logger.Info("replica move step", "partition", key, "move", d.id, "op", op, "node", node)
		return false, true, nil
	}

	conf, err := n.callPartitionLeader(ctx, t, p, transport.PartitionMembershipRequest{Topic: d.topic, TopicID: t.ID, Partition: d.partition})
	if err != nil {
		return stalled(fmt.Errorf("partition leader: %w", err))
	}
	servers := map[string]transport.RaftServer{}
	for _, s := range conf.Servers {
		servers[s.ID] = s
	}
	alive := n.aliveSet()

	// 1. New replicas join as non-voters.
	for _, id := range goal {
		if _, ok := servers[id]; ok {
			continue
		}
		if !alive[id] {
			return stalled(fmt.Errorf("new replica %s is not alive", id))
		}
		return change(transport.MembershipAddNonvoter, id)
	}
	// 2. Each is promoted once it has caught up.
	for _, id := range goal {
		if servers[id].Voter {
			continue
		}
		if !alive[id] {
			return stalled(fmt.Errorf("new replica %s is not alive", id))
		}
		applied, err := n.appliedIndex(ctx, id, d.topic, d.partition)
		if err != nil {
			return stalled(err)
		}
		if applied+moveMaxLag < conf.CommitIndex {
			return stalled(fmt.Errorf("new replica %s is catching up (applied %d, leader's commit %d)", id, applied, conf.CommitIndex))
		}
		return change(transport.MembershipAddVoter, id)
	}
	var extra []string
	for _, s := range conf.Servers {
		if !slices.Contains(goal, s.ID) {
			extra = append(extra, s.ID)
		}
	}
	slices.Sort(extra)
	// 3. From here on the origin set cannot be restored.
	if len(extra) > 0 && mv.Phase == fsm.MoveAdding {
		if err := n.applyMetaLocal(fsm.EncodeMovePhase(d.topic, t.ID, d.partition, d.id, fsm.MoveRemoving)); err != nil {
			return false, false, fmt.Errorf("record phase: %w", err)
		}
		return false, true, nil
	}
	// 4. A leader that leaves hands its leadership over first.
	if len(extra) > 0 && !slices.Contains(goal, conf.Leader) {
		to := d.transferTarget(ctx, goal, servers, conf.CommitIndex)
		if to == "" {
			return false, false, fmt.Errorf("no caught-up voter of %v to take the leadership from %s", goal, conf.Leader)
		}
		return change(transport.MembershipTransfer, to)
	}
	// 5. Old replicas leave, one configuration change at a time.
	if len(extra) > 0 {
		return change(transport.MembershipRemove, extra[0])
	}
	// 6. The preferred replica leads, when it can (once: leader balancing
	// retries later otherwise).
	if conf.Leader != goal[0] && !d.preferred {
		d.preferred = true
		if alive[goal[0]] {
			if a, err := n.appliedIndex(ctx, goal[0], d.topic, d.partition); err == nil && a+moveMaxLag >= conf.CommitIndex {
				req := transport.PartitionMembershipRequest{Topic: d.topic, TopicID: t.ID, Partition: d.partition, Op: transport.MembershipTransfer, Node: goal[0], Addr: n.brokerAddr(goal[0])}
				if _, err := n.callPartitionLeader(ctx, t, p, req); err != nil {
					n.logger.Info("replica move: the preferred replica did not take the leadership", "partition", key, "to", goal[0], "err", err)
				}
				return false, true, nil
			}
		}
	}
	// 7. Record the result.
	if err := n.applyMetaLocal(fsm.EncodeFinishMove(d.topic, t.ID, d.partition, d.id)); err != nil {
		return false, false, fmt.Errorf("record finished move: %w", err)
	}
	if mv.Phase == fsm.MoveRollingBack {
		n.logger.Warn("replica move rolled back", "partition", key, "move", d.id, "replicas", goal)
	} else {
		n.logger.Info("replica move finished", "partition", key, "move", d.id, "replicas", goal)
	}
	return true, true, nil
}

// transferTarget picks the voter of goal to lead: the preferred one when
// it has caught up, else the first that has.
func (d *moveDriver) transferTarget(ctx context.Context, goal []string, servers map[string]transport.RaftServer, commit uint64) string {
	for _, id := range goal {
		if !servers[id].Voter {
			continue
		}
		if a, err := d.n.appliedIndex(ctx, id, d.topic, d.partition); err == nil && a+moveMaxLag >= commit {
			return id
		}
	}
	return ""
}

func (n *Node) aliveSet() map[string]bool {
	out := map[string]bool{}
	for _, m := range n.members.alive() {
		out[m.ID] = true
	}
	return out
}

// appliedIndex asks node for its replica's applied Raft index.
func (n *Node) appliedIndex(ctx context.Context, node, topic string, partition int32) (uint64, error) {
	var st *transport.StatusResponse
	if node == n.cfg.ID {
		st = n.Status()
	} else {
		addr := n.brokerAddr(node)
		if addr == "" {
			return 0, fmt.Errorf("node %s has no known address", node)
		}
		st = &transport.StatusResponse{}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := n.pool.Call(cctx, addr, transport.MethodStatus, transport.Empty{}, st)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("status of %s: %w", node, err)
		}
	}
	ps, ok := findPartition(st, topic, partition)
	if !ok {
		return 0, fmt.Errorf("%s does not host %s/%d yet", node, topic, partition)
	}
	return ps.AppliedIndex, nil
}

// callPartitionLeader sends a membership request to the partition's
// leader: the recorded one first, then every replica and move target,
// following not-leader hints.
func (n *Node) callPartitionLeader(ctx context.Context, t fsm.Topic, p fsm.PartitionAssignment, req transport.PartitionMembershipRequest) (*transport.PartitionMembershipResponse, error) {
	var ids []string
	if p.Leader != "" {
		ids = append(ids, p.Leader)
	}
	ids = append(ids, p.Replicas...)
	if p.Move != nil {
		ids = append(ids, p.Move.Target...)
	}
	var addrs []string
	for _, id := range ids {
		if a := n.brokerAddr(id); a != "" && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	var errs []error
	for i := 0; i < len(addrs); i++ {
		resp, err := n.membershipCall(ctx, addrs[i], req)
		if err == nil {
			return resp, nil
		}
		errs = append(errs, err)
		var te *transport.Error
		if errors.As(err, &te) && te.Code == transport.ErrNotLeader && te.Leader != "" && !slices.Contains(addrs[i+1:], te.Leader) && !slices.Contains(addrs[:i+1], te.Leader) {
			addrs = slices.Insert(addrs, i+1, te.Leader)
		}
		if ctx.Err() != nil {
			break
		}
		if code := transport.CodeOf(err); code != 0 && code != transport.ErrNotLeader && code != transport.ErrUnknownPartition && code != transport.ErrUnavailable {
			return nil, err // the leader answered: no point asking others
		}
	}
	return nil, fmt.Errorf("no leader of %s/%d answered: %w", t.Name, p.ID, errors.Join(errs...))
}

func (n *Node) membershipCall(ctx context.Context, addr string, req transport.PartitionMembershipRequest) (*transport.PartitionMembershipResponse, error) {
	if addr == n.cfg.Addr || addr == n.Addr() {
		return n.partitionMembership(req)
	}
	var resp transport.PartitionMembershipResponse
	cctx, cancel := context.WithTimeout(ctx, membershipTimeout+3*time.Second)
	defer cancel()
	if err := n.pool.Call(cctx, addr, transport.MethodPartitionMembership, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// partitionMembership runs on a partition's leader: it reads or changes
// the group's configuration.
func (n *Node) partitionMembership(req transport.PartitionMembershipRequest) (*transport.PartitionMembershipResponse, error) {
	r := n.replica(req.Topic, req.Partition)
	if r == nil || r.topicID != req.TopicID {
		return nil, transport.Errorf(transport.ErrUnknownPartition, "node %s hosts no replica of %s/%d (this incarnation)", n.cfg.ID, req.Topic, req.Partition)
	}
	rf := r.raft()
	if !r.isLeader() {
		addr, _ := rf.LeaderWithID()
		return nil, &transport.Error{Code: transport.ErrNotLeader, Message: fmt.Sprintf("node %s does not lead %s/%d", n.cfg.ID, req.Topic, req.Partition), Leader: string(addr)}
	}
	id, addr := raft.ServerID(req.Node), raft.ServerAddress(req.Addr)
	if req.Op != transport.MembershipRead && (req.Node == "" || req.Op != transport.MembershipRemove && req.Addr == "") {
		return nil, transport.Errorf(transport.ErrInvalidRequest, "membership %s needs a node and its address", req.Op)
	}
	var err error
	switch req.Op {
	case transport.MembershipRead:
	case transport.MembershipAddNonvoter:
		err = rf.AddNonvoter(id, addr, 0, membershipTimeout).Error()
	case transport.MembershipAddVoter:
		err = rf.AddVoter(id, addr, 0, membershipTimeout).Error()
	case transport.MembershipRemove:
		if req.Node == n.cfg.ID {
			return nil, transport.Errorf(transport.ErrInvalidRequest, "the leader of %s does not remove itself; transfer the leadership first", r.key)
		}
		err = rf.RemoveServer(id, 0, membershipTimeout).Error()
	case transport.MembershipTransfer:
		err = rf.LeadershipTransferToServer(id, addr).Error()
	default:
		return nil, transport.Errorf(transport.ErrInvalidRequest, "unknown membership operation %q", req.Op)
	}
	if err != nil {
		leader, _ := rf.LeaderWithID()
		return nil, raftErr(err, string(leader))
	}
	cf := rf.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, transport.Errorf(transport.ErrUnavailable, "configuration of %s: %v", r.key, err)
	}
	_, leader := rf.LeaderWithID()
	resp := &transport.PartitionMembershipResponse{Leader: string(leader), CommitIndex: rf.CommitIndex()}
	for _, s := range cf.Configuration().Servers {
		resp.Servers = append(resp.Servers, transport.RaftServer{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return resp, nil
}

// forwardToController sends a request to the metadata leader; ok is false
// when this node is the leader and must answer itself.
func (n *Node) forwardToController(ctx context.Context, method transport.Method, req, resp any) (ok bool, err error) {
	if n.isMetaLeader() {
		return false, nil
	}
	_, addr := n.metaLeader()
	if addr == "" {
		return true, transport.Errorf(transport.ErrUnavailable, "no metadata leader")
	}
	return true, forwardErr(n.pool.Call(ctx, addr, method, req, resp))
}

// controllerBarrier makes the controller's FSM current once per term.
func (n *Node) controllerBarrier() error {
	term := n.metaRG.raft.CurrentTerm()
	if n.opsBarrierTerm.Load() == term {
		return nil
	}
	if err := n.metaRG.raft.Barrier(5 * time.Second).Error(); err != nil {
		return raftErr(err, n.metaLeaderHint())
	}
	n.opsBarrierTerm.Store(term)
	return nil
}

// reassign starts a move on the controller after checking the request.
func (n *Node) reassign(ctx context.Context, req transport.ReassignRequest) (*transport.MoveStatus, error) {
	var resp transport.MoveStatus
	if fwd, err := n.forwardToController(ctx, transport.MethodReassign, req, &resp); fwd {
		return &resp, err
	}
	if err := n.controllerBarrier(); err != nil {
		return nil, err
	}
	t, ok := n.meta.Topic(req.Topic)
	if !ok {
		return nil, transport.Errorf(transport.ErrUnknownTopic, "topic %q does not exist", req.Topic)
	}
	if req.Partition < 0 || int(req.Partition) >= len(t.Partitions) {
		return nil, transport.Errorf(transport.ErrUnknownPartition, "topic %q has partitions 0..%d, not %d", req.Topic, len(t.Partitions)-1, req.Partition)
	}
	if err := fsm.ValidateReplicaSet(req.Replicas, t.ReplicationFactor); err != nil {
		return nil, err
	}
	p := t.Partitions[req.Partition]
	if p.Move != nil && !slices.Equal(p.Move.Target, req.Replicas) {
		return nil, transport.Errorf(transport.ErrInvalidRequest, "a move of %s/%d to %v is in progress (%s); wait for it to finish", req.Topic, req.Partition, p.Move.Target, p.Move.Phase)
	}
	alive := n.aliveSet()
	for _, id := range req.Replicas {
		if _, ok := n.meta.Broker(id); !ok {
			return nil, transport.Errorf(transport.ErrInvalidRequest, "unknown node %s (nodes: %s)", id, strings.Join(n.brokerIDs(), ", "))
		}
		if !alive[id] {
			return nil, transport.Errorf(transport.ErrInvalidRequest, "node %s is not alive", id)
		}
		if n.meta.Decommissioning(id) && !slices.Contains(p.Replicas, id) {
			return nil, transport.Errorf(transport.ErrInvalidRequest, "node %s is being decommissioned", id)
		}
	}
	if err := n.applyMetaLocal(fsm.EncodeStartMove(t.Name, t.ID, req.Partition, req.Replicas)); err != nil {
		return nil, err
	}
	return n.moveStatusLocal(req.Topic, req.Partition)
}

func (n *Node) brokerIDs() []string {
	var out []string
	for _, b := range n.meta.Brokers() {
		out = append(out, b.ID)
	}
	return out
}

func (n *Node) moveStatus(ctx context.Context, req transport.MoveStatusRequest) (*transport.MoveStatus, error) {
	var resp transport.MoveStatus
	if fwd, err := n.forwardToController(ctx, transport.MethodMoveStatus, req, &resp); fwd {
		return &resp, err
	}
	if err := n.controllerBarrier(); err != nil {
		return nil, err
	}
	return n.moveStatusLocal(req.Topic, req.Partition)
}

func (n *Node) moveStatusLocal(topic string, partition int32) (*transport.MoveStatus, error) {
	t, ok := n.meta.Topic(topic)
	if !ok {
		return nil, transport.Errorf(transport.ErrUnknownTopic, "topic %q does not exist", topic)
	}
	if partition < 0 || int(partition) >= len(t.Partitions) {
		return nil, transport.Errorf(transport.ErrUnknownPartition, "topic %q has partitions 0..%d, not %d", topic, len(t.Partitions)-1, partition)
	}
	p := t.Partitions[partition]
	st := &transport.MoveStatus{Topic: topic, Partition: partition, Replicas: p.Replicas, Leader: p.Leader}
	if p.Move != nil {
		st.InProgress, st.MoveID, st.Target, st.Phase = true, p.Move.ID, p.Move.Target, p.Move.Phase
	}
	return st, nil
}

// eligibleNodes are the nodes replicas may be placed on: registered,
// alive and not being decommissioned.
func (n *Node) eligibleNodes() []string {
	alive := n.aliveSet()
	var out []string
	for _, b := range n.meta.Brokers() {
		if alive[b.ID] && !n.meta.Decommissioning(b.ID) {
			out = append(out, b.ID)
		}
	}
	return out
}

func (n *Node) planMoves(ctx context.Context, req transport.PlanMovesRequest) (*transport.PlanMovesResponse, error) {
	var resp transport.PlanMovesResponse
	if fwd, err := n.forwardToController(ctx, transport.MethodPlanMoves, req, &resp); fwd {
		return &resp, err
	}
	if err := n.controllerBarrier(); err != nil {
		return nil, err
	}
	topics := n.meta.Topics()
	eligible := n.eligibleNodes()
	plan, err := fsm.PlanMoves(topics, eligible, n.meta.DecommissionedNodes())
	if err != nil {
		return nil, err
	}
	resp.Nodes = eligible
	for _, m := range plan {
		if req.Touching != "" && (!slices.Contains(m.From, req.Touching) || slices.Contains(m.To, req.Touching)) {
			continue
		}
		resp.Moves = append(resp.Moves, transport.PlannedMove{Topic: m.Topic, Partition: m.Partition, From: m.From, To: m.To})
	}
	for _, t := range topics {
		for _, p := range t.Partitions {
			if p.Move != nil {
				resp.Running++
			}
		}
	}
	return &resp, nil
}

// decommission marks a node (or clears the mark) and takes it out of the
// metadata group's voters; the client then moves its replicas away with
// the plan (which drains marked nodes) and polls until nothing is left.
func (n *Node) decommission(ctx context.Context, req transport.DecommissionRequest) (*transport.DecommissionResponse, error) {
	var resp transport.DecommissionResponse
	if fwd, err := n.forwardToController(ctx, transport.MethodDecommission, req, &resp); fwd {
		return &resp, err
	}
	if err := n.controllerBarrier(); err != nil {
		return nil, err
	}
	if _, ok := n.meta.Broker(req.Node); !ok {
		return nil, transport.Errorf(transport.ErrInvalidRequest, "unknown node %s (nodes: %s)", req.Node, strings.Join(n.brokerIDs(), ", "))
	}
	if req.Undo {
		if err := n.applyMetaLocal(fsm.EncodeDecommission(req.Node, false)); err != nil {
			return nil, err
		}
		return n.decommissionState(req.Node)
	}
	if !n.meta.Decommissioning(req.Node) {
		eligible := slices.DeleteFunc(n.eligibleNodes(), func(id string) bool { return id == req.Node })
		for _, t := range n.meta.Topics() {
			if t.ReplicationFactor > len(eligible) {
				return nil, transport.Errorf(transport.ErrNotEnoughReplicas, "topic %s has %d replicas per partition; without %s only %d nodes are alive and not decommissioned", t.Name, t.ReplicationFactor, req.Node, len(eligible))
			}
		}
		if err := n.applyMetaLocal(fsm.EncodeDecommission(req.Node, true)); err != nil {
			return nil, err
		}
		n.logger.Info("node marked for decommissioning", "id", req.Node)
	}
	if err := n.demoteMetaVoter(req.Node); err != nil {
		return nil, err
	}
	return n.decommissionState(req.Node)
}

// demoteMetaVoter makes a decommissioned node a non-voter of the metadata
// group (it keeps receiving metadata). When it is this node, leadership
// moves first and the caller retries with the new leader.
func (n *Node) demoteMetaVoter(id string) error {
	cf := n.metaRG.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return transport.Errorf(transport.ErrUnavailable, "metadata configuration: %v", err)
	}
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) != id || s.Suffrage != raft.Voter {
			continue
		}
		if id == n.cfg.ID {
			if err := n.metaRG.raft.LeadershipTransfer().Error(); err != nil {
				return transport.Errorf(transport.ErrUnavailable, "move the metadata leadership off %s: %v", id, err)
			}
			return &transport.Error{Code: transport.ErrNotLeader, Message: "metadata leadership moved off the node being decommissioned; retry", Leader: n.metaLeaderHint()}
		}
		if err := n.metaRG.raft.DemoteVoter(s.ID, 0, membershipTimeout).Error(); err != nil {
			return raftErr(err, n.metaLeaderHint())
		}
		n.logger.Info("decommissioned node is no longer a metadata voter", "id", id)
	}
	return nil
}

func (n *Node) decommissionState(id string) (*transport.DecommissionResponse, error) {
	resp := &transport.DecommissionResponse{Replicas: []string{}, Leads: []string{}}
	for _, t := range n.meta.Topics() {
		for _, p := range t.Partitions {
			k := partKey{t.Name, p.ID}.String()
			if p.Hosts(id) {
				resp.Replicas = append(resp.Replicas, k)
			}
			if p.Leader == id {
				resp.Leads = append(resp.Leads, k)
			}
		}
	}
	if cf := n.metaRG.raft.GetConfiguration(); cf.Error() == nil {
		for _, s := range cf.Configuration().Servers {
			if string(s.ID) == id && s.Suffrage == raft.Voter {
				resp.MetadataVoter = true
			}
		}
	}
	leader, _ := n.metaLeader()
	resp.MetadataLeader = leader == id
	return resp, nil
}

// replaceDeadNodes (ReplaceDeadNodesAfter > 0) starts moves that take the
// replicas of nodes dead for longer than that onto live ones, at most
// MaxConcurrentMoves at a time. dead remembers since when each node is
// missing from gossip, as this controller saw it.
func (n *Node) replaceDeadNodes(dead map[string]time.Time) {
	alive := n.aliveSet()
	now := time.Now()
	var drain []string
	for _, b := range n.meta.Brokers() {
		if alive[b.ID] {
			delete(dead, b.ID)
			continue
		}
		since, ok := dead[b.ID]
		if !ok {
			dead[b.ID] = now
			continue
		}
		if now.Sub(since) > n.cfg.ReplaceDeadNodesAfter {
			drain = append(drain, b.ID)
		}
	}
	if len(drain) == 0 {
		return
	}
	topics := n.meta.Topics()
	running := 0
	for _, t := range topics {
		for _, p := range t.Partitions {
			if p.Move != nil {
				running++
			}
		}
	}
	plan, err := fsm.PlanMoves(topics, n.eligibleNodes(), append(drain, n.meta.DecommissionedNodes()...))
	if err != nil {
		n.logger.Warn("replace dead nodes", "dead", drain, "err", err)
		return
	}
	for _, m := range plan {
		if running >= n.cfg.MaxConcurrentMoves {
			return
		}
		touches := false
		for _, r := range m.From {
			touches = touches || slices.Contains(drain, r)
		}
		if !touches {
			continue // only what the dead nodes held: no general rebalance
		}
		if err := n.applyMetaLocal(fsm.EncodeStartMove(m.Topic, m.TopicID, m.Partition, m.To)); err != nil {
			n.logger.Warn("replace dead node replica", "partition", partKey{m.Topic, m.Partition}.String(), "err", err)
			continue
		}
		n.logger.Info("replacing replica of dead node", "partition", partKey{m.Topic, m.Partition}.String(), "from", m.From, "to", m.To)
		running++
	}
}

// dispatchMoves handles the replica-movement methods (see dispatchOps).
func (n *Node) dispatchMoves(ctx context.Context, method transport.Method, body []byte) (any, error) {
	switch method {
	case transport.MethodReassign:
		var req transport.ReassignRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		return n.reassign(ctx, req)
	case transport.MethodMoveStatus:
		var req transport.MoveStatusRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		return n.moveStatus(ctx, req)
	case transport.MethodPlanMoves:
		var req transport.PlanMovesRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		return n.planMoves(ctx, req)
	case transport.MethodDecommission:
		var req transport.DecommissionRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		return n.decommission(ctx, req)
	case transport.MethodPartitionMembership:
		var req transport.PartitionMembershipRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		if !n.callerIsPeer(ctx) {
			return nil, transport.Errorf(transport.ErrInvalidRequest, "partition_membership is accepted from cluster nodes only")
		}
		return n.partitionMembership(req)
	}
	return nil, transport.Errorf(transport.ErrInvalidRequest, "unknown method %d", uint8(method))
}
