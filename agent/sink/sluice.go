package sink

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sluice-io/sluice/agent/flow"
	"github.com/sluice-io/sluice/client"
)

// Writer appends records to topic partitions and returns only once the
// cluster acknowledged them (a quorum of the partition's replicas). The
// client writes over the network; a node hosting a colocated agent
// implements it in-process.
type Writer interface {
	Partitions(ctx context.Context, topic string) (int, error)
	Write(ctx context.Context, topic string, partition int32, recs []client.Record) error
}

// LocalLeader is implemented by in-process writers: the partitions of
// topic led by this node, where unkeyed events go first.
type LocalLeader interface {
	LocalPartitions(topic string) []int32
}

// ClientWriter is the network Writer over a client.
type ClientWriter struct{ C *client.Client }

func (w ClientWriter) Partitions(ctx context.Context, topic string) (int, error) {
	return w.C.Partitions(ctx, topic)
}

func (w ClientWriter) Write(ctx context.Context, topic string, partition int32, recs []client.Record) error {
	_, err := w.C.ProduceBatch(ctx, topic, partition, recs)
	return err
}

// Sluice writes events into a topic: headers become record headers, the
// body the value, the key header the key. Flume's
// org.apache.flume.sink.kafka.KafkaSink is this sink writing over the
// Kafka protocol.
type Sluice struct {
	base
	w                  Writer
	closeWriter        func() error // the writer this sink owns; nil when shared
	topic              string
	allowTopicOverride bool
	topicHeader        string
	keyHeader          string
	partHeader         string
	defaultPart        int32 // -1: none
	timeout            time.Duration

	mu    sync.Mutex
	rr    uint32
	parts map[string]int
}

// KafkaSinkClass is Flume's Kafka sink class name (lower case, as
// Builders keys it).
const KafkaSinkClass = "org.apache.flume.sink.kafka.kafkasink"

// NewSluice builds the sluice sink. Properties (Kafka sink names in
// parentheses are accepted too): topic (kafka.topic; default
// default-flume-topic), batchSize (flumeBatchSize; 100), keyHeader (key),
// topicHeader (topic), allowTopicOverride (true), partitionIdHeader,
// defaultPartitionId, acks (kafka.producer.acks; Sluice always waits for a
// quorum), requestTimeout (ms, 30000: how long one batch retries before
// rolling back).
//
// Where it writes:
//   - kafka.bootstrap.servers set: over the Kafka protocol to those
//     addresses (the nodes' Kafka listeners, 9092.. with
//     scripts/cluster.sh), so an unchanged Flume KafkaSink configuration
//     works. kafka.producer.compression.type, client.id, linger.ms and
//     security.protocol (PLAINTEXT, SSL) are honoured; other
//     kafka.producer.* properties are logged and ignored.
//   - servers set: Sluice's native RPC to those addresses (7071..).
//   - neither: the agent's --server over RPC, or in-process in a node.
//
// Setting both is an error, and so is Flume's class name with neither:
// Flume requires kafka.bootstrap.servers too, and type = sluice is the
// way to write to the agent's own cluster.
func NewSluice(name string, p *flow.Props, ch flow.Channel, d flow.Deps, local Writer) (flow.Sink, error) {
	return newSluice(name, p, ch, d, local, false)
}

