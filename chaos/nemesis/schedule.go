package nemesis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"sync"
	"time"

	"github.com/sluice-io/sluice/chaos/history"
)

// NewEnv makes an Env whose random source is safe to share.
func NewEnv(target Target, net Network, seed int64) Env {
	return Env{Target: target, Net: net, Rng: rand.New(rand.NewSource(seed)), mu: &sync.Mutex{}, life: &lifecycleState{}}
}

// Window is one planned fault: injected at Start, healed at End (offsets
// from the start of the schedule).
type Window struct {
	Kind  string
	Start time.Duration
	End   time.Duration
}

// Plan alternates faults and heals: interval of calm, interval of fault,
// and so on, as long as a whole fault window fits in duration. Kinds are used
// in shuffled rounds, so each appears as often as the others.
func Plan(kinds []string, interval, duration time.Duration, rng *rand.Rand) []Window {
	if len(kinds) == 0 || interval <= 0 {
		return nil
	}
	var out []Window
	var round []string
	for start := interval; start+interval <= duration; start += 2 * interval {
		if len(round) == 0 {
			round = append([]string(nil), kinds...)
			rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		}
		out = append(out, Window{Kind: round[0], Start: start, End: start + interval})
		round = round[1:]
	}
	return out
}

// Recorder is where the nemesis writes its operations.
type Recorder interface {
	Now() int64
	Add(op history.Op) history.Op
}

// Scheduler carries out a plan against a cluster.
type Scheduler struct {
	Env      Env
	Recorder Recorder
	Logger   *slog.Logger
	// HealTimeout bounds each heal (default 60s), which runs even after the
	// run's context is cancelled.
	HealTimeout time.Duration
}

// Run injects and heals the planned faults, timed from now. It returns when
// the plan is done or ctx ends, with the last fault healed either way.
func (r *Scheduler) Run(ctx context.Context, plan []Window) error {
	logger := r.Logger
	if logger == nil {
		logger = slog.Default()
	}
	healTimeout := r.HealTimeout
	if healTimeout <= 0 {
		healTimeout = 60 * time.Second
	}
	begin := time.Now()
	var errs []error
	for _, w := range plan {
		if !sleepUntil(ctx, begin.Add(w.Start)) {
			break
		}
		f, err := NewFault(w.Kind, r.Env)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		inv := r.Recorder.Now()
		nodes, desc, injErr := f.Inject(ctx)
		op := history.Op{Process: history.NemesisProcess, F: history.FFault, Type: history.OK,
			Invoke: inv, Complete: r.Recorder.Now(), Fault: w.Kind, Nodes: nodes, Value: desc}
		if injErr != nil {
			op.Type = history.Info
			op.Error = injErr.Error()
			logger.Warn("nemesis fault partly failed", "fault", w.Kind, "nodes", nodes, "err", injErr)
		} else {
			logger.Info("nemesis fault", "fault", w.Kind, "nodes", nodes, "desc", desc)
		}
		r.Recorder.Add(op)

		sleepUntil(ctx, begin.Add(w.End))

		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), healTimeout)
		inv = r.Recorder.Now()
		healErr := f.Heal(hctx)
		cancel()
		hop := history.Op{Process: history.NemesisProcess, F: history.FHeal, Type: history.OK,
			Invoke: inv, Complete: r.Recorder.Now(), Fault: w.Kind, Nodes: nodes}
		if healErr != nil {
			hop.Type = history.Info
			hop.Error = healErr.Error()
			errs = append(errs, fmt.Errorf("heal %s: %w", w.Kind, healErr))
			logger.Warn("nemesis heal failed", "fault", w.Kind, "err", healErr)
		} else {
			logger.Info("nemesis heal", "fault", w.Kind)
		}
		r.Recorder.Add(hop)
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// HealAll undoes every fault whatever its origin: removes partition rules,
// resumes every node and starts every node that is down. net may be nil.
func HealAll(ctx context.Context, target Target, net Network) error {
	var errs []error
	if net != nil {
		if err := net.Heal(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range target.Nodes() {
		if err := target.Resume(n); err != nil {
			errs = append(errs, fmt.Errorf("resume %s: %w", n, err))
		}
	}
	for _, n := range target.Nodes() {
		if err := target.Start(ctx, n); err != nil {
			errs = append(errs, fmt.Errorf("start %s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// sleepUntil waits for t; false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
