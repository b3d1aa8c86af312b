package node

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/sluice-io/sluice/fsm"
	"github.com/sluice-io/sluice/internal/failpoint"
	"github.com/sluice-io/sluice/transport"
)

// handleRPC dispatches one client or node-to-node request.
func (n *Node) handleRPC(ctx context.Context, method transport.Method, body []byte) (any, error) {
	start := time.Now()
	resp, err := n.dispatch(ctx, method, body)
	n.metrics.observeRPC(method, time.Since(start), err)
	return resp, err
}

func decode(body []byte, v any) error {
	if err := msgpack.Unmarshal(body, v); err != nil {
		return transport.Errorf(transport.ErrInvalidRequest, "malformed request body: %v", err)
	}
	return nil
}

func (n *Node) dispatch(ctx context.Context, method transport.Method, body []byte) (any, error) {
	switch method {
	case transport.MethodMetadata:
		var req transport.MetadataRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		return n.metadata(req)
	case transport.MethodCreateTopic:
		var req transport.CreateTopicRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		return transport.Empty{}, n.createTopic(ctx, req)
	case transport.MethodDeleteTopic:
		var req transport.DeleteTopicRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		return transport.Empty{}, n.deleteTopic(ctx, req.Name)
	case transport.MethodProduce:
		var req transport.ProduceRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		return n.produce(ctx, req)
	case transport.MethodFetch:
		var req transport.FetchRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		return n.fetch(ctx, req)
	case transport.MethodOffsetCommit:
		var req transport.OffsetCommitRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		return transport.Empty{}, n.offsetCommit(req)
	case transport.MethodOffsetFetch:
		var req transport.OffsetFetchRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		return n.offsetFetch(req)
	case transport.MethodStatus:
		return n.Status(), nil
	case transport.MethodMetaApply:
		var req transport.MetaApplyRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		if !n.callerIsPeer(ctx) {
			return nil, transport.Errorf(transport.ErrInvalidRequest, "meta_apply is accepted from cluster nodes only")
		}
		if !n.isMetaLeader() {
			return nil, &transport.Error{Code: transport.ErrNotLeader, Message: "not the metadata leader", Leader: n.metaLeaderHint()}
		}
		return transport.Empty{}, n.applyMetaLocal(req.Command)
	case transport.MethodRaftHeartbeats:
		var req raftBatch
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		// Heartbeats speak for Raft: the same peers as Raft connections.
		if !n.callerIsPeer(ctx) {
			return nil, transport.Errorf(transport.ErrInvalidRequest, "raft_heartbeats is accepted from cluster nodes only")
		}
		return n.heartbeats.deliver(ctx, &req), nil
	case transport.MethodRaft:
		var req raftRPC
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		// Raft RPCs are accepted from the same peers as Raft connections.
		if !n.callerIsPeer(ctx) {
			return nil, transport.Errorf(transport.ErrInvalidRequest, "raft is accepted from cluster nodes only")
		}
		t := n.heartbeats.group(req.Group)
		if t == nil {
			return &raftRPCResponse{Err: "unknown raft group " + req.Group}, nil
		}
		return t.serve(ctx, &req), nil
	case transport.MethodPing:
		return transport.Empty{}, nil
	case transport.MethodReadFrames:
		var req transport.ReadFramesRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		return n.readFrames(ctx, req)
	}
	if resp, err, ok := n.dispatchGroup(ctx, method, body); ok {
		return resp, err
	}
	return n.dispatchOps(ctx, method, body)
}

// metadata answers from the local metadata FSM; for partitions hosted
// here the live Raft leader is fresher than the recorded one.
func (n *Node) metadata(req transport.MetadataRequest) (*transport.MetadataResponse, error) {
	resp := &transport.MetadataResponse{}
	resp.MetadataLeader, _ = n.metaLeader()
	// Only registered brokers: a client may route to them, and `cluster
	// wait` counts them to decide that topics can be created.
	for _, b := range n.brokerView() {
		if n.brokerAddr(b.ID) != "" {
			resp.Brokers = append(resp.Brokers, b)
		}
	}
	var topics []fsm.Topic
	if len(req.Topics) == 0 {
		topics = n.meta.Topics()
	} else {
		for _, name := range req.Topics {
			t, ok := n.meta.Topic(name)
			if !ok {
				return nil, transport.Errorf(transport.ErrUnknownTopic, "topic %q does not exist", name)
			}
			topics = append(topics, t)
		}
	}
	for _, t := range topics {
		tm := transport.TopicMeta{
			Name:              t.Name,
			ReplicationFactor: t.ReplicationFactor,
			RetentionBytes:    t.RetentionBytes,
			RetentionMs:       t.RetentionMs,
		}
		for _, p := range t.Partitions {
			pm := transport.PartitionMeta{ID: p.ID, Leader: p.Leader, Replicas: append([]string(nil), p.Replicas...), HighWatermark: -1}
			if p.Move != nil {
				pm.MoveTarget, pm.MovePhase = append([]string(nil), p.Move.Target...), p.Move.Phase
			}
			if r := n.replica(t.Name, p.ID); r != nil {
				if _, id := r.raft().LeaderWithID(); id != "" {
					pm.Leader = string(id)
				}
				if r.isLeader() {
					pm.HighWatermark = r.fsm.HighWatermark()
				}
			}
			tm.Partitions = append(tm.Partitions, pm)
		}
		resp.Topics = append(resp.Topics, tm)
	}
	return resp, nil
}

