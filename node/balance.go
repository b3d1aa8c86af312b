package node

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sluice-io/sluice/fsm"
	"github.com/sluice-io/sluice/transport"
)

// Leader balancing (Kafka's auto.leader.rebalance.enable): the preferred
// leader of a partition is its first replica. After a failover the
// leadership stays where the election put it; the controller moves it
// back with Raft leadership transfer, asked of the current leader.

// leaderTransferMaxLag is how many Raft entries a preferred replica may
// trail the leader's commit index and still receive the leadership. The
// transfer itself replicates the rest before the target starts its
// election; the bound keeps a replica that is catching up (after a restart
// or a snapshot install) from being asked to lead.
const leaderTransferMaxLag = 256

// leaderTransferTimeout bounds one transfer, asked of the leader's node.
const leaderTransferTimeout = 5 * time.Second

// leaderBalanceLoop runs on every node; only the metadata leader acts.
func (n *Node) leaderBalanceLoop() {
	if n.cfg.LeaderRebalanceDisabled {
		return
	}
	for n.sleep(n.cfg.LeaderImbalanceCheckInterval) {
		if !n.isMetaLeader() {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.LeaderImbalanceCheckInterval+time.Minute)
		resp, err := n.rebalanceLeadersLocal(ctx, false)
		cancel()
		if err != nil {
			if n.ctx.Err() == nil {
				n.logger.Warn("leader balance", "err", err)
			}
			continue
		}
		for _, m := range resp.Moves {
			if m.Moved {
				n.logger.Info("moved partition leadership to its preferred replica", "topic", m.Topic, "partition", m.Partition, "from", m.From, "to", m.To)
			} else {
				n.logger.Debug("leadership not moved", "topic", m.Topic, "partition", m.Partition, "to", m.To, "reason", m.Reason)
			}
		}
	}
}

// rebalanceLeaders runs on the controller; other nodes forward.
func (n *Node) rebalanceLeaders(ctx context.Context, req transport.RebalanceLeadersRequest) (*transport.RebalanceLeadersResponse, error) {
	if !n.isMetaLeader() {
		_, addr := n.metaLeader()
		if addr == "" {
			return nil, transport.Errorf(transport.ErrUnavailable, "no metadata leader")
		}
		var resp transport.RebalanceLeadersResponse
		if err := n.pool.Call(ctx, addr, transport.MethodRebalanceLeaders, req, &resp); err != nil {
			return nil, forwardErr(err)
		}
		return &resp, nil
	}
	return n.rebalanceLeadersLocal(ctx, req.All)
}

type partRef struct {
	topic fsm.Topic
	p     fsm.PartitionAssignment
}

// imbalanced picks the partitions to move. With all, every partition not
// led by its preferred replica; otherwise, as Kafka does, those of the
// nodes whose share of preferred partitions led by someone else exceeds
// the configured percentage.
func imbalanced(topics []fsm.Topic, all bool, percentage int) []partRef {
	preferred := map[string]int{}
	notLed := map[string][]partRef{}
	var out []partRef
	for _, t := range topics {
		for _, p := range t.Partitions {
			// A move in progress places the leadership itself.
			if len(p.Replicas) == 0 || p.Move != nil {
				continue
			}
			pref := p.Replicas[0]
			preferred[pref]++
			if p.Leader == pref {
				continue
			}
			if all {
				out = append(out, partRef{t, p})
			} else {
				notLed[pref] = append(notLed[pref], partRef{t, p})
			}
		}
	}
	if all {
		return out
	}
	for _, t := range topics { // deterministic order: topics, then partitions
		for _, p := range t.Partitions {
			if len(p.Replicas) == 0 || p.Move != nil || p.Leader == p.Replicas[0] {
				continue
			}
			pref := p.Replicas[0]
			if len(notLed[pref])*100 > percentage*preferred[pref] {
				out = append(out, partRef{t, p})
			}
		}
	}
	return out
}

func (n *Node) rebalanceLeadersLocal(ctx context.Context, all bool) (*transport.RebalanceLeadersResponse, error) {
	// A new controller's FSM is current only after a barrier.
	if err := n.metaRG.raft.Barrier(5 * time.Second).Error(); err != nil {
		return nil, raftErr(err, n.metaLeaderHint())
	}
	alive := map[string]bool{}
	for _, m := range n.members.Members() {
		if m.State == "alive" {
			alive[m.ID] = true
		}
	}
	statuses := map[string]*transport.StatusResponse{}
	status := func(id string) (*transport.StatusResponse, error) {
		if st, ok := statuses[id]; ok {
			return st, nil
		}
		var st *transport.StatusResponse
		if id == n.cfg.ID {
			st = n.Status()
		} else {
			addr := n.brokerAddr(id)
			if addr == "" {
				return nil, fmt.Errorf("node %s has no known address", id)
			}
			st = &transport.StatusResponse{}
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := n.pool.Call(cctx, addr, transport.MethodStatus, transport.Empty{}, st)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("status of %s: %w", id, err)
			}
		}
		statuses[id] = st
		return st, nil
	}
	resp := &transport.RebalanceLeadersResponse{}
	for _, ref := range imbalanced(n.meta.Topics(), all, n.cfg.LeaderImbalancePerNodePercentage) {
		if ctx.Err() != nil {
			return resp, ctx.Err()
		}
		m := transport.LeaderMove{Topic: ref.topic.Name, Partition: ref.p.ID, From: ref.p.Leader, To: ref.p.Replicas[0]}
		m.Reason = n.movePreferred(ctx, ref, alive, status)
		m.Moved = m.Reason == ""
		if m.Moved {
			// The new leader reports itself; a status taken before the
			// move must not be used for the next partitions' checks.
			delete(statuses, m.From)
			delete(statuses, m.To)
		}
		resp.Moves = append(resp.Moves, m)
	}
	return resp, nil
}

