package chain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/sluice-io/sluice/agent/flow"
	"github.com/sluice-io/sluice/transport"
)

// SinkBuilders returns the chaining sink under Flume's avro sink names.
func SinkBuilders() map[string]flow.SinkBuilder {
	return map[string]flow.SinkBuilder{
		"avro":                           newSink,
		"org.apache.flume.sink.AvroSink": newSink,
	}
}

// Counter names of Flume's sink counter not in flow.
const channelReadFail = "ChannelReadFail"

// Sink sends its channel's events to a chaining source in batches.
type Sink struct {
	name           string
	agent          string
	addr           string
	batch          int
	connectTimeout time.Duration
	requestTimeout time.Duration
	ch             flow.Channel
	c              *flow.Counters
	log            *slog.Logger

	mu   sync.Mutex
	conn *transport.Conn
}

func newSink(name string, p *flow.Props, ch flow.Channel, d flow.Deps) (flow.Sink, error) {
	addr := net.JoinHostPort(p.Required("hostname"), p.Required("port"))
	batch := p.Int("batch-size", 100)
	ct := p.Millis("connect-timeout", 20*time.Second)
	rt := p.Millis("request-timeout", 20*time.Second)
	comp := p.String("compression-type", "none")
	ssl := p.Bool("ssl", false)
	if err := p.Err(); err != nil {
		return nil, err
	}
	if batch < 1 {
		return nil, fmt.Errorf("%s.batch-size: %d: must be at least 1", p.Prefix, batch)
	}
	if !strings.EqualFold(comp, "none") {
		return nil, fmt.Errorf("%s.compression-type: %q is not supported (none)", p.Prefix, comp)
	}
	if ssl {
		return nil, fmt.Errorf("%s.ssl: TLS is not supported by the chaining sink", p.Prefix)
	}
	log := d.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Sink{
		name: name, agent: d.Agent, addr: addr, batch: int(batch),
		connectTimeout: ct, requestTimeout: rt, ch: ch,
		c:   flow.NewCounters(flow.KindSink, name),
		log: log.With("agent", d.Agent, "sink", name, "type", "avro"),
	}, nil
}

func (k *Sink) Name() string             { return k.name }
func (k *Sink) Counters() *flow.Counters { return k.c }

// Start connects lazily: the next agent may come up later.
func (k *Sink) Start(context.Context) error {
	k.c.MarkStart()
	return nil
}

func (k *Sink) Stop(context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closeConn()
	k.c.MarkStop()
	return nil
}

func (k *Sink) closeConn() {
	if k.conn != nil {
		k.conn.Close()
		k.conn = nil
		k.c.Add(flow.ConnectionClosedCount, 1)
	}
}

// connection returns a healthy connection, dialling when needed.
func (k *Sink) connection(ctx context.Context) (*transport.Conn, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.conn != nil {
		select {
		case <-k.conn.Done():
			k.closeConn()
		default:
			return k.conn, nil
		}
	}
	dctx, cancel := context.WithTimeout(ctx, k.connectTimeout)
	defer cancel()
	c, err := transport.DialConn(dctx, k.addr, transport.DialOptions{Timeout: k.connectTimeout})
	if err != nil {
		k.c.Add(flow.ConnectionFailedCount, 1)
		return nil, fmt.Errorf("sink %s: connect to %s: %w", k.name, k.addr, err)
	}
	k.c.Add(flow.ConnectionCreatedCount, 1)
	k.conn = c
	return c, nil
}

// Process takes up to batch-size events, sends them, and commits the
// channel transaction only once the next agent acknowledged them; any
// failure rolls back, so the events are sent again later.
func (k *Sink) Process(ctx context.Context) (flow.Status, error) {
	tx, err := k.ch.Begin()
	if err != nil {
		k.c.Add(channelReadFail, 1)
		return flow.Backoff, fmt.Errorf("sink %s: begin: %w", k.name, err)
	}
	var evs []flow.Event
	for len(evs) < k.batch {
		ev, ok, err := tx.Take()
		if err != nil {
			k.c.Add(channelReadFail, 1)
			return flow.Backoff, k.rollback(tx, fmt.Errorf("sink %s: take: %w", k.name, err))
		}
		if !ok {
			break
		}
		evs = append(evs, ev)
	}
	switch {
	case len(evs) == 0:
		k.c.Add(flow.BatchEmptyCount, 1)
		if err := tx.Commit(); err != nil {
			return flow.Backoff, fmt.Errorf("sink %s: commit: %w", k.name, err)
		}
		return flow.Backoff, nil
	case len(evs) < k.batch:
		k.c.Add(flow.BatchUnderflowCount, 1)
	default:
		k.c.Add(flow.BatchCompleteCount, 1)
	}
	k.c.Add(flow.EventDrainAttemptCount, int64(len(evs)))
	if err := k.send(ctx, evs); err != nil {
		k.c.Add(flow.EventWriteFail, 1)
		return flow.Backoff, k.rollback(tx, err)
	}
	if err := tx.Commit(); err != nil {
		// The next agent has the events: a retry duplicates them, which
		// at-least-once allows.
		return flow.Backoff, fmt.Errorf("sink %s: commit after delivery: %w", k.name, err)
	}
	k.c.Add(flow.EventDrainSuccessCount, int64(len(evs)))
	return flow.Ready, nil
}

func (k *Sink) rollback(tx flow.Transaction, cause error) error {
	if err := tx.Rollback(); err != nil {
		return errors.Join(cause, fmt.Errorf("sink %s: rollback: %w", k.name, err))
	}
	return cause
}

func (k *Sink) send(ctx context.Context, evs []flow.Event) error {
	conn, err := k.connection(ctx)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, k.requestTimeout)
	defer cancel()
	var resp AppendBatchResponse
	err = conn.Call(rctx, MethodAppendBatch, AppendBatchRequest{Agent: k.agent, Sink: k.name, Events: toWire(evs)}, &resp)
	if err != nil {
		if transport.CodeOf(err) == 0 {
			// Transport trouble: start afresh on the next attempt.
			k.mu.Lock()
			if k.conn == conn {
				k.closeConn()
			}
			k.mu.Unlock()
		}
		if transport.CodeOf(err) == transport.ErrUnavailable && strings.Contains(err.Error(), channelFullMsg) {
			return fmt.Errorf("sink %s: %s: %w: %w", k.name, k.addr, flow.ErrChannelFull, err)
		}
		return fmt.Errorf("sink %s: send %d events to %s: %w", k.name, len(evs), k.addr, err)
	}
	if resp.Accepted != len(evs) {
		return fmt.Errorf("sink %s: %s acknowledged %d of %d events", k.name, k.addr, resp.Accepted, len(evs))
	}
	return nil
}
