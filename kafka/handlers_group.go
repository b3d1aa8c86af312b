package kafka

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/group"
)

// Groups is the group coordinator as the listener uses it (implemented by
// *group.Coordinator).
type Groups interface {
	Join(ctx context.Context, req group.JoinRequest) (group.JoinResult, error)
	Sync(ctx context.Context, groupID, memberID string, generation int32, assignments map[string][]byte) ([]byte, string, string, error)
	Heartbeat(groupID, memberID string, generation int32) error
	Leave(groupID string, memberIDs ...string) error
	CheckCommit(groupID, memberID string, generation int32) error
	Describe(groupID string) group.Description
	List() []group.Description
}

// coordinatorErr is NOT_COORDINATOR unless this node coordinates groupID.
func (s *Server) coordinatorErr(groupID string) error {
	c, err := s.cfg.Cluster.Coordinator(groupID)
	if err != nil {
		return kerr.CoordinatorNotAvailable
	}
	if c.ID != s.cfg.Cluster.Self() {
		return kerr.NotCoordinator
	}
	return nil
}

func (s *Server) findCoordinator(req *kmsg.FindCoordinatorRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	resp.NodeID, resp.Port = -1, -1
	if req.CoordinatorType != 0 {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		msg := "transactions are not supported"
		resp.ErrorMessage = &msg
		return resp
	}
	c, err := s.cfg.Cluster.Coordinator(req.CoordinatorKey)
	if err != nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		resp.ErrorMessage = errMessage(err)
		return resp
	}
	resp.NodeID, resp.Host, resp.Port = c.ID, c.Host, c.Port
	return resp
}

func (s *Server) joinGroup(ctx context.Context, req *kmsg.JoinGroupRequest, hdr requestHeader) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.Generation = -1
	if err := s.coordinatorErr(req.Group); err != nil {
		resp.ErrorCode = errorCode(err)
		return resp
	}
	jr := group.JoinRequest{
		Group:              req.Group,
		MemberID:           req.MemberID,
		ClientID:           hdr.ClientID,
		ClientHost:         hdr.ClientHost,
		ProtocolType:       req.ProtocolType,
		SessionTimeout:     time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		RebalanceTimeout:   time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond,
		RequireKnownMember: req.Version >= 4,
	}
	if req.Version == 0 {
		jr.RebalanceTimeout = jr.SessionTimeout
	}
	if req.InstanceID != nil {
		jr.InstanceID = *req.InstanceID
	}
	for _, p := range req.Protocols {
		jr.Protocols = append(jr.Protocols, group.Protocol{Name: p.Name, Metadata: p.Metadata})
	}
	// The join waits for the rebalance, at most the rebalance timeout plus
	// a margin (the client's own request timeout is longer).
	jctx, cancel := context.WithTimeout(ctx, jr.RebalanceTimeout+5*time.Second)
	defer cancel()
	res, err := s.cfg.Groups.Join(jctx, jr)
	resp.ErrorCode = errorCode(err)
	resp.MemberID = res.MemberID
	if err != nil {
		return resp
	}
	resp.Generation = res.Generation
	proto := res.Protocol
	resp.Protocol = &proto
	ptype := res.ProtocolType
	resp.ProtocolType = &ptype
	resp.LeaderID = res.Leader
	for _, m := range res.Members {
		jm := kmsg.JoinGroupResponseMember{MemberID: m.ID, ProtocolMetadata: m.Metadata}
		if m.InstanceID != "" {
			id := m.InstanceID
			jm.InstanceID = &id
		}
		resp.Members = append(resp.Members, jm)
	}
	return resp
}

func (s *Server) syncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	if err := s.coordinatorErr(req.Group); err != nil {
		resp.ErrorCode = errorCode(err)
		return resp
	}
	assignments := make(map[string][]byte, len(req.GroupAssignment))
	for _, a := range req.GroupAssignment {
		assignments[a.MemberID] = a.MemberAssignment
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	a, ptype, proto, err := s.cfg.Groups.Sync(sctx, req.Group, req.MemberID, req.Generation, assignments)
	resp.ErrorCode = errorCode(err)
	resp.MemberAssignment = a
	if resp.MemberAssignment == nil {
		resp.MemberAssignment = []byte{}
	}
	resp.ProtocolType, resp.Protocol = &ptype, &proto
	return resp
}

func (s *Server) heartbeat(req *kmsg.HeartbeatRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if err := s.coordinatorErr(req.Group); err != nil {
		resp.ErrorCode = errorCode(err)
		return resp
	}
	resp.ErrorCode = errorCode(s.cfg.Groups.Heartbeat(req.Group, req.MemberID, req.Generation))
	return resp
}

func (s *Server) leaveGroup(req *kmsg.LeaveGroupRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if err := s.coordinatorErr(req.Group); err != nil {
		resp.ErrorCode = errorCode(err)
		return resp
	}
	resp.ErrorCode = errorCode(s.cfg.Groups.Leave(req.Group, req.MemberID))
	return resp
}

