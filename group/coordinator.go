// Package group is the consumer-group coordinator of the classic Kafka
// protocol: membership with session and rebalance timeouts, generations,
// the protocol the members vote for, and the leader's assignment handed
// out to every member. It keeps membership in memory only; committed
// offsets are the node's business (they live in the partitions' Raft
// groups). With a Store, every completed rebalance is written to
// replicated storage and the coordinator that takes over after a failover
// continues the same generation; without one (or when the write did not
// happen) the members find the new coordinator and join again, which
// starts a new generation there.
//
// Errors are franz-go kerr values, so the Kafka listener can return their
// codes as they are and the native RPC path can carry the same codes.
package group

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Group states, named as Kafka's DescribeGroups reports them.
const (
	StateEmpty               = "Empty"
	StatePreparingRebalance  = "PreparingRebalance"
	StateCompletingRebalance = "CompletingRebalance"
	StateStable              = "Stable"
	StateDead                = "Dead"
)

// Protocol is one assignment protocol a member supports, with its
// member metadata (for consumers: subscribed topics and user data).
type Protocol struct {
	Name     string
	Metadata []byte
}

// JoinRequest is one JoinGroup.
type JoinRequest struct {
	Group            string
	MemberID         string // "" for a new member
	InstanceID       string // static membership (group.instance.id), "" for none
	ClientID         string
	ClientHost       string
	ProtocolType     string // "consumer" for Kafka consumers
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	Protocols        []Protocol
	// RequireKnownMember makes a new member first get its id back with
	// MEMBER_ID_REQUIRED (JoinGroup v4+), so a retried join is not a
	// second member.
	RequireKnownMember bool
}

// Member is a group member as JoinGroup (for the leader) and
// DescribeGroups report it.
type Member struct {
	ID         string
	InstanceID string
	ClientID   string
	ClientHost string
	Metadata   []byte // for the group's chosen protocol
	Assignment []byte // from the leader's SyncGroup
}

// JoinResult is the answer to a JoinGroup.
type JoinResult struct {
	Generation   int32
	ProtocolType string
	Protocol     string
	Leader       string
	MemberID     string
	Members      []Member // only for the leader
}

// Description is DescribeGroups' view of one group.
type Description struct {
	Group        string
	State        string
	ProtocolType string
	Protocol     string
	Generation   int32
	Leader       string
	Members      []Member
	MemberCount  int
}

// Config tunes a Coordinator. Zero values take defaults.
type Config struct {
	// MinSessionTimeout and MaxSessionTimeout bound what members ask for
	// (Kafka's group.min/max.session.timeout.ms: 6 s and 30 min).
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration
	// InitialRebalanceDelay is how long a rebalance of an empty group waits
	// for more members (Kafka's group.initial.rebalance.delay.ms).
	InitialRebalanceDelay time.Duration
	// TakeoverDelay holds the first rebalance of a group that members of
	// an earlier coordinator still talk about (they got UNKNOWN_MEMBER_ID
	// here) open this long, so every live old member learns that it lost
	// its partitions and rejoins before anyone is given them again. Default
	// 5 s, above the clients' default heartbeat interval of 3 s.
	TakeoverDelay time.Duration
	// Tick is how often expired sessions and rebalance deadlines are checked.
	Tick   time.Duration
	Logger *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// Store, when set, keeps group state across coordinator failovers; the
	// coordinator then answers COORDINATOR_LOAD_IN_PROGRESS from New and
	// Reset until Ready.
	Store Store
}

// Coordinator holds the groups this node coordinates.
type Coordinator struct {
	cfg    Config
	logger *slog.Logger

	mu     sync.Mutex
	groups map[string]*group
	closed bool
	// loading is true while the Store's groups are not loaded yet.
	loading bool
	// saves are the group states waiting for the save loop.
	saves    map[string]State
	saveWake chan struct{}
	saveDone chan struct{}

	stop chan struct{}
	done chan struct{}
}

