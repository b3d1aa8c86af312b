package transport

// Cluster operations (leader balancing, partition changes). Numbers
// continue the Method list in messages.go: never renumber, only append.
const (
	// MethodRebalanceLeaders moves partition leadership back to preferred
	// replicas; any node forwards it to the controller.
	MethodRebalanceLeaders Method = 10 // RebalanceLeadersRequest -> RebalanceLeadersResponse
	// MethodTransferLeadership is node-to-node: the controller asks a
	// partition's current leader to hand leadership to another replica.
	MethodTransferLeadership Method = 11 // TransferLeadershipRequest -> Empty
	// MethodAlterPartitions raises a topic's partition count.
	MethodAlterPartitions Method = 12 // AlterPartitionsRequest -> Empty
)

// RebalanceLeadersRequest asks the controller to move leaders now.
type RebalanceLeadersRequest struct {
	// All moves every partition not led by its preferred replica; without
	// it only nodes above the imbalance threshold are balanced (the
	// periodic check).
	All bool `msgpack:"all"`
}

// LeaderMove is one partition the controller considered.
type LeaderMove struct {
	Topic     string `msgpack:"topic" json:"topic"`
	Partition int32  `msgpack:"partition" json:"partition"`
	From      string `msgpack:"from" json:"from"`
	To        string `msgpack:"to" json:"to"`
	// Moved is true when the transfer completed; otherwise Reason says why
	// it was skipped or failed.
	Moved  bool   `msgpack:"moved" json:"moved"`
	Reason string `msgpack:"reason,omitempty" json:"reason,omitempty"`
}

type RebalanceLeadersResponse struct {
	Moves []LeaderMove `msgpack:"moves" json:"moves"`
}

// TransferLeadershipRequest names the topic incarnation so a request for a
// deleted and re-created topic is refused.
type TransferLeadershipRequest struct {
	Topic     string `msgpack:"topic"`
	TopicID   uint64 `msgpack:"tid"`
	Partition int32  `msgpack:"partition"`
	To        string `msgpack:"to"` // node id
}

// AlterPartitionsRequest sets a topic's partition count; it may only grow.
type AlterPartitionsRequest struct {
	Name       string `msgpack:"name"`
	Partitions int    `msgpack:"partitions"`
}

func opsMethodName(m Method) (string, bool) {
	switch m {
	case MethodRebalanceLeaders:
		return "rebalance_leaders", true
	case MethodTransferLeadership:
		return "transfer_leadership", true
	case MethodAlterPartitions:
		return "alter_partitions", true
	}
	return moveMethodName(m)
}
