// Package nemesis injects faults into a running cluster and heals them:
// process kills and restarts, pauses (SIGSTOP/SIGCONT, or docker pause) and
// network partitions made of iptables rules in a chain of the suite's own
// (or, for Docker containers when iptables cannot be used, of network
// disconnects). It also plans the alternation of faults and heals over a
// run.
package nemesis

import (
	"fmt"
	"math/rand"
	"sort"
)

// Grudge says, for each node, the nodes whose packets it drops. Partitions
// are sets of grudges, as in Jepsen.
type Grudge map[string][]string

// Complete makes every node drop every node outside its own component.
func Complete(components ...[]string) Grudge {
	g := Grudge{}
	for i, comp := range components {
		for _, n := range comp {
			for j, other := range components {
				if i == j {
					continue
				}
				g[n] = append(g[n], other...)
			}
		}
	}
	g.normalize()
	return g
}

func (g Grudge) normalize() {
	for n, peers := range g {
		set := map[string]bool{}
		var out []string
		for _, p := range peers {
			if p != n && !set[p] {
				set[p] = true
				out = append(out, p)
			}
		}
		sort.Strings(out)
		if len(out) == 0 {
			delete(g, n)
			continue
		}
		g[n] = out
	}
}

// Drops reports whether node drops packets from peer.
func (g Grudge) Drops(node, peer string) bool {
	for _, p := range g[node] {
		if p == peer {
			return true
		}
	}
	return false
}

// Sees reports whether a and b can talk (neither drops the other: TCP needs
// both directions).
func (g Grudge) Sees(a, b string) bool { return a == b || (!g.Drops(a, b) && !g.Drops(b, a)) }

// Isolate cuts one node off from all the others.
func Isolate(nodes []string, victim string) Grudge {
	var rest []string
	for _, n := range nodes {
		if n != victim {
			rest = append(rest, n)
		}
	}
	return Complete([]string{victim}, rest)
}

func shuffled(nodes []string, rng *rand.Rand) []string {
	out := append([]string(nil), nodes...)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// Halves splits the nodes at random into a minority and a majority.
func Halves(nodes []string, rng *rand.Rand) (Grudge, [][]string) {
	s := shuffled(nodes, rng)
	minority, majority := s[:len(s)/2], s[len(s)/2:]
	return Complete(minority, majority), [][]string{minority, majority}
}

// Bridge splits the nodes into two halves that cannot talk, joined by one
// node that sees both. It returns the grudge and the bridge node.
func Bridge(nodes []string, rng *rand.Rand) (Grudge, string) {
	s := shuffled(nodes, rng)
	if len(s) < 3 {
		return Grudge{}, ""
	}
	mid := len(s) / 2
	bridge := s[mid]
	left, right := s[:mid], s[mid+1:]
	return Complete(left, right), bridge
}

// MajoritiesRing places the nodes on a ring and lets each see only its
// nearest neighbours, so that every node sees a majority but no two see the
// same one. With three nodes no such symmetric arrangement exists and it is
// the bridge.
func MajoritiesRing(nodes []string, rng *rand.Rand) Grudge {
	n := len(nodes)
	majority := n/2 + 1
	d := majority / 2 // neighbours on each side: 2d+1 >= majority
	if 2*d+1 < majority {
		d++
	}
	if 2*d+1 >= n {
		g, _ := Bridge(nodes, rng)
		return g
	}
	ring := shuffled(nodes, rng)
	g := Grudge{}
	for i, node := range ring {
		for j, peer := range ring {
			dist := i - j
			if dist < 0 {
				dist = -dist
			}
			if n-dist < dist {
				dist = n - dist
			}
			if dist > d {
				g[node] = append(g[node], peer)
			}
		}
	}
	g.normalize()
	return g
}

// Rule drops packets from Src to Dst (IP addresses): all of them, or when
// Loss is between 0 and 1, that fraction of them at random.
type Rule struct {
	Src  string
	Dst  string
	Loss float64 `json:",omitempty"`
}

func (r Rule) String() string {
	if r.lossy() {
		return fmt.Sprintf("drop %.0f%% %s -> %s", r.Loss*100, r.Src, r.Dst)
	}
	return fmt.Sprintf("drop %s -> %s", r.Src, r.Dst)
}

func (r Rule) lossy() bool { return r.Loss > 0 && r.Loss < 1 }

// Rules turns a grudge into iptables rules: node n drops packets from peer p
// means a rule dropping packets whose source is p's address and whose
// destination is n's.
func Rules(g Grudge, addr func(node string) string) []Rule {
	nodes := make([]string, 0, len(g))
	for n := range g {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	var out []Rule
	for _, n := range nodes {
		for _, p := range g[n] {
			out = append(out, Rule{Src: addr(p), Dst: addr(n)})
		}
	}
	return out
}
