// Package processor holds Flume's sink processors, which drive a group of
// sinks: default (one sink), failover (the live sink of highest priority;
// a failing sink is penalised for min(maxpenalty, 2^failures s)) and
// load_balance (round_robin or random; with backoff a failing sink is
// blacklisted for min(selector.maxTimeOut, 2^failures s)).
package processor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluice-io/sluice/agent/flow"
)

var types = map[string]string{
	"default":      "default",
	"failover":     "failover",
	"load_balance": "load_balance",
	"org.apache.flume.sink.defaultsinkprocessor":       "default",
	"org.apache.flume.sink.failoversinkprocessor":      "failover",
	"org.apache.flume.sink.loadbalancingsinkprocessor": "load_balance",
}

// Known reports whether typ names a sink processor.
func Known(typ string) bool { _, ok := types[strings.ToLower(strings.TrimSpace(typ))]; return ok }

// Clock lets tests drive penalties; nil means time.Now.
type Clock func() time.Time

// New builds a processor from the group's processor properties
// (Sub("processor")) for sinks in configuration order.
func New(p *flow.Props, sinks []flow.Sink, now Clock) (flow.SinkProcessor, error) {
	if now == nil {
		now = time.Now
	}
	typ := p.String("type", "default")
	kind, ok := types[strings.ToLower(strings.TrimSpace(typ))]
	if !ok {
		return nil, fmt.Errorf("%s.type: unknown sink processor type %q", p.Prefix, typ)
	}
	if len(sinks) == 0 {
		return nil, fmt.Errorf("%s: a sink processor needs at least one sink", p.Prefix)
	}
	switch kind {
	case "default":
		if len(sinks) != 1 {
			return nil, fmt.Errorf("%s.type: the default sink processor drives exactly one sink, got %d (use failover or load_balance)", p.Prefix, len(sinks))
		}
		return &Default{group{sinks: sinks}}, nil
	case "failover":
		maxPenalty := p.Millis("maxpenalty", 30*time.Second)
		f := &Failover{group: group{sinks: sinks}, maxPenalty: maxPenalty, now: now}
		prio := map[flow.Sink]int64{}
		seen := map[int64]string{}
		for i, s := range sinks {
			// Unset priorities keep configuration order (earlier first).
			pr := p.Int("priority."+s.Name(), int64(-i))
			if other, dup := seen[pr]; dup && p.Has("priority."+s.Name()) {
				return nil, fmt.Errorf("%s.priority.%s: priority %d is already sink %q's; priorities must be unique", p.Prefix, s.Name(), pr, other)
			}
			seen[pr] = s.Name()
			prio[s] = pr
		}
		if err := p.Err(); err != nil {
			return nil, err
		}
		f.order = slices.Clone(sinks)
		slices.SortStableFunc(f.order, func(a, b flow.Sink) int { return int(prio[b] - prio[a]) })
		f.state = map[flow.Sink]*penalty{}
		for _, s := range sinks {
			f.state[s] = &penalty{}
		}
		return f, nil
	default:
		sel := strings.ToLower(p.String("selector", "round_robin"))
		if sel != "round_robin" && sel != "random" {
			return nil, fmt.Errorf("%s.selector: unknown selector %q (round_robin or random)", p.Prefix, sel)
		}
		lb := &LoadBalance{
			group:   group{sinks: sinks},
			random:  sel == "random",
			backoff: p.Bool("backoff", false),
			maxOut:  p.Millis("selector.maxTimeOut", 30*time.Second),
			now:     now,
			state:   map[flow.Sink]*penalty{},
		}
		if err := p.Err(); err != nil {
			return nil, err
		}
		for _, s := range sinks {
			lb.state[s] = &penalty{}
		}
		return lb, nil
	}
}

type group struct{ sinks []flow.Sink }

func (g group) Start(ctx context.Context) error {
	for i, s := range g.sinks {
		if err := s.Start(ctx); err != nil {
			for _, t := range g.sinks[:i] {
				t.Stop(ctx)
			}
			return fmt.Errorf("start sink %s: %w", s.Name(), err)
		}
	}
	return nil
}

