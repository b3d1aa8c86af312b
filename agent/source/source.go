// Package source holds the agent's sources, with Flume's names, property
// names and defaults: netcat, netcatudp, syslogtcp, syslogudp,
// multiport_syslogtcp, http, spooldir, taildir, exec, seq and sluice (the
// counterpart of Flume's Kafka source). Every source hands its events to
// its flow.Processor and acknowledges them to its client, when the
// protocol has acknowledgements, only after the channels committed them.
package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sluice-io/sluice/agent/flow"
)

const flumeSource = "org.apache.flume.source."

// Builders returns every source builder keyed by type alias (lower case)
// and by the Flume class name it stands in for.
func Builders() map[string]flow.SourceBuilder {
	m := map[string]flow.SourceBuilder{}
	add := func(b flow.SourceBuilder, names ...string) {
		for _, n := range names {
			m[n] = b
		}
	}
	add(newNetcat, "netcat", flumeSource+"NetcatSource")
	add(newNetcatUDP, "netcatudp", flumeSource+"NetcatUdpSource")
	add(newSyslogTCP, "syslogtcp", flumeSource+"SyslogTcpSource")
	add(newSyslogUDP, "syslogudp", flumeSource+"SyslogUDPSource")
	add(newMultiportSyslog, "multiport_syslogtcp", flumeSource+"MultiportSyslogTCPSource")
	add(newHTTP, "http", flumeSource+"http.HTTPSource")
	add(newSpoolDir, "spooldir", flumeSource+"SpoolDirectorySource")
	add(newTaildir, "taildir", flumeSource+"taildir.TaildirSource")
	add(newExec, "exec", flumeSource+"ExecSource")
	add(newSeq, "seq", flumeSource+"SequenceGeneratorSource")
	add(newSluice, "sluice", flumeSource+"kafka.KafkaSource")
	return m
}

// base is what every source shares: its name, counters, processor, and
// the context its goroutines run under.
type base struct {
	name string
	c    *flow.Counters
	proc flow.Processor
	log  *slog.Logger

	// run is cancelled when Stop gives up waiting: it aborts retries of
	// a full channel and every blocking call.
	run    context.Context
	cancel context.CancelFunc
	// quit is closed when Stop begins: loops stop taking new input.
	quit     chan struct{}
	quitOnce sync.Once
	wg       sync.WaitGroup
}

func newBase(name string, proc flow.Processor, d flow.Deps, kind string) base {
	log := d.Logger
	if log == nil {
		log = slog.Default()
	}
	return base{
		name: name,
		c:    flow.NewCounters(flow.KindSource, name),
		proc: proc,
		log:  log.With("agent", d.Agent, "source", name, "type", kind),
		quit: make(chan struct{}),
	}
}

func (b *base) Name() string             { return b.name }
func (b *base) Counters() *flow.Counters { return b.c }

// begin sets up the run context; sources call it first thing in Start.
func (b *base) begin() {
	b.run, b.cancel = context.WithCancel(context.Background())
	b.c.MarkStart()
}

// spawn runs f as one of the source's goroutines.
func (b *base) spawn(f func()) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f()
	}()
}

// stopping reports whether Stop has begun.
func (b *base) stopping() bool {
	select {
	case <-b.quit:
		return true
	default:
		return false
	}
}

// finish is Stop's common part: signal quit, run unblock (close
// listeners, files...), wait for the goroutines to finish their current
// batch within ctx, then cancel whatever still blocks and wait again.
func (b *base) finish(ctx context.Context, unblock func()) error {
	if b.cancel == nil {
		return nil // never started
	}
	b.quitOnce.Do(func() { close(b.quit) })
	if unblock != nil {
		unblock()
	}
	done := make(chan struct{})
	go func() {
		b.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("source %s: stop: %w", b.name, ctx.Err())
	}
	b.cancel()
	<-done
	b.c.MarkStop()
	return err
}

// process hands one batch to the channels once and keeps the counters.
func (b *base) process(ctx context.Context, evs []flow.Event) error {
	if err := b.proc.Process(ctx, evs); err != nil {
		b.c.Add(flow.ChannelWriteFail, 1)
		return err
	}
	b.c.Add(flow.EventAcceptedCount, int64(len(evs)))
	return nil
}

// deliver hands a batch to the channels, retrying while they are full:
// the caller stops reading its input meanwhile, which is the back-pressure
// Flume's sources exert. It gives up only when the source is stopped or
// on an error other than a full channel.
func (b *base) deliver(evs []flow.Event) error {
	if len(evs) == 0 {
		return nil
	}
	b.c.Add(flow.EventReceivedCount, int64(len(evs)))
	wait := 10 * time.Millisecond
	warned := false
	for {
		err := b.process(b.run, evs)
		if err == nil {
			return nil
		}
		if !errors.Is(err, flow.ErrChannelFull) || b.run.Err() != nil {
			return err
		}
		if !warned {
			b.log.Warn("channel full: holding input until it drains", "events", len(evs), "err", err)
			warned = true
		}
		select {
		case <-time.After(wait):
		case <-b.run.Done():
			return fmt.Errorf("%w: %w", flow.ErrClosed, err)
		}
		wait = min(2*wait, time.Second)
	}
}

// sleep waits d or until the source stops; false means stop.
func (b *base) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.quit:
		return false
	}
}

// positive checks a count property (batchSize, ...).
func positive(p *flow.Props, key string, n int64) error {
	if n < 1 {
		return fmt.Errorf("%s.%s: %d: must be at least 1", p.Prefix, key, n)
	}
	return nil
}

// errorf is an error naming the property key.
func errorf(p *flow.Props, key, format string, args ...any) error {
	return fmt.Errorf("%s.%s: %s", p.Prefix, key, fmt.Sprintf(format, args...))
}
