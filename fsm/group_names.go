package fsm

import "sort"

// Groups lists the consumer groups with a committed offset here, sorted.
func (p *Partition) Groups() []string {
	p.mu.Lock()
	out := make([]string, 0, len(p.groups))
	for g := range p.groups {
		out = append(out, g)
	}
	p.mu.Unlock()
	sort.Strings(out)
	return out
}
