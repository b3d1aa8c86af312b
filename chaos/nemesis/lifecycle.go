package nemesis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TopicLifecycle deletes and re-creates a topic while one node is down
// (killed) or, when the network allows, cut off; the heal brings the node
// back and checks that every replica serves exactly the acknowledged
// records of the current incarnation and none of an earlier one.
const TopicLifecycle = "topic-lifecycle"

// LifecycleTopic is the topic the lifecycle fault deletes and re-creates.
// It has its own topic, not the workload's: the workload's history and its
// checker model one log per partition from offset 0, which a re-created
// topic would restart.
const LifecycleTopic = "chaos-lifecycle"

// lifecycleRecords is how many records each incarnation gets, within
// produceBudget.
const (
	lifecycleRecords = 50
	produceBudget    = 15 * time.Second
)

// TopicAdmin is what the lifecycle fault needs of a client.
type TopicAdmin interface {
	// CreateTopic creates a one-partition topic with rf replicas.
	CreateTopic(ctx context.Context, topic string, rf int) error
	// DeleteTopic deletes it; a missing topic is not an error.
	DeleteTopic(ctx context.Context, topic string) error
	// Produce appends one value to partition 0 and returns its offset.
	Produce(ctx context.Context, topic, value string) (int64, error)
	// Replicas lists the replicas of partition 0.
	Replicas(ctx context.Context, topic string) ([]string, error)
	// ReadReplica reads node's whole committed log of partition 0.
	ReadReplica(ctx context.Context, node, topic string) ([]string, error)
}

// lifecycleState is shared by every lifecycle fault of one Env: the
// incarnation number grows across faults.
type lifecycleState struct {
	mu          sync.Mutex
	incarnation int
}

type lifecycleFault struct {
	env      Env
	admin    TopicAdmin
	state    *lifecycleState
	node     string
	cut      bool     // partitioned rather than killed
	skip     bool     // the delete or re-create failed: nothing to check
	acked    []string // acknowledged values of the current incarnation
	inc      int
	settle   time.Duration // pause between polls while waiting for replicas
	checkFor time.Duration // how long Heal waits for the replicas to agree
}

func newLifecycle(env Env) (Fault, error) {
	if env.Admin == nil {
		return nil, errors.New("nemesis topic-lifecycle needs a topic admin client")
	}
	return &lifecycleFault{env: env, admin: env.Admin, state: env.lifecycle(), settle: 200 * time.Millisecond, checkFor: 45 * time.Second}, nil
}

func (f *lifecycleFault) Kind() string { return TopicLifecycle }

// lifecycleValue tags a value with its incarnation.
func lifecycleValue(inc, i int) string { return fmt.Sprintf("inc-%d-%d", inc, i) }

// incarnationOf parses the incarnation back, -1 if v is no lifecycle value.
func incarnationOf(v string) int {
	rest, ok := strings.CutPrefix(v, "inc-")
	if !ok {
		return -1
	}
	n, _, ok := strings.Cut(rest, "-")
	if !ok {
		return -1
	}
	inc, err := strconv.Atoi(n)
	if err != nil {
		return -1
	}
	return inc
}

func (f *lifecycleFault) rf(live int) int { return max(1, min(3, live)) }

func (f *lifecycleFault) Inject(ctx context.Context) ([]string, string, error) {
	nodes := f.env.Target.Nodes()
	f.state.mu.Lock()
	f.state.incarnation++
	f.inc = f.state.incarnation
	f.state.mu.Unlock()
	// First make sure an earlier incarnation exists with data on every
	// node, so the node taken away holds something stale.
	var errs []error
	if f.inc == 1 {
		if err := f.admin.CreateTopic(ctx, LifecycleTopic, f.rf(len(nodes))); err != nil {
			errs = append(errs, fmt.Errorf("create first incarnation: %w", err))
		}
		f.produce(ctx, f.inc)
		f.state.mu.Lock()
		f.state.incarnation++
		f.inc = f.state.incarnation
		f.state.mu.Unlock()
	}
	f.node, f.skip = pick(f.env, nodes, nil), false
	f.cut = f.env.Net != nil && f.env.intn(2) == 0
	how := "killed"
	if f.cut {
		how = "isolated"
		if err := f.env.Net.Apply(ctx, Rules(Isolate(nodes, f.node), f.env.Target.Host)); err != nil {
			errs = append(errs, fmt.Errorf("isolate %s: %w", f.node, err))
		}
	} else if err := f.env.Target.Kill(ctx, f.node); err != nil {
		errs = append(errs, fmt.Errorf("kill %s: %w", f.node, err))
	}
	// The metadata leader may be the node just taken away: retry through
	// the election.
	if err := f.retry(ctx, func() error { return f.admin.DeleteTopic(ctx, LifecycleTopic) }); err != nil {
		errs = append(errs, fmt.Errorf("delete: %w", err))
		f.skip = true
	}
	// Until gossip marks the node dead the controller still places
	// replicas on it (the case that matters: it then hosts both the old
	// and the new incarnation); after that only the others are live.
	create := func() error {
		if err := f.admin.CreateTopic(ctx, LifecycleTopic, f.rf(len(nodes))); err == nil {
			return nil
		}
		return f.admin.CreateTopic(ctx, LifecycleTopic, f.rf(len(nodes)-1))
	}
	if err := f.retry(ctx, create); err != nil && !f.skip {
		errs = append(errs, fmt.Errorf("re-create: %w", err))
		f.skip = true
	}
	f.acked = nil
	f.produce(ctx, f.inc)
	desc := fmt.Sprintf("%s %s; %s deleted and re-created as incarnation %d; %d records acknowledged", how, f.node, LifecycleTopic, f.inc, len(f.acked))
	return []string{f.node}, desc, errors.Join(errs...)
}

