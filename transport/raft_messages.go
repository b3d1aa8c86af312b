package transport

// Coalesced Raft heartbeats (node/heartbeats.go). The number continues the
// Method lists: never renumber, only append.
const (
	// MethodRaftHeartbeats is node-to-node: the heartbeats and other small
	// Raft RPCs one node's groups send to another within a short tick, in
	// one request; the body is the node's own (node/heartbeats.go).
	MethodRaftHeartbeats Method = 18
)

// MethodRaft is node-to-node: one Raft RPC (AppendEntries, RequestVote,
// RequestPreVote, TimeoutNow) of one group, on the nodes' pooled
// connection; the body is the node's own envelope (node/rafttransport.go).
const MethodRaft Method = 20

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

// MethodPing is node-to-node: an empty request answered with Empty. Nodes
// ping each other often to learn at once when a peer's process is gone
// (node/liveness.go).
const MethodPing Method = 21
