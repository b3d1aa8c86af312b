package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sluice-io/sluice/fsm"
	"github.com/sluice-io/sluice/transport"
)

// maxMetaVoters bounds the metadata group's voters; later nodes join as
// non-voters and still receive every metadata change.
const maxMetaVoters = 5

func (n *Node) isMetaLeader() bool {
	return n.metaRG.raft.State() == raft.Leader
}

// metaLeader returns the metadata leader's node id and RPC address.
func (n *Node) metaLeader() (id, addr string) {
	a, i := n.metaRG.raft.LeaderWithID()
	return string(i), string(a)
}

// controllerLoop runs on every node but acts only on the metadata leader:
// it adds gossip members to the metadata group and registers them as
// brokers with their current addresses.
func (n *Node) controllerLoop() {
	for {
		if n.isMetaLeader() {
			if err := n.reconcileMembers(); err != nil && n.ctx.Err() == nil {
				n.logger.Warn("reconcile members", "err", err)
			}
		}
		if !n.sleep(time.Second, n.members.Changed()) {
			return
		}
	}
}

func (n *Node) reconcileMembers() error {
	// Once per term: a new leader's FSM is current only after a barrier.
	if term := n.metaRG.raft.CurrentTerm(); term != n.barrierTerm {
		if err := n.metaRG.raft.Barrier(5 * time.Second).Error(); err != nil {
			return fmt.Errorf("metadata barrier: %w", err)
		}
		n.barrierTerm = term
	}
	cf := n.metaRG.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return fmt.Errorf("metadata configuration: %w", err)
	}
	inConf := map[string]bool{}
	nonvoters := map[string]bool{}
	voters := 0
	for _, s := range cf.Configuration().Servers {
		inConf[string(s.ID)] = true
		if s.Suffrage == raft.Voter {
			voters++
		} else {
			nonvoters[string(s.ID)] = true
		}
	}
	registered := map[string]fsm.Broker{}
	for _, b := range n.meta.Brokers() {
		registered[b.ID] = b
	}
	for _, m := range n.members.alive() {
		// A node being decommissioned stays a non-voter (decommission
		// demotes it), so it can be stopped without costing the metadata
		// group a vote; a non-voter that is not is promoted while voters
		// are missing (e.g. after a recommission).
		decom := n.meta.Decommissioning(m.ID)
		if nonvoters[m.ID] && !decom && voters < maxMetaVoters {
			if err := n.metaRG.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RPCAddr), 0, 5*time.Second).Error(); err != nil {
				return fmt.Errorf("promote %s in the metadata group: %w", m.ID, err)
			}
			voters++
			n.logger.Info("promoted node to metadata voter", "id", m.ID)
		}
		if !inConf[m.ID] {
			var f raft.IndexFuture
			if voters < maxMetaVoters && !decom {
				f = n.metaRG.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RPCAddr), 0, 5*time.Second)
				voters++
			} else {
				f = n.metaRG.raft.AddNonvoter(raft.ServerID(m.ID), raft.ServerAddress(m.RPCAddr), 0, 5*time.Second)
			}
			if err := f.Error(); err != nil {
				return fmt.Errorf("add %s to metadata group: %w", m.ID, err)
			}
			n.logger.Info("added node to metadata group", "id", m.ID)
		}
		want := fsm.Broker{ID: m.ID, RPCAddr: m.RPCAddr, HTTPAddr: m.HTTPAddr}
		if b, ok := registered[m.ID]; !ok || b != want {
			if err := n.applyMetaLocal(fsm.EncodeRegisterBroker(want)); err != nil {
				return fmt.Errorf("register broker %s: %w", m.ID, err)
			}
		}
	}
	return nil
}