// produce appends the incarnation's values, keeping the acknowledged ones;
// it gives up after produceBudget (the fault must not outlast its window).
func (f *lifecycleFault) produce(ctx context.Context, inc int) {
	ctx, cancel := context.WithTimeout(ctx, produceBudget)
	defer cancel()
	for i := range lifecycleRecords {
		v := lifecycleValue(inc, i)
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := f.admin.Produce(pctx, LifecycleTopic, v)
		cancel()
		if err == nil && inc == f.inc {
			f.acked = append(f.acked, v)
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// retry runs op until it succeeds or about 10s have passed.
func (f *lifecycleFault) retry(ctx context.Context, op func() error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := op()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		if !sleepUntil(ctx, time.Now().Add(f.settle)) {
			return err
		}
	}
}

// Heal brings the node back, then checks the topic on every replica.
func (f *lifecycleFault) Heal(ctx context.Context) error {
	var err error
	if f.cut {
		err = f.env.Net.Heal(ctx)
	} else {
		err = f.env.Target.Start(ctx, f.node)
	}
	if err != nil {
		return fmt.Errorf("bring %s back: %w", f.node, err)
	}
	if f.skip {
		return nil // the inject's error says why; the incarnation did not change as planned
	}
	return f.check(ctx)
}

// check waits until the replicas agree and every acknowledged value is
// there, then reports old-incarnation values or lost ones.
func (f *lifecycleFault) check(ctx context.Context) error {
	deadline := time.Now().Add(f.checkFor)
	var last error
	for {
		last = f.checkOnce(ctx)
		if last == nil {
			return nil
		}
		// A restarted node must never serve a deleted incarnation: it
		// catches up with the metadata before opening any replica. A node
		// that was cut off (still running) has a stale view until the
		// heal's changes reach it, so from it a replica read of the old
		// incarnation is stale for a moment; only one that persists counts.
		var v *lifecycleViolation
		if errors.As(last, &v) && !f.cut {
			return last
		}
		if time.Now().After(deadline) || !sleepUntil(ctx, time.Now().Add(f.settle)) {
			return fmt.Errorf("topic lifecycle check: %w", last)
		}
	}
}

// lifecycleViolation is a record of an earlier incarnation served.
type lifecycleViolation struct{ msg string }

func (v *lifecycleViolation) Error() string { return v.msg }

func (f *lifecycleFault) checkOnce(ctx context.Context) error {
	replicas, err := f.admin.Replicas(ctx, LifecycleTopic)
	if err != nil {
		return fmt.Errorf("replicas: %w", err)
	}
	// The returning node may host nothing of the new incarnation; it
	// must still not serve the old one.
	nodes := slices.Clone(replicas)
	if !slices.Contains(nodes, f.node) {
		nodes = append(nodes, f.node)
	}
	var first []string
	for i, n := range nodes {
		vals, err := f.admin.ReadReplica(ctx, n, LifecycleTopic)
		hosted := slices.Contains(replicas, n)
		if err != nil {
			if !hosted {
				continue // no replica there: nothing served
			}
			return fmt.Errorf("read %s: %w", n, err)
		}
		for _, v := range vals {
			if inc := incarnationOf(v); inc != f.inc {
				return &lifecycleViolation{msg: fmt.Sprintf("topic lifecycle: %s serves %q of incarnation %d; the current one is %d", n, v, inc, f.inc)}
			}
		}
		if !hosted {
			continue
		}
		if i == 0 {
			first = vals
			for _, a := range f.acked {
				if !slices.Contains(vals, a) {
					return fmt.Errorf("%s lacks acknowledged %q of incarnation %d", n, a, f.inc)
				}
			}
		} else if !slices.Equal(first, vals) {
			return fmt.Errorf("replicas %s and %s differ (%d and %d records)", nodes[0], n, len(first), len(vals))
		}
	}
	return nil
}

// lifecycle returns the Env's shared lifecycle state (a private one for an
// Env not made by NewEnv).
func (e Env) lifecycle() *lifecycleState {
	if e.life == nil {
		return &lifecycleState{}
	}
	return e.life
}
