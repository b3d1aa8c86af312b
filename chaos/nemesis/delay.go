package nemesis

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-io/sluice/chaos/netproxy"
)

// Delay fault kinds: they shape the node-to-node links through the proxies
// in front of the nodes' ports (chaos/netproxy), which the harness sets up
// only when one of these kinds is asked for.
const (
	// DelayAll slows every link by DelayAllLink.
	DelayAll = "delay-all"
	// DelayLeader slows every link to and from a partition leader by
	// DelayLeaderLink: heartbeats come late, elections may follow.
	DelayLeader = "delay-leader"
	// BlackholeOneWay stalls everything one node says to one other node
	// while the reverse direction flows: an asymmetric partition.
	BlackholeOneWay = "blackhole-one-way"
	// BlackholeLeaderOut stalls everything a partition leader says to its
	// peers while it still hears them: it cannot step down by losing
	// contact with what it receives, only by what it does not.
	BlackholeLeaderOut = "blackhole-leader-out"
)

// Link settings of the delay kinds, per direction.
var (
	DelayAllLink    = netproxy.Link{Delay: 40 * time.Millisecond, Jitter: 40 * time.Millisecond}
	DelayLeaderLink = netproxy.Link{Delay: 200 * time.Millisecond, Jitter: 150 * time.Millisecond}
)

// Shaper sets how each node-to-node link behaves; links not named are
// left alone (undelayed).
type Shaper interface {
	Set(links map[netproxy.Pair]netproxy.Link)
	Reset()
}

// NeedsProxy reports whether a kind shapes links (needs the proxies).
func NeedsProxy(kind string) bool {
	switch kind {
	case DelayAll, DelayLeader, BlackholeOneWay, BlackholeLeaderOut:
		return true
	}
	return false
}

// ProxyKinds lists the kinds among kinds that shape links.
func ProxyKinds(kinds []string) []string {
	var out []string
	for _, k := range kinds {
		if NeedsProxy(k) {
			out = append(out, k)
		}
	}
	return out
}

// WithoutProxy drops the kinds that shape links.
func WithoutProxy(kinds []string) []string {
	var out []string
	for _, k := range kinds {
		if !NeedsProxy(k) {
			out = append(out, k)
		}
	}
	return out
}

type delayFault struct {
	kind string
	env  Env
}

func (f *delayFault) Kind() string { return f.kind }

func (f *delayFault) Inject(ctx context.Context) ([]string, string, error) {
	nodes := f.env.Target.Nodes()
	links := map[netproxy.Pair]netproxy.Link{}
	var touched []string
	desc := ""
	both := func(a string, l netproxy.Link) {
		for _, b := range nodes {
			if b != a {
				links[netproxy.Pair{From: a, To: b}] = l
				links[netproxy.Pair{From: b, To: a}] = l
			}
		}
	}
	switch f.kind {
	case DelayAll:
		for _, a := range nodes {
			both(a, DelayAllLink)
		}
		touched = nodes
		desc = fmt.Sprintf("every link %s", DelayAllLink)
	case DelayLeader:
		l, why := leader(ctx, f.env)
		both(l, DelayLeaderLink)
		touched = []string{l}
		desc = fmt.Sprintf("links to and from %s (%s) %s", l, why, DelayLeaderLink)
	case BlackholeOneWay:
		rng := f.env.rng()
		sh := shuffled(nodes, rng)
		from, to := sh[0], sh[1%len(sh)]
		links[netproxy.Pair{From: from, To: to}] = netproxy.Link{Blackhole: true}
		touched = []string{from, to}
		desc = fmt.Sprintf("%s→%s blackholed (%s→%s flows)", from, to, to, from)
	case BlackholeLeaderOut:
		l, why := leader(ctx, f.env)
		for _, b := range nodes {
			if b != l {
				links[netproxy.Pair{From: l, To: b}] = netproxy.Link{Blackhole: true}
			}
		}
		touched = []string{l}
		desc = fmt.Sprintf("everything %s (%s) sends is blackholed; it still hears its peers", l, why)
	default:
		return nil, "", fmt.Errorf("nemesis: %s is no delay kind", f.kind)
	}
	f.env.Links.Set(links)
	return touched, desc, nil
}

func (f *delayFault) Heal(context.Context) error {
	f.env.Links.Reset()
	return nil
}