type member struct {
	Member
	protocolType     string
	protocols        []Protocol
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	lastSeen         time.Time
	// join is the pending JoinGroup waiting for the rebalance to finish.
	join chan joinReply
	// sync is the pending SyncGroup waiting for the leader's assignment.
	sync chan syncReply
}

type joinReply struct {
	res JoinResult
	err error
}

type syncReply struct {
	assignment []byte
	err        error
}

type group struct {
	name         string
	state        string
	generation   int32
	protocolType string
	protocol     string
	leader       string
	members      map[string]*member
	// pending are ids handed out with MEMBER_ID_REQUIRED, with their expiry.
	pending map[string]time.Time
	// rebalanceDeadline ends PreparingRebalance even if some members have
	// not rejoined (they are removed).
	rebalanceDeadline time.Time
	// initialDelayUntil holds a rebalance of a previously empty group open
	// for more members.
	initialDelayUntil time.Time
	// recoverUntil is set when members of a previous coordinator's
	// generation showed up (see Config.TakeoverDelay).
	recoverUntil time.Time
}

// New starts a coordinator; Close stops it.
func New(cfg Config) *Coordinator {
	if cfg.MinSessionTimeout == 0 {
		cfg.MinSessionTimeout = 1 * time.Second
	}
	if cfg.MaxSessionTimeout == 0 {
		cfg.MaxSessionTimeout = 30 * time.Minute
	}
	if cfg.TakeoverDelay == 0 {
		cfg.TakeoverDelay = 5 * time.Second
	}
	if cfg.Tick == 0 {
		cfg.Tick = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Coordinator{
		cfg:    cfg,
		logger: cfg.Logger.With("component", "group-coordinator"),
		groups: map[string]*group{},
		stop:   make(chan struct{}),
		done:   make(chan struct{}),

		loading:  cfg.Store != nil,
		saves:    map[string]State{},
		saveWake: make(chan struct{}, 1),
		saveDone: make(chan struct{}),
	}
	go c.tickLoop()
	if cfg.Store != nil {
		go c.saveLoop()
	} else {
		close(c.saveDone)
	}
	return c
}

// Close stops the coordinator and fails every pending request with
// NOT_COORDINATOR, so members look for the new one.
func (c *Coordinator) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.resetLocked()
	c.mu.Unlock()
	close(c.stop)
	<-c.done
	<-c.saveDone
}

// Reset forgets every group (this node stopped being the coordinator):
// pending requests fail with NOT_COORDINATOR. With a Store, the
// coordinator loads again at the next Ready.
func (c *Coordinator) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resetLocked()
	c.loading = c.cfg.Store != nil
	c.saves = map[string]State{}
}

func (c *Coordinator) resetLocked() {
	for _, g := range c.groups {
		for _, m := range g.members {
			m.replyJoin(joinReply{err: kerr.NotCoordinator})
			m.replySync(syncReply{err: kerr.NotCoordinator})
		}
	}
	c.groups = map[string]*group{}
}

func (c *Coordinator) tickLoop() {
	defer close(c.done)
	t := time.NewTicker(c.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.expire()
		}
	}
}

// expire removes members whose session ran out and finishes rebalances
// whose deadline passed.
func (c *Coordinator) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	for _, g := range c.groups {
		for id, exp := range g.pending {
			if now.After(exp) {
				delete(g.pending, id)
			}
		}
		for id, m := range g.members {
			if m.join != nil {
				continue // waiting in a rebalance: its join counts as alive
			}
			if now.Sub(m.lastSeen) > m.sessionTimeout {
				c.logger.Info("group member session expired", "group", g.name, "member", id)
				c.removeMemberLocked(g, id)
			}
		}
		if g.state == StatePreparingRebalance {
			c.maybeCompleteLocked(g, now)
		}
		if g.state == StateEmpty && len(g.members) == 0 && len(g.pending) == 0 && g.generation == 0 && now.After(g.recoverUntil) {
			delete(c.groups, g.name)
		}
	}
}

