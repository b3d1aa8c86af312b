// Package node is one Sluice cluster node: gossip membership, the metadata
// (controller) Raft group, the partition replicas it hosts, client request
// routing, and the HTTP endpoints for health, status and metrics.
package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// Config is everything a node needs to start. Zero durations take defaults.
type Config struct {
	ID      string
	DataDir string
	Addr    string // RPC + Raft port (host:port); its host is also the source address of every dial
	// AdvertiseAddr is the RPC address given to peers and clients when it
	// is not Addr, e.g. a proxy in front of the port (the chaos harness's
	// delay nemesis). Default: Addr.
	AdvertiseAddr   string
	GossipAddr      string   // memberlist, TCP and UDP
	HTTPAddr        string   // health, status, metrics; "" disables
	Join            []string // gossip seeds
	BootstrapExpect int      // metadata voters to wait for before bootstrapping (default 3)

	// Kafka wire listener (see kafka/): "" disables it. The advertised
	// address defaults to the bound one.
	KafkaAddr           string
	KafkaAdvertisedAddr string
	// KafkaNoAutoCreate turns off topic auto-creation by Kafka clients
	// (on by default, as in Kafka); new topics get KafkaDefaultPartitions
	// (default 3) and min(3, live nodes) replicas.
	KafkaNoAutoCreate      bool
	KafkaDefaultPartitions int
	// KafkaInitialRebalanceDelay holds the first rebalance of an empty
	// group open for more members (Kafka's group.initial.rebalance.delay.ms).
	KafkaInitialRebalanceDelay time.Duration
	// KafkaISRLagMax is how long a follower may stay behind its leader's
	// commit index before Metadata leaves it out of the ISR (Kafka's
	// replica.lag.time.max.ms; default 10s).
	KafkaISRLagMax time.Duration

	MaxBatchBytes int // largest produce batch accepted (default 1 MiB)
	MaxFrameBytes int // largest RPC frame (default 16 MiB)
	// MaxAppendBytes bounds one Raft AppendEntries message of a partition
	// group (default 16 MiB): MaxAppendEntries = MaxAppendBytes /
	// MaxBatchBytes, at least 1 (see raftgroup.go).
	MaxAppendBytes int
	// MinFreeBytes is the free-space floor of the data dir's filesystem:
	// below it produces and offset commits are refused with a retriable
	// error (default 64 MiB; negative disables).
	MinFreeBytes int64

	// Raft timing of the partition and metadata groups. Loopback defaults:
	// fast failover at a modest idle cost per group (see ARCHITECTURE.md).
	HeartbeatTimeout   time.Duration // default 500ms
	ElectionTimeout    time.Duration // default 500ms
	LeaderLeaseTimeout time.Duration // default 250ms
	// PartitionCommitTimeout is how often an idle partition leader sends
	// each follower an AppendEntries that carries its commit index
	// (hashicorp/raft's CommitTimeout; default 1s, Raft's own 50ms).
	// Followers of an idle partition apply its last entries that much
	// later; acknowledgements never wait for it.
	PartitionCommitTimeout time.Duration
	SnapshotThreshold      uint64        // raft entries between snapshots (default 16384)
	SnapshotInterval       time.Duration // how often raft checks the threshold (default 60s)
	TrailingLogs           uint64        // raft entries kept after a snapshot (default 4096)
	SegmentBytes           int64         // partition segment size (default 64 MiB)
	RetentionInterval      time.Duration // how often retention runs (default 30s)
	// OffsetsRetention expires a consumer group's offsets this long after
	// its last commit (default 7 days; negative: never).
	OffsetsRetention time.Duration
	// MaxTimestampAhead refuses batches timestamped further ahead of the
	// leader's clock (default 1 h; negative: no check).
	MaxTimestampAhead time.Duration

	// Security (see node/security.go). The three TLS files go together:
	// with them every connection to and between nodes is mutual TLS 1.3.
	TLSCAFile   string
	TLSCertFile string
	TLSKeyFile  string
	GossipKey   string // base64 of a 16, 24 or 32-byte memberlist encryption key; "" gossips in the clear
	// Node-wide bounds against flooding (0: transport defaults, 1024
	// connections and 256 MiB of requests in flight).
	MaxConns         int
	MaxInFlightBytes int64

	// AgentConfig, when set, is a Flume properties file whose agent
	// AgentName (default a1) runs inside the node (node/agent.go);
	// AgentPoll is how often the file is checked for changes (30 s).
	AgentConfig string
	AgentName   string
	AgentPoll   time.Duration

	// Leader balancing (node/balance.go), as Kafka's
	// auto.leader.rebalance.enable, leader.imbalance.check.interval.seconds
	// (default 5 min) and leader.imbalance.per.broker.percentage (default 10).
	LeaderRebalanceDisabled          bool
	LeaderImbalanceCheckInterval     time.Duration
	LeaderImbalancePerNodePercentage int

	// Replica movement (node/move.go). A move that makes no progress for
	// ReassignStallTimeout (default 2 min) while adding new replicas rolls
	// back. ReplaceDeadNodesAfter > 0 makes the controller move the
	// replicas of a node missing from gossip that long onto live nodes
	// (off by default), at most MaxConcurrentMoves (default 2) moves at a
	// time.
	ReassignStallTimeout  time.Duration
	ReplaceDeadNodesAfter time.Duration
	MaxConcurrentMoves    int

	Logger *slog.Logger

	// wrapPartitionFSM, set by tests only, wraps each partition FSM.
	wrapPartitionFSM func(topic string, f raft.FSM) raft.FSM
	// wrapLogStore, set by tests only, wraps each Raft group's log store.
	wrapLogStore func(group string, s raft.LogStore) raft.LogStore
}

