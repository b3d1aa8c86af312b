package nemesis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// DockerHook is the chain Docker leaves to its users: FORWARD jumps to it
// before Docker's own rules, so a DROP there wins.
const DockerHook = "DOCKER-USER"

// DockerIptablesAvailable tells whether partitions between Docker
// containers can be made with iptables here: root, and an iptables flavour
// whose tables hold Docker's DOCKER-USER chain (the engine may use either
// the nft or the legacy one). It returns the binary to use, or why not.
func DockerIptablesAvailable(ctx context.Context, run CommandRunner) (bin string, reason string) {
	return findIptables(ctx, run, DockerHook)
}

// DefaultBridgeSysctl is where the kernel says whether bridged packets pass
// through iptables.
const DefaultBridgeSysctl = "/proc/sys/net/bridge/bridge-nf-call-iptables"

// BridgeNetfilter makes packets between containers of one bridge pass
// through iptables (without it, rules on FORWARD never see them): it loads
// br_netfilter when the sysctl is missing and turns it on when it is off.
// restore undoes what it changed (nil when it changed nothing); note says
// what it did, for the run's notes. sysctl is DefaultBridgeSysctl unless a
// test says otherwise; run may be nil.
func BridgeNetfilter(ctx context.Context, sysctl string, run CommandRunner) (restore func() error, note string, err error) {
	if run == nil {
		run = execRunner
	}
	if sysctl == "" {
		sysctl = DefaultBridgeSysctl
	}
	b, err := os.ReadFile(sysctl)
	if errors.Is(err, os.ErrNotExist) {
		if _, merr := run(ctx, "modprobe", "br_netfilter"); merr != nil {
			return nil, "", fmt.Errorf("bridge netfilter: %s missing and modprobe br_netfilter failed: %w", filepath.Base(sysctl), merr)
		}
		note = "loaded br_netfilter"
		b, err = os.ReadFile(sysctl)
	}
	if err != nil {
		return nil, "", fmt.Errorf("bridge netfilter: %w", err)
	}
	if strings.TrimSpace(string(b)) == "1" {
		return nil, note, nil
	}
	if err := os.WriteFile(sysctl, []byte("1\n"), 0o644); err != nil {
		return nil, "", fmt.Errorf("bridge netfilter: turn on %s: %w", sysctl, err)
	}
	old := append([]byte(nil), b...)
	note = strings.TrimPrefix(note+"; ", "; ") + "set " + sysctl + " to 1 for the run"
	return func() error {
		if err := os.WriteFile(sysctl, old, 0o644); err != nil {
			return fmt.Errorf("bridge netfilter: restore %s: %w", sysctl, err)
		}
		return nil
	}, note, nil
}

// PartialNetwork is a Network that can make only some partition kinds.
type PartialNetwork interface {
	Network
	CanPartition(kind string, nodes int) bool
}

// canPartition reports whether net can make the partitions of kind among
// that many nodes.
func canPartition(net Network, kind string, nodes int) bool {
	if net == nil {
		return false
	}
	if p, ok := net.(PartialNetwork); ok {
		return p.CanPartition(kind, nodes)
	}
	return true
}

// Supported drops the partition kinds net cannot make among that many
// nodes (every partition kind when net is nil). Combo stays: it picks
// among the combinations net supports.
func Supported(kinds []string, net Network, nodes int) []string {
	var out []string
	for _, k := range kinds {
		if !NeedsNetwork(k) || canPartition(net, k, nodes) {
			out = append(out, k)
		}
	}
	return out
}

// Disconnector takes nodes off their network and puts them back (Docker's
// network disconnect and connect).
type Disconnector interface {
	Nodes() []string
	Host(node string) string
	Disconnect(ctx context.Context, node string) error
	Connect(ctx context.Context, node string) error
}

// Disconnects makes partitions by taking whole nodes off the network: the
// fallback when iptables cannot filter traffic between containers. It can
// only isolate nodes from everyone (clients included), so it refuses rule
// sets that are anything else.
type Disconnects struct {
	t Disconnector

	mu  sync.Mutex
	cut map[string]bool
}

// NewDisconnects makes partitions on t.
func NewDisconnects(t Disconnector) *Disconnects {
	return &Disconnects{t: t, cut: map[string]bool{}}
}

// CanPartition: a single isolated node (partition-one, partition-leader,
// and partition-halves when the minority is one node).
func (d *Disconnects) CanPartition(kind string, nodes int) bool {
	switch kind {
	case PartitionOne, PartitionLeader:
		return true
	case PartitionHalves:
		return nodes <= 3
	}
	return false
}

// Cut lists the nodes off the network.
func (d *Disconnects) Cut() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.cut))
	for n := range d.cut {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// isolated finds the nodes that rules cut off from every other node, and
// fails when the rules are not exactly that.
func isolated(nodes []string, host func(string) string, rules []Rule) ([]string, error) {
	have := map[Rule]bool{}
	for _, r := range rules {
		have[r] = true
	}
	var out []string
	want := map[Rule]bool{}
	for _, v := range nodes {
		all := true
		for _, u := range nodes {
			if u != v && (!have[Rule{Src: host(u), Dst: host(v)}] || !have[Rule{Src: host(v), Dst: host(u)}]) {
				all = false
				break
			}
		}
		if !all {
			continue
		}
		out = append(out, v)
		for _, u := range nodes {
			if u != v {
				want[Rule{Src: host(u), Dst: host(v)}] = true
				want[Rule{Src: host(v), Dst: host(u)}] = true
			}
		}
	}
	if len(want) != len(have) {
		return nil, errors.New("disconnects can only cut whole nodes off the network, not this partition")
	}
	for r := range have {
		if !want[r] {
			return nil, fmt.Errorf("disconnects cannot make %s alone", r)
		}
	}
	return out, nil
}

// Apply replaces the partition with the one rules describe.
func (d *Disconnects) Apply(ctx context.Context, rules []Rule) error {
	victims, err := isolated(d.t.Nodes(), d.t.Host, rules)
	if err != nil {
		return err
	}
	if err := d.Heal(ctx); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, v := range victims {
		if err := d.t.Disconnect(ctx, v); err != nil {
			return err
		}
		d.cut[v] = true
	}
	return nil
}

// Heal reconnects every node it cut off, keeping going after errors.
func (d *Disconnects) Heal(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, n := range d.t.Nodes() {
		if !d.cut[n] {
			continue
		}
		if err := d.t.Connect(ctx, n); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(d.cut, n)
	}
	return errors.Join(errs...)
}
