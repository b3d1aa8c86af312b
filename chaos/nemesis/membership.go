package nemesis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Membership changes a workload partition's replicas while a node is
// killed: it adds a node when the cluster has a spare (starts it, and
// removes it again at the heal by decommissioning and stopping it),
// reassigns a random partition so that one replica moves (onto the added
// node when there is one), and kill -9s a node taking part in the move.
// The heal restarts it and waits until the move has finished or rolled
// back. The workload's checker then checks the partition as any other.
const Membership = "membership"

// Mover is what the membership fault needs of the cluster's admin API.
type Mover interface {
	// Placement lists the replicas of each partition of the workload's
	// topic.
	Placement(ctx context.Context) (topic string, replicas [][]string, err error)
	// Alive lists the nodes the cluster sees alive and registered.
	Alive(ctx context.Context) ([]string, error)
	// Reassign starts moving a partition to replicas.
	Reassign(ctx context.Context, topic string, partition int32, replicas []string) error
	// WaitMove waits for the partition's move to end and returns its
	// final replicas.
	WaitMove(ctx context.Context, topic string, partition int32) ([]string, error)
	// Decommission moves every replica off node and returns when it holds
	// none; Recommission lets it have replicas again.
	Decommission(ctx context.Context, node string) error
	Recommission(ctx context.Context, node string) error
}

// SpareTarget is a Target with nodes outside Nodes() that faults may add.
type SpareTarget interface {
	Spares() []string
}

type membershipFault struct {
	env    Env
	mover  Mover
	spare  string // added by Inject, removed by Heal
	killed string
	topic  string
	part   int32
	origin []string
	target []string
	moving bool
	// wait bounds each wait of the fault (node up, move ended).
	wait time.Duration
}

func newMembership(env Env) (Fault, error) {
	if env.Mover == nil {
		return nil, errors.New("nemesis membership needs a client to move replicas with")
	}
	return &membershipFault{env: env, mover: env.Mover, wait: 60 * time.Second}, nil
}

func (f *membershipFault) Kind() string { return Membership }

func (f *membershipFault) Inject(ctx context.Context) ([]string, string, error) {
	var descs []string
	var errs []error
	if st, ok := f.env.Target.(SpareTarget); ok && len(st.Spares()) > 0 {
		spare := st.Spares()[f.env.intn(len(st.Spares()))]
		if err := f.addNode(ctx, spare); err != nil {
			errs = append(errs, err)
		} else {
			descs = append(descs, "added "+spare)
		}
	}
	topic, placement, err := f.mover.Placement(ctx)
	if err != nil || len(placement) == 0 {
		return nil, strings.Join(descs, "; "), errors.Join(append(errs, fmt.Errorf("placement: %w", err))...)
	}
	alive, err := f.mover.Alive(ctx)
	if err != nil {
		return nil, strings.Join(descs, "; "), errors.Join(append(errs, fmt.Errorf("alive nodes: %w", err))...)
	}
	f.topic = topic
	f.part = int32(f.env.intn(len(placement)))
	f.origin = slices.Clone(placement[f.part])
	f.target = f.plan(alive)
	involved := f.involved()

	if err := f.retry(ctx, func() error { return f.mover.Reassign(ctx, f.topic, f.part, f.target) }); err != nil {
		errs = append(errs, fmt.Errorf("reassign %s/%d: %w", f.topic, f.part, err))
	} else {
		f.moving = true
		descs = append(descs, fmt.Sprintf("moving %s/%d from %v to %v", f.topic, f.part, f.origin, f.target))
	}
	// A node taking part in the move crashes while it runs.
	f.killed = involved[f.env.intn(len(involved))]
	if err := f.env.Target.Kill(ctx, f.killed); err != nil {
		errs = append(errs, fmt.Errorf("kill %s: %w", f.killed, err))
	} else {
		descs = append(descs, "killed "+f.killed)
	}
	nodes := []string{f.killed}
	if f.spare != "" {
		nodes = append(nodes, f.spare)
	}
	return nodes, strings.Join(descs, "; "), errors.Join(errs...)
}

