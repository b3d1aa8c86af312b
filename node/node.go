package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sluice-io/sluice/fsm"
	"github.com/sluice-io/sluice/transport"
)

// metaGroupName names the metadata Raft group on the mux.
const metaGroupName = "meta"

// Node is a running cluster node. Create it with Start; stop it with Close.
type Node struct {
	cfg    Config
	logger *slog.Logger

	mux  *transport.Mux
	pool *transport.Pool
	// heartbeats coalesces the Raft heartbeats between nodes (heartbeats.go)
	// and finds the local groups peers' Raft RPCs are for; callRaft sends
	// those RPCs on the node's pool (rafttransport.go).
	heartbeats *heartbeatHub
	callRaft   raftCaller
	members    *membership
	meta       *fsm.Metadata
	metaRG     *raftGroup
	metrics    *metrics
	tls        tlsConfigs // both nil without TLS
	http       *http.Server
	httpLn     net.Listener
	kafka      *kafkaState // nil without --kafka-addr
	isr        *isrTracker // in-sync replicas for the Kafka listener's Metadata

	mu       sync.RWMutex
	replicas map[partKey]*replica
	closed   bool

	leaderKick   chan struct{} // wakes the leader reporter
	joined       chan struct{} // closed once the gossip join is done
	bootstrapped atomic.Bool   // this process bootstrapped the metadata group
	barrierTerm  uint64        // metadata term whose barrier the controller loop committed
	// opsBarrierTerm is the metadata term whose barrier the operation
	// handlers (move.go) committed.
	opsBarrierTerm atomic.Uint64
	// hurried counts Raft groups whose election liveness.go hurried.
	hurried atomic.Uint64
	// damagedLogs counts Raft logs found damaged at start (logcheck.go).
	damagedLogs atomic.Uint64
	ctx         context.Context
	cancel      context.CancelFunc
	wg          sync.WaitGroup

	agentState // the colocated agent (node/agent.go)
}

// Start opens the node's data, binds its ports, joins the cluster in the
// background and returns once it serves requests.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := prepareLayout(cfg.DataDir); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:        cfg,
		logger:     cfg.Logger.With("node", cfg.ID),
		replicas:   make(map[partKey]*replica),
		leaderKick: make(chan struct{}, 1),
		joined:     make(chan struct{}),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.metrics = newMetrics(n)

	if err := n.loadTLS(); err != nil {
		return nil, err
	}
	mux, err := transport.Listen(n.muxConfig())
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	n.mux = mux
	n.pool = transport.NewPool(transport.DialOptions{
		LocalHost:     cfg.sourceHost(),
		MaxFrameBytes: cfg.MaxFrameBytes,
		Timeout:       3 * time.Second,
		TLS:           n.tls.client,
	})
	n.heartbeats = newHeartbeatHub(func(ctx context.Context, addr string, req *raftBatch, resp *raftBatchResponse) error {
		return n.pool.Call(ctx, addr, transport.MethodRaftHeartbeats, req, resp)
	})
	n.callRaft = func(ctx context.Context, addr string, req *raftRPC, resp *raftRPCResponse) error {
		return n.pool.Call(ctx, addr, transport.MethodRaft, req, resp)
	}

	n.meta = fsm.NewMetadata(n.logger)
	n.metaRG, err = n.openRaftGroup(raftGroupOptions{
		name:          metaGroupName,
		dir:           filepath.Join(cfg.DataDir, "meta"),
		fsm:           n.meta,
		local:         raft.ServerID(cfg.ID),
		maxEntryBytes: metaMaxEntryBytes,
	})
	if err != nil {
		n.closeQuietly()
		return nil, err
	}

	if err := n.listenKafka(); err != nil {
		n.closeQuietly()
		return nil, err
	}
	n.members, err = newMembership(&n.cfg)
	if err != nil {
		n.closeQuietly()
		return nil, err
	}

	if cfg.HTTPAddr != "" {
		if err := n.startHTTP(); err != nil {
			n.closeQuietly()
			return nil, err
		}
	}

	n.goLoop("rpc", func() {
		if err := n.mux.Serve(n.handleRPC); err != nil && n.ctx.Err() == nil {
			n.logger.Error("rpc server stopped", "err", err)
		}
	})
	n.serveKafka()
	n.goLoop("join", n.joinLoop)
	n.goLoop("bootstrap", n.bootstrapLoop)
	n.goLoop("controller", n.controllerLoop)
	n.goLoop("leader-balance", n.leaderBalanceLoop)
	n.goLoop("moves", n.moveLoop)
	n.goLoop("reconcile", n.reconcileLoop)
	n.goLoop("leaders", n.leaderReportLoop)
	n.goLoop("retention", n.retentionLoop)
	n.goLoop("liveness", n.livenessLoop)
	if err := n.startAgent(ctx); err != nil {
		n.closeQuietly()
		return nil, err
	}
	n.logger.Info("node started", "addr", cfg.Addr, "gossip", cfg.GossipAddr, "http", cfg.HTTPAddr, "data", cfg.DataDir)
	return n, nil
}

