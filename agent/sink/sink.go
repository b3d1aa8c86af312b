// Package sink holds the agent's sinks: sluice (which is also Flume's
// KafkaSink, writing over the Kafka protocol), logger, null, file_roll
// and http. Every sink takes up to a batch from its channel in one
// transaction, delivers it and commits only after the destination
// acknowledged it; on failure it rolls back so the events stay in the
// channel, in order.
package sink

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/sluice-io/sluice/agent/flow"
)

// Builders returns the sink builders keyed by type alias and Flume class
// name (lower case). local, when not nil, is the hosting node's
// in-process writer: sluice sinks without addresses of their own use it.
func Builders(local Writer) map[string]flow.SinkBuilder {
	sluice := func(name string, p *flow.Props, ch flow.Channel, d flow.Deps) (flow.Sink, error) {
		return newSluice(name, p, ch, d, local, false)
	}
	kafkaSink := func(name string, p *flow.Props, ch flow.Channel, d flow.Deps) (flow.Sink, error) {
		return newSluice(name, p, ch, d, local, true)
	}
	return map[string]flow.SinkBuilder{
		"sluice":                                sluice,
		"kafka":                                 sluice,
		KafkaSinkClass:                          kafkaSink,
		"null":                                  NewNull,
		"org.apache.flume.sink.nullsink":        NewNull,
		"logger":                                NewLogger,
		"org.apache.flume.sink.loggersink":      NewLogger,
		"file_roll":                             NewFileRoll,
		"org.apache.flume.sink.rollingfilesink": NewFileRoll,
		"http":                                  NewHTTP,
		"org.apache.flume.sink.http.httpsink":   NewHTTP,
	}
}

// base carries what every sink shares.
type base struct {
	name     string
	ch       flow.Channel
	counters *flow.Counters
	log      *slog.Logger
	batch    int
}

func newBase(name string, ch flow.Channel, d flow.Deps, batch int) base {
	l := d.Logger
	if l == nil {
		l = slog.Default()
	}
	return base{name: name, ch: ch, counters: flow.NewCounters(flow.KindSink, name), log: l.With("sink", name), batch: batch}
}

func (b *base) Name() string             { return b.name }
func (b *base) Counters() *flow.Counters { return b.counters }

// drain runs one Flume sink transaction: take up to batch events, hand
// them to deliver, commit on success, roll back on failure.
func (b *base) drain(ctx context.Context, deliver func(ctx context.Context, evs []flow.Event) error) (flow.Status, error) {
	tx, err := b.ch.Begin()
	if err != nil {
		return flow.Backoff, err
	}
	evs := make([]flow.Event, 0, min(b.batch, 1024))
	for len(evs) < b.batch {
		ev, ok, err := tx.Take()
		if err != nil {
			tx.Rollback()
			b.counters.Add("ChannelReadFail", 1)
			return flow.Backoff, fmt.Errorf("sink %s: take: %w", b.name, err)
		}
		if !ok {
			break
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		b.counters.Add(flow.BatchEmptyCount, 1)
		return flow.Backoff, tx.Commit()
	}
	b.counters.Add(flow.EventDrainAttemptCount, int64(len(evs)))
	if err := deliver(ctx, evs); err != nil {
		tx.Rollback()
		b.counters.Add(flow.EventWriteFail, 1)
		b.counters.Add("RollbackCount", 1)
		return flow.Backoff, fmt.Errorf("sink %s: %w", b.name, err)
	}
	if err := tx.Commit(); err != nil {
		tx.Rollback()
		return flow.Backoff, fmt.Errorf("sink %s: commit: %w", b.name, err)
	}
	if len(evs) < b.batch {
		b.counters.Add(flow.BatchUnderflowCount, 1)
	} else {
		b.counters.Add(flow.BatchCompleteCount, 1)
	}
	b.counters.Add(flow.EventDrainSuccessCount, int64(len(evs)))
	return flow.Ready, nil
}

func batchSize(p *flow.Props, def int64, keys ...string) (int, error) {
	n := def
	for _, k := range keys {
		if p.Has(k) {
			n = p.Int(k, def)
			break
		}
	}
	if err := p.Err(); err != nil {
		return 0, err
	}
	if n < 1 {
		return 0, fmt.Errorf("%s.%s: batch size must be at least 1, got %d", p.Prefix, keys[0], n)
	}
	return int(n), nil
}

// Null discards events (Flume's null sink; batchSize 100).
type Null struct{ base }

func NewNull(name string, p *flow.Props, ch flow.Channel, d flow.Deps) (flow.Sink, error) {
	n, err := batchSize(p, 100, "batchSize")
	if err != nil {
		return nil, err
	}
	return &Null{newBase(name, ch, d, n)}, nil
}

func (s *Null) Start(context.Context) error { s.counters.MarkStart(); return nil }
func (s *Null) Stop(context.Context) error  { s.counters.MarkStop(); return nil }
func (s *Null) Process(ctx context.Context) (flow.Status, error) {
	return s.drain(ctx, func(context.Context, []flow.Event) error { return nil })
}

// Logger logs every event at INFO (Flume's logger sink: headers and the
// first maxBytesToLog (16) bytes of the body).
type Logger struct {
	base
	maxBytes int
}

func NewLogger(name string, p *flow.Props, ch flow.Channel, d flow.Deps) (flow.Sink, error) {
	mb := p.Int("maxBytesToLog", 16)
	n, err := batchSize(p, 100, "batchSize")
	if err != nil {
		return nil, err
	}
	return &Logger{newBase(name, ch, d, n), int(mb)}, nil
}

func (s *Logger) Start(context.Context) error { s.counters.MarkStart(); return nil }
func (s *Logger) Stop(context.Context) error  { s.counters.MarkStop(); return nil }
func (s *Logger) Process(ctx context.Context) (flow.Status, error) {
	return s.drain(ctx, func(_ context.Context, evs []flow.Event) error {
		for _, ev := range evs {
			body := ev.Body
			if len(body) > s.maxBytes {
				body = body[:s.maxBytes]
			}
			s.log.Info("event", "headers", fmtHeaders(ev.Headers), "body", string(body))
		}
		return nil
	})
}

func fmtHeaders(h map[string]string) string {
	keys := sortedKeys(h)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k + "=" + h[k])
	}
	b.WriteByte('}')
	return b.String()
}
