package client

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/sluice-io/sluice/batch"
	"github.com/sluice-io/sluice/transport"
)

// fakeCluster emulates a few Sluice nodes sharing one (perfectly
// replicated) state: each node is a real transport.Mux, and only the node
// that the fake names leader of a partition serves its produce and fetch.
type fakeCluster struct {
	t     testing.TB
	nodes []*fakeNode

	mu      sync.Mutex
	topics  map[string]*fakeTopic
	offsets map[string]int64
	// leaders maps topic/partition to a node index; -1 = no leader.
	leaders map[string]int
	// hint makes NotLeader replies name the leader's address.
	hint bool
	// staleMeta makes Metadata report this node index as every leader
	// (a node whose view lags), when >= 0.
	staleMeta int
	// slowProduces > 0: the next produces are applied, then answered only
	// after slowDelay (past the client's attempt timeout).
	slowProduces int
	slowDelay    time.Duration
	// hold, when set, keeps every produce's reply (after applying it)
	// until it is closed; held counts the replies waiting, maxHeld the
	// most at once.
	hold          chan struct{}
	held, maxHeld int
	// unordered serves pipelined produces of a connection in whatever order
	// their goroutines get to them (a node without ordered methods).
	unordered bool
	// produces records every produce request that reached a leader.
	produces []fakeProduce
	changed  chan struct{} // closed and replaced on every append
}

type fakeNode struct {
	id   string
	addr string
	mux  *transport.Mux
	down bool
}

type fakeProduce struct {
	node       string
	partition  int32
	producerID int64
	seq        int32
	records    int
	dup        bool
	refused    bool // out of sequence
}

type fakeTopic struct {
	name  string
	parts []*fakeLog
}

type fakeLog struct {
	batches   [][]byte
	next      int64
	start     int64
	producers map[int64]map[int32][2]int64 // producer id -> base seq -> offsets
	nextSeq   map[int64]int32
}

func newFakeCluster(t testing.TB, n int) *fakeCluster {
	t.Helper()
	return newFakeClusterOpts(t, n, false)
}

func newFakeClusterOpts(t testing.TB, n int, unordered bool) *fakeCluster {
	t.Helper()
	fc := &fakeCluster{
		t:         t,
		topics:    map[string]*fakeTopic{},
		offsets:   map[string]int64{},
		leaders:   map[string]int{},
		hint:      true,
		staleMeta: -1,
		changed:   make(chan struct{}),
		unordered: unordered,
	}
	ordered := []transport.Method{transport.MethodProduce}
	if unordered {
		ordered = nil
	}
	for i := range n {
		mux, err := transport.Listen(transport.Config{Addr: "127.0.0.1:0", OrderedMethods: ordered})
		require.NoError(t, err)
		node := &fakeNode{id: fmt.Sprintf("n%d", i+1), addr: mux.Addr().String(), mux: mux}
		fc.nodes = append(fc.nodes, node)
		go func() { _ = mux.Serve(fc.handler(i)) }()
	}
	t.Cleanup(func() {
		for _, n := range fc.nodes {
			_ = n.mux.Close()
		}
	})
	return fc
}

// stop closes a node's port, as if the process died.
func (fc *fakeCluster) stop(i int) {
	fc.mu.Lock()
	fc.nodes[i].down = true
	fc.mu.Unlock()
	_ = fc.nodes[i].mux.Close()
}

func (fc *fakeCluster) addr(i int) string { return fc.nodes[i].addr }

func (fc *fakeCluster) createTopic(name string, parts int, leader int) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.createLocked(name, parts, leader)
}

func (fc *fakeCluster) createLocked(name string, parts int, leader int) {
	t := &fakeTopic{name: name}
	for p := range parts {
		t.parts = append(t.parts, &fakeLog{producers: map[int64]map[int32][2]int64{}, nextSeq: map[int64]int32{}})
		fc.leaders[fmt.Sprintf("%s/%d", name, p)] = leader
	}
	fc.topics[name] = t
}

// forgetProducers drops every producer's state of a partition, as a
// server does when it evicts them.
func (fc *fakeCluster) forgetProducers(topic string, part int32) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	l := fc.topics[topic].parts[part]
	l.producers, l.nextSeq = map[int64]map[int32][2]int64{}, map[int64]int32{}
}

// setLeader moves the leadership of every partition of topic to node i.
func (fc *fakeCluster) setLeader(topic string, i int) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	for p := range fc.topics[topic].parts {
		fc.leaders[fmt.Sprintf("%s/%d", topic, p)] = i
	}
}

func (fc *fakeCluster) slow(n int, d time.Duration) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.slowProduces, fc.slowDelay = n, d
}

func (fc *fakeCluster) producesSeen() []fakeProduce {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return append([]fakeProduce(nil), fc.produces...)
}

