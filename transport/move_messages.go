package transport

// Replica movement and decommissioning. Numbers continue the Method list
// in ops_messages.go: never renumber, only append.
const (
	// MethodReassign starts moving a partition to a new replica set; any
	// node forwards it to the controller. It returns once the move is
	// recorded; MethodMoveStatus follows it.
	MethodReassign Method = 13 // ReassignRequest -> MoveStatus
	// MethodMoveStatus reports a partition's replicas and move in
	// progress, as the controller knows them.
	MethodMoveStatus Method = 14 // MoveStatusRequest -> MoveStatus
	// MethodPlanMoves asks the controller for the moves that would spread
	// replicas and leaders evenly (and drain decommissioned nodes).
	MethodPlanMoves Method = 15 // PlanMovesRequest -> PlanMovesResponse
	// MethodDecommission marks a node as being decommissioned (or clears
	// the mark) and takes it out of the metadata group's voters.
	MethodDecommission Method = 16 // DecommissionRequest -> DecommissionResponse
	// MethodPartitionMembership is node-to-node: the controller reads or
	// changes a partition group's Raft configuration on its leader.
	MethodPartitionMembership Method = 17 // PartitionMembershipRequest -> PartitionMembershipResponse
)

// ReassignRequest names the partition and its new replica list, preferred
// leader first.
type ReassignRequest struct {
	Topic     string   `msgpack:"topic"`
	Partition int32    `msgpack:"partition"`
	Replicas  []string `msgpack:"replicas"`
}

type MoveStatusRequest struct {
	Topic     string `msgpack:"topic"`
	Partition int32  `msgpack:"partition"`
}

// MoveStatus is a partition's placement as the controller knows it.
type MoveStatus struct {
	Topic     string   `msgpack:"topic" json:"topic"`
	Partition int32    `msgpack:"partition" json:"partition"`
	Replicas  []string `msgpack:"replicas" json:"replicas"`
	Leader    string   `msgpack:"leader" json:"leader"`
	// InProgress is set while a move runs; Target and Phase describe it.
	InProgress bool     `msgpack:"in_progress" json:"in_progress"`
	MoveID     uint64   `msgpack:"move_id,omitempty" json:"move_id,omitempty"`
	Target     []string `msgpack:"target,omitempty" json:"target,omitempty"`
	Phase      string   `msgpack:"phase,omitempty" json:"phase,omitempty"`
}

type PlanMovesRequest struct {
	// Touching, when set, keeps only the moves that take a replica off
	// this node (decommissioning moves nothing else).
	Touching string `msgpack:"touching,omitempty"`
}

// PlannedMove is one partition's planned replica list.
type PlannedMove struct {
	Topic     string   `msgpack:"topic" json:"topic"`
	Partition int32    `msgpack:"partition" json:"partition"`
	From      []string `msgpack:"from" json:"from"`
	To        []string `msgpack:"to" json:"to"`
}

type PlanMovesResponse struct {
	Moves []PlannedMove `msgpack:"moves" json:"moves"`
	// Running counts the moves in progress in the whole cluster.
	Running int `msgpack:"running" json:"running"`
	// Nodes are the nodes the plan spreads over (alive, not decommissioned).
	Nodes []string `msgpack:"nodes" json:"nodes"`
}

type DecommissionRequest struct {
	Node string `msgpack:"node"`
	// Undo clears the mark (recommission).
	Undo bool `msgpack:"undo,omitempty"`
}

type DecommissionResponse struct {
	// Replicas the node still hosts (in assignments or move targets), as
	// "topic/partition".
	Replicas []string `msgpack:"replicas" json:"replicas"`
	// Leads lists the partitions whose recorded leader it still is.
	Leads []string `msgpack:"leads" json:"leads"`
	// MetadataVoter is set while the node still votes in the metadata
	// group; MetadataLeader while it leads it.
	MetadataVoter  bool `msgpack:"meta_voter" json:"metadata_voter"`
	MetadataLeader bool `msgpack:"meta_leader" json:"metadata_leader"`
}

// Partition membership operations.
const (
	MembershipRead        = ""
	MembershipAddNonvoter = "add-nonvoter"
	MembershipAddVoter    = "add-voter"
	MembershipRemove      = "remove"
	MembershipTransfer    = "transfer"
)

type PartitionMembershipRequest struct {
	Topic     string `msgpack:"topic"`
	TopicID   uint64 `msgpack:"tid"`
	Partition int32  `msgpack:"partition"`
	Op        string `msgpack:"op"`
	Node      string `msgpack:"node,omitempty"`
	Addr      string `msgpack:"addr,omitempty"`
}

// RaftServer is one member of a Raft configuration.
type RaftServer struct {
	ID    string `msgpack:"id" json:"id"`
	Addr  string `msgpack:"addr" json:"addr"`
	Voter bool   `msgpack:"voter" json:"voter"`
}

// PartitionMembershipResponse is the leader's configuration after the
// operation, with its commit index.
type PartitionMembershipResponse struct {
	Leader      string       `msgpack:"leader"`
	CommitIndex uint64       `msgpack:"commit"`
	Servers     []RaftServer `msgpack:"servers"`
}

func moveMethodName(m Method) (string, bool) {
	switch m {
	case MethodReassign:
		return "reassign", true
	case MethodMoveStatus:
		return "move_status", true
	case MethodPlanMoves:
		return "plan_moves", true
	case MethodDecommission:
		return "decommission", true
	case MethodPartitionMembership:
		return "partition_membership", true
	case MethodRaftHeartbeats:
		return "raft_heartbeats", true
	case MethodReadFrames:
		return "read_frames", true
	case MethodRaft:
		return "raft", true
	case MethodPing:
		return "ping", true
	}
	return "", false
}
