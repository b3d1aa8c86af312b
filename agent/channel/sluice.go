package channel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sluice-io/sluice/agent/flow"
	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

// Sluice is Flume's KafkaChannel counterpart: a replicated topic is the
// channel. A put transaction commits once its events are acknowledged by
// a quorum of the topic's replicas, so an accepted event survives the loss
// of the agent's machine; takes read the topic with a consumer group and
// commit the group's offsets when the take transaction commits
// (at-least-once: a crash between delivery and commit redelivers).
type Sluice struct {
	name     string
	counters *flow.Counters
	log      *slog.Logger
	c        *client.Client
	topic    string
	group    string
	poll     time.Duration
	timeout  time.Duration
	keyHdr   string

	mu       sync.Mutex // guards everything below; Take holds it during a poll
	cons     *client.Consumer
	buf      []client.Record
	inflight map[int32]map[int64]bool
	rr       int
	parts    int
	closed   bool
}

// NewSluice builds the channel. Properties (Flume's KafkaChannel names
// accepted): topic (kafka.topic; flume-channel), servers
// (kafka.bootstrap.servers; default the agent's servers), group
// (kafka.consumer.group.id; flume), pollTimeout (ms, 500), requestTimeout
// (ms, 30000), keyHeader (key). A group without committed offsets starts
// at the earliest offset, so nothing put before the first take is skipped.
func NewSluice(name string, p *flow.Props, d flow.Deps) (flow.Channel, error) {
	get := func(def string, keys ...string) string {
		for _, k := range keys {
			if v := strings.TrimSpace(p.String(k, "")); v != "" {
				return v
			}
		}
		return def
	}
	s := &Sluice{
		name:     name,
		counters: flow.NewCounters(flow.KindChannel, name),
		topic:    get("flume-channel", "topic", "kafka.topic"),
		group:    get("flume", "group", "kafka.consumer.group.id"),
		poll:     p.Millis("pollTimeout", 500*time.Millisecond),
		timeout:  p.Millis("requestTimeout", 30*time.Second),
		keyHdr:   p.String("keyHeader", "key"),
		inflight: map[int32]map[int64]bool{},
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	servers := strings.FieldsFunc(get("", "servers", "kafka.bootstrap.servers"), func(r rune) bool { return r == ',' || r == ' ' })
	if len(servers) == 0 {
		servers = d.Servers
	}
	l := d.Logger
	if l == nil {
		l = slog.Default()
	}
	s.log = l.With("channel", name)
	c, err := client.New(client.Config{Servers: servers, Logger: s.log, TLS: d.TLS})
	if err != nil {
		return nil, fmt.Errorf("%s.servers: %w", p.Prefix, err)
	}
	s.c = c
	return s, nil
}

func (s *Sluice) Name() string             { return s.name }
func (s *Sluice) Counters() *flow.Counters { return s.counters }

func (s *Sluice) Start(context.Context) error {
	s.counters.MarkStart()
	return nil
}

func (s *Sluice) Stop(context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.counters.MarkStop()
	return s.c.Close()
}

func (s *Sluice) Begin() (flow.Transaction, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("channel %s: %w", s.name, flow.ErrClosed)
	}
	return &sluiceTx{s: s}, nil
}

type sluiceTx struct {
	s     *Sluice
	puts  []flow.Event
	takes []client.Record
	done  bool
}

func (t *sluiceTx) Put(ev flow.Event) error {
	if t.done {
		return fmt.Errorf("channel %s: put on a finished transaction", t.s.name)
	}
	t.s.counters.Add(flow.EventPutAttemptCount, 1)
	t.puts = append(t.puts, ev)
	return nil
}

// consumer opens the group consumer on first use (the topic may be
// created after the agent starts).
func (s *Sluice) consumerLocked(ctx context.Context) (*client.Consumer, error) {
	if s.cons != nil {
		return s.cons, nil
	}
	cons, err := s.c.NewConsumer(ctx, client.ConsumerConfig{Topic: s.topic, Group: s.group, Start: transport.OffsetEarliest, MaxWait: s.poll})
	if err != nil {
		return nil, err
	}
	s.cons = cons
	return cons, nil
}