// applyMeta commits a metadata command, forwarding it to the metadata
// leader when this node is not the leader.
func (n *Node) applyMeta(ctx context.Context, cmd []byte) error {
	if n.isMetaLeader() {
		return n.applyMetaLocal(cmd)
	}
	_, addr := n.metaLeader()
	if addr == "" {
		return transport.Errorf(transport.ErrUnavailable, "no metadata leader")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return forwardErr(n.pool.Call(ctx, addr, transport.MethodMetaApply, transport.MetaApplyRequest{Command: cmd}, nil))
}

// forwardErr makes a forward that never reached the metadata leader (it
// is gone; an election is due) retriable for the client instead of an
// unknown error.
func forwardErr(err error) error {
	if err != nil && errors.Is(err, transport.ErrNotSent) {
		return transport.Errorf(transport.ErrUnavailable, "metadata leader unreachable: %v", err)
	}
	return err
}

func (n *Node) applyMetaLocal(cmd []byte) error {
	f := n.metaRG.raft.Apply(cmd, 10*time.Second)
	if err := f.Error(); err != nil {
		return raftErr(err, n.metaLeaderHint())
	}
	if err, ok := f.Response().(error); ok && err != nil {
		return err
	}
	return nil
}

func (n *Node) metaLeaderHint() string {
	_, addr := n.metaLeader()
	return addr
}

// raftErr maps a hashicorp/raft error to a client-visible one.
func raftErr(err error, leader string) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return &transport.Error{Code: transport.ErrNotLeader, Message: "not the leader", Leader: leader}
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// The entry may still commit under the next leader.
		return &transport.Error{Code: transport.ErrTimeout, Message: "leadership lost before commit; outcome unknown", Leader: leader}
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return transport.Errorf(transport.ErrTimeout, "raft did not accept the entry in time")
	case errors.Is(err, raft.ErrRaftShutdown):
		return transport.Errorf(transport.ErrShuttingDown, "node is shutting down")
	}
	return transport.Errorf(transport.ErrUnknown, "raft: %v", err)
}

// createTopic runs on the metadata leader: choose replicas among live
// registered brokers and commit the topic.
func (n *Node) createTopic(ctx context.Context, req transport.CreateTopicRequest) error {
	if err := fsm.ValidateTopicName(req.Name); err != nil {
		return err
	}
	if req.Partitions < 1 || req.Partitions > 10000 {
		return transport.Errorf(transport.ErrInvalidRequest, "partitions must be between 1 and 10000, got %d", req.Partitions)
	}
	if req.ReplicationFactor < 1 {
		return transport.Errorf(transport.ErrInvalidRequest, "replication factor must be at least 1, got %d", req.ReplicationFactor)
	}
	if !n.isMetaLeader() {
		_, addr := n.metaLeader()
		if addr == "" {
			return transport.Errorf(transport.ErrUnavailable, "no metadata leader")
		}
		return forwardErr(n.pool.Call(ctx, addr, transport.MethodCreateTopic, req, nil))
	}
	// A new leader applies its predecessor's last entries only after a
	// barrier: until then its view of brokers and topics may be stale.
	if err := n.metaRG.raft.Barrier(5 * time.Second).Error(); err != nil {
		return raftErr(err, n.metaLeaderHint())
	}
	if _, ok := n.meta.Topic(req.Name); ok {
		return transport.Errorf(transport.ErrTopicExists, "topic %q already exists", req.Name)
	}
	// Alive, registered and not being decommissioned.
	live := n.eligibleNodes()
	assign, err := fsm.Assign(live, n.meta.Topics(), req.Partitions, req.ReplicationFactor)
	if err != nil {
		return err
	}
	t := fsm.Topic{
		Name:              req.Name,
		ReplicationFactor: req.ReplicationFactor,
		RetentionBytes:    req.RetentionBytes,
		RetentionMs:       req.RetentionMs,
		Partitions:        assign,
	}
	return n.applyMetaLocal(fsm.EncodeCreateTopic(t))
}

func (n *Node) deleteTopic(ctx context.Context, name string) error {
	if _, ok := n.meta.Topic(name); !ok && n.isMetaLeader() {
		return transport.Errorf(transport.ErrUnknownTopic, "topic %q does not exist", name)
	}
	return n.applyMeta(ctx, fsm.EncodeDeleteTopic(name))
}