// records returns the values stored in a partition, in offset order, and
// checks that offsets are dense.
func (fc *fakeCluster) records(topic string, part int32) []string {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var out []string
	l := fc.topics[topic].parts[part]
	next := int64(-1)
	for _, b := range l.batches {
		h, _ := batch.ParseHeader(b)
		_, err := batch.Walk(b, 0, func(r batch.Record) error {
			off := h.BaseOffset + int64(r.OffsetDelta)
			if next >= 0 {
				require.Equal(fc.t, next, off, "offsets must be dense")
			}
			next = off + 1
			out = append(out, string(r.Value))
			return nil
		})
		require.NoError(fc.t, err)
	}
	return out
}

func (fc *fakeCluster) handler(i int) transport.Handler {
	return func(ctx context.Context, method transport.Method, body []byte) (any, error) {
		switch method {
		case transport.MethodMetadata:
			var req transport.MetadataRequest
			if err := msgpack.Unmarshal(body, &req); err != nil {
				return nil, err
			}
			return fc.metadata(req), nil
		case transport.MethodCreateTopic:
			var req transport.CreateTopicRequest
			if err := msgpack.Unmarshal(body, &req); err != nil {
				return nil, err
			}
			fc.mu.Lock()
			defer fc.mu.Unlock()
			if fc.topics[req.Name] != nil {
				return nil, transport.Errorf(transport.ErrTopicExists, "%s", req.Name)
			}
			fc.createLocked(req.Name, req.Partitions, 0)
			return transport.Empty{}, nil
		case transport.MethodProduce:
			var req transport.ProduceRequest
			if err := msgpack.Unmarshal(body, &req); err != nil {
				return nil, err
			}
			return fc.produce(ctx, i, &req)
		case transport.MethodFetch:
			var req transport.FetchRequest
			if err := msgpack.Unmarshal(body, &req); err != nil {
				return nil, err
			}
			return fc.fetch(ctx, i, &req)
		case transport.MethodOffsetCommit:
			var req transport.OffsetCommitRequest
			if err := msgpack.Unmarshal(body, &req); err != nil {
				return nil, err
			}
			fc.mu.Lock()
			defer fc.mu.Unlock()
			if _, err := fc.leaderCheck(i, req.Topic, req.Partition); err != nil {
				return nil, err
			}
			fc.offsets[fmt.Sprintf("%s/%s/%d", req.Group, req.Topic, req.Partition)] = req.Offset
			return transport.Empty{}, nil
		case transport.MethodOffsetFetch:
			var req transport.OffsetFetchRequest
			if err := msgpack.Unmarshal(body, &req); err != nil {
				return nil, err
			}
			fc.mu.Lock()
			defer fc.mu.Unlock()
			if _, err := fc.leaderCheck(i, req.Topic, req.Partition); err != nil {
				return nil, err
			}
			off, ok := fc.offsets[fmt.Sprintf("%s/%s/%d", req.Group, req.Topic, req.Partition)]
			if !ok {
				off = -1
			}
			return transport.OffsetFetchResponse{Offset: off}, nil
		case transport.MethodStatus:
			return transport.StatusResponse{Node: fc.nodes[i].id}, nil
		}
		return nil, transport.Errorf(transport.ErrInvalidRequest, "method %s", method)
	}
}

func (fc *fakeCluster) metadata(req transport.MetadataRequest) transport.MetadataResponse {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var resp transport.MetadataResponse
	for _, n := range fc.nodes {
		resp.Brokers = append(resp.Brokers, transport.Broker{ID: n.id, RPCAddr: n.addr, State: "alive"})
	}
	names := req.Topics
	if len(names) == 0 {
		for name := range fc.topics {
			names = append(names, name)
		}
	}
	for _, name := range names {
		t := fc.topics[name]
		if t == nil {
			continue
		}
		tm := transport.TopicMeta{Name: name, ReplicationFactor: len(fc.nodes)}
		for p := range t.parts {
			leader := ""
			li := fc.leaders[fmt.Sprintf("%s/%d", name, p)]
			if fc.staleMeta >= 0 {
				li = fc.staleMeta
			}
			if li >= 0 {
				leader = fc.nodes[li].id
			}
			tm.Partitions = append(tm.Partitions, transport.PartitionMeta{ID: int32(p), Leader: leader, HighWatermark: -1})
		}
		resp.Topics = append(resp.Topics, tm)
	}
	return resp
}

// leaderCheck returns the partition's log if node i leads it (fc.mu held).
func (fc *fakeCluster) leaderCheck(i int, topic string, part int32) (*fakeLog, error) {
	t := fc.topics[topic]
	if t == nil {
		return nil, transport.Errorf(transport.ErrUnknownTopic, "%s", topic)
	}
	if part < 0 || int(part) >= len(t.parts) {
		return nil, transport.Errorf(transport.ErrUnknownPartition, "%s/%d", topic, part)
	}
	li := fc.leaders[fmt.Sprintf("%s/%d", topic, part)]
	if li != i {
		e := &transport.Error{Code: transport.ErrNotLeader, Message: "not leader"}
		if fc.hint && li >= 0 {
			e.Leader = fc.nodes[li].addr
		}
		return nil, e
	}
	return t.parts[part], nil
}

