package node

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"
)

// memberMeta is what gossip carries about a node.
type memberMeta struct {
	ID       string `msgpack:"id"`
	RPCAddr  string `msgpack:"rpc"`
	HTTPAddr string `msgpack:"http"`
	// KafkaAddr is the advertised Kafka listener, "" without one.
	KafkaAddr string `msgpack:"kafka,omitempty"`
	// Bootstrap state (see bootstrap.go): Raft is set once the node has
	// metadata Raft state, so no peer bootstraps another cluster; Proposal
	// is the digest of the voter set it would bootstrap with.
	Raft     bool   `msgpack:"raft,omitempty"`
	Proposal string `msgpack:"prop,omitempty"`
}

// member is one node as the local gossip view sees it.
type member struct {
	memberMeta
	State string // alive (memberlist does not tell its delegates of suspicion)
}

// membership wraps memberlist: it publishes this node's metadata, keeps the
// latest view of every peer and signals changes.
type membership struct {
	list   *memberlist.Memberlist
	metaMu sync.Mutex
	own    memberMeta
	meta   []byte
	logger *slog.Logger

	mu      sync.Mutex
	changed chan struct{}
	// peers is this node's copy of memberlist's live view (alive and
	// suspect nodes, itself included), kept by the event callbacks, which
	// memberlist calls under its own lock. The *Node values its Members
	// returns are rewritten in place by gossip, so reading their fields
	// later would race.
	peers map[string]peerView
}

// peerView is what the view keeps of one node.
type peerView struct {
	addr netip.Addr // gossip address
	meta []byte
}

func newMembership(cfg *Config) (*membership, error) {
	host, portStr, err := net.SplitHostPort(cfg.GossipAddr)
	if err != nil {
		return nil, fmt.Errorf("gossip address: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("gossip port %q: %w", portStr, err)
	}
	// own is republished whole on every change (bootstrap state), so it
	// must carry every address.
	own := memberMeta{ID: cfg.ID, RPCAddr: cfg.rpcAdvertised(), HTTPAddr: cfg.HTTPAddr, KafkaAddr: cfg.KafkaAdvertisedAddr}
	meta, err := msgpack.Marshal(own)
	if err != nil {
		return nil, fmt.Errorf("encode gossip meta: %w", err)
	}
	m := &membership{own: own, meta: meta, logger: cfg.Logger.With("component", "gossip"), changed: make(chan struct{}), peers: map[string]peerView{}}

	stdLog := log.New(&slogWriter{logger: m.logger}, "", 0)
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{host},
		BindPort:  port,
		Logger:    stdLog,
	})
	if err != nil {
		return nil, fmt.Errorf("gossip transport on %s: %w", cfg.GossipAddr, err)
	}
	key, err := gossipKey(cfg.GossipKey)
	if err != nil {
		return nil, err
	}
	mc := memberlist.DefaultLocalConfig()
	// With a key every gossip message, UDP and TCP, is AES-GCM encrypted
	// and authenticated: a node without the key can neither join nor read.
	mc.SecretKey = key
	mc.Name = cfg.ID
	mc.BindAddr = host
	mc.BindPort = port
	mc.AdvertiseAddr = host
	mc.AdvertisePort = port
	mc.Transport = &boundTransport{NetTransport: nt, host: cfg.sourceHost()}
	mc.Delegate = m
	mc.Events = m
	mc.Logger = stdLog
	// Loopback clusters: probe quickly so a dead node is marked within ~2s.
	mc.ProbeInterval = 500 * time.Millisecond
	mc.ProbeTimeout = 250 * time.Millisecond
	mc.SuspicionMult = 3
	list, err := memberlist.Create(mc)
	if err != nil {
		nt.Shutdown()
		return nil, fmt.Errorf("start gossip: %w", err)
	}
	m.list = list
	return m, nil
}

// join contacts the seeds; it succeeds when at least one answered.
func (m *membership) join(seeds []string) (int, error) {
	if len(seeds) == 0 {
		return 0, nil
	}
	return m.list.Join(seeds)
}

// setBootstrapState publishes this node's bootstrap state to its peers.
func (m *membership) setBootstrapState(hasRaft bool, proposal string) error {
	m.metaMu.Lock()
	if m.own.Raft == hasRaft && m.own.Proposal == proposal {
		m.metaMu.Unlock()
		return nil
	}
	m.own.Raft, m.own.Proposal = hasRaft, proposal
	meta, err := msgpack.Marshal(m.own)
	if err == nil {
		m.meta = meta
	}
	m.metaMu.Unlock()
	if err != nil {
		return fmt.Errorf("encode gossip meta: %w", err)
	}
	return m.list.UpdateNode(time.Second)
}