func (t *sluiceTx) Take() (flow.Event, bool, error) {
	s := t.s
	if t.done {
		return flow.Event{}, false, fmt.Errorf("channel %s: take on a finished transaction", s.name)
	}
	s.counters.Add(flow.EventTakeAttemptCount, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.buf) == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), s.poll+s.timeout)
		defer cancel()
		cons, err := s.consumerLocked(ctx)
		if err != nil {
			return flow.Event{}, false, fmt.Errorf("channel %s: topic %q: %w", s.name, s.topic, err)
		}
		recs, err := cons.Poll(ctx)
		if err != nil && len(recs) == 0 {
			return flow.Event{}, false, fmt.Errorf("channel %s: %w", s.name, err)
		}
		s.buf = append(s.buf, recs...)
		if len(s.buf) == 0 {
			return flow.Event{}, false, nil
		}
	}
	r := s.buf[0]
	s.buf = s.buf[1:]
	if s.inflight[r.Partition] == nil {
		s.inflight[r.Partition] = map[int64]bool{}
	}
	s.inflight[r.Partition][r.Offset] = true
	t.takes = append(t.takes, r)
	ev := flow.Event{Body: r.Value}
	for _, h := range r.Headers {
		ev.SetHeader(h.Key, string(h.Value))
	}
	return ev, true, nil
}

func (t *sluiceTx) Commit() error {
	s := t.s
	if t.done {
		return fmt.Errorf("channel %s: commit on a finished transaction", s.name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if len(t.puts) > 0 {
		if err := s.produce(ctx, t.puts); err != nil {
			return fmt.Errorf("channel %s: put commit: %w", s.name, err)
		}
		s.counters.Add(flow.EventPutSuccessCount, int64(len(t.puts)))
		t.puts = nil
	}
	if len(t.takes) > 0 {
		if err := s.commitTakes(ctx, t.takes); err != nil {
			return fmt.Errorf("channel %s: take commit: %w", s.name, err)
		}
		s.counters.Add(flow.EventTakeSuccessCount, int64(len(t.takes)))
		t.takes = nil
	}
	t.done = true
	return nil
}

func (s *Sluice) produce(ctx context.Context, evs []flow.Event) error {
	s.mu.Lock()
	n := s.parts
	s.mu.Unlock()
	if n == 0 {
		var err error
		if n, err = s.c.Partitions(ctx, s.topic); err != nil {
			return fmt.Errorf("topic %q: %w", s.topic, err)
		}
		s.mu.Lock()
		s.parts = n
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.rr++
	sticky := int32(s.rr % n)
	s.mu.Unlock()
	groups := map[int32][]client.Record{}
	var order []int32
	for _, ev := range evs {
		rec := client.Record{Value: ev.Body}
		part := sticky
		if k := ev.Header(s.keyHdr); k != "" {
			rec.Key = []byte(k)
			part = client.KeyPartition(rec.Key, n)
		}
		for _, k := range sortedHeaderKeys(ev.Headers) {
			rec.Headers = append(rec.Headers, client.Header{Key: k, Value: []byte(ev.Headers[k])})
		}
		if _, ok := groups[part]; !ok {
			order = append(order, part)
		}
		groups[part] = append(groups[part], rec)
	}
	var errs []error
	for _, p := range order {
		if _, err := s.c.ProduceBatch(ctx, s.topic, p, groups[p]); err != nil {
			errs = append(errs, fmt.Errorf("partition %d: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// commitTakes commits, for every partition touched, the lowest offset
// still needed: the oldest in-flight take, else the oldest buffered
// record, else the consumer's position.
func (s *Sluice) commitTakes(ctx context.Context, takes []client.Record) error {
	s.mu.Lock()
	touched := map[int32]bool{}
	for _, r := range takes {
		delete(s.inflight[r.Partition], r.Offset)
		touched[r.Partition] = true
	}
	commits := map[int32]int64{}
	pos := s.cons.Positions()
	for p := range touched {
		off := pos[p]
		for o := range s.inflight[p] {
			off = min(off, o)
		}
		for _, r := range s.buf {
			if r.Partition == p {
				off = min(off, r.Offset)
				break
			}
		}
		commits[p] = off
	}
	s.mu.Unlock()
	for p, off := range commits {
		if err := s.c.CommitOffset(ctx, s.group, s.topic, p, off); err != nil {
			return err
		}
	}
	return nil
}

func (t *sluiceTx) Rollback() error {
	if t.done {
		return nil
	}
	t.done = true
	s := t.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range t.takes {
		delete(s.inflight[r.Partition], r.Offset)
	}
	s.buf = append(append([]client.Record(nil), t.takes...), s.buf...)
	t.takes, t.puts = nil, nil
	return nil
}

func sortedHeaderKeys(h map[string]string) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Durable: committed events survive the process.
func (c *Sluice) Durable() bool { return true }
