package node

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/sluice-io/sluice/group"
	"github.com/sluice-io/sluice/transport"
)

// Native members use Kafka's consumer protocol type and range assignor
// name, with Kafka's encodings of subscription and assignment, so they can
// share a group with Kafka consumers that offer range.
const (
	nativeProtocolType = "consumer"
	nativeProtocol     = "range"
)

// dispatchGroup serves the native group RPCs; ok is false for any other
// method.
func (n *Node) dispatchGroup(ctx context.Context, method transport.Method, body []byte) (resp any, err error, ok bool) {
	switch method {
	case transport.MethodGroupJoin, transport.MethodGroupSync, transport.MethodGroupHeartbeat,
		transport.MethodGroupLeave, transport.MethodGroupDescribe, transport.MethodGroupList, transport.MethodGroupDelete:
	default:
		return nil, nil, false
	}
	if !n.isMetaLeader() {
		return nil, &transport.Error{Code: transport.ErrNotLeader, Message: "not the group coordinator (the metadata leader)", Leader: n.metaLeaderHint()}, true
	}
	groups := n.kafka.groups
	switch method {
	case transport.MethodGroupJoin:
		var req transport.GroupJoinRequest
		if err := decodeGroup(body, &req); err != nil {
			return nil, err, true
		}
		resp, err = n.groupJoin(ctx, req)
	case transport.MethodGroupSync:
		var req transport.GroupSyncRequest
		if err := decodeGroup(body, &req); err != nil {
			return nil, err, true
		}
		assign := map[string][]byte{}
		for id, tps := range req.Assignments {
			assign[id] = encodeAssignment(tps)
		}
		a, _, _, serr := groups.Sync(ctx, req.Group, req.MemberID, req.Generation, assign)
		if serr != nil {
			return nil, groupErr(serr), true
		}
		tps, derr := decodeAssignment(a)
		if derr != nil {
			return nil, derr, true
		}
		resp = &transport.GroupSyncResponse{Assignment: tps}
	case transport.MethodGroupHeartbeat:
		var req transport.GroupHeartbeatRequest
		if err := decodeGroup(body, &req); err != nil {
			return nil, err, true
		}
		resp, err = transport.Empty{}, groupErr(groups.Heartbeat(req.Group, req.MemberID, req.Generation))
	case transport.MethodGroupLeave:
		var req transport.GroupLeaveRequest
		if err := decodeGroup(body, &req); err != nil {
			return nil, err, true
		}
		resp, err = transport.Empty{}, groupErr(groups.Leave(req.Group, req.MemberID))
	case transport.MethodGroupDescribe:
		var req transport.GroupDescribeRequest
		if err := decodeGroup(body, &req); err != nil {
			return nil, err, true
		}
		resp = n.groupDescribe(ctx, req.Group)
	case transport.MethodGroupList:
		resp = n.groupList(ctx)
	case transport.MethodGroupDelete:
		var req transport.GroupDeleteRequest
		if err := decodeGroup(body, &req); err != nil {
			return nil, err, true
		}
		resp, err = transport.Empty{}, n.groupDelete(ctx, req.Group)
	}
	return resp, err, true
}

func decodeGroup(body []byte, v any) error {
	if err := msgpack.Unmarshal(body, v); err != nil {
		return transport.Errorf(transport.ErrInvalidRequest, "malformed group request: %v", err)
	}
	return nil
}

// groupErr maps the coordinator's Kafka errors to native codes.
func groupErr(err error) error {
	if err == nil {
		return nil
	}
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return err
	}
	switch ke {
	case kerr.RebalanceInProgress:
		return transport.Errorf(transport.ErrRebalanceInProgress, "group is rebalancing")
	case kerr.UnknownMemberID:
		return transport.Errorf(transport.ErrUnknownMember, "unknown group member")
	case kerr.IllegalGeneration:
		return transport.Errorf(transport.ErrIllegalGeneration, "stale group generation")
	case kerr.NonEmptyGroup:
		return transport.Errorf(transport.ErrGroupNotEmpty, "group has members")
	case kerr.NotCoordinator:
		return transport.Errorf(transport.ErrNotLeader, "no longer the group coordinator")
	case kerr.CoordinatorLoadInProgress:
		return transport.Errorf(transport.ErrUnavailable, "the group coordinator is loading its groups")
	}
	return transport.Errorf(transport.ErrInvalidRequest, "group: %s", ke.Message)
}

func (n *Node) groupJoin(ctx context.Context, req transport.GroupJoinRequest) (*transport.GroupJoinResponse, error) {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = req.Topics
	jr := group.JoinRequest{
		Group:            req.Group,
		MemberID:         req.MemberID,
		ClientID:         req.ClientID,
		ClientHost:       "native",
		ProtocolType:     nativeProtocolType,
		SessionTimeout:   time.Duration(req.SessionTimeoutMs) * time.Millisecond,
		RebalanceTimeout: time.Duration(req.RebalanceTimeoutMs) * time.Millisecond,
		Protocols:        []group.Protocol{{Name: nativeProtocol, Metadata: meta.AppendTo(nil)}},
	}
	res, err := n.kafka.groups.Join(ctx, jr)
	if err != nil {
		return nil, groupErr(err)
	}
	out := &transport.GroupJoinResponse{MemberID: res.MemberID, Generation: res.Generation, Leader: res.Leader, Protocol: res.Protocol}
	for _, m := range res.Members {
		var mm kmsg.ConsumerMemberMetadata
		if err := mm.ReadFrom(m.Metadata); err != nil {
			return nil, transport.Errorf(transport.ErrInvalidRequest, "member %s has unreadable subscription metadata: %v", m.ID, err)
		}
		out.Members = append(out.Members, transport.GroupMember{ID: m.ID, ClientID: m.ClientID, ClientHost: m.ClientHost, Topics: mm.Topics})
	}
	return out, nil
}