// Changed returns a channel closed at the next membership change.
func (m *membership) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

func (m *membership) notify() {
	m.mu.Lock()
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
}

// Members lists every node gossip knows alive (memberlist does not report
// suspicion to its delegates, so a suspect node is listed as alive until it
// is declared dead), sorted by id.
func (m *membership) Members() []member {
	m.mu.Lock()
	out := make([]member, 0, len(m.peers))
	for _, p := range m.peers {
		if mm, ok := decodeMeta(p.meta); ok {
			out = append(out, member{memberMeta: mm, State: "alive"})
		}
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// alive returns the alive members.
func (m *membership) alive() []member {
	var out []member
	for _, mem := range m.Members() {
		if mem.State == "alive" {
			out = append(out, mem)
		}
	}
	return out
}

// hasHost reports whether ip is the gossip or RPC address of a node in the
// live gossip view.
func (m *membership) hasHost(ip netip.Addr) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.peers {
		if p.addr == ip {
			return true
		}
		if mm, ok := decodeMeta(p.meta); ok && hostIP(mm.RPCAddr) == ip {
			return true
		}
	}
	return false
}

func (m *membership) shutdown() {
	if err := m.list.Leave(time.Second); err != nil {
		m.logger.Debug("gossip leave", "err", err)
	}
	if err := m.list.Shutdown(); err != nil {
		m.logger.Warn("gossip shutdown", "err", err)
	}
}

func decodeMeta(meta []byte) (memberMeta, bool) {
	var mm memberMeta
	if len(meta) == 0 || msgpack.Unmarshal(meta, &mm) != nil || mm.ID == "" {
		return mm, false
	}
	return mm, true
}

func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return "unknown"
}

// memberlist.Delegate: only node metadata is used.
func (m *membership) NodeMeta(limit int) []byte {
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	if len(m.meta) > limit {
		m.logger.Error("gossip metadata too large", "size", len(m.meta), "limit", limit)
		return nil
	}
	return m.meta
}
func (m *membership) NotifyMsg([]byte)                           {}
func (m *membership) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (m *membership) LocalState(join bool) []byte                { return nil }
func (m *membership) MergeRemoteState(buf []byte, join bool)     {}

// memberlist.EventDelegate
func (m *membership) NotifyJoin(n *memberlist.Node) {
	m.copyNode(n)
	m.logger.Info("member joined", "name", n.Name, "addr", n.Address())
	m.notify()
}
func (m *membership) NotifyLeave(n *memberlist.Node) {
	m.logger.Info("member left or failed", "name", n.Name, "state", stateName(n.State))
	m.mu.Lock()
	delete(m.peers, n.Name)
	m.mu.Unlock()
	m.notify()
}
func (m *membership) NotifyUpdate(n *memberlist.Node) {
	m.copyNode(n)
	m.notify()
}

// copyNode records n; it runs under memberlist's lock, so n is stable.
func (m *membership) copyNode(n *memberlist.Node) {
	addr, _ := netip.AddrFromSlice(n.Addr)
	m.mu.Lock()
	m.peers[n.Name] = peerView{addr: addr.Unmap(), meta: bytes.Clone(n.Meta)}
	m.mu.Unlock()
}

// boundTransport makes memberlist's TCP dials leave from the node's own
// address (UDP already does: it sends from the bound socket).
type boundTransport struct {
	*memberlist.NetTransport
	host string
}

func (t *boundTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if t.host != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(t.host)}
	}
	return d.Dial("tcp", addr)
}

func (t *boundTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// slogWriter adapts the standard logger used by memberlist and raft's
// transports to slog, mapping their [LEVEL] prefixes.
type slogWriter struct{ logger *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	switch {
	case strings.Contains(msg, "[ERR"):
		level = slog.LevelError
	case strings.Contains(msg, "[WARN"):
		level = slog.LevelWarn
	case strings.Contains(msg, "[DEBUG"), strings.Contains(msg, "[TRACE"):
		level = slog.LevelDebug
	}
	w.logger.Log(context.Background(), level, msg)
	return len(p), nil
}