// leaderReplica finds the local replica and checks that it leads, or
// explains where the leader is.
func (n *Node) leaderReplica(topic string, partition int32, allowFollower bool) (*replica, error) {
	r := n.replica(topic, partition)
	if r == nil {
		t, ok := n.meta.Topic(topic)
		if !ok {
			return nil, transport.Errorf(transport.ErrUnknownTopic, "topic %q does not exist", topic)
		}
		if partition < 0 || int(partition) >= len(t.Partitions) {
			return nil, transport.Errorf(transport.ErrUnknownPartition, "topic %q has partitions 0..%d, not %d", topic, len(t.Partitions)-1, partition)
		}
		leader := t.Partitions[partition].Leader
		return nil, &transport.Error{Code: transport.ErrNotLeader, Message: fmt.Sprintf("node %s hosts no replica of %s/%d", n.cfg.ID, topic, partition), Leader: n.brokerAddr(leader)}
	}
	if allowFollower || r.isLeader() {
		return r, nil
	}
	addr, id := r.raft().LeaderWithID()
	if id == "" {
		return nil, transport.Errorf(transport.ErrUnavailable, "partition %s/%d has no leader right now", topic, partition)
	}
	return nil, &transport.Error{Code: transport.ErrNotLeader, Message: fmt.Sprintf("leader of %s/%d is %s", topic, partition, id), Leader: string(addr)}
}

