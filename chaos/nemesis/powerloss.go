package nemesis

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Power-loss fault kinds: the node's process is killed with -9 and what it
// wrote without fsyncing is discarded (chaos/lazyfs), as a power cut would.
const (
	// PowerLoss cuts one random node's power; it stays down until the heal.
	PowerLoss = "power-loss"
	// PowerLossAll cuts every node's power at once, then restarts them all.
	PowerLossAll = "power-loss-all"
)

// PowerCutter cuts a node's power: kill -9 and discard its unsynced data.
// The node stays down until Target.Start.
type PowerCutter interface {
	PowerLoss(ctx context.Context, node string) error
}

// NeedsPower reports whether a kind cuts power (needs root and FUSE).
func NeedsPower(kind string) bool { return kind == PowerLoss || kind == PowerLossAll }

// WithoutPower drops the power-loss kinds.
func WithoutPower(kinds []string) []string {
	var out []string
	for _, k := range kinds {
		if !NeedsPower(k) {
			out = append(out, k)
		}
	}
	return out
}

// PowerKinds lists the power-loss kinds among kinds.
func PowerKinds(kinds []string) []string {
	var out []string
	for _, k := range kinds {
		if NeedsPower(k) {
			out = append(out, k)
		}
	}
	return out
}

type powerFault struct {
	kind string
	env  Env
	down []string
}

func (f *powerFault) Kind() string { return f.kind }

func (f *powerFault) Inject(ctx context.Context) ([]string, string, error) {
	nodes := f.env.Target.Nodes()
	victims := []string{nodes[f.env.intn(len(nodes))]}
	if f.kind == PowerLossAll {
		victims = append([]string(nil), nodes...)
	}
	sort.Strings(victims)
	// Every victim loses power at the same moment.
	errs := make([]error, len(victims))
	var wg sync.WaitGroup
	for i, n := range victims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.env.Power.PowerLoss(ctx, n)
		}()
	}
	wg.Wait()
	f.down = victims
	desc := "power cut, unsynced writes discarded: " + strings.Join(victims, ",")
	err := errors.Join(errs...)
	if f.kind == PowerLossAll {
		err = errors.Join(err, f.Heal(ctx))
		desc += "; all restarted"
	}
	return victims, desc, err
}

func (f *powerFault) Heal(ctx context.Context) error {
	var errs []error
	for _, n := range f.down {
		if err := f.env.Target.Start(ctx, n); err != nil {
			errs = append(errs, fmt.Errorf("start %s: %w", n, err))
		}
	}
	f.down = nil
	return errors.Join(errs...)
}