// plan picks the new replica list: one replica swapped for a live node
// outside the set (the added node when there is one), sometimes made the
// preferred leader; without such a node the list is rotated (a leadership
// change only).
func (f *membershipFault) plan(alive []string) []string {
	var outside []string
	for _, n := range alive {
		if !slices.Contains(f.origin, n) {
			outside = append(outside, n)
		}
	}
	if f.spare != "" && slices.Contains(outside, f.spare) {
		outside = []string{f.spare}
	}
	target := slices.Clone(f.origin)
	if len(outside) == 0 {
		return append(slices.Clone(target[1:]), target[0])
	}
	in := outside[f.env.intn(len(outside))]
	target[f.env.intn(len(target))] = in
	if f.env.intn(2) == 0 {
		i := slices.Index(target, in)
		target[0], target[i] = target[i], target[0]
	}
	return target
}

// involved lists the nodes of the origin and the target.
func (f *membershipFault) involved() []string {
	out := slices.Clone(f.origin)
	for _, n := range f.target {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// addNode starts a spare and waits until the cluster sees it alive.
func (f *membershipFault) addNode(ctx context.Context, spare string) error {
	if err := f.env.Target.Start(ctx, spare); err != nil {
		return fmt.Errorf("start %s: %w", spare, err)
	}
	f.spare = spare
	if err := f.waitAlive(ctx, spare); err != nil {
		return err
	}
	// A spare removed by an earlier fault is still marked decommissioned.
	return f.retry(ctx, func() error { return f.mover.Recommission(ctx, spare) })
}

// waitAlive waits until the cluster sees node alive.
func (f *membershipFault) waitAlive(ctx context.Context, node string) error {
	deadline := time.Now().Add(f.wait)
	for {
		alive, err := f.mover.Alive(ctx)
		if err == nil && slices.Contains(alive, node) {
			return nil
		}
		if time.Now().After(deadline) || !sleepUntil(ctx, time.Now().Add(200*time.Millisecond)) {
			return fmt.Errorf("%s is not alive in the cluster's view: %v", node, err)
		}
	}
}

// retry runs op until it succeeds or about 10s have passed (the
// controller may be changing).
func (f *membershipFault) retry(ctx context.Context, op func() error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := op()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		if !sleepUntil(ctx, time.Now().Add(200*time.Millisecond)) {
			return err
		}
	}
}

// Heal restarts the killed node, waits for the move to end, and removes
// an added node again.
func (f *membershipFault) Heal(ctx context.Context) error {
	var errs []error
	if f.killed != "" {
		if err := f.env.Target.Start(ctx, f.killed); err != nil {
			errs = append(errs, fmt.Errorf("restart %s: %w", f.killed, err))
		} else if err := f.waitAlive(ctx, f.killed); err != nil {
			// Removing the added node needs every other node back.
			errs = append(errs, err)
		}
	}
	if f.moving {
		wctx, cancel := context.WithTimeout(ctx, f.wait)
		final, err := f.mover.WaitMove(wctx, f.topic, f.part)
		cancel()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("move of %s/%d did not end: %w", f.topic, f.part, err))
		case !slices.Equal(final, f.target) && !slices.Equal(final, f.origin):
			errs = append(errs, fmt.Errorf("move of %s/%d ended with replicas %v: neither the origin %v nor the target %v", f.topic, f.part, final, f.origin, f.target))
		}
	}
	if f.spare != "" {
		dctx, cancel := context.WithTimeout(ctx, f.wait)
		err := f.mover.Decommission(dctx, f.spare)
		cancel()
		if err != nil {
			// Leave it running: it may still hold replicas.
			errs = append(errs, fmt.Errorf("remove %s: %w", f.spare, err))
		} else if err := f.env.Target.Kill(ctx, f.spare); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", f.spare, err))
		}
	}
	return errors.Join(errs...)
}
