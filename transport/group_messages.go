package transport

// Consumer-group membership RPCs, served by the group coordinator (the
// metadata leader; any other node answers ErrNotLeader with the leader's
// address). They drive the same coordinator as Kafka clients' JoinGroup,
// SyncGroup, Heartbeat and LeaveGroup, with the "consumer" protocol type and
// the "range" protocol, so native and Kafka consumers can share a group.
const (
	MethodGroupJoin      Method = 32 // GroupJoinRequest -> GroupJoinResponse
	MethodGroupSync      Method = 33 // GroupSyncRequest -> GroupSyncResponse
	MethodGroupHeartbeat Method = 34 // GroupHeartbeatRequest -> Empty
	MethodGroupLeave     Method = 35 // GroupLeaveRequest -> Empty
	MethodGroupDescribe  Method = 36 // GroupDescribeRequest -> GroupDescription
	MethodGroupList      Method = 37 // Empty -> GroupListResponse
	MethodGroupDelete    Method = 38 // GroupDeleteRequest -> Empty
)

// Group error codes; each tells a member what to do next.
const (
	ErrRebalanceInProgress ErrorCode = 40 // join again with the same member id
	ErrUnknownMember       ErrorCode = 41 // join again as a new member
	ErrIllegalGeneration   ErrorCode = 42 // join again with the same member id
	ErrGroupNotEmpty       ErrorCode = 43 // delete refused: the group has members
	ErrMemberIDRequired    ErrorCode = 44 // join again with the member id returned
)

// TopicPartitions is a set of partitions of one topic.
type TopicPartitions struct {
	Topic      string  `msgpack:"topic" json:"topic"`
	Partitions []int32 `msgpack:"partitions" json:"partitions"`
}

type GroupJoinRequest struct {
	Group              string   `msgpack:"group"`
	MemberID           string   `msgpack:"member"` // "" for a new member
	ClientID           string   `msgpack:"client"`
	Topics             []string `msgpack:"topics"` // subscription
	SessionTimeoutMs   int64    `msgpack:"session_ms"`
	RebalanceTimeoutMs int64    `msgpack:"rebalance_ms"`
}

type GroupMember struct {
	ID         string            `msgpack:"id" json:"id"`
	ClientID   string            `msgpack:"client" json:"client_id"`
	ClientHost string            `msgpack:"host" json:"client_host"`
	Topics     []string          `msgpack:"topics" json:"topics"`
	Assignment []TopicPartitions `msgpack:"assignment" json:"assignment"`
}

type GroupJoinResponse struct {
	MemberID   string        `msgpack:"member"`
	Generation int32         `msgpack:"generation"`
	Leader     string        `msgpack:"leader"`
	Protocol   string        `msgpack:"protocol"`
	Members    []GroupMember `msgpack:"members"` // the leader only: everyone's subscription
}

type GroupSyncRequest struct {
	Group       string                       `msgpack:"group"`
	MemberID    string                       `msgpack:"member"`
	Generation  int32                        `msgpack:"generation"`
	Assignments map[string][]TopicPartitions `msgpack:"assignments"` // the leader only
}

type GroupSyncResponse struct {
	Assignment []TopicPartitions `msgpack:"assignment"`
}

type GroupHeartbeatRequest struct {
	Group      string `msgpack:"group"`
	MemberID   string `msgpack:"member"`
	Generation int32  `msgpack:"generation"`
}

type GroupLeaveRequest struct {
	Group    string `msgpack:"group"`
	MemberID string `msgpack:"member"`
}

type GroupDescribeRequest struct {
	Group string `msgpack:"group"`
}

// GroupPartitionOffset is a group's committed offset in one partition.
type GroupPartitionOffset struct {
	Topic         string `msgpack:"topic" json:"topic"`
	Partition     int32  `msgpack:"partition" json:"partition"`
	Committed     int64  `msgpack:"committed" json:"committed"`
	HighWatermark int64  `msgpack:"hw" json:"high_watermark"` // -1 when unknown
	Lag           int64  `msgpack:"lag" json:"lag"`           // -1 when unknown
}

type GroupDescription struct {
	Group        string                 `msgpack:"group" json:"group"`
	State        string                 `msgpack:"state" json:"state"`
	ProtocolType string                 `msgpack:"ptype" json:"protocol_type"`
	Protocol     string                 `msgpack:"protocol" json:"protocol"`
	Generation   int32                  `msgpack:"generation" json:"generation"`
	Leader       string                 `msgpack:"leader" json:"leader"`
	Members      []GroupMember          `msgpack:"members" json:"members"`
	Offsets      []GroupPartitionOffset `msgpack:"offsets" json:"offsets"`
}

type GroupSummary struct {
	Group        string `msgpack:"group" json:"group"`
	State        string `msgpack:"state" json:"state"`
	ProtocolType string `msgpack:"ptype" json:"protocol_type"`
	Members      int    `msgpack:"members" json:"members"`
}

type GroupListResponse struct {
	Groups []GroupSummary `msgpack:"groups"`
}

type GroupDeleteRequest struct {
	Group string `msgpack:"group"`
}
