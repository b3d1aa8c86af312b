package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync"
)

// Target is what the nemesis needs of a cluster.
type Target interface {
	// Nodes lists every node id.
	Nodes() []string
	// Host is the IP address a node listens on and dials from.
	Host(node string) string
	// Kill sends SIGKILL and waits for the process to end.
	Kill(ctx context.Context, node string) error
	// Start starts a node that is down (no-op when it is running).
	Start(ctx context.Context, node string) error
	// Pause sends SIGSTOP, Resume SIGCONT.
	Pause(node string) error
	Resume(node string) error
	// Leaders maps "topic/partition" to the id of its current leader, as
	// far as the cluster can tell; partitions without a leader are absent.
	Leaders(ctx context.Context) (map[string]string, error)
}

// Network makes and heals partitions.
type Network interface {
	Apply(ctx context.Context, rules []Rule) error
	Heal(ctx context.Context) error
}

// Fault kinds.
const (
	KillRandom      = "kill-random"
	KillLeader      = "kill-leader"
	KillMajority    = "kill-majority"
	PauseRandom     = "pause-random"
	PauseLeader     = "pause-leader"
	PartitionOne    = "partition-one"
	PartitionLeader = "partition-leader"
	PartitionHalves = "partition-halves"
	PartitionBridge = "partition-bridge"
	PartitionRing   = "partition-ring"
	// PartitionLossy drops a share (LossyShare) of the packets between
	// every two nodes instead of all of them: retransmits, slow
	// heartbeats, suspected members, elections without a clean cut.
	PartitionLossy = "partition-lossy"
	RestartAll     = "restart-all"
	// Combo injects two faults of different families at once (a partition
	// with a kill or a pause, or a kill with a pause).
	Combo = "combo"
)

// LossyShare is the share of packets a partition-lossy fault drops.
const LossyShare = 0.2

// Families group fault kinds under the names the CLI accepts.
var Families = map[string][]string{
	"kill":       {KillRandom, KillLeader, KillMajority},
	"pause":      {PauseRandom, PauseLeader},
	"partition":  {PartitionOne, PartitionLeader, PartitionHalves, PartitionBridge, PartitionRing, PartitionLossy},
	"restart":    {RestartAll},
	"combo":      {Combo},
	"power-loss": {PowerLoss, PowerLossAll},
	"lifecycle":  {TopicLifecycle}, // not in AllKinds (not in "all") until it has run reliably
	"membership": {Membership},     // likewise (membership.go)
}

// AllKinds lists every fault kind.
func AllKinds() []string {
	var out []string
	for _, f := range []string{"kill", "pause", "partition", "restart", "combo", "power-loss"} {
		out = append(out, Families[f]...)
	}
	return out
}

// NeedsNetwork reports whether a kind makes partitions (alone or in a
// combination).
func NeedsNetwork(kind string) bool { return strings.HasPrefix(kind, "partition-") }

// Expand turns family names ("kill", "partition", "all") and kind names into
// a list of kinds without duplicates, in a stable order.
func Expand(names []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	valid := map[string]bool{}
	for _, k := range AllKinds() {
		valid[k] = true
	}
	for _, raw := range names {
		name := strings.TrimSpace(strings.ToLower(raw))
		switch {
		case name == "" || name == "none":
		case name == "all":
			for _, k := range AllKinds() {
				add(k)
			}
		case Families[name] != nil:
			for _, k := range Families[name] {
				add(k)
			}
		case valid[name]:
			add(name)
		default:
			fams := make([]string, 0, len(Families))
			for f := range Families {
				fams = append(fams, f)
			}
			sort.Strings(fams)
			return nil, fmt.Errorf("unknown nemesis %q (families: %s, all, none; kinds: %s)", raw, strings.Join(fams, ", "), strings.Join(AllKinds(), ", "))
		}
	}
	return out, nil
}

// WithoutNetwork drops the kinds that need iptables; Combo stays (it then
// combines kills and pauses only).
func WithoutNetwork(kinds []string) []string {
	var out []string
	for _, k := range kinds {
		if !NeedsNetwork(k) {
			out = append(out, k)
		}
	}
	return out
}

// Fault is one injected fault that knows how to heal itself.
type Fault interface {
	// Kind is the fault kind (see the constants).
	Kind() string
	// Inject applies the fault and returns the nodes it touched and a
	// description.
	Inject(ctx context.Context) (nodes []string, desc string, err error)
	// Heal undoes it.
	Heal(ctx context.Context) error
}

// Env is what faults are made from. Net is nil when partitions are not
// possible.
type Env struct {
	Target Target
	Net    Network
	// Power cuts nodes' power; nil when the data directories are not on
	// lazy filesystems (then power-loss faults cannot be made).
	Power PowerCutter
	Rng   *rand.Rand
	mu    *sync.Mutex // guards Rng, shared by concurrent users of an Env
	Admin TopicAdmin  // topic-lifecycle only; nil otherwise
	Mover Mover       // membership only; nil otherwise
	life  *lifecycleState
}

