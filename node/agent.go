package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/agent"
	"github.com/sluice-io/sluice/agent/flow"
	"github.com/sluice-io/sluice/agent/sink"
	"github.com/sluice-io/sluice/batch"
	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

// startAgent runs the colocated agent of --agent-config, if any. Its
// sluice sinks write through localWriter: partitions this node leads are
// appended in-process through the same path as a produce RPC.
func (n *Node) startAgent(ctx context.Context) error {
	if n.cfg.AgentConfig == "" {
		return nil
	}
	name := n.cfg.AgentName
	if name == "" {
		name = "a1"
	}
	cl, err := client.New(client.Config{Servers: []string{n.Addr()}, LocalHost: n.cfg.sourceHost(), Logger: n.logger, TLS: n.tls.client})
	if err != nil {
		return err
	}
	w := &localWriter{n: n, c: cl, streams: map[partKey]*localStream{}}
	h, err := agent.StartHost(ctx, agent.HostConfig{
		Path: n.cfg.AgentConfig, Name: name,
		Registry: agent.DefaultRegistry(w),
		Deps:     flow.Deps{Agent: name, Logger: n.logger.With("component", "agent"), Servers: []string{n.Addr()}, DataDir: filepath.Join(n.cfg.DataDir, "agent"), TLS: n.tls.client},
		Poll:     n.cfg.AgentPoll,
	})
	if err != nil {
		cl.Close()
		return fmt.Errorf("colocated agent: %w", err)
	}
	n.agentMu.Lock()
	n.agentHost, n.agentClient = h, cl
	n.agentMu.Unlock()
	n.metrics.registry.MustRegister(&agent.Collector{Agent: name, Counters: n.agentCounters})
	return nil
}

// ReloadAgent rereads the colocated agent's configuration (SIGHUP).
func (n *Node) ReloadAgent(ctx context.Context) error {
	n.agentMu.Lock()
	h := n.agentHost
	n.agentMu.Unlock()
	if h == nil {
		return nil
	}
	return h.Reload(ctx)
}

// stopAgent drains the colocated agent before the node's groups stop, so
// its last batches still reach their partitions.
func (n *Node) stopAgent() {
	n.agentMu.Lock()
	h, cl := n.agentHost, n.agentClient
	n.agentHost, n.agentClient = nil, nil
	n.agentMu.Unlock()
	if h != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := h.Close(ctx); err != nil {
			n.logger.Warn("colocated agent stop", "err", err)
		}
		cancel()
	}
	if cl != nil {
		cl.Close()
	}
}

func (n *Node) agentCounters() []*flow.Counters {
	n.agentMu.Lock()
	h := n.agentHost
	n.agentMu.Unlock()
	if h == nil {
		return nil
	}
	return h.Counters()
}

// agentHTTP adds GET /v1/agents (Flume's JSON counters) to the node's
// HTTP mux.
func (n *Node) agentHTTP(mux *http.ServeMux) {
	mux.Handle("GET /v1/agents", agent.CountersHandler(n.agentCounters))
}

// localStream is one idempotent producer stream of the in-process path.
type localStream struct {
	mu  sync.Mutex // held for a whole Write: one batch in flight per stream
	id  int64
	seq int32
}

// agentState is the node's colocated agent.
type agentState struct {
	agentMu     sync.Mutex
	agentHost   *agent.Host
	agentClient *client.Client
}

// localWriter is the sink.Writer of a colocated agent.
type localWriter struct {
	n *Node
	c *client.Client

	mu      sync.Mutex
	streams map[partKey]*localStream
}

var _ sink.LocalLeader = (*localWriter)(nil)

func (w *localWriter) Partitions(ctx context.Context, topic string) (int, error) {
	if t, ok := w.n.meta.Topic(topic); ok {
		return len(t.Partitions), nil
	}
	return w.c.Partitions(ctx, topic)
}

func (w *localWriter) LocalPartitions(topic string) []int32 {
	t, ok := w.n.meta.Topic(topic)
	if !ok {
		return nil
	}
	var out []int32
	for _, p := range t.Partitions {
		if r := w.n.replica(topic, p.ID); r != nil && r.isLeader() {
			out = append(out, p.ID)
		}
	}
	return out
}

// Write appends recs in-process while this node leads the partition,
// retrying the same idempotent batch (same producer id and sequence, so
// the partition applies it once) until it is acknowledged; when another
// node leads, it goes over the network through the client, which
// follows the leader.
func (w *localWriter) Write(ctx context.Context, topic string, part int32, recs []client.Record) error {
	k := partKey{topic, part}
	w.mu.Lock()
	s := w.streams[k]
	if s == nil {
		s = &localStream{id: rand.Int64()}
		w.streams[k] = s
	}
	w.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	encoded := encodeLocal(recs, s.id, s.seq)
	backoff := 20 * time.Millisecond
	tried := false
	for {
		r := w.n.replica(topic, part)
		if r == nil || !r.isLeader() {
			if tried {
				// A local attempt may have been applied: a fresh stream on
				// the network path cannot deduplicate it (at-least-once).
				w.resetStream(k)
			}
			_, err := w.c.ProduceBatch(ctx, topic, part, recs)
			return err
		}
		tried = true
		_, err := w.n.produce(ctx, transport.ProduceRequest{Topic: topic, Partition: part, Batch: encoded, TimeoutMs: 5000})
		if err == nil {
			s.seq += int32(len(recs))
			return nil
		}
		code := transport.CodeOf(err)
		if code != 0 && !code.Retriable() && code != transport.ErrTimeout {
			w.resetStream(k)
			return err
		}
		select {
		case <-ctx.Done():
			w.resetStream(k)
			return fmt.Errorf("in-process append to %s/%d: %w (last error: %v)", topic, part, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
	}
}

func (w *localWriter) resetStream(k partKey) {
	w.mu.Lock()
	delete(w.streams, k)
	w.mu.Unlock()
}

func encodeLocal(recs []client.Record, pid int64, seq int32) []byte {
	now := time.Now()
	krecs := make([]kmsg.Record, len(recs))
	for i, r := range recs {
		kr := kmsg.Record{Key: r.Key, Value: r.Value}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		krecs[i] = kr
	}
	return batch.NewBatch(krecs, pid, 0, seq, now)
}