// ID is the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// Addr is the node's RPC address.
func (n *Node) Addr() string { return n.mux.Addr().String() }

// HTTPAddr is the bound HTTP address, or "".
func (n *Node) HTTPAddr() string {
	if n.httpLn == nil {
		return ""
	}
	return n.httpLn.Addr().String()
}

func (n *Node) goLoop(name string, f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
		n.logger.Debug("loop stopped", "loop", name)
	}()
}

// Close leaves the cluster and stops every group. Data stays on disk.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	n.stopAgent()
	n.cancel()
	if n.heartbeats != nil {
		// Heartbeats still waiting fail at once, so no Raft group's
		// shutdown waits for a round trip.
		n.heartbeats.close()
	}
	var errs []error
	if n.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		errs = append(errs, n.http.Shutdown(ctx))
		cancel()
	}
	errs = append(errs, n.closeKafka())
	if n.members != nil {
		n.members.shutdown()
	}
	n.mu.Lock()
	reps := n.replicas
	n.replicas = map[partKey]*replica{}
	n.mu.Unlock()
	// Raft groups shut down in parallel: each may wait out a dial timeout
	// to a peer that is gone, and in sequence those waits add up.
	var (
		closeMu sync.Mutex
		closeWG sync.WaitGroup
	)
	collect := func(err error) {
		closeMu.Lock()
		errs = append(errs, err)
		closeMu.Unlock()
	}
	for _, r := range reps {
		closeWG.Add(1)
		go func() {
			defer closeWG.Done()
			collect(r.close())
		}()
	}
	if n.metaRG != nil {
		closeWG.Add(1)
		go func() {
			defer closeWG.Done()
			collect(n.metaRG.shutdown())
		}()
	}
	closeWG.Wait()
	if n.mux != nil {
		errs = append(errs, n.mux.Close())
	}
	if n.pool != nil {
		n.pool.Close()
	}
	n.wg.Wait()
	n.logger.Info("node stopped")
	return errors.Join(errs...)
}

func (n *Node) closeQuietly() {
	if err := n.Close(); err != nil {
		n.logger.Warn("close after failed start", "err", err)
	}
}

// sleep waits d or until the node stops; false when stopping.
func (n *Node) sleep(d time.Duration, wake ...<-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	var w <-chan struct{}
	if len(wake) > 0 {
		w = wake[0]
	}
	select {
	case <-n.ctx.Done():
		return false
	case <-t.C:
	case <-w:
	}
	return true
}

// joinLoop keeps trying the seeds until one answers.
func (n *Node) joinLoop() {
	if len(n.cfg.Join) == 0 {
		close(n.joined)
		return
	}
	backoff := 200 * time.Millisecond
	for {
		k, err := n.members.join(n.cfg.Join)
		if err == nil || k > 0 {
			n.logger.Info("joined gossip", "contacted", k)
			close(n.joined)
			return
		}
		n.logger.Warn("join failed, retrying", "seeds", n.cfg.Join, "err", err)
		if !n.sleep(backoff) {
			return
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
