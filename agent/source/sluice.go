package source

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-io/sluice/agent/flow"
	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

// sluiceSource is the counterpart of Flume's KafkaSource: it reads topics
// with a consumer group and commits the group's offsets only after the
// channels committed the events read, so every record reaches the
// channels at least once, across crashes and restarts of the agent.
type sluiceSource struct {
	base
	servers     []string
	topics      []string
	group       string
	start       int64
	batch       int
	batchDur    time.Duration
	topicHeader string // "" = setTopicHeader false

	cl *client.Client
}

func newSluice(name string, p *flow.Props, proc flow.Processor, d flow.Deps) (flow.Source, error) {
	s := &sluiceSource{base: newBase(name, proc, d, "sluice")}
	if v := p.String("kafka.bootstrap.servers", p.String("servers", "")); v != "" {
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				s.servers = append(s.servers, a)
			}
		}
	} else {
		s.servers = d.Servers
	}
	topics := p.String("kafka.topics", p.String("topic", ""))
	for _, t := range strings.Split(topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			s.topics = append(s.topics, t)
		}
	}
	if p.Has("kafka.topics.regex") {
		return nil, errorf(p, "kafka.topics.regex", "not supported: list the topics in kafka.topics")
	}
	if len(s.topics) == 0 {
		p.Required("kafka.topics")
	}
	s.group = p.String("kafka.consumer.group.id", "flume")
	reset := p.String("kafka.consumer.auto.offset.reset", "latest")
	batch := p.Int("batchSize", 1000)
	s.batchDur = p.Millis("batchDurationMillis", time.Second)
	if p.Bool("setTopicHeader", true) {
		s.topicHeader = p.String("topicHeader", "topic")
	}
	if p.Bool("useFlumeEventFormat", false) {
		return nil, errorf(p, "useFlumeEventFormat", "not supported: event headers travel as record headers")
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	switch reset {
	case "latest":
		s.start = transport.OffsetLatest
	case "earliest":
		s.start = transport.OffsetEarliest
	default:
		return nil, errorf(p, "kafka.consumer.auto.offset.reset", "%q: want earliest or latest", reset)
	}
	if err := positive(p, "batchSize", batch); err != nil {
		return nil, err
	}
	if strings.TrimSpace(s.group) == "" {
		return nil, errorf(p, "kafka.consumer.group.id", "must not be empty")
	}
	s.batch = int(batch)
	return s, nil
}

func (s *sluiceSource) Start(context.Context) error {
	cl, err := client.New(client.Config{Servers: s.servers, Logger: s.log})
	if err != nil {
		return fmt.Errorf("source %s: %w", s.name, err)
	}
	s.cl = cl
	s.begin()
	for _, t := range s.topics {
		s.spawn(func() { s.consume(t) })
	}
	return nil
}

func (s *sluiceSource) Stop(ctx context.Context) error {
	err := s.finish(ctx, nil)
	if s.cl != nil {
		s.cl.Close()
	}
	return err
}

// consume runs one topic's consumer until the source stops; the cluster
// may be unreachable for a while, so set-up is retried.
func (s *sluiceSource) consume(topic string) {
	var cn *client.Consumer
	for cn == nil {
		var err error
		ctx, cancel := context.WithTimeout(s.run, 30*time.Second)
		cn, err = s.cl.NewConsumer(ctx, client.ConsumerConfig{Topic: topic, Group: s.group, Start: s.start, MaxWait: min(s.batchDur, 500*time.Millisecond)})
		cancel()
		if err != nil {
			if s.stopping() {
				return
			}
			s.log.Warn("cannot start consuming, retrying", "topic", topic, "err", err)
			if !s.sleep(backoffOnError) {
				return
			}
		}
	}
	for !s.stopping() {
		// The positions before this batch, to go back to when the
		// channels refuse it.
		before := cn.Positions()
		recs := s.poll(cn)
		if len(recs) == 0 {
			continue
		}
		if err := s.deliverRecords(recs); err != nil {
			for p, off := range before {
				_ = cn.Seek(p, off)
			}
			if s.run.Err() != nil {
				return
			}
			s.log.Warn("batch not accepted, reading it again", "topic", topic, "err", err)
			if !s.sleep(backoffOnError) {
				return
			}
			continue
		}
		// Only now: the channels hold every record up to these positions.
		ctx, cancel := context.WithTimeout(s.run, 30*time.Second)
		err := cn.Commit(ctx)
		cancel()
		if err != nil && !s.stopping() {
			s.log.Warn("offsets not committed: the batch will be read again after a restart", "topic", topic, "err", err)
		}
	}
}

// poll gathers up to batchSize records or what batchDurationMillis
// brings, whichever comes first.
func (s *sluiceSource) poll(cn *client.Consumer) []client.Record {
	var recs []client.Record
	deadline := time.Now().Add(s.batchDur)
	for len(recs) < s.batch && time.Now().Before(deadline) && !s.stopping() {
		ctx, cancel := context.WithDeadline(s.run, deadline)
		got, err := cn.Poll(ctx)
		cancel()
		recs = append(recs, got...)
		if err != nil && ctx.Err() == nil && s.run.Err() == nil {
			if !client.IsRetriable(err) {
				s.log.Warn("poll failed", "err", err)
			}
			if !s.sleep(100 * time.Millisecond) {
				break
			}
		}
	}
	return recs
}

// deliverRecords hands the records to the channels in batches of
// batchSize; all of them are committed when it returns nil.
func (s *sluiceSource) deliverRecords(recs []client.Record) error {
	for len(recs) > 0 {
		n := min(len(recs), s.batch)
		evs := make([]flow.Event, n)
		for i, r := range recs[:n] {
			evs[i] = s.event(r)
		}
		if err := s.deliver(evs); err != nil {
			return err
		}
		recs = recs[n:]
	}
	return nil
}

// event turns a record into an event: its headers back as event headers,
// then Flume's KafkaSource headers (topic, partition, offset, key,
// timestamp).
func (s *sluiceSource) event(r client.Record) flow.Event {
	h := make(map[string]string, len(r.Headers)+5)
	for _, rh := range r.Headers {
		h[rh.Key] = string(rh.Value)
	}
	if s.topicHeader != "" {
		h[s.topicHeader] = r.Topic
	}
	h["partition"] = strconv.Itoa(int(r.Partition))
	h["offset"] = strconv.FormatInt(r.Offset, 10)
	if _, ok := h["key"]; !ok && r.Key != nil {
		h["key"] = string(r.Key)
	}
	if _, ok := h["timestamp"]; !ok && !r.Timestamp.IsZero() {
		h["timestamp"] = strconv.FormatInt(r.Timestamp.UnixMilli(), 10)
	}
	return flow.Event{Headers: h, Body: r.Value}
}
