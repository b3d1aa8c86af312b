package fsm

import (
	"slices"
	"strings"

	"github.com/sluice-io/sluice/transport"
)

// Consumer-group state kept by the metadata group for the coordinator (the
// metadata leader), so the next coordinator continues a group's generation
// after a failover. The state is opaque here: the coordinator encodes it.
const metaGroupState byte = 30

// Bounds on stored group state, so that no client can grow the metadata
// snapshot without limit. A state over them is refused and its group
// falls back to rejoining after a failover.
const (
	MaxGroupStateBytes      = 1 << 20
	MaxStoredGroupBytes     = 64 << 20
	MaxStoredGroups         = DefaultMaxGroups
	storedGroupOverheadByte = 64
)

// StoredGroup is one group's state as of its last completed rebalance.
type StoredGroup struct {
	Group      string `msgpack:"g"`
	Generation int32  `msgpack:"gen"`
	State      []byte `msgpack:"s,omitempty"` // empty: forget the group
}

func (g StoredGroup) size() int { return len(g.Group) + len(g.State) + storedGroupOverheadByte }

// EncodeGroupState stores (or, with an empty state, forgets) a group.
func EncodeGroupState(g StoredGroup) []byte { return encodeCommand(metaGroupState, g) }

// applyGroups applies the commands of this file; ok is false for any other type.
func (m *Metadata) applyGroups(typ byte, payload []byte) (ok, changed bool, err error) {
	if typ != metaGroupState {
		return false, false, nil
	}
	var c StoredGroup
	if err := decodeCmd(payload, &c); err != nil {
		return true, false, err
	}
	return true, false, m.storeGroup(c)
}

func (m *Metadata) storeGroup(c StoredGroup) error {
	switch {
	case c.Group == "" || len(c.Group) > MaxGroupNameBytes:
		return transport.Errorf(transport.ErrInvalidRequest, "group id of %d bytes: must be 1 to %d", len(c.Group), MaxGroupNameBytes)
	case len(c.State) > MaxGroupStateBytes:
		return transport.Errorf(transport.ErrRecordTooLarge, "group %q: state of %d bytes exceeds the limit of %d", c.Group, len(c.State), MaxGroupStateBytes)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old, had := m.groups[c.Group]
	if had && c.Generation < old.Generation {
		return nil // a late write of an older generation
	}
	if len(c.State) == 0 {
		if had {
			m.groupBytes -= old.size()
			delete(m.groups, c.Group)
		}
		return nil
	}
	grow := c.size()
	if had {
		grow -= old.size()
	} else if len(m.groups) >= MaxStoredGroups {
		return transport.Errorf(transport.ErrInvalidRequest, "group %q: %d groups stored already", c.Group, len(m.groups))
	}
	if m.groupBytes+grow > MaxStoredGroupBytes {
		return transport.Errorf(transport.ErrRecordTooLarge, "group %q: stored group state would exceed %d bytes", c.Group, MaxStoredGroupBytes)
	}
	c.State = slices.Clone(c.State)
	m.groups[c.Group] = c
	m.groupBytes += grow
	return nil
}

// StoredGroups returns every stored group state, sorted by group.
func (m *Metadata) StoredGroups() []StoredGroup {
	m.mu.RLock()
	out := make([]StoredGroup, 0, len(m.groups))
	for _, g := range m.groups {
		out = append(out, g)
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b StoredGroup) int { return strings.Compare(a.Group, b.Group) })
	return out
}

// restoreGroupsLocked installs a snapshot's groups, applying the same
// bounds as commands so a forged snapshot cannot exceed them.
func (m *Metadata) restoreGroupsLocked(gs []StoredGroup) {
	m.groups, m.groupBytes = make(map[string]StoredGroup, len(gs)), 0
	for _, g := range gs {
		if len(g.State) == 0 || len(g.State) > MaxGroupStateBytes || len(m.groups) >= MaxStoredGroups || m.groupBytes+g.size() > MaxStoredGroupBytes {
			continue
		}
		m.groups[g.Group] = g
		m.groupBytes += g.size()
	}
}
