package group

import (
	"context"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Store keeps each group's membership as of its last completed rebalance
// in replicated storage, so that the coordinator taking over after a
// failover continues the same generation: members keep heartbeating,
// committing and consuming their partitions without a rebalance (Kafka
// writes the same record to __consumer_offsets).
type Store interface {
	// LoadGroups returns every stored group. It is called once the
	// storage is current on this node (see Coordinator.Ready).
	LoadGroups() ([]State, error)
	// SaveGroup replaces a group's stored state; a state without members
	// forgets the group. A state older (lower generation) than the stored
	// one must be ignored.
	SaveGroup(ctx context.Context, s State) error
}

// State is what a Store keeps of one group.
type State struct {
	Group        string         `msgpack:"g"`
	Generation   int32          `msgpack:"gen"`
	ProtocolType string         `msgpack:"pt,omitempty"`
	Protocol     string         `msgpack:"p,omitempty"`
	Leader       string         `msgpack:"l,omitempty"`
	Members      []StoredMember `msgpack:"m,omitempty"`
}

// StoredMember is one member of a stored group.
type StoredMember struct {
	ID               string        `msgpack:"id"`
	InstanceID       string        `msgpack:"iid,omitempty"`
	ClientID         string        `msgpack:"cid,omitempty"`
	ClientHost       string        `msgpack:"host,omitempty"`
	SessionTimeout   time.Duration `msgpack:"st"`
	RebalanceTimeout time.Duration `msgpack:"rt"`
	Metadata         []byte        `msgpack:"md,omitempty"`
	Assignment       []byte        `msgpack:"a,omitempty"`
}

// saveTimeout bounds one SaveGroup: a coordinator that cannot write is
// about to lose its role anyway.
const saveTimeout = 5 * time.Second

// stateLocked is g's state as a Store keeps it.
func stateLocked(g *group) State {
	s := State{Group: g.name, Generation: g.generation, ProtocolType: g.protocolType, Protocol: g.protocol, Leader: g.leader}
	if g.state != StateStable {
		return s // only a completed rebalance is continued; otherwise forget it
	}
	for _, id := range sortedIDs(g) {
		m := g.members[id]
		s.Members = append(s.Members, StoredMember{
			ID: m.ID, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost,
			SessionTimeout: m.sessionTimeout, RebalanceTimeout: m.rebalanceTimeout,
			Metadata: m.Metadata, Assignment: m.Assignment,
		})
	}
	return s
}

// saveLocked queues g's current state for the Store; the save loop writes
// the latest state of each group in the background, so no request waits
// for a Raft commit.
func (c *Coordinator) saveLocked(g *group) {
	if c.cfg.Store == nil || c.loading {
		return
	}
	c.saves[g.name] = stateLocked(g)
	select {
	case c.saveWake <- struct{}{}:
	default:
	}
}

func (c *Coordinator) saveLoop() {
	defer close(c.saveDone)
	for {
		select {
		case <-c.stop:
			return
		case <-c.saveWake:
		}
		c.mu.Lock()
		batch := c.saves
		c.saves = map[string]State{}
		c.mu.Unlock()
		names := make([]string, 0, len(batch))
		for name := range batch {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
			err := c.cfg.Store.SaveGroup(ctx, batch[name])
			cancel()
			if err != nil {
				c.logger.Warn("could not store group state; a coordinator taking over will make the members rejoin", "group", name, "generation", batch[name].Generation, "err", err)
			}
		}
	}
}

// Ready ends the loading that New (with a Store) and Reset start: the
// Store's groups become this coordinator's, their members alive as of
// now. Call it once the Store is current on this node.
func (c *Coordinator) Ready() error {
	if c.cfg.Store == nil {
		return nil
	}
	states, err := c.cfg.Store.LoadGroups()
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.loading || c.closed {
		return nil
	}
	now := c.cfg.Now()
	for _, s := range states {
		if len(s.Members) == 0 || c.groups[s.Group] != nil {
			continue
		}
		g := c.groupLocked(s.Group, true)
		g.state = StateStable
		g.generation, g.protocolType, g.protocol, g.leader = s.Generation, s.ProtocolType, s.Protocol, s.Leader
		for _, sm := range s.Members {
			g.members[sm.ID] = &member{
				Member:           Member{ID: sm.ID, InstanceID: sm.InstanceID, ClientID: sm.ClientID, ClientHost: sm.ClientHost, Metadata: sm.Metadata, Assignment: sm.Assignment},
				protocolType:     s.ProtocolType,
				protocols:        []Protocol{{Name: s.Protocol, Metadata: sm.Metadata}},
				sessionTimeout:   sm.SessionTimeout,
				rebalanceTimeout: sm.RebalanceTimeout,
				lastSeen:         now,
			}
		}
		c.logger.Info("group taken over from the stored state", "group", s.Group, "generation", s.Generation, "members", len(s.Members))
	}
	c.loading = false
	return nil
}

// unavailableLocked is the error of any group request while this
// coordinator is closed or still loading.
func (c *Coordinator) unavailableLocked() error {
	switch {
	case c.closed:
		return kerr.NotCoordinator
	case c.loading:
		return kerr.CoordinatorLoadInProgress
	}
	return nil
}
