package transport

// Coalesced Raft heartbeats (node/heartbeats.go). The number continues the
// Method lists: never renumber, only append.
const (
	// MethodRaftHeartbeats is node-to-node: every heartbeat one node's Raft
	// groups send to another node within a short tick, in one request.
	MethodRaftHeartbeats Method = 18 // RaftHeartbeatsRequest -> RaftHeartbeatsResponse
)

// RaftHeartbeatsRequest carries heartbeats (empty AppendEntries) of
// several Raft groups to one node.
type RaftHeartbeatsRequest struct {
	Beats []RaftHeartbeat `msgpack:"b"`
}

// RaftHeartbeat is hashicorp/raft's heartbeat of one group: the fields of
// an AppendEntriesRequest a heartbeat sets.
type RaftHeartbeat struct {
	Group    string `msgpack:"g"`
	Term     uint64 `msgpack:"t"`
	Protocol int    `msgpack:"p"`
	ID       []byte `msgpack:"i"`
	Addr     []byte `msgpack:"a"`
	Leader   []byte `msgpack:"l,omitempty"`
}

// RaftHeartbeatsResponse answers each heartbeat, in order.
type RaftHeartbeatsResponse struct {
	Replies []RaftHeartbeatReply `msgpack:"r"`
}

// RaftHeartbeatReply is one group's AppendEntriesResponse, or Err when
// the group could not take the heartbeat (not hosted here, shut down).
type RaftHeartbeatReply struct {
	Term           uint64 `msgpack:"t"`
	LastLog        uint64 `msgpack:"l"`
	Success        bool   `msgpack:"s"`
	NoRetryBackoff bool   `msgpack:"n,omitempty"`
	Protocol       int    `msgpack:"p"`
	ID             []byte `msgpack:"i"`
	Addr           []byte `msgpack:"a"`
	Err            string `msgpack:"e,omitempty"`
}

// MethodReadFrames is node-to-node: stored frames of a partition replica,
// for a replica whose own copy (and so its snapshot) is damaged.
const MethodReadFrames Method = 19 // ReadFramesRequest -> ReadFramesResponse

// ReadFramesRequest asks for the frames of a partition incarnation from the
// batch holding Offset, up to MaxBytes (at least one frame).
type ReadFramesRequest struct {
	Topic     string `msgpack:"topic"`
	TopicID   uint64 `msgpack:"id"`
	Partition int32  `msgpack:"partition"`
	Offset    int64  `msgpack:"offset"`
	MaxBytes  int    `msgpack:"max_bytes"`
}

// ReadFramesResponse carries stored frames: Raft index and CRC header, then
// the record batch, exactly as the replica's log holds them.
type ReadFramesResponse struct {
	Frames [][]byte `msgpack:"frames"`
}