func (fc *fakeCluster) produce(ctx context.Context, i int, req *transport.ProduceRequest) (any, error) {
	leave := func() {}
	if fc.unordered {
		// Let the goroutines of pipelined requests overtake each other.
		time.Sleep(time.Duration(rand.N(2000)) * time.Microsecond)
	} else {
		// As a node does, take pipelined batches in the order they were
		// sent, and let the next one in once this one is applied.
		var err error
		if leave, err = transport.InOrder(ctx); err != nil {
			return nil, err
		}
	}
	defer leave()
	fc.mu.Lock()
	l, err := fc.leaderCheck(i, req.Topic, req.Partition)
	if err != nil {
		fc.mu.Unlock()
		return nil, err
	}
	rb, err := batch.Count(req.Batch, 0)
	if err != nil {
		fc.mu.Unlock()
		return nil, transport.Errorf(transport.ErrCorruptBatch, "%v", err)
	}
	n := int(rb.NumRecords)
	seen := fakeProduce{node: fc.nodes[i].id, partition: req.Partition, producerID: rb.ProducerID, seq: rb.BaseSequence, records: n}
	var resp transport.ProduceResponse
	if prev, ok := l.producers[rb.ProducerID][rb.BaseSequence]; ok {
		seen.dup = true
		resp = transport.ProduceResponse{BaseOffset: prev[0], LastOffset: prev[1]}
	} else {
		want, known := l.nextSeq[rb.ProducerID]
		if (known && rb.BaseSequence != want) || (!known && rb.BaseSequence != 0) {
			seen.refused = true
			fc.produces = append(fc.produces, seen)
			fc.mu.Unlock()
			return nil, transport.Errorf(transport.ErrOutOfOrderSequence, "sequence %d, want %d", rb.BaseSequence, want)
		}
		stored := append([]byte(nil), req.Batch...)
		binary.BigEndian.PutUint64(stored, uint64(l.next))
		l.batches = append(l.batches, stored)
		resp = transport.ProduceResponse{BaseOffset: l.next, LastOffset: l.next + int64(n) - 1}
		l.next += int64(n)
		if l.producers[rb.ProducerID] == nil {
			l.producers[rb.ProducerID] = map[int32][2]int64{}
		}
		l.producers[rb.ProducerID][rb.BaseSequence] = [2]int64{resp.BaseOffset, resp.LastOffset}
		l.nextSeq[rb.ProducerID] = rb.BaseSequence + int32(n)
		close(fc.changed)
		fc.changed = make(chan struct{})
	}
	fc.produces = append(fc.produces, seen)
	var delay time.Duration
	if fc.slowProduces > 0 {
		fc.slowProduces--
		delay = fc.slowDelay
	}
	hold := fc.hold
	if hold != nil {
		fc.held++
		fc.maxHeld = max(fc.maxHeld, fc.held)
	}
	fc.mu.Unlock()
	leave()
	if hold != nil {
		<-hold
		fc.mu.Lock()
		fc.held--
		fc.mu.Unlock()
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
		}
	}
	return resp, nil
}

func (fc *fakeCluster) fetch(ctx context.Context, i int, req *transport.FetchRequest) (any, error) {
	deadline := time.Now().Add(time.Duration(req.MaxWaitMs) * time.Millisecond)
	for {
		fc.mu.Lock()
		var l *fakeLog
		var err error
		if req.FromReplica {
			l = fc.topics[req.Topic].parts[req.Partition]
		} else if l, err = fc.leaderCheck(i, req.Topic, req.Partition); err != nil {
			fc.mu.Unlock()
			return nil, err
		}
		off := req.Offset
		switch off {
		case transport.OffsetEarliest:
			off = l.start
		case transport.OffsetLatest:
			off = l.next
		}
		if off < l.start || off > l.next {
			fc.mu.Unlock()
			return nil, transport.Errorf(transport.ErrOffsetOutOfRange, "offset %d not in [%d, %d]", off, l.start, l.next)
		}
		resp := transport.FetchResponse{HighWatermark: l.next, LogStartOffset: l.start}
		size := 0
		for _, b := range l.batches {
			base := int64(binary.BigEndian.Uint64(b))
			last := base + int64(binary.BigEndian.Uint32(b[23:]))
			if last < off {
				continue
			}
			if size > 0 && size+len(b) > int(req.MaxBytes) {
				break
			}
			size += len(b)
			resp.Batches = append(resp.Batches, b)
		}
		changed := fc.changed
		fc.mu.Unlock()
		wait := time.Until(deadline)
		if len(resp.Batches) > 0 || wait <= 0 {
			return resp, nil
		}
		select {
		case <-changed:
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// truncateStart emulates retention: drops whole batches before off.
func (fc *fakeCluster) truncateStart(topic string, part int32, off int64) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	l := fc.topics[topic].parts[part]
	for len(l.batches) > 0 {
		b := l.batches[0]
		base := int64(binary.BigEndian.Uint64(b))
		last := base + int64(binary.BigEndian.Uint32(b[23:]))
		if last >= off {
			break
		}
		l.batches = l.batches[1:]
	}
	l.start = off
}