// newSluice is NewSluice; kafkaClass says the type was Flume's KafkaSink.
func newSluice(name string, p *flow.Props, ch flow.Channel, d flow.Deps, local Writer, kafkaClass bool) (flow.Sink, error) {
	n, err := batchSize(p, 100, "batchSize", "flumeBatchSize", "kafka.flumeBatchSize")
	if err != nil {
		return nil, err
	}
	s := &Sluice{
		base:               newBase(name, ch, d, n),
		topic:              first(p, "default-flume-topic", "topic", "kafka.topic"),
		allowTopicOverride: p.Bool("allowTopicOverride", true),
		topicHeader:        p.String("topicHeader", "topic"),
		keyHeader:          p.String("keyHeader", "key"),
		partHeader:         p.String("partitionIdHeader", ""),
		defaultPart:        int32(p.Int("defaultPartitionId", -1)),
		timeout:            p.Millis("requestTimeout", 30*time.Second),
		parts:              map[string]int{},
	}
	switch acks := first(p, "-1", "acks", "kafka.producer.acks"); acks {
	case "-1", "all", "1", "0":
		if acks != "-1" && acks != "all" {
			s.log.Info("acks below a quorum requested; upgraded to all: Sluice acknowledges only quorum-committed writes", "acks", acks)
		}
	default:
		return nil, fmt.Errorf("%s.acks: %q is not -1, all, 1 or 0", p.Prefix, acks)
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	if s.timeout <= 0 {
		return nil, fmt.Errorf("%s.requestTimeout: must be positive", p.Prefix)
	}
	kafkaServers := splitList(first(p, "", "kafka.bootstrap.servers"))
	servers := splitList(first(p, "", "servers"))
	switch {
	case len(kafkaServers) > 0 && len(servers) > 0:
		return nil, fmt.Errorf("%s: servers (Sluice RPC) and kafka.bootstrap.servers (Kafka protocol) are both set; keep one", p.Prefix)
	case len(kafkaServers) > 0:
		opts, err := kafkaOptions(p, d, s.log)
		if err != nil {
			return nil, err
		}
		w, err := NewKafkaWriter(kafkaServers, opts...)
		if err != nil {
			return nil, fmt.Errorf("%s.kafka.bootstrap.servers: %w", p.Prefix, err)
		}
		s.w, s.closeWriter = w, func() error { w.Close(); return nil }
	case kafkaClass && len(servers) == 0:
		return nil, fmt.Errorf("%s.kafka.bootstrap.servers: required property is missing (the Kafka listener addresses; type = sluice writes to the agent's cluster)", p.Prefix)
	case len(servers) > 0 || local == nil:
		if len(servers) == 0 {
			servers = d.Servers
		}
		c, err := client.New(client.Config{Servers: servers, Logger: s.log, TLS: d.TLS})
		if err != nil {
			return nil, fmt.Errorf("%s.servers: %w", p.Prefix, err)
		}
		s.w, s.closeWriter = ClientWriter{c}, c.Close
	default:
		s.w = local
	}
	return s, nil
}

func first(p *flow.Props, def string, keys ...string) string {
	for _, k := range keys {
		if v := strings.TrimSpace(p.String(k, "")); v != "" {
			return v
		}
	}
	return def
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}

func (s *Sluice) Start(context.Context) error { s.counters.MarkStart(); return nil }

func (s *Sluice) Stop(context.Context) error {
	s.counters.MarkStop()
	if s.closeWriter != nil {
		return s.closeWriter()
	}
	return nil
}

func (s *Sluice) Process(ctx context.Context) (flow.Status, error) {
	return s.drain(ctx, s.deliver)
}

func (s *Sluice) partitions(ctx context.Context, topic string) (int, error) {
	s.mu.Lock()
	n, ok := s.parts[topic]
	s.mu.Unlock()
	if ok {
		return n, nil
	}
	n, err := s.w.Partitions(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("topic %q: %w", topic, err)
	}
	s.mu.Lock()
	s.parts[topic] = n
	s.mu.Unlock()
	return n, nil
}

type dest struct {
	topic string
	part  int32
}

// deliver writes one batch, each partition's events in order as one
// idempotent batch, all partitions in parallel, and returns once every
// partition acknowledged.
func (s *Sluice) deliver(ctx context.Context, evs []flow.Event) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	groups := map[dest][]client.Record{}
	var order []dest
	sticky := map[string]int32{} // unkeyed events of a batch share a partition
	for _, ev := range evs {
		topic := s.topic
		if s.allowTopicOverride {
			if t := ev.Header(s.topicHeader); t != "" {
				topic = t
			}
		}
		n, err := s.partitions(ctx, topic)
		if err != nil {
			return err
		}
		rec := client.Record{Value: ev.Body}
		if k, ok := ev.Headers[s.keyHeader]; ok && k != "" {
			rec.Key = []byte(k)
		}
		for _, k := range sortedKeys(ev.Headers) {
			rec.Headers = append(rec.Headers, client.Header{Key: k, Value: []byte(ev.Headers[k])})
		}
		part := int32(-1)
		if s.partHeader != "" {
			if v := ev.Header(s.partHeader); v != "" {
				id, err := strconv.ParseInt(v, 10, 32)
				if err != nil || id < 0 || int(id) >= n {
					return fmt.Errorf("header %s=%q is not a partition of topic %q (0..%d)", s.partHeader, v, topic, n-1)
				}
				part = int32(id)
			}
		}
		if part < 0 && s.defaultPart >= 0 {
			if int(s.defaultPart) >= n {
				return fmt.Errorf("defaultPartitionId %d is not a partition of topic %q (0..%d)", s.defaultPart, topic, n-1)
			}
			part = s.defaultPart
		}
		if part < 0 && rec.Key != nil {
			part = client.KeyPartition(rec.Key, n)
		}
		if part < 0 {
			p, ok := sticky[topic]
			if !ok {
				p = s.pickUnkeyed(topic, n)
				sticky[topic] = p
			}
			part = p
		}
		d := dest{topic, part}
		if _, seen := groups[d]; !seen {
			order = append(order, d)
		}
		groups[d] = append(groups[d], rec)
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, d := range order {
		recs := groups[d]
		g.Go(func() error {
			if err := s.w.Write(gctx, d.topic, d.part, recs); err != nil {
				return fmt.Errorf("write %s/%d: %w", d.topic, d.part, err)
			}
			return nil
		})
	}
	err := g.Wait()
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("not acknowledged within requestTimeout %v: %w", s.timeout, err)
	}
	return err
}

// pickUnkeyed spreads unkeyed batches round robin, over the partitions
// led in-process when there are any.
func (s *Sluice) pickUnkeyed(topic string, n int) int32 {
	s.mu.Lock()
	s.rr++
	rr := s.rr
	s.mu.Unlock()
	if ll, ok := s.w.(LocalLeader); ok {
		if local := ll.LocalPartitions(topic); len(local) > 0 {
			return local[int(rr)%len(local)]
		}
	}
	return int32(int(rr) % n)
}

func sortedKeys(h map[string]string) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
