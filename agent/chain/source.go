package chain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"

	"github.com/sluice-io/sluice/agent/flow"
	"github.com/sluice-io/sluice/transport"
)

// SourceBuilders returns the chaining source under Flume's avro source
// names.
func SourceBuilders() map[string]flow.SourceBuilder {
	return map[string]flow.SourceBuilder{
		"avro":                               newSource,
		"org.apache.flume.source.AvroSource": newSource,
	}
}

// Source receives batches from chaining sinks.
type Source struct {
	name string
	addr string
	c    *flow.Counters
	proc flow.Processor
	log  *slog.Logger

	mu  sync.Mutex
	mux *transport.Mux
	wg  sync.WaitGroup
}

func newSource(name string, p *flow.Props, proc flow.Processor, d flow.Deps) (flow.Source, error) {
	addr := net.JoinHostPort(p.Required("bind"), p.Required("port"))
	comp := p.String("compression-type", "none")
	ssl := p.Bool("ssl", false)
	if err := p.Err(); err != nil {
		return nil, err
	}
	if !strings.EqualFold(comp, "none") {
		return nil, fmt.Errorf("%s.compression-type: %q is not supported (none)", p.Prefix, comp)
	}
	if ssl {
		return nil, fmt.Errorf("%s.ssl: TLS is not supported by the chaining source", p.Prefix)
	}
	log := d.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Source{
		name: name, addr: addr, proc: proc,
		c:   flow.NewCounters(flow.KindSource, name),
		log: log.With("agent", d.Agent, "source", name, "type", "avro"),
	}, nil
}

func (s *Source) Name() string             { return s.name }
func (s *Source) Counters() *flow.Counters { return s.c }

// Addrs returns the bound address.
func (s *Source) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mux == nil {
		return nil
	}
	return []net.Addr{s.mux.Addr()}
}

func (s *Source) Start(context.Context) error {
	mux, err := transport.Listen(transport.Config{Addr: s.addr, Logger: s.log})
	if err != nil {
		return fmt.Errorf("source %s: %w", s.name, err)
	}
	s.mu.Lock()
	s.mux = mux
	s.mu.Unlock()
	s.c.MarkStart()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := mux.Serve(s.handle); err != nil {
			s.log.Error("chaining source stopped serving", "err", err)
		}
	}()
	return nil
}

// Stop closes the port. A batch whose commit races the close may be
// committed without its acknowledgement reaching the sender, which then
// sends it again: at least once, as in Flume.
func (s *Source) Stop(context.Context) error {
	s.mu.Lock()
	mux := s.mux
	s.mu.Unlock()
	if mux == nil {
		return nil
	}
	err := mux.Close()
	s.wg.Wait()
	s.c.MarkStop()
	return err
}

func (s *Source) handle(ctx context.Context, method transport.Method, body []byte) (any, error) {
	if method != MethodAppendBatch {
		return nil, transport.Errorf(transport.ErrInvalidRequest, "chaining source %s serves append_batch only, not %s", s.name, method)
	}
	req, err := decodeAppendBatch(body)
	if err != nil {
		s.c.Add(flow.EventReadFail, 1)
		return nil, transport.Errorf(transport.ErrInvalidRequest, "%v", err)
	}
	s.c.Add(flow.AppendBatchReceivedCount, 1)
	s.c.Add(flow.EventReceivedCount, int64(len(req.Events)))
	if len(req.Events) > 0 {
		if err := s.proc.Process(ctx, fromWire(req.Events)); err != nil {
			s.c.Add(flow.ChannelWriteFail, 1)
			if errors.Is(err, flow.ErrChannelFull) {
				return nil, transport.Errorf(transport.ErrUnavailable, "%s: %v", channelFullMsg, err)
			}
			return nil, transport.Errorf(transport.ErrUnknown, "source %s: %v", s.name, err)
		}
	}
	s.c.Add(flow.AppendBatchAcceptedCount, 1)
	s.c.Add(flow.EventAcceptedCount, int64(len(req.Events)))
	return AppendBatchResponse{Accepted: len(req.Events)}, nil
}

// channelFullMsg starts the reply to a batch refused by a full channel,
// so the sender can tell it from other failures.
const channelFullMsg = "next agent's channel full"