func (g group) Stop(ctx context.Context) error {
	var errs []error
	for _, s := range g.sinks {
		if err := s.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop sink %s: %w", s.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// Sinks returns the group's sinks.
func (g group) Sinks() []flow.Sink { return g.sinks }

// Default drives one sink.
type Default struct{ group }

func (d *Default) Process(ctx context.Context) (flow.Status, error) { return d.sinks[0].Process(ctx) }

type penalty struct {
	fails int
	until time.Time
}

func backoffFor(fails int, limit time.Duration) time.Duration {
	d := time.Second << min(fails, 16)
	return min(d, limit)
}

// Failover sends through the highest-priority sink that is not
// penalised; a sink that fails is penalised and the next one tried at once.
type Failover struct {
	group
	maxPenalty time.Duration
	now        Clock

	mu    sync.Mutex
	order []flow.Sink // by priority, highest first
	state map[flow.Sink]*penalty
}

func (f *Failover) Process(ctx context.Context) (flow.Status, error) {
	var errs []error
	now := f.now()
	for _, s := range f.order {
		f.mu.Lock()
		st := f.state[s]
		benched := st.fails > 0 && now.Before(st.until)
		f.mu.Unlock()
		if benched {
			continue
		}
		status, err := s.Process(ctx)
		f.mu.Lock()
		if err == nil {
			st.fails = 0
			f.mu.Unlock()
			return status, nil
		}
		st.fails++
		st.until = f.now().Add(backoffFor(st.fails, f.maxPenalty))
		f.mu.Unlock()
		errs = append(errs, fmt.Errorf("sink %s: %w", s.Name(), err))
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return flow.Backoff, errors.New("all sinks of the failover group are penalised")
	}
	return flow.Backoff, fmt.Errorf("all sinks failed: %w", errors.Join(errs...))
}

// LoadBalance spreads Process calls over its sinks, round robin or at
// random; a failing sink makes it try the next one.
type LoadBalance struct {
	group
	random  bool
	backoff bool
	maxOut  time.Duration
	now     Clock

	mu    sync.Mutex
	next  int
	state map[flow.Sink]*penalty
}

func (lb *LoadBalance) Process(ctx context.Context) (flow.Status, error) {
	lb.mu.Lock()
	n := len(lb.sinks)
	order := make([]flow.Sink, 0, n)
	if lb.random {
		for _, i := range rand.Perm(n) {
			order = append(order, lb.sinks[i])
		}
	} else {
		for i := range n {
			order = append(order, lb.sinks[(lb.next+i)%n])
		}
		lb.next = (lb.next + 1) % n
	}
	now := lb.now()
	if lb.backoff {
		live := order[:0:0]
		for _, s := range order {
			if st := lb.state[s]; st.fails == 0 || !now.Before(st.until) {
				live = append(live, s)
			}
		}
		order = live
	}
	lb.mu.Unlock()
	var errs []error
	for _, s := range order {
		status, err := s.Process(ctx)
		lb.mu.Lock()
		st := lb.state[s]
		if err == nil {
			st.fails = 0
			lb.mu.Unlock()
			return status, nil
		}
		st.fails++
		st.until = lb.now().Add(backoffFor(st.fails-1, lb.maxOut))
		lb.mu.Unlock()
		errs = append(errs, fmt.Errorf("sink %s: %w", s.Name(), err))
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return flow.Backoff, errors.New("every sink of the load_balance group is backed off")
	}
	return flow.Backoff, fmt.Errorf("all sinks failed: %w", errors.Join(errs...))
}

// SetClock replaces the clock penalties are measured with (tests).
func (f *Failover) SetClock(now Clock) { f.mu.Lock(); f.now = now; f.mu.Unlock() }

// SetClock replaces the clock backoffs are measured with (tests).
func (lb *LoadBalance) SetClock(now Clock) { lb.mu.Lock(); lb.now = now; lb.mu.Unlock() }