func encodeAssignment(tps []transport.TopicPartitions) []byte {
	a := kmsg.NewConsumerMemberAssignment()
	for _, tp := range tps {
		a.Topics = append(a.Topics, kmsg.ConsumerMemberAssignmentTopic{Topic: tp.Topic, Partitions: tp.Partitions})
	}
	return a.AppendTo(nil)
}

func decodeAssignment(b []byte) ([]transport.TopicPartitions, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var a kmsg.ConsumerMemberAssignment
	if err := a.ReadFrom(b); err != nil {
		return nil, transport.Errorf(transport.ErrInvalidRequest, "unreadable assignment: %v", err)
	}
	var out []transport.TopicPartitions
	for _, t := range a.Topics {
		out = append(out, transport.TopicPartitions{Topic: t.Topic, Partitions: t.Partitions})
	}
	return out, nil
}

func (n *Node) groupDescribe(ctx context.Context, groupID string) *transport.GroupDescription {
	d := n.kafka.groups.Describe(groupID)
	out := &transport.GroupDescription{Group: groupID, State: d.State, ProtocolType: d.ProtocolType, Protocol: d.Protocol, Generation: d.Generation, Leader: d.Leader,
		Members: []transport.GroupMember{}, Offsets: []transport.GroupPartitionOffset{}}
	for _, m := range d.Members {
		gm := transport.GroupMember{ID: m.ID, ClientID: m.ClientID, ClientHost: m.ClientHost}
		if d.ProtocolType == nativeProtocolType {
			var mm kmsg.ConsumerMemberMetadata
			if mm.ReadFrom(m.Metadata) == nil {
				gm.Topics = mm.Topics
			}
			gm.Assignment, _ = decodeAssignment(m.Assignment)
		}
		out.Members = append(out.Members, gm)
	}
	k := &kafkaCluster{n: n}
	parts := k.GroupPartitions(ctx, groupID)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for topic, ps := range parts {
		for _, p := range ps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o := transport.GroupPartitionOffset{Topic: topic, Partition: p, Committed: -1, HighWatermark: -1, Lag: -1}
				if off, _, err := k.FetchOffset(ctx, groupID, topic, p); err == nil {
					o.Committed = off
				}
				if hw, err := n.highWatermark(ctx, topic, p); err == nil {
					o.HighWatermark = hw
					if o.Committed >= 0 {
						o.Lag = max(0, hw-o.Committed)
					}
				}
				mu.Lock()
				out.Offsets = append(out.Offsets, o)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	sort.Slice(out.Offsets, func(i, j int) bool {
		if out.Offsets[i].Topic != out.Offsets[j].Topic {
			return out.Offsets[i].Topic < out.Offsets[j].Topic
		}
		return out.Offsets[i].Partition < out.Offsets[j].Partition
	})
	if out.State == group.StateDead && len(out.Offsets) > 0 {
		out.State = group.StateEmpty
	}
	return out
}

// highWatermark asks the partition leader (here or by RPC).
func (n *Node) highWatermark(ctx context.Context, topic string, p int32) (int64, error) {
	k := &kafkaCluster{n: n}
	var hw int64
	req := transport.FetchRequest{Topic: topic, Partition: p, Offset: transport.OffsetLatest, MaxBytes: 1}
	err := k.onLeader(ctx, topic, p,
		func() error {
			r, err := n.leaderReplica(topic, p, false)
			if err != nil {
				return err
			}
			hw = r.fsm.HighWatermark()
			return nil
		},
		func(ctx context.Context, addr string) error {
			var resp transport.FetchResponse
			if err := n.pool.Call(ctx, addr, transport.MethodFetch, req, &resp); err != nil {
				return err
			}
			hw = resp.HighWatermark
			return nil
		})
	return hw, err
}

// groupList lists the groups with members here plus those that only have
// committed offsets (found in the partitions this node hosts).
func (n *Node) groupList(ctx context.Context) *transport.GroupListResponse {
	seen := map[string]bool{}
	out := &transport.GroupListResponse{}
	for _, d := range n.kafka.groups.List() {
		seen[d.Group] = true
		out.Groups = append(out.Groups, transport.GroupSummary{Group: d.Group, State: d.State, ProtocolType: d.ProtocolType, Members: d.MemberCount})
	}
	for _, r := range n.replicaList() {
		for _, g := range r.fsm.Groups() {
			if !seen[g] {
				seen[g] = true
				out.Groups = append(out.Groups, transport.GroupSummary{Group: g, State: group.StateEmpty})
			}
		}
	}
	sort.Slice(out.Groups, func(i, j int) bool { return out.Groups[i].Group < out.Groups[j].Group })
	return out
}

func (n *Node) groupDelete(ctx context.Context, groupID string) error {
	return groupErr(n.kafka.groups.Delete(groupID))
}
