// Package cluster runs a local Sluice cluster and controls its nodes: start,
// kill -9, graceful stop, pause and resume, health and status over HTTP.
// Nodes run either as separate `sluice node` processes, each on its own
// loopback address (127.0.0.11, .12, ...) so that network rules can name it
// (New), or as Docker containers on a bridge network of the run's own
// (NewDocker, in docker.go).
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sluice-io/sluice/chaos/lazyfs"
	"github.com/sluice-io/sluice/transport"
)

// Config describes the cluster to run.
type Config struct {
	// Binary is the sluice executable (process mode; Docker mode runs an
	// image).
	Binary string
	// Nodes is the number of nodes (default 3).
	Nodes int
	// Spares are extra nodes (n(Nodes+1)...) that Launch does not start
	// and Nodes does not list: the membership nemesis adds and removes
	// them (process mode only).
	Spares int
	// BaseHost is the last octet of the first node's address: node i
	// listens on 127.0.0.(BaseHost+i-1). Default 11.
	BaseHost int
	// Dir receives each node's log (nN.log) and data directory (data/nN).
	Dir string
	// BootstrapExpect defaults to Nodes.
	BootstrapExpect int
	// ExtraArgs are appended to every `sluice node` command line.
	ExtraArgs []string
	// Env is added to the nodes' environment: key "*" for every node, a
	// node id for that node only.
	Env map[string][]string
	// StopTimeout bounds a graceful stop before SIGKILL (default 10s).
	StopTimeout time.Duration
	// LazyFS mounts a filesystem that forgets unsynced writes over each
	// node's data directory (process mode, needs root and FUSE), for
	// PowerLoss.
	LazyFS        bool
	LazyFSOptions lazyfs.Options
	Logger        *slog.Logger
}

// Node is one node of the cluster.
type Node struct {
	ID         string
	Host       string
	RPCAddr    string
	GossipAddr string
	HTTPAddr   string
	// DataDir is the node's data directory on the host (bind-mounted at
	// /data in Docker mode).
	DataDir string
	LogPath string
	// Container is the node's container name ("" in process mode).
	Container string
	// Spare nodes are started by the membership nemesis only.
	Spare bool

	mu       sync.Mutex
	inst     instance      // nil when down
	done     chan struct{} // closed when the running instance has exited
	paused   bool
	expected bool // the harness is ending this process
	starts   int
}

// Crash is a node process that exited without the harness asking.
type Crash struct {
	Node string    `json:"node"`
	At   time.Time `json:"at"`
	Err  string    `json:"err"`
}

// Cluster is a set of nodes.
type Cluster struct {
	cfg    Config
	rt     runtime
	nodes  []*Node
	byID   map[string]*Node
	http   *http.Client
	logger *slog.Logger

	mu      sync.Mutex
	crashes []Crash
	lazy    map[string]*lazyfs.FS // node id -> its data directory's filesystem
}

// runtime is how nodes are run: plain processes or Docker containers.
type runtime interface {
	// start runs the node, its output going to out, and does not wait.
	start(n *Node, out *os.File) (instance, error)
	// close releases what the runtime made once every node has stopped.
	close(ctx context.Context) error
}

// instance is one run of a node, from start to exit.
type instance interface {
	// signal delivers KILL, TERM, STOP (pause) or CONT (resume). Signalling
	// an instance that has just exited is not an error.
	signal(sig syscall.Signal) error
	// wait blocks until the instance has exited.
	wait() error
	// pid is the process the harness started.
	pid() int
}