func findPartition(st *transport.StatusResponse, topic string, partition int32) (transport.PartitionStatus, bool) {
	for _, p := range st.Partitions {
		if p.Topic == topic && p.Partition == partition {
			return p, true
		}
	}
	return transport.PartitionStatus{}, false
}

// movePreferred transfers one partition's leadership to its preferred
// replica; it returns why it did not, or "".
func (n *Node) movePreferred(ctx context.Context, ref partRef, alive map[string]bool, status func(string) (*transport.StatusResponse, error)) string {
	from, to := ref.p.Leader, ref.p.Replicas[0]
	if from == "" {
		return "no leader known"
	}
	if !alive[to] {
		return "preferred replica " + to + " is not alive"
	}
	lst, err := status(from)
	if err != nil {
		return err.Error()
	}
	lp, ok := findPartition(lst, ref.topic.Name, ref.p.ID)
	if !ok || lp.Role != "leader" {
		return "leader " + from + " no longer leads it"
	}
	pst, err := status(to)
	if err != nil {
		return err.Error()
	}
	pp, ok := findPartition(pst, ref.topic.Name, ref.p.ID)
	if !ok {
		return "preferred replica " + to + " does not host it yet"
	}
	if pp.AppliedIndex+leaderTransferMaxLag < lp.CommitIndex {
		return fmt.Sprintf("preferred replica %s is behind (applied %d, leader's commit %d)", to, pp.AppliedIndex, lp.CommitIndex)
	}
	req := transport.TransferLeadershipRequest{Topic: ref.topic.Name, TopicID: ref.topic.ID, Partition: ref.p.ID, To: to}
	if from == n.cfg.ID {
		err = n.transferLeadership(req)
	} else {
		addr := n.brokerAddr(from)
		cctx, cancel := context.WithTimeout(ctx, leaderTransferTimeout+2*time.Second)
		err = n.pool.Call(cctx, addr, transport.MethodTransferLeadership, req, &transport.Empty{})
		cancel()
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// transferLeadership runs on the partition's leader.
func (n *Node) transferLeadership(req transport.TransferLeadershipRequest) error {
	r := n.replica(req.Topic, req.Partition)
	if r == nil || r.topicID != req.TopicID {
		return transport.Errorf(transport.ErrUnknownPartition, "node %s hosts no replica of %s/%d (this incarnation)", n.cfg.ID, req.Topic, req.Partition)
	}
	if !r.isLeader() {
		addr, _ := r.raft().LeaderWithID()
		return &transport.Error{Code: transport.ErrNotLeader, Message: fmt.Sprintf("node %s does not lead %s/%d", n.cfg.ID, req.Topic, req.Partition), Leader: string(addr)}
	}
	cf := r.raft().GetConfiguration()
	if err := cf.Error(); err != nil {
		return transport.Errorf(transport.ErrUnavailable, "configuration of %s: %v", r.key, err)
	}
	var target *raft.Server
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) == req.To {
			target = &s
		}
	}
	if target == nil || target.Suffrage != raft.Voter {
		return transport.Errorf(transport.ErrInvalidRequest, "%s is not a voter of %s", req.To, r.key)
	}
	if err := r.raft().LeadershipTransferToServer(target.ID, target.Address).Error(); err != nil {
		return transport.Errorf(transport.ErrUnavailable, "leadership transfer of %s to %s: %v", r.key, req.To, err)
	}
	return nil
}

// dispatchOps handles the cluster-operation methods (see dispatch).
func (n *Node) dispatchOps(ctx context.Context, method transport.Method, body []byte) (any, error) {
	switch method {
	case transport.MethodRebalanceLeaders:
		var req transport.RebalanceLeadersRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		return n.rebalanceLeaders(ctx, req)
	case transport.MethodTransferLeadership:
		var req transport.TransferLeadershipRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		if !n.callerIsPeer(ctx) {
			return nil, transport.Errorf(transport.ErrInvalidRequest, "transfer_leadership is accepted from cluster nodes only")
		}
		return transport.Empty{}, n.transferLeadership(req)
	case transport.MethodAlterPartitions:
		var req transport.AlterPartitionsRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		return transport.Empty{}, n.alterPartitions(ctx, req)
	}
	return n.dispatchMoves(ctx, method, body)
}