func (c *Config) setDefaults() error {
	if c.ID == "" {
		return errors.New("node id is required")
	}
	if c.DataDir == "" {
		return errors.New("data dir is required")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("invalid --addr %q: %w", c.Addr, err)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertiseAddr); err != nil {
			return fmt.Errorf("invalid --advertise-addr %q: %w", c.AdvertiseAddr, err)
		}
	}
	if _, _, err := net.SplitHostPort(c.GossipAddr); err != nil {
		return fmt.Errorf("invalid --gossip-addr %q: %w", c.GossipAddr, err)
	}
	if c.BootstrapExpect == 0 {
		c.BootstrapExpect = 3
	}
	if c.BootstrapExpect < 1 {
		return fmt.Errorf("bootstrap-expect must be at least 1, got %d", c.BootstrapExpect)
	}
	if c.KafkaDefaultPartitions == 0 {
		c.KafkaDefaultPartitions = 3
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = 1 << 20
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = 16 << 20
	}
	if c.MinFreeBytes == 0 {
		c.MinFreeBytes = 64 << 20
	}
	if c.MaxAppendBytes == 0 {
		c.MaxAppendBytes = 16 << 20
	}
	if c.MaxFrameBytes < c.MaxBatchBytes+4096 {
		c.MaxFrameBytes = c.MaxBatchBytes + 4096
	}
	// An AppendEntries travels as one RPC frame (rafttransport.go), its
	// envelope included.
	if limit := c.MaxFrameBytes - raftEnvelopeBytes; c.MaxAppendBytes > limit {
		c.MaxAppendBytes = limit
	}
	setDur(&c.HeartbeatTimeout, 500*time.Millisecond)
	setDur(&c.ElectionTimeout, 500*time.Millisecond)
	setDur(&c.LeaderLeaseTimeout, 250*time.Millisecond)
	setDur(&c.PartitionCommitTimeout, time.Second)
	setDur(&c.SnapshotInterval, 60*time.Second)
	setDur(&c.RetentionInterval, 30*time.Second)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 16384
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 4096
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = 64 << 20
	}
	setDur(&c.LeaderImbalanceCheckInterval, 5*time.Minute)
	if c.LeaderImbalancePerNodePercentage == 0 {
		c.LeaderImbalancePerNodePercentage = 10
	}
	if c.LeaderImbalancePerNodePercentage < 0 || c.LeaderImbalancePerNodePercentage > 100 {
		return fmt.Errorf("leader imbalance percentage must be between 0 and 100, got %d", c.LeaderImbalancePerNodePercentage)
	}
	setDur(&c.ReassignStallTimeout, 2*time.Minute)
	if c.MaxConcurrentMoves <= 0 {
		c.MaxConcurrentMoves = 2
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

func setDur(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

// sourceHost is the host every outgoing connection binds to, so that
// network rules can tell nodes apart by source address.
// rpcAdvertised is the RPC address peers and clients are told to dial.
func (c *Config) rpcAdvertised() string {
	if c.AdvertiseAddr != "" {
		return c.AdvertiseAddr
	}
	return c.Addr
}

func (c *Config) sourceHost() string {
	h, _, _ := net.SplitHostPort(c.Addr)
	if ip := net.ParseIP(h); ip == nil || ip.IsUnspecified() {
		return ""
	}
	return h
}