func (e Env) intn(n int) int {
	if e.mu != nil {
		e.mu.Lock()
		defer e.mu.Unlock()
	}
	return e.Rng.Intn(n)
}

func (e Env) rng() *rand.Rand {
	// Faults draw a private generator from the shared one, so they can use
	// it without the lock.
	return rand.New(rand.NewSource(int64(e.intn(1 << 30))))
}

// NewFault builds a fault of the given kind.
func NewFault(kind string, env Env) (Fault, error) {
	if env.Target == nil || env.Rng == nil {
		return nil, errors.New("nemesis: env needs a target and a random source")
	}
	if NeedsNetwork(kind) && env.Net == nil {
		return nil, fmt.Errorf("nemesis %s needs iptables, which is not available", kind)
	}
	if NeedsNetwork(kind) && !canPartition(env.Net, kind, len(env.Target.Nodes())) {
		return nil, fmt.Errorf("nemesis %s: the network cannot make this partition", kind)
	}
	if NeedsPower(kind) && env.Power == nil {
		return nil, fmt.Errorf("nemesis %s needs root and FUSE (lazy filesystems under the nodes), which are not available", kind)
	}
	switch kind {
	case PowerLoss, PowerLossAll:
		return &powerFault{kind: kind, env: env}, nil
	case KillRandom, KillLeader, KillMajority, RestartAll:
		return &killFault{kind: kind, env: env}, nil
	case PauseRandom, PauseLeader:
		return &pauseFault{kind: kind, env: env}, nil
	case PartitionOne, PartitionLeader, PartitionHalves, PartitionBridge, PartitionRing, PartitionLossy:
		return &partitionFault{kind: kind, env: env}, nil
	case Combo:
		return newCombo(env)
	case TopicLifecycle:
		return newLifecycle(env)
	case Membership:
		return newMembership(env)
	}
	return nil, fmt.Errorf("unknown fault kind %q", kind)
}

