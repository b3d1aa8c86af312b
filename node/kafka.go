package node

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"strconv"
	"time"

	"github.com/sluice-io/sluice/group"
	"github.com/sluice-io/sluice/kafka"
)

// kafkaState is the node's Kafka listener (nil without --kafka-addr) and
// the group coordinator that it and the native group RPCs serve (active
// only while this node leads the metadata group).
type kafkaState struct {
	server *kafka.Server
	groups *group.Coordinator
}

// listenKafka binds the Kafka listener before gossip starts, so the
// advertised address (the bound one unless --kafka-advertised-addr says
// otherwise) goes into this node's gossip metadata.
func (n *Node) listenKafka() error {
	groups := group.New(group.Config{
		Logger:                n.logger,
		InitialRebalanceDelay: n.cfg.KafkaInitialRebalanceDelay,
		Store:                 groupStore{n},
	})
	n.kafka = &kafkaState{groups: groups}
	n.isr = newISRTracker(n.cfg.KafkaISRLagMax)
	if n.cfg.KafkaAddr == "" {
		return nil
	}
	srv, err := kafka.Listen(kafka.Config{
		Addr:          n.cfg.KafkaAddr,
		Cluster:       &kafkaCluster{n: n},
		Groups:        groups,
		MaxBatchBytes: n.cfg.MaxBatchBytes,
		MaxFrameBytes: max(n.cfg.MaxFrameBytes, kafka.DefaultMaxFrameBytes),
		Logger:        n.logger,
	})
	if err != nil {
		groups.Close()
		return err
	}
	if n.cfg.KafkaAdvertisedAddr == "" {
		n.cfg.KafkaAdvertisedAddr = srv.Addr().String()
	}
	n.kafka.server = srv
	return nil
}

// serveKafka runs the listener and the loop that hands the coordinator
// role over: the new metadata leader loads the stored groups once its FSM
// is current, the old one drops its in-memory state.
func (n *Node) serveKafka() {
	if n.kafka == nil {
		return
	}
	if n.kafka.server != nil {
		n.goLoop("kafka", func() {
			if err := n.kafka.server.Serve(); err != nil && n.ctx.Err() == nil {
				n.logger.Error("kafka listener stopped", "err", err)
			}
		})
		n.logger.Info("kafka listener started", "addr", n.kafka.server.Addr().String(), "advertised", n.cfg.KafkaAdvertisedAddr)
		n.goLoop("kafka-isr", n.isrLoop)
	}
	n.goLoop("kafka-coordinator", func() {
		wasLeader, ready := false, false
		for n.sleep(200 * time.Millisecond) {
			leader := n.isMetaLeader()
			if wasLeader && !leader {
				n.logger.Info("no longer the metadata leader: dropping consumer-group membership")
				n.kafka.groups.Reset()
				ready = false
			}
			wasLeader = leader
			if !leader || ready {
				continue
			}
			if err := n.controllerBarrier(); err != nil {
				n.logger.Debug("group coordinator waits for the metadata barrier", "err", err)
				continue
			}
			if err := n.kafka.groups.Ready(); err != nil {
				n.logger.Warn("could not load consumer groups", "err", err)
				continue
			}
			ready = true
		}
	})
}

func (n *Node) closeKafka() error {
	if n.kafka == nil {
		return nil
	}
	var err error
	if n.kafka.server != nil {
		err = n.kafka.server.Close()
	}
	n.kafka.groups.Close()
	return err
}

// KafkaAddr is the bound Kafka listener address, or "".
func (n *Node) KafkaAddr() string {
	if n.kafka == nil || n.kafka.server == nil {
		return ""
	}
	return n.kafka.server.Addr().String()
}

// kafkaBrokerID maps a node id to Kafka's int32 broker id: the number at
// the end of the id when there is one (n1 -> 1, as scripts/cluster.sh
// names nodes), else a hash. Every node computes the same mapping.
func kafkaBrokerID(id string) int32 {
	i := len(id)
	for i > 0 && id[i-1] >= '0' && id[i-1] <= '9' {
		i--
	}
	if i < len(id) && len(id)-i <= 9 {
		if v, err := strconv.Atoi(id[i:]); err == nil {
			return int32(v)
		}
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	return int32(h.Sum32()&0x3fffffff) + 1_000_000_000
}

func splitKafkaAddr(addr string) (string, int32, bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, false
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p > 65535 {
		return "", 0, false
	}
	return host, int32(p), true
}

// newProducerID draws a random non-negative 63-bit id, as the native
// client does for its producer streams: both draw from the same space the
// partition FSM deduplicates by, so ids are unique in the cluster with
// overwhelming probability and need no coordination.
func newProducerID() (int64, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("producer id: %w", err)
	}
	return int64(binary.BigEndian.Uint64(b[:]) >> 1), nil
}

var errNoKafkaCoordinator = errors.New("no metadata leader with a Kafka listener")
