package node

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/sluice-io/sluice/fsm"
	"github.com/sluice-io/sluice/transport"
)

// ClusterView is the whole cluster as one node sees it: gossip members,
// the metadata leader, and every partition with its leader and each
// replica's progress, gathered from the replicas' own status. It backs the
// status page and `sluice cluster status --json` (GET /v1/cluster).
type ClusterView struct {
	Node           string             `json:"node"`
	MetadataLeader string             `json:"metadata_leader"`
	Members        []transport.Broker `json:"members"`
	Topics         []TopicView        `json:"topics"`
	// Unreachable lists alive members whose status could not be read.
	Unreachable []string  `json:"unreachable,omitempty"`
	Generated   time.Time `json:"generated"`
}

// TopicView is one topic of a ClusterView.
type TopicView struct {
	Name              string          `json:"name"`
	ReplicationFactor int             `json:"replication_factor"`
	Partitions        []PartitionView `json:"partitions"`
}

// PartitionView is one partition: metadata plus what its replicas report.
type PartitionView struct {
	Partition int32  `json:"partition"`
	Leader    string `json:"leader"`
	// Preferred is the first replica, where leadership belongs when the
	// cluster is balanced.
	Preferred      string        `json:"preferred_leader"`
	Replicas       []string      `json:"replicas"`
	Term           uint64        `json:"term"`
	HighWatermark  int64         `json:"high_watermark"`
	LogStartOffset int64         `json:"log_start_offset"`
	Bytes          int64         `json:"bytes"`
	Status         []ReplicaView `json:"replica_status"`
	// Move is the replica move in progress, if any.
	Move *fsm.PartitionMove `json:"move,omitempty"`
}

// ReplicaView is one replica's progress relative to its leader. Lag is
// measured from the leader's own report: Raft entries not yet applied,
// records below the leader's high watermark, and retained bytes missing.
type ReplicaView struct {
	Node          string `json:"node"`
	Role          string `json:"role"`
	Reachable     bool   `json:"reachable"`
	AppliedIndex  uint64 `json:"applied_index"`
	HighWatermark int64  `json:"high_watermark"`
	LagEntries    uint64 `json:"lag_entries"`
	LagRecords    int64  `json:"lag_records"`
	LagBytes      int64  `json:"lag_bytes"`
}

// clusterStatusTimeout bounds the status call to each member.
const clusterStatusTimeout = 2 * time.Second

// ClusterView gathers the view, asking every alive member for its status
// in parallel.
func (n *Node) ClusterView(ctx context.Context) *ClusterView {
	self := n.Status()
	v := &ClusterView{Node: n.cfg.ID, MetadataLeader: self.MetadataLeader, Members: self.Members, Generated: time.Now().UTC()}

	statuses := map[string]*transport.StatusResponse{n.cfg.ID: self}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range self.Members {
		if m.ID == n.cfg.ID || m.State != "alive" || m.RPCAddr == "" {
			continue
		}
		wg.Add(1)
		go func(m transport.Broker) {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, clusterStatusTimeout)
			defer cancel()
			var st transport.StatusResponse
			err := n.pool.Call(cctx, m.RPCAddr, transport.MethodStatus, transport.Empty{}, &st)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				v.Unreachable = append(v.Unreachable, m.ID)
				return
			}
			statuses[m.ID] = &st
		}(m)
	}
	wg.Wait()
	sort.Strings(v.Unreachable)

	type pk struct {
		topic string
		part  int32
	}
	byReplica := map[pk]map[string]transport.PartitionStatus{}
	for node, st := range statuses {
		for _, p := range st.Partitions {
			k := pk{p.Topic, p.Partition}
			if byReplica[k] == nil {
				byReplica[k] = map[string]transport.PartitionStatus{}
			}
			byReplica[k][node] = p
		}
	}
	for _, t := range n.meta.Topics() {
		tv := TopicView{Name: t.Name, ReplicationFactor: t.ReplicationFactor}
		for _, a := range t.Partitions {
			pv := PartitionView{Partition: a.ID, Leader: a.Leader, Replicas: append([]string(nil), a.Replicas...), Move: a.Move}
			if len(a.Replicas) > 0 {
				pv.Preferred = a.Replicas[0]
			}
			reports := byReplica[pk{t.Name, a.ID}]
			// The replicas' own word on who leads beats the metadata's,
			// which lags a failover by a moment.
			for node, p := range reports {
				if p.Role == "leader" {
					pv.Leader = node
				}
			}
			lead, haveLead := reports[pv.Leader]
			if haveLead {
				pv.Term, pv.HighWatermark, pv.LogStartOffset, pv.Bytes = lead.Term, lead.HighWatermark, lead.StartOffset, lead.Bytes
			} else {
				pv.HighWatermark = -1
			}
			for _, id := range a.Replicas {
				p, ok := reports[id]
				rv := ReplicaView{Node: id, Reachable: ok}
				if ok {
					rv.Role, rv.AppliedIndex, rv.HighWatermark = p.Role, p.AppliedIndex, p.HighWatermark
					if haveLead && id != pv.Leader {
						if lead.CommitIndex > p.AppliedIndex {
							rv.LagEntries = lead.CommitIndex - p.AppliedIndex
						}
						rv.LagRecords = max(lead.HighWatermark-p.HighWatermark, 0)
						rv.LagBytes = max(lead.Bytes-p.Bytes, 0)
					}
				}
				pv.Status = append(pv.Status, rv)
			}
			tv.Partitions = append(tv.Partitions, pv)
		}
		sort.Slice(tv.Partitions, func(i, j int) bool { return tv.Partitions[i].Partition < tv.Partitions[j].Partition })
		v.Topics = append(v.Topics, tv)
	}
	sort.Slice(v.Topics, func(i, j int) bool { return v.Topics[i].Name < v.Topics[j].Name })
	return v
}