// leader picks the leader of a random partition; with none known it falls
// back to a random node, saying so.
func leader(ctx context.Context, env Env) (string, string) {
	nodes := env.Target.Nodes()
	leaders, err := env.Target.Leaders(ctx)
	if err != nil || len(leaders) == 0 {
		return nodes[env.intn(len(nodes))], "no leader known, random node"
	}
	keys := make([]string, 0, len(leaders))
	for k := range leaders {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	k := keys[env.intn(len(keys))]
	return leaders[k], "leader of " + k
}

type killFault struct {
	kind    string
	env     Env
	killed  []string
	exclude []string
}

// avoider is implemented by faults that can steer their random choice away
// from nodes another fault of a combination already hit.
type avoider interface{ avoid(nodes []string) }

func (f *killFault) avoid(nodes []string)  { f.exclude = nodes }
func (f *pauseFault) avoid(nodes []string) { f.exclude = nodes }

// pick chooses a random node outside exclude (any node if none is left).
func pick(env Env, nodes, exclude []string) string {
	var cands []string
	for _, n := range nodes {
		skip := false
		for _, x := range exclude {
			skip = skip || n == x
		}
		if !skip {
			cands = append(cands, n)
		}
	}
	if len(cands) == 0 {
		cands = nodes
	}
	return cands[env.intn(len(cands))]
}

func (f *killFault) Kind() string { return f.kind }

func (f *killFault) Inject(ctx context.Context) ([]string, string, error) {
	nodes := f.env.Target.Nodes()
	var victims []string
	desc := ""
	switch f.kind {
	case KillRandom:
		victims = []string{pick(f.env, nodes, f.exclude)}
	case KillLeader:
		var l string
		l, desc = leader(ctx, f.env)
		victims = []string{l}
	case KillMajority:
		victims = shuffled(nodes, f.env.rng())[:len(nodes)/2+1]
	case RestartAll:
		victims = append([]string(nil), nodes...)
	}
	sort.Strings(victims)
	var errs []error
	for _, n := range victims {
		if err := f.env.Target.Kill(ctx, n); err != nil {
			errs = append(errs, fmt.Errorf("kill %s: %w", n, err))
			continue
		}
		f.killed = append(f.killed, n)
	}
	if f.kind == RestartAll {
		// A whole-cluster crash: everyone comes back at once.
		if err := f.restart(ctx); err != nil {
			errs = append(errs, err)
		}
		desc = "killed and restarted every node"
	}
	return victims, desc, errors.Join(errs...)
}

func (f *killFault) restart(ctx context.Context) error {
	var errs []error
	for _, n := range f.killed {
		if err := f.env.Target.Start(ctx, n); err != nil {
			errs = append(errs, fmt.Errorf("start %s: %w", n, err))
		}
	}
	f.killed = nil
	return errors.Join(errs...)
}

func (f *killFault) Heal(ctx context.Context) error { return f.restart(ctx) }

type pauseFault struct {
	kind    string
	env     Env
	paused  []string
	exclude []string
}

func (f *pauseFault) Kind() string { return f.kind }

func (f *pauseFault) Inject(ctx context.Context) ([]string, string, error) {
	nodes := f.env.Target.Nodes()
	var victim, desc string
	if f.kind == PauseLeader {
		victim, desc = leader(ctx, f.env)
	} else {
		victim = pick(f.env, nodes, f.exclude)
	}
	if err := f.env.Target.Pause(victim); err != nil {
		return []string{victim}, desc, fmt.Errorf("pause %s: %w", victim, err)
	}
	f.paused = append(f.paused, victim)
	return []string{victim}, desc, nil
}

func (f *pauseFault) Heal(context.Context) error {
	var errs []error
	for _, n := range f.paused {
		if err := f.env.Target.Resume(n); err != nil {
			errs = append(errs, fmt.Errorf("resume %s: %w", n, err))
		}
	}
	f.paused = nil
	return errors.Join(errs...)
}

type partitionFault struct {
	kind string
	env  Env
}

func (f *partitionFault) Kind() string { return f.kind }

// Grudge computes the grudge this partition kind would apply now.
func (f *partitionFault) grudge(ctx context.Context) (Grudge, []string, string) {
	nodes := f.env.Target.Nodes()
	rng := f.env.rng()
	switch f.kind {
	case PartitionOne:
		v := nodes[rng.Intn(len(nodes))]
		return Isolate(nodes, v), []string{v}, "isolated " + v
	case PartitionLeader:
		v, why := leader(ctx, f.env)
		return Isolate(nodes, v), []string{v}, "isolated " + v + " (" + why + ")"
	case PartitionHalves:
		g, parts := Halves(nodes, rng)
		return g, parts[0], fmt.Sprintf("minority %v | majority %v", parts[0], parts[1])
	case PartitionBridge:
		g, b := Bridge(nodes, rng)
		return g, []string{b}, "bridge through " + b
	case PartitionRing:
		g := MajoritiesRing(nodes, rng)
		return g, nodes, "majorities ring " + describeGrudge(g)
	case PartitionLossy:
		g := Grudge{}
		for _, n := range nodes {
			for _, p := range nodes {
				if p != n {
					g[n] = append(g[n], p)
				}
			}
		}
		return g, nodes, fmt.Sprintf("%.0f%% packet loss between every two nodes", LossyShare*100)
	}
	return Grudge{}, nil, ""
}

func describeGrudge(g Grudge) string {
	keys := make([]string, 0, len(g))
	for k := range g {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s drops %v", k, g[k]))
	}
	return strings.Join(parts, "; ")
}

func (f *partitionFault) Inject(ctx context.Context) ([]string, string, error) {
	g, nodes, desc := f.grudge(ctx)
	rules := Rules(g, f.env.Target.Host)
	if f.kind == PartitionLossy {
		for i := range rules {
			rules[i].Loss = LossyShare
		}
	}
	if err := f.env.Net.Apply(ctx, rules); err != nil {
		return nodes, desc, fmt.Errorf("partition: %w", err)
	}
	return nodes, desc, nil
}

func (f *partitionFault) Heal(ctx context.Context) error { return f.env.Net.Heal(ctx) }

// combo is two faults of different families at once; healed in reverse.
type combo struct {
	parts []Fault
}

func newCombo(env Env) (Fault, error) {
	var kinds [][]string
	if env.Net != nil {
		kinds = [][]string{
			{PartitionOne, KillRandom}, {PartitionHalves, PauseRandom}, {PartitionLeader, KillRandom},
			{PartitionRing, PauseLeader}, {KillLeader, PauseRandom}, {PartitionBridge, KillLeader},
		}
	} else {
		kinds = [][]string{{KillLeader, PauseRandom}, {KillRandom, PauseLeader}}
	}
	if _, partial := env.Net.(PartialNetwork); partial {
		// Only the combinations whose partition the network can make.
		var ok [][]string
		for _, pair := range kinds {
			if len(Supported(pair, env.Net, len(env.Target.Nodes()))) == len(pair) {
				ok = append(ok, pair)
			}
		}
		kinds = ok
	}
	pick := kinds[env.intn(len(kinds))]
	c := &combo{}
	for _, k := range pick {
		f, err := NewFault(k, env)
		if err != nil {
			return nil, err
		}
		c.parts = append(c.parts, f)
	}
	return c, nil
}

func (c *combo) Kind() string { return Combo }

func (c *combo) Inject(ctx context.Context) ([]string, string, error) {
	var nodes, descs []string
	var errs []error
	for _, f := range c.parts {
		if a, ok := f.(avoider); ok {
			a.avoid(nodes)
		}
		n, d, err := f.Inject(ctx)
		nodes = append(nodes, n...)
		s := f.Kind() + " " + strings.Join(n, ",")
		if d != "" {
			s += " (" + d + ")"
		}
		descs = append(descs, s)
		errs = append(errs, err)
	}
	return nodes, strings.Join(descs, " + "), errors.Join(errs...)
}

func (c *combo) Heal(ctx context.Context) error {
	var errs []error
	for i := len(c.parts) - 1; i >= 0; i-- {
		errs = append(errs, c.parts[i].Heal(ctx))
	}
	return errors.Join(errs...)
}