func (s *Server) offsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	err := s.coordinatorErr(req.Group)
	if err == nil && req.Version >= 1 {
		err = s.cfg.Groups.CheckCommit(req.Group, req.MemberID, req.Generation)
	}
	var wg sync.WaitGroup
	resp.Topics = make([]kmsg.OffsetCommitResponseTopic, len(req.Topics))
	for ti, t := range req.Topics {
		rt := &resp.Topics[ti]
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.OffsetCommitResponseTopicPartition, len(t.Partitions))
		for pi, p := range t.Partitions {
			rp := &rt.Partitions[pi]
			rp.Partition = p.Partition
			if err != nil {
				rp.ErrorCode = errorCode(err)
				continue
			}
			if p.Offset < 0 {
				rp.ErrorCode = kerr.OffsetOutOfRange.Code
				continue
			}
			md := ""
			if p.Metadata != nil {
				md = *p.Metadata
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				rp.ErrorCode = errorCode(s.cfg.Cluster.CommitOffset(ctx, req.Group, t.Topic, p.Partition, p.Offset, md))
				if rp.ErrorCode == kerr.NotLeaderForPartition.Code || rp.ErrorCode == kerr.LeaderNotAvailable.Code {
					// Commit errors a client understands as "retry".
					rp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
				}
			}()
		}
	}
	wg.Wait()
	return resp
}

func (s *Server) offsetFetch(ctx context.Context, req *kmsg.OffsetFetchRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if err := s.coordinatorErr(req.Group); err != nil {
		resp.ErrorCode = errorCode(err)
		// Before v2 the error is per partition only.
		for _, t := range req.Topics {
			rt := kmsg.OffsetFetchResponseTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.ErrorCode = p, -1, errorCode(err)
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	topics := req.Topics
	if topics == nil && req.Version >= 2 {
		for t, ps := range s.cfg.Cluster.GroupPartitions(ctx, req.Group) {
			topics = append(topics, kmsg.OffsetFetchRequestTopic{Topic: t, Partitions: ps})
		}
	}
	var wg sync.WaitGroup
	resp.Topics = make([]kmsg.OffsetFetchResponseTopic, len(topics))
	for ti, t := range topics {
		rt := &resp.Topics[ti]
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.OffsetFetchResponseTopicPartition, len(t.Partitions))
		for pi, p := range t.Partitions {
			rp := &rt.Partitions[pi]
			*rp = kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = p, -1, -1
			wg.Add(1)
			go func() {
				defer wg.Done()
				off, md, err := s.cfg.Cluster.FetchOffset(ctx, req.Group, t.Topic, p)
				switch errorCode(err) {
				case 0:
					rp.Offset = off
					rp.Metadata = &md
				case kerr.UnknownTopicOrPartition.Code:
					// Kafka answers "no offset" for partitions it has none for.
				case kerr.NotLeaderForPartition.Code, kerr.LeaderNotAvailable.Code, kerr.RequestTimedOut.Code:
					rp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
				default:
					rp.ErrorCode = errorCode(err)
				}
			}()
		}
	}
	wg.Wait()
	return resp
}

func (s *Server) describeGroups(ctx context.Context, req *kmsg.DescribeGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, g := range req.Groups {
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group = g
		rg.AuthorizedOperations = -2147483648
		if err := s.coordinatorErr(g); err != nil {
			rg.ErrorCode = errorCode(err)
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		d := s.cfg.Groups.Describe(g)
		rg.State = d.State
		if d.State == group.StateDead && len(s.cfg.Cluster.GroupPartitions(ctx, g)) > 0 {
			// Offsets but no members (e.g. after a coordinator failover).
			rg.State = group.StateEmpty
		}
		rg.ProtocolType, rg.Protocol = d.ProtocolType, d.Protocol
		for _, m := range d.Members {
			rm := kmsg.NewDescribeGroupsResponseGroupMember()
			rm.MemberID, rm.ClientID, rm.ClientHost = m.ID, m.ClientID, m.ClientHost
			rm.ProtocolMetadata, rm.MemberAssignment = m.Metadata, m.Assignment
			if m.InstanceID != "" {
				id := m.InstanceID
				rm.InstanceID = &id
			}
			rg.Members = append(rg.Members, rm)
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

func (s *Server) listGroups(req *kmsg.ListGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	if c, err := s.cfg.Cluster.Coordinator(""); err != nil || c.ID != s.cfg.Cluster.Self() {
		// Every group lives on one coordinator; other nodes list none.
		return resp
	}
	for _, d := range s.cfg.Groups.List() {
		resp.Groups = append(resp.Groups, kmsg.ListGroupsResponseGroup{Group: d.Group, ProtocolType: d.ProtocolType, GroupState: d.State})
	}
	return resp
}
