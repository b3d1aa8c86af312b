package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/sluice-io/sluice/agent/config"
	"github.com/sluice-io/sluice/agent/flow"
)

// HostConfig is what a Host needs: the configuration file and the agent
// name, the component registry, and what every component is given.
type HostConfig struct {
	Path, Name string
	Registry   Registry
	Deps       flow.Deps
	Options    Options
	// Poll is how often the file is checked for changes (Flume polls
	// every 30 s); negative disables polling.
	Poll time.Duration
	// DrainTimeout bounds a stop or a reload's wait for in-flight batches
	// (default 30 s).
	DrainTimeout time.Duration
}

// Host runs one agent from a file and reloads it when the file changes or
// Reload is called (SIGHUP). It is what `sluice agent` and a node's
// colocated agent share.
type Host struct {
	cfg HostConfig
	log *slog.Logger

	mu      sync.Mutex
	cur     *Agent
	sum     [32]byte
	reloads int

	stop chan struct{}
	wg   sync.WaitGroup
}

// StartHost loads, builds and starts the agent; it fails when the
// configuration leaves nothing valid to run.
func StartHost(ctx context.Context, cfg HostConfig) (*Host, error) {
	if cfg.Poll == 0 {
		cfg.Poll = 30 * time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	if cfg.Deps.Logger == nil {
		cfg.Deps.Logger = slog.Default()
	}
	h := &Host{cfg: cfg, log: cfg.Deps.Logger.With("agent", cfg.Name), stop: make(chan struct{})}
	a, sum, err := h.load(nil)
	if err != nil {
		return nil, err
	}
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	h.cur, h.sum = a, sum
	if cfg.Poll > 0 {
		h.wg.Add(1)
		go h.pollLoop()
	}
	return h, nil
}

func (h *Host) load(prev *Agent) (*Agent, [32]byte, error) {
	data, err := os.ReadFile(h.cfg.Path)
	if err != nil {
		return nil, [32]byte{}, fmt.Errorf("agent configuration: %w", err)
	}
	sum := sha256.Sum256(data)
	cfg, probs, err := config.Load(bytes.NewReader(data), h.cfg.Name, h.cfg.Registry.Catalog(), config.Options{})
	for _, p := range probs {
		h.log.Warn("configuration problem", "key", p.Key, "reason", p.Reason)
	}
	if err != nil {
		return nil, sum, fmt.Errorf("%s: %w", h.cfg.Path, err)
	}
	a, _, err := Build(cfg, h.cfg.Registry, h.cfg.Deps, h.cfg.Options, prev)
	if err != nil {
		return nil, sum, fmt.Errorf("%s: %w", h.cfg.Path, err)
	}
	return a, sum, nil
}

// Reload rereads the file and replaces the running agent. A file that
// does not load leaves the running agent as it is.
func (h *Host) Reload(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reloadLocked(ctx)
}

func (h *Host) reloadLocked(ctx context.Context) error {
	if h.cur == nil {
		return errors.New("agent host is stopped")
	}
	next, sum, err := h.load(h.cur)
	if err != nil {
		h.sum = sum // do not retry the same broken file every poll
		h.log.Error("reload failed; the running configuration stays", "err", err)
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.DrainTimeout)
	defer cancel()
	if err := h.cur.Replace(ctx, next); err != nil {
		h.log.Error("reload: new configuration failed to start", "err", err)
		return err
	}
	h.cur, h.sum = next, sum
	h.reloads++
	h.log.Info("configuration reloaded", "path", h.cfg.Path)
	return nil
}

func (h *Host) pollLoop() {
	defer h.wg.Done()
	t := time.NewTicker(h.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		data, err := os.ReadFile(h.cfg.Path)
		if err != nil {
			continue
		}
		h.mu.Lock()
		if sha256.Sum256(data) != h.sum && h.cur != nil {
			h.reloadLocked(context.Background())
		}
		h.mu.Unlock()
	}
}

// Reloads counts successful reloads.
func (h *Host) Reloads() int { h.mu.Lock(); defer h.mu.Unlock(); return h.reloads }

// Agent is the running agent.
func (h *Host) Agent() *Agent { h.mu.Lock(); defer h.mu.Unlock(); return h.cur }

// Counters are the running agent's counters.
func (h *Host) Counters() []*flow.Counters {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cur == nil {
		return nil
	}
	return h.cur.Counters()
}

// Close stops polling and drains the agent (sources first, then sinks
// finish their batches, then channels checkpoint).
func (h *Host) Close(ctx context.Context) error {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	h.wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cur == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.DrainTimeout)
	defer cancel()
	err := h.cur.Stop(ctx)
	h.cur = nil
	return err
}

// CountersHandler serves GET /v1/agents: the counters as Flume's JSON
// monitoring does ({"CHANNEL.c1":{"ChannelSize":"5",...}}).
func CountersHandler(counters func() []*flow.Counters) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := flow.Report(counters())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
}