func newMemberID(clientID string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	if clientID == "" {
		clientID = "member"
	}
	return clientID + "-" + hex.EncodeToString(b[:])
}

// noteOrphanLocked records that a member this coordinator never saw is
// still active, so the group's first rebalance here waits for its peers.
func (c *Coordinator) noteOrphanLocked(g *group, now time.Time) {
	if g.generation == 0 && g.recoverUntil.IsZero() {
		g.recoverUntil = now.Add(c.cfg.TakeoverDelay)
		c.logger.Info("members of an earlier coordinator found; holding the group's first rebalance", "group", g.name, "until", g.recoverUntil)
	}
}

func (c *Coordinator) groupLocked(name string, create bool) *group {
	g := c.groups[name]
	if g == nil && create {
		g = &group{name: name, state: StateEmpty, members: map[string]*member{}, pending: map[string]time.Time{}}
		c.groups[name] = g
	}
	return g
}

// Join adds or refreshes a member and waits for the rebalance that
// follows. It returns when the group completes the rebalance, ctx ends,
// or the coordinator stops.
func (c *Coordinator) Join(ctx context.Context, req JoinRequest) (JoinResult, error) {
	if req.Group == "" {
		return JoinResult{}, kerr.InvalidGroupID
	}
	if req.SessionTimeout < c.cfg.MinSessionTimeout || req.SessionTimeout > c.cfg.MaxSessionTimeout {
		return JoinResult{}, kerr.InvalidSessionTimeout
	}
	if req.RebalanceTimeout <= 0 {
		req.RebalanceTimeout = req.SessionTimeout
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		return JoinResult{}, kerr.InconsistentGroupProtocol
	}
	c.mu.Lock()
	if err := c.unavailableLocked(); err != nil {
		c.mu.Unlock()
		return JoinResult{}, err
	}
	g := c.groupLocked(req.Group, true)
	now := c.cfg.Now()
	if len(g.members) > 0 && g.protocolType != "" && req.ProtocolType != g.protocolType {
		c.mu.Unlock()
		return JoinResult{}, kerr.InconsistentGroupProtocol
	}
	if len(g.members) > 0 && !supportsCommon(g, req.Protocols) {
		c.mu.Unlock()
		return JoinResult{}, kerr.InconsistentGroupProtocol
	}
	id := req.MemberID
	if id == "" && req.InstanceID != "" {
		// Static membership: a restarted instance takes its old id back.
		for mid, m := range g.members {
			if m.InstanceID == req.InstanceID {
				id = mid
			}
		}
	}
	if id == "" {
		id = newMemberID(req.ClientID)
		if req.RequireKnownMember {
			g.pending[id] = now.Add(req.SessionTimeout)
			c.mu.Unlock()
			return JoinResult{MemberID: id, Generation: -1}, kerr.MemberIDRequired
		}
	} else if _, ok := g.members[id]; !ok {
		if _, ok := g.pending[id]; !ok && req.InstanceID == "" {
			c.noteOrphanLocked(g, now)
			c.mu.Unlock()
			return JoinResult{MemberID: id}, kerr.UnknownMemberID
		}
	}
	delete(g.pending, id)
	m := g.members[id]
	if m == nil {
		m = &member{}
		g.members[id] = m
	}
	m.ID = id
	m.InstanceID = req.InstanceID
	m.ClientID = req.ClientID
	m.ClientHost = req.ClientHost
	m.protocolType = req.ProtocolType
	m.protocols = req.Protocols
	m.sessionTimeout = req.SessionTimeout
	m.rebalanceTimeout = req.RebalanceTimeout
	m.lastSeen = now
	// A member that joins again while an earlier join still waits (a retry
	// on a new connection) replaces it.
	m.replyJoin(joinReply{err: kerr.RebalanceInProgress})
	ch := make(chan joinReply, 1)
	m.join = ch
	if g.protocolType == "" {
		g.protocolType = req.ProtocolType
	}
	c.prepareRebalanceLocked(g, now)
	c.maybeCompleteLocked(g, now)
	c.mu.Unlock()

	select {
	case r := <-ch:
		return r.res, r.err
	case <-ctx.Done():
		c.mu.Lock()
		if m.join == ch {
			m.join = nil
		}
		c.mu.Unlock()
		return JoinResult{}, kerr.RebalanceInProgress
	}
}