// New prepares a cluster: addresses, free ports, directories. It starts
// nothing.
func New(cfg Config) (*Cluster, error) {
	if cfg.Binary == "" {
		return nil, errors.New("cluster: no sluice binary")
	}
	if _, err := os.Stat(cfg.Binary); err != nil {
		return nil, fmt.Errorf("cluster: binary: %w", err)
	}
	if cfg.BaseHost <= 0 {
		cfg.BaseHost = 11
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.BaseHost+cfg.Nodes+cfg.Spares-1 > 254 {
		return nil, fmt.Errorf("cluster: %d nodes from 127.0.0.%d do not fit", cfg.Nodes, cfg.BaseHost)
	}
	c := newCluster(cfg)
	c.rt = &processRuntime{c: c}
	for i := 1; i <= cfg.Nodes+cfg.Spares; i++ {
		host := fmt.Sprintf("127.0.0.%d", cfg.BaseHost+i-1)
		ports, err := freePorts(host, 3)
		if err != nil {
			return nil, fmt.Errorf("cluster: free ports on %s: %w", host, err)
		}
		id := fmt.Sprintf("n%d", i)
		n := &Node{
			ID:         id,
			Host:       host,
			RPCAddr:    net.JoinHostPort(host, strconv.Itoa(ports[0])),
			GossipAddr: net.JoinHostPort(host, strconv.Itoa(ports[1])),
			HTTPAddr:   net.JoinHostPort(host, strconv.Itoa(ports[2])),
			DataDir:    filepath.Join(cfg.Dir, "data", id),
			LogPath:    filepath.Join(cfg.Dir, id+".log"),
			Spare:      i > cfg.Nodes,
		}
		if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		c.nodes = append(c.nodes, n)
		c.byID[id] = n
	}
	if cfg.LazyFS {
		if err := c.mountLazy(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (cfg Config) withDefaults() (Config, error) {
	if cfg.Nodes <= 0 {
		cfg.Nodes = 3
	}
	if cfg.BootstrapExpect <= 0 {
		cfg.BootstrapExpect = cfg.Nodes
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Dir == "" {
		return cfg, errors.New("cluster: no directory")
	}
	return cfg, nil
}

func newCluster(cfg Config) *Cluster {
	return &Cluster{
		cfg:    cfg,
		byID:   map[string]*Node{},
		http:   &http.Client{Timeout: 2 * time.Second},
		logger: cfg.Logger,
	}
}

// freePorts asks the kernel for n distinct ports free on host for TCP and
// UDP (gossip uses both).
func freePorts(host string, n int) ([]int, error) {
	var out []int
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for tries := 0; len(out) < n && tries < 100; tries++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, err
		}
		closers = append(closers, ln)
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		closers = append(closers, pc)
		out = append(out, port)
	}
	if len(out) < n {
		return nil, errors.New("no free ports")
	}
	return out, nil
}

// Nodes lists the node ids, n1..nN (spares left out).
func (c *Cluster) Nodes() []string {
	out := make([]string, 0, len(c.nodes))
	for _, n := range c.nodes {
		if !n.Spare {
			out = append(out, n.ID)
		}
	}
	return out
}

// Spares lists the spare nodes' ids.
func (c *Cluster) Spares() []string {
	var out []string
	for _, n := range c.nodes {
		if n.Spare {
			out = append(out, n.ID)
		}
	}
	return out
}

// Node returns a node by id (nil if unknown).
func (c *Cluster) Node(id string) *Node { return c.byID[id] }

// Host is the node's IP address.
func (c *Cluster) Host(id string) string {
	if n := c.byID[id]; n != nil {
		return n.Host
	}
	return ""
}

// RPCAddrs lists every node's RPC address (spares left out: clients
// learn of them from the cluster's metadata).
func (c *Cluster) RPCAddrs() []string {
	out := make([]string, 0, len(c.nodes))
	for _, n := range c.nodes {
		if !n.Spare {
			out = append(out, n.RPCAddr)
		}
	}
	return out
}

// LogPaths maps node ids to their log files.
func (c *Cluster) LogPaths() map[string]string {
	out := map[string]string{}
	for _, n := range c.nodes {
		out[n.ID] = n.LogPath
	}
	return out
}

func (c *Cluster) node(id string) (*Node, error) {
	n := c.byID[id]
	if n == nil {
		return nil, fmt.Errorf("cluster: unknown node %q", id)
	}
	return n, nil
}

// args is the `sluice node` command line of n, with its data directory
// as the node sees it.
func (c *Cluster) args(n *Node, dataDir string) []string {
	var seeds []string
	for _, o := range c.nodes {
		if o.ID != n.ID {
			seeds = append(seeds, o.GossipAddr)
		}
	}
	args := []string{"node",
		"--id", n.ID,
		"--data-dir", dataDir,
		"--addr", n.RPCAddr,
		"--gossip-addr", n.GossipAddr,
		"--http-addr", n.HTTPAddr,
		"--join", strings.Join(seeds, ","),
		"--bootstrap-expect", strconv.Itoa(c.cfg.BootstrapExpect),
	}
	return append(args, c.cfg.ExtraArgs...)
}

// Launch starts every node but the spares and waits until each answers
// /healthz.
func (c *Cluster) Launch(ctx context.Context) error {
	for _, n := range c.nodes {
		if n.Spare {
			continue
		}
		if err := c.Start(ctx, n.ID); err != nil {
			return err
		}
	}
	return c.WaitHealthy(ctx, c.Nodes()...)
}

// Start starts a node that is not running; a running node is left alone.
// It does not wait for the node to be healthy.
func (c *Cluster) Start(ctx context.Context, id string) error {
	n, err := c.node(id)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.inst != nil {
		return nil
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	n.starts++
	fmt.Fprintf(logf, "=== chaos harness: starting %s (start #%d) at %s ===\n", id, n.starts, time.Now().Format(time.RFC3339Nano))
	inst, err := c.rt.start(n, logf)
	if err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", id, err)
	}
	done := make(chan struct{})
	n.inst, n.done, n.paused, n.expected = inst, done, false, false
	go func() {
		err := inst.wait()
		fmt.Fprintf(logf, "=== chaos harness: %s exited at %s: %v ===\n", id, time.Now().Format(time.RFC3339Nano), exitText(err))
		logf.Close()
		n.mu.Lock()
		expected := n.expected
		if n.inst == inst {
			n.inst, n.paused = nil, false
		}
		n.mu.Unlock()
		if !expected {
			c.mu.Lock()
			c.crashes = append(c.crashes, Crash{Node: id, At: time.Now(), Err: exitText(err)})
			c.mu.Unlock()
			c.logger.Error("node exited unexpectedly", "node", id, "err", exitText(err))
		}
		close(done)
	}()
	c.logger.Debug("node started", "node", id, "pid", inst.pid())
	return nil
}

// processRuntime runs each node as a child process.
type processRuntime struct{ c *Cluster }

func (r *processRuntime) start(n *Node, out *os.File) (instance, error) {
	// Not CommandContext: the harness decides when nodes end.
	cmd := exec.Command(r.c.cfg.Binary, r.c.args(n, n.DataDir)...)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.Env = append(append(os.Environ(), r.c.cfg.Env["*"]...), r.c.cfg.Env[n.ID]...)
	// Own process group: a ^C at the terminal reaches the harness only, which
	// then tears the nodes down in order. Pdeathsig kills them if the
	// harness dies without doing so.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return processInstance{cmd}, nil
}

func (r *processRuntime) close(context.Context) error { return nil }

type processInstance struct{ cmd *exec.Cmd }

func (p processInstance) signal(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

func (p processInstance) wait() error { return p.cmd.Wait() }
func (p processInstance) pid() int    { return p.cmd.Process.Pid }

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Running reports whether the node's process is alive (paused counts).
func (c *Cluster) Running(id string) bool {
	n := c.byID[id]
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.inst != nil
}

// Paused reports whether the node is paused (SIGSTOP, or docker pause).
func (c *Cluster) Paused(id string) bool {
	n := c.byID[id]
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused
}

// Pid of the node's process, 0 when down. In Docker mode it is the
// `docker start --attach` client that follows the container.
func (c *Cluster) Pid(id string) int {
	n := c.byID[id]
	if n == nil {
		return 0
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.inst == nil {
		return 0
	}
	return n.inst.pid()
}

// signal sends sig to a running node, marking its exit as expected when
// the signal ends it. It returns the exit channel (nil when not running).
func (c *Cluster) signal(id string, sig syscall.Signal, ending bool) (chan struct{}, error) {
	n, err := c.node(id)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.inst == nil {
		return nil, nil
	}
	if ending {
		n.expected = true
		// A stopped process handles SIGTERM only once continued.
		if n.paused {
			_ = n.inst.signal(syscall.SIGCONT)
			n.paused = false
		}
	}
	if err := n.inst.signal(sig); err != nil {
		return n.done, fmt.Errorf("signal %s to %s: %w", sig, id, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		n.paused = true
	case syscall.SIGCONT:
		n.paused = false
	}
	return n.done, nil
}

func wait(ctx context.Context, done chan struct{}) error {
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Kill sends SIGKILL and waits until the process is gone. A node that is
// down is left alone.
func (c *Cluster) Kill(ctx context.Context, id string) error {
	done, err := c.signal(id, syscall.SIGKILL, true)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := wait(ctx, done); err != nil {
		return fmt.Errorf("kill %s: %w", id, err)
	}
	return nil
}

// Stop asks the node to shut down (SIGTERM) and kills it if it has not
// within StopTimeout.
func (c *Cluster) Stop(ctx context.Context, id string) error {
	done, err := c.signal(id, syscall.SIGTERM, true)
	if err != nil {
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, c.cfg.StopTimeout)
	defer cancel()
	if wait(tctx, done) == nil {
		return nil
	}
	c.logger.Warn("node did not stop in time, killing", "node", id)
	return c.Kill(ctx, id)
}

// Restart kills the node and starts it again.
func (c *Cluster) Restart(ctx context.Context, id string) error {
	if err := c.Kill(ctx, id); err != nil {
		return err
	}
	return c.Start(ctx, id)
}

// Pause stops the node with SIGSTOP (docker pause, the freezer, in Docker
// mode). Its sockets still accept connections in the kernel: it looks
// slow, not dead.
func (c *Cluster) Pause(id string) error {
	_, err := c.signal(id, syscall.SIGSTOP, false)
	return err
}

// Resume continues a paused node (harmless when not paused).
func (c *Cluster) Resume(id string) error {
	_, err := c.signal(id, syscall.SIGCONT, false)
	return err
}

// Shutdown resumes every paused node, stops all gracefully and kills what
// remains; in Docker mode it then removes the containers and the network.
// Safe to call more than once.
func (c *Cluster) Shutdown(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(c.nodes)+1)
	for i, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Stop(ctx, n.ID)
		}()
	}
	wg.Wait()
	// Even when a stop failed: removing a container kills it anyway.
	errs[len(c.nodes)] = c.rt.close(ctx)
	return errors.Join(append(errs, c.unmountLazy())...)
}

// Crashes lists the unexpected exits so far.
func (c *Cluster) Crashes() []Crash {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Crash(nil), c.crashes...)
}

// Healthy reports whether the node answers GET /healthz with 200.
func (c *Cluster) Healthy(ctx context.Context, id string) bool {
	n := c.byID[id]
	if n == nil || !c.Running(id) || c.Paused(id) {
		return false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.HTTPAddr+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// WaitHealthy waits until every given node is healthy or ctx ends. A node
// that exits meanwhile fails the wait at once.
func (c *Cluster) WaitHealthy(ctx context.Context, ids ...string) error {
	pending := append([]string(nil), ids...)
	for {
		var still []string
		for _, id := range pending {
			if !c.Running(id) {
				return fmt.Errorf("node %s is not running (see %s)", id, c.byID[id].LogPath)
			}
			if !c.Healthy(ctx, id) {
				still = append(still, id)
			}
		}
		if len(still) == 0 {
			return nil
		}
		pending = still
		select {
		case <-ctx.Done():
			return fmt.Errorf("nodes %v not healthy: %w", pending, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Status fetches a node's /v1/status.
func (c *Cluster) Status(ctx context.Context, id string) (*transport.StatusResponse, error) {
	n, err := c.node(id)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.HTTPAddr+"/v1/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status of %s: HTTP %d", id, resp.StatusCode)
	}
	var st transport.StatusResponse
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("status of %s: %w", id, err)
	}
	return &st, nil
}

// Leaders asks every running, unpaused node for its status and maps each
// "topic/partition" to the node that claims leadership with the highest
// term.
func (c *Cluster) Leaders(ctx context.Context) (map[string]string, error) {
	type claim struct {
		node string
		term uint64
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var mu sync.Mutex
	best := map[string]claim{}
	var errs []error
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		if !c.Running(n.ID) || c.Paused(n.ID) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := c.Status(ctx, n.ID)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			for _, p := range st.Partitions {
				if p.Role != "leader" {
					continue
				}
				k := fmt.Sprintf("%s/%d", p.Topic, p.Partition)
				if b, ok := best[k]; !ok || p.Term > b.term {
					best[k] = claim{n.ID, p.Term}
				}
			}
		}()
	}
	wg.Wait()
	out := map[string]string{}
	for k, b := range best {
		out[k] = b.node
	}
	if len(out) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Describe is a one-line view of the nodes for logs.
func (c *Cluster) Describe() string {
	var parts []string
	for _, n := range c.nodes {
		state := "down"
		if c.Running(n.ID) {
			state = "up"
			if c.Paused(n.ID) {
				state = "paused"
			}
		}
		parts = append(parts, fmt.Sprintf("%s@%s(%s)", n.ID, n.RPCAddr, state))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