func (n *Node) produce(ctx context.Context, req transport.ProduceRequest) (*transport.ProduceResponse, error) {
	if len(req.Batch) > n.cfg.MaxBatchBytes {
		return nil, transport.Errorf(transport.ErrRecordTooLarge, "batch of %d bytes exceeds the limit of %d bytes", len(req.Batch), n.cfg.MaxBatchBytes)
	}
	r, err := n.leaderReplica(req.Topic, req.Partition, false)
	if err != nil {
		return nil, err
	}
	if err := n.checkFreeSpace(); err != nil {
		return nil, err
	}
	// Reject a bad batch before it enters the Raft log.
	if err := fsm.ValidateProduce(req.Batch); err != nil {
		return nil, err
	}
	timeout := time.Duration(req.TimeoutMs) * time.Millisecond
	if timeout <= 0 || timeout > 30*time.Second {
		timeout = 10 * time.Second
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	if failpoint.Enabled(failpoint.AckBeforeCommit) {
		return ackBeforeCommit(r, req.Batch, timeout)
	}
	// Batches pipelined on one connection enter the Raft log in the order
	// they were sent, so their producer sequences arrive in order.
	leave, err := transport.InOrder(ctx)
	if err != nil {
		return nil, err
	}
	f := r.raft().Apply(fsm.EncodeAppend(req.Batch), timeout)
	leave()
	if err := f.Error(); err != nil {
		addr, _ := r.raft().LeaderWithID()
		return nil, raftErr(err, string(addr))
	}
	switch res := f.Response().(type) {
	case *fsm.AppendResult:
		n.metrics.produced(r.key, len(req.Batch))
		return &transport.ProduceResponse{BaseOffset: res.BaseOffset, LastOffset: res.LastOffset}, nil
	case error:
		return nil, res
	}
	return nil, transport.Errorf(transport.ErrUnknown, "unexpected apply result %T", f.Response())
}

// maxFetchWait bounds a long poll so a stuck client cannot pin a handler.
const maxFetchWait = 30 * time.Second

func (n *Node) fetch(ctx context.Context, req transport.FetchRequest) (*transport.FetchResponse, error) {
	r, err := n.leaderReplica(req.Topic, req.Partition, req.FromReplica)
	if err != nil {
		return nil, err
	}
	if !req.FromReplica {
		if err := n.waitReady(ctx, r); err != nil {
			return nil, err
		}
	}
	if req.Linearizable {
		// A barrier commits through the current term and applies every
		// earlier entry: the read then reflects every acknowledged append.
		if err := r.raft().Barrier(5 * time.Second).Error(); err != nil {
			addr, _ := r.raft().LeaderWithID()
			return nil, raftErr(err, string(addr))
		}
	}
	offset := req.Offset
	switch offset {
	case transport.OffsetEarliest:
		offset = r.fsm.StartOffset()
	case transport.OffsetLatest:
		offset = r.fsm.HighWatermark()
	}
	maxBytes := int(req.MaxBytes)
	if maxBytes <= 0 || maxBytes > n.cfg.MaxFrameBytes/2 {
		maxBytes = min(1<<20, n.cfg.MaxFrameBytes/2)
	}
	wait := min(time.Duration(req.MaxWaitMs)*time.Millisecond, maxFetchWait)
	if wait > 0 && offset == r.fsm.HighWatermark() {
		changed := r.fsm.Changed()
		if offset == r.fsm.HighWatermark() {
			t := time.NewTimer(wait)
			select {
			case <-changed:
			case <-t.C:
			case <-ctx.Done():
			case <-r.done:
			}
			t.Stop()
		}
	}
	batches, err := r.fsm.Read(offset, maxBytes, int(req.MaxRecords))
	if err != nil {
		return nil, err
	}
	if failpoint.Enabled(failpoint.ServeBeyondCommit) {
		batches = beyondCommit(r, offset, batches)
	}
	size := 0
	for _, b := range batches {
		size += len(b)
	}
	n.metrics.fetched(r.key, size)
	return &transport.FetchResponse{
		HighWatermark:  r.fsm.HighWatermark(),
		LogStartOffset: r.fsm.StartOffset(),
		Batches:        batches,
	}, nil
}

func (n *Node) offsetCommit(req transport.OffsetCommitRequest) error {
	if req.Group == "" {
		return transport.Errorf(transport.ErrInvalidRequest, "group id is empty")
	}
	if req.Offset < 0 {
		return transport.Errorf(transport.ErrInvalidRequest, "offset %d is negative", req.Offset)
	}
	r, err := n.leaderReplica(req.Topic, req.Partition, false)
	if err != nil {
		return err
	}
	if err := fsm.ValidateOffsetCommit(req.Group, req.Metadata); err != nil {
		return err
	}
	if err := n.checkFreeSpace(); err != nil {
		return err
	}
	f := r.raft().Apply(fsm.EncodeOffsetCommit(req.Group, req.Offset, req.Metadata), 10*time.Second)
	if err := f.Error(); err != nil {
		addr, _ := r.raft().LeaderWithID()
		return raftErr(err, string(addr))
	}
	if err, ok := f.Response().(error); ok && err != nil {
		return err
	}
	return nil
}

func (n *Node) offsetFetch(req transport.OffsetFetchRequest) (*transport.OffsetFetchResponse, error) {
	r, err := n.leaderReplica(req.Topic, req.Partition, false)
	if err != nil {
		return nil, err
	}
	// A new leader may not have applied its predecessor's last commits yet.
	if err := r.raft().Barrier(5 * time.Second).Error(); err != nil {
		addr, _ := r.raft().LeaderWithID()
		return nil, raftErr(err, string(addr))
	}
	off, md, ok := r.fsm.GroupOffset(req.Group)
	if !ok {
		return &transport.OffsetFetchResponse{Offset: -1}, nil
	}
	return &transport.OffsetFetchResponse{Offset: off, Metadata: md}, nil
}

// Status is the node's own view: members, metadata leader, hosted replicas.
func (n *Node) Status() *transport.StatusResponse {
	st := &transport.StatusResponse{Node: n.cfg.ID}
	st.MetadataLeader, _ = n.metaLeader()
	st.Members = n.brokerView()
	for _, r := range n.replicaList() {
		_, leader := r.raft().LeaderWithID()
		st.Partitions = append(st.Partitions, transport.PartitionStatus{
			Topic:         r.key.topic,
			Partition:     r.key.partition,
			Role:          roleName(r.raft().State()),
			Leader:        string(leader),
			Term:          r.raft().CurrentTerm(),
			CommitIndex:   r.raft().CommitIndex(),
			AppliedIndex:  r.raft().AppliedIndex(),
			HighWatermark: r.fsm.HighWatermark(),
			StartOffset:   r.fsm.StartOffset(),
			Bytes:         r.fsm.Size(),
		})
	}
	sortPartitionStatus(st.Partitions)
	return st
}

// brokerView merges the registered brokers with the gossip view: a
// registered node that gossip no longer lists is dead (memberlist forgets
// failed nodes), and a gossip member not yet registered is listed too.
func (n *Node) brokerView() []transport.Broker {
	byID := map[string]transport.Broker{}
	for _, b := range n.meta.Brokers() {
		byID[b.ID] = transport.Broker{ID: b.ID, RPCAddr: b.RPCAddr, HTTPAddr: b.HTTPAddr, State: "dead"}
	}
	for _, m := range n.members.Members() {
		byID[m.ID] = transport.Broker{ID: m.ID, RPCAddr: m.RPCAddr, HTTPAddr: m.HTTPAddr, State: m.State}
	}
	out := make([]transport.Broker, 0, len(byID))
	for _, b := range byID {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func sortPartitionStatus(ps []transport.PartitionStatus) {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Topic != ps[j].Topic {
			return ps[i].Topic < ps[j].Topic
		}
		return ps[i].Partition < ps[j].Partition
	})
}

func roleName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	}
	return "shutdown"
}