func supportsCommon(g *group, protos []Protocol) bool {
	for _, p := range protos {
		all := true
		for _, m := range g.members {
			if !hasProtocol(m.protocols, p.Name) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func hasProtocol(ps []Protocol, name string) bool {
	for _, p := range ps {
		if p.Name == name {
			return true
		}
	}
	return false
}

// prepareRebalanceLocked moves the group into PreparingRebalance: current
// pending syncs fail so their members rejoin.
func (c *Coordinator) prepareRebalanceLocked(g *group, now time.Time) {
	if g.state == StatePreparingRebalance {
		return
	}
	wasEmpty := g.state == StateEmpty
	g.state = StatePreparingRebalance
	var maxRebalance time.Duration
	for _, m := range g.members {
		maxRebalance = max(maxRebalance, m.rebalanceTimeout)
		m.replySync(syncReply{err: kerr.RebalanceInProgress})
	}
	g.rebalanceDeadline = now.Add(maxRebalance)
	g.initialDelayUntil = time.Time{}
	if wasEmpty && c.cfg.InitialRebalanceDelay > 0 {
		g.initialDelayUntil = now.Add(c.cfg.InitialRebalanceDelay)
	}
	if wasEmpty && g.recoverUntil.After(g.initialDelayUntil) {
		g.initialDelayUntil = g.recoverUntil
	}
	c.logger.Debug("group rebalancing", "group", g.name, "members", len(g.members))
}

// maybeCompleteLocked finishes PreparingRebalance once every member has
// rejoined (or the deadline passed: the missing ones are dropped).
func (c *Coordinator) maybeCompleteLocked(g *group, now time.Time) {
	if g.state != StatePreparingRebalance {
		return
	}
	all := true
	for _, m := range g.members {
		if m.join == nil {
			all = false
		}
	}
	deadline := now.After(g.rebalanceDeadline)
	if !deadline && (!all || now.Before(g.initialDelayUntil)) {
		return
	}
	for id, m := range g.members {
		if m.join == nil {
			c.logger.Info("group member did not rejoin in time", "group", g.name, "member", id)
			delete(g.members, id)
		}
	}
	if len(g.members) == 0 {
		g.state = StateEmpty
		g.leader, g.protocol = "", ""
		g.generation++
		c.saveLocked(g)
		return
	}
	g.generation++
	g.protocol = voteProtocol(g)
	if _, ok := g.members[g.leader]; !ok {
		g.leader = ""
		for _, id := range sortedIDs(g) {
			g.leader = id
			break
		}
	}
	g.state = StateCompletingRebalance
	var members []Member
	for _, id := range sortedIDs(g) {
		m := g.members[id]
		m.Metadata = protocolMetadata(m.protocols, g.protocol)
		m.Assignment = nil
		members = append(members, Member{ID: m.ID, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost, Metadata: m.Metadata})
	}
	for id, m := range g.members {
		res := JoinResult{Generation: g.generation, ProtocolType: g.protocolType, Protocol: g.protocol, Leader: g.leader, MemberID: id}
		if id == g.leader {
			res.Members = members
		}
		m.lastSeen = now
		m.replyJoin(joinReply{res: res})
	}
	c.logger.Info("group rebalanced", "group", g.name, "generation", g.generation, "protocol", g.protocol, "members", len(g.members), "leader", g.leader)
}

func sortedIDs(g *group) []string {
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// voteProtocol picks the protocol every member supports that most members
// list first (Kafka's vote); ties go to the name first in sort order.
func voteProtocol(g *group) string {
	votes := map[string]int{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if supportedByAll(g, p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	best, bestVotes := "", -1
	for name, v := range votes {
		if v > bestVotes || (v == bestVotes && name < best) {
			best, bestVotes = name, v
		}
	}
	return best
}

func supportedByAll(g *group, name string) bool {
	for _, m := range g.members {
		if !hasProtocol(m.protocols, name) {
			return false
		}
	}
	return true
}

func protocolMetadata(ps []Protocol, name string) []byte {
	for _, p := range ps {
		if p.Name == name {
			return p.Metadata
		}
	}
	return nil
}

func (m *member) replyJoin(r joinReply) {
	if m.join != nil {
		m.join <- r
		m.join = nil
	}
}

func (m *member) replySync(r syncReply) {
	if m.sync != nil {
		m.sync <- r
		m.sync = nil
	}
}

func (c *Coordinator) memberLocked(groupID, memberID string, generation int32) (*group, *member, error) {
	if err := c.unavailableLocked(); err != nil {
		return nil, nil, err
	}
	g := c.groupLocked(groupID, false)
	if g == nil || (g.generation == 0 && len(g.members) == 0) {
		// A member of an earlier coordinator's generation.
		g = c.groupLocked(groupID, true)
		c.noteOrphanLocked(g, c.cfg.Now())
		return g, nil, kerr.UnknownMemberID
	}
	m := g.members[memberID]
	if m == nil {
		return g, nil, kerr.UnknownMemberID
	}
	if generation != g.generation {
		return g, m, kerr.IllegalGeneration
	}
	return g, m, nil
}

// Sync hands the leader's assignment out: the leader's call stores it, and
// every member's call returns its own part once the leader's has arrived.
func (c *Coordinator) Sync(ctx context.Context, groupID, memberID string, generation int32, assignments map[string][]byte) ([]byte, string, string, error) {
	c.mu.Lock()
	g, m, err := c.memberLocked(groupID, memberID, generation)
	if err != nil {
		c.mu.Unlock()
		return nil, "", "", err
	}
	m.lastSeen = c.cfg.Now()
	ptype, proto := g.protocolType, g.protocol
	switch g.state {
	case StatePreparingRebalance:
		c.mu.Unlock()
		return nil, ptype, proto, kerr.RebalanceInProgress
	case StateStable:
		a := m.Assignment
		c.mu.Unlock()
		return a, ptype, proto, nil
	}
	if memberID == g.leader {
		for id, mm := range g.members {
			mm.Assignment = assignments[id]
		}
		g.state = StateStable
		c.saveLocked(g)
		for _, mm := range g.members {
			mm.replySync(syncReply{assignment: mm.Assignment})
		}
		a := m.Assignment
		c.mu.Unlock()
		return a, ptype, proto, nil
	}
	m.replySync(syncReply{err: kerr.RebalanceInProgress})
	ch := make(chan syncReply, 1)
	m.sync = ch
	c.mu.Unlock()
	select {
	case r := <-ch:
		return r.assignment, ptype, proto, r.err
	case <-ctx.Done():
		c.mu.Lock()
		if m.sync == ch {
			m.sync = nil
		}
		c.mu.Unlock()
		return nil, ptype, proto, kerr.RebalanceInProgress
	}
}

// Heartbeat keeps a member's session alive and tells it when to rejoin.
func (c *Coordinator) Heartbeat(groupID, memberID string, generation int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, m, err := c.memberLocked(groupID, memberID, generation)
	if m != nil {
		m.lastSeen = c.cfg.Now()
	}
	if err != nil {
		if g == nil {
			return err
		}
		if err == kerr.IllegalGeneration && g.state == StatePreparingRebalance {
			return kerr.RebalanceInProgress
		}
		return err
	}
	if g.state == StatePreparingRebalance {
		return kerr.RebalanceInProgress
	}
	return nil
}

// Leave removes members; the rest rebalance.
func (c *Coordinator) Leave(groupID string, memberIDs ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.unavailableLocked(); err != nil {
		return err
	}
	g := c.groupLocked(groupID, false)
	if g == nil {
		return kerr.UnknownMemberID
	}
	var err error
	for _, id := range memberIDs {
		if _, ok := g.members[id]; !ok {
			err = kerr.UnknownMemberID
			continue
		}
		c.logger.Info("group member left", "group", groupID, "member", id)
		c.removeMemberLocked(g, id)
	}
	return err
}

func (c *Coordinator) removeMemberLocked(g *group, id string) {
	m := g.members[id]
	if m == nil {
		return
	}
	m.replyJoin(joinReply{err: kerr.UnknownMemberID})
	m.replySync(syncReply{err: kerr.UnknownMemberID})
	delete(g.members, id)
	now := c.cfg.Now()
	switch {
	case len(g.members) == 0:
		g.state = StateEmpty
		g.leader, g.protocol = "", ""
		g.generation++
		c.saveLocked(g)
	case g.state == StatePreparingRebalance:
		c.maybeCompleteLocked(g, now)
	default:
		c.prepareRebalanceLocked(g, now)
	}
}

// CheckCommit validates an OffsetCommit's member and generation. A
// generation of -1 (no member) is a standalone consumer's commit, allowed
// while the group has no members. A group this coordinator does not know
// (it took over after a failover) accepts the commit: its members have not
// rejoined yet, and their progress must not be lost.
func (c *Coordinator) CheckCommit(groupID, memberID string, generation int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.unavailableLocked(); err != nil {
		return err
	}
	g := c.groupLocked(groupID, false)
	if g == nil {
		return nil
	}
	if generation < 0 && memberID == "" {
		if len(g.members) > 0 {
			return kerr.RebalanceInProgress
		}
		return nil
	}
	if len(g.members) == 0 && g.generation == 0 {
		return nil
	}
	m := g.members[memberID]
	if m == nil {
		return kerr.UnknownMemberID
	}
	if generation != g.generation {
		return kerr.IllegalGeneration
	}
	if g.state == StatePreparingRebalance {
		return kerr.RebalanceInProgress
	}
	m.lastSeen = c.cfg.Now()
	return nil
}

// Describe reports one group; an unknown group is Dead with no members.
func (c *Coordinator) Describe(groupID string) Description {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groupLocked(groupID, false)
	if g == nil {
		return Description{Group: groupID, State: StateDead}
	}
	d := Description{Group: g.name, State: g.state, ProtocolType: g.protocolType, Protocol: g.protocol, Generation: g.generation, Leader: g.leader}
	for _, id := range sortedIDs(g) {
		m := g.members[id]
		d.Members = append(d.Members, Member{ID: m.ID, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost, Metadata: m.Metadata, Assignment: m.Assignment})
	}
	d.MemberCount = len(d.Members)
	return d
}

// List reports every group with members or history here.
func (c *Coordinator) List() []Description {
	c.mu.Lock()
	names := make([]string, 0, len(c.groups))
	for name := range c.groups {
		names = append(names, name)
	}
	c.mu.Unlock()
	sort.Strings(names)
	out := make([]Description, 0, len(names))
	for _, n := range names {
		d := c.Describe(n)
		d.Members = nil
		out = append(out, d)
	}
	return out
}

// Delete forgets an empty group; a group with members is NON_EMPTY_GROUP.
func (c *Coordinator) Delete(groupID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.unavailableLocked(); err != nil {
		return err
	}
	g := c.groupLocked(groupID, false)
	if g == nil {
		return nil
	}
	if len(g.members) > 0 {
		return kerr.NonEmptyGroup
	}
	g.state = StateDead
	c.saveLocked(g)
	delete(c.groups, groupID)
	return nil
}
