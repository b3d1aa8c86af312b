// Package chaos is Sluice's Jepsen-style test harness. Run starts a local
// cluster of `sluice node` processes on their own loopback addresses (or,
// with Options.Docker, of containers on a Docker network), drives
// it with producers and consumers while a nemesis kills, pauses and
// partitions nodes, heals everything, reads every partition back from every
// replica and checks the history for anomalies. Each run leaves
// store/<name>/<timestamp>/ with history.jsonl, the nodes' logs,
// results.json and index.html with plots.
//
// The parts live in subpackages: cluster (processes or containers), nemesis
// (faults, iptables, schedules), workload (clients and history), checker
// (anomalies and linearizability) and report (plots and HTML).
package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-io/sluice/chaos/checker"
	"github.com/sluice-io/sluice/chaos/cluster"
	"github.com/sluice-io/sluice/chaos/history"
	"github.com/sluice-io/sluice/chaos/lazyfs"
	"github.com/sluice-io/sluice/chaos/nemesis"
	"github.com/sluice-io/sluice/chaos/report"
	"github.com/sluice-io/sluice/chaos/workload"
	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

// Options configure a run. Zero values take the defaults in brackets.
type Options struct {
	// Name of the test; results go to Store/Name/<timestamp>/ ["sluice"].
	Name string
	// Store is the results folder ["store"].
	Store string
	// Binary is the sluice executable that runs the nodes (required).
	Binary string
	// Nodes in the cluster [3].
	Nodes int
	// TimeLimit is how long faults are injected while the workload runs [60s].
	TimeLimit time.Duration
	// Recovery is how long the workload keeps running on the healed cluster
	// before the final reads [10s].
	Recovery time.Duration
	// Nemeses are fault families (kill, pause, partition, restart, combo,
	// all, none) or kinds (kill-leader, partition-ring, ...)
	// [partition, kill, pause].
	Nemeses []string
	// Interval between a fault and its heal, and between a heal and the next
	// fault [10s].
	Interval time.Duration
	// Faults, when positive, makes the run a soak of that many fault/heal
	// cycles: TimeLimit becomes (2 × Faults + 1) × Interval. (The history is
	// still checked as one, not in windows.)
	Faults int
	// Rate is the target number of sends per second [100].
	Rate float64
	// Topic [chaos], Partitions [4], ReplicationFactor [min(3, Nodes)] and
	// Producers [2 × Partitions] shape the workload.
	Topic             string
	Partitions        int
	ReplicationFactor int
	Producers         int
	// OpTimeout bounds each client operation [5s].
	OpTimeout time.Duration
	// FinalReadTimeout bounds the final reads [60s].
	FinalReadTimeout time.Duration
	// LinearizabilityTimeout bounds Porcupine per partition [60s].
	LinearizabilityTimeout time.Duration
	// Seed makes fault choices repeatable [time-based].
	Seed int64
	// BaseHost is the last octet of node 1's address, 127.0.0.BaseHost [11].
	BaseHost int
	// ClientHost is the clients' source address [127.0.0.10].
	ClientHost string
	// Chain is the iptables chain the run owns [SLUICE-CHAOS, or
	// SLUICE-CHAOS-<BaseHost> when BaseHost is not 11; in Docker mode
	// SLUICE-CHAOS-D<pid>].
	Chain string
	// Docker runs every node in a Docker container instead of as a process:
	// an image FROM scratch holding a static build of Binary (built from the
	// Sluice source the harness runs in when Binary is dynamically linked;
	// nothing is pulled), a bridge network of the run's own with a fixed
	// address per node, each node's data bind-mounted from the run folder.
	// The harness reaches the containers' addresses from the host. BaseHost
	// and ClientHost do not apply. An engine must answer `docker info`.
	Docker bool
	// DockerPartitions says how Docker mode partitions: auto (iptables in
	// the run's chain jumped to from DOCKER-USER when usable, else
	// disconnects), iptables, or disconnect (docker network disconnect:
	// isolates single nodes only) [auto].
	DockerPartitions string
	// NodeArgs are extra `sluice node` flags.
	NodeArgs []string
	// NodeEnv adds environment variables to the nodes: key "*" for every
	// node, or a node id (n1, n2, ...) for that node only; e.g.
	// SLUICE_FAILPOINTS=... for a failpoints build.
	NodeEnv map[string][]string
	// KeepData keeps the nodes' data directories after a passing run.
	KeepData bool
	// TornWrites makes a power loss keep a random prefix of each file's
	// last unsynced write (process mode, power-loss faults).
	TornWrites bool
	// StrictDirs makes directory entries durable only by an fsync of their
	// directory, not by any fsync (ext4's ordered journal).
	StrictDirs bool
	// Logger receives the harness's progress [text to stderr and
	// harness.log in the run folder].
	Logger *slog.Logger `json:"-"`
}

func (o *Options) defaults() error {
	if o.Binary == "" {
		return errors.New("chaos: Options.Binary is required")
	}
	abs, err := filepath.Abs(o.Binary)
	if err != nil {
		return fmt.Errorf("chaos: binary: %w", err)
	}
	o.Binary = abs
	if o.Name == "" {
		o.Name = "sluice"
	}
	if o.Store == "" {
		o.Store = "store"
	}
	if o.Nodes <= 0 {
		o.Nodes = 3
	}
	if o.TimeLimit <= 0 {
		o.TimeLimit = 60 * time.Second
	}
	if o.Recovery <= 0 {
		o.Recovery = 10 * time.Second
	}
	if o.Nemeses == nil {
		o.Nemeses = []string{"partition", "kill", "pause"}
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	if o.Faults > 0 {
		o.TimeLimit = time.Duration(2*o.Faults+1) * o.Interval
	}
	if o.Rate <= 0 {
		o.Rate = 100
	}
	if o.Topic == "" {
		o.Topic = "chaos"
	}
	if o.Partitions <= 0 {
		o.Partitions = 4
	}
	if o.ReplicationFactor <= 0 {
		o.ReplicationFactor = min(3, o.Nodes)
	}
	if o.Producers <= 0 {
		o.Producers = 2 * o.Partitions
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 5 * time.Second
	}
	if o.FinalReadTimeout <= 0 {
		o.FinalReadTimeout = 60 * time.Second
	}
	if o.LinearizabilityTimeout <= 0 {
		o.LinearizabilityTimeout = 60 * time.Second
	}
	if o.Seed == 0 {
		o.Seed = time.Now().UnixNano()
	}
	if o.BaseHost <= 0 {
		o.BaseHost = 11
	}
	if o.Docker {
		switch o.DockerPartitions {
		case "":
			o.DockerPartitions = DockerPartitionsAuto
		case DockerPartitionsAuto, DockerPartitionsIptables, DockerPartitionsDisconnect:
		default:
			return fmt.Errorf("chaos: docker partitions %q: want %s, %s or %s", o.DockerPartitions,
				DockerPartitionsAuto, DockerPartitionsIptables, DockerPartitionsDisconnect)
		}
		// The harness talks to the containers from the host's side of the
		// bridge: the kernel picks that source address, a loopback one
		// would not be routed.
		o.ClientHost = ""
		if o.Chain == "" {
			o.Chain = dockerChain()
		}
		return nil
	}
	if o.ClientHost == "" {
		o.ClientHost = "127.0.0.10"
	}
	if o.Chain == "" {
		// One chain per address range, so runs on different ranges can
		// run side by side without flushing each other's rules.
		o.Chain = nemesis.DefaultChain
		if o.BaseHost != 11 {
			o.Chain = fmt.Sprintf("%s-%d", nemesis.DefaultChain, o.BaseHost)
		}
	}
	return nil
}

// Results is the outcome of a run; results.json holds it.
type Results struct {
	Name     string          `json:"name"`
	Dir      string          `json:"dir"`
	Start    time.Time       `json:"start"`
	Duration time.Duration   `json:"duration_ns"`
	Verdict  checker.Verdict `json:"verdict"`
	Options  Options         `json:"options"`
	// Kinds are the fault kinds the nemesis used.
	Kinds  []string             `json:"nemesis_kinds"`
	Faults []report.FaultWindow `json:"faults"`
	// Crashes are node processes that died on their own: a bug, counted
	// as an anomaly.
	Crashes []cluster.Crash `json:"crashes,omitempty"`
	Check   *checker.Result `json:"check"`
	// Docker describes the image and network of a Docker-mode run.
	Docker *DockerInfo `json:"docker,omitempty"`
	// Notes say what was left out and why (e.g. partitions without root).
	Notes []string `json:"notes,omitempty"`
	// Skipped are fault kinds asked for but not injected (e.g. power loss
	// without FUSE), so never counted as passed.
	Skipped []string `json:"skipped_faults,omitempty"`
	// Errors are harness problems (not anomalies of the store).
	Errors []string `json:"errors,omitempty"`
}

// AnomalyCount counts the checker's anomalies and node crashes.
func (r *Results) AnomalyCount() int {
	n := len(r.Crashes)
	if r.Check != nil {
		n += r.Check.AnomalyCount()
	}
	return n
}

// Valid reports a pass: no anomaly and nothing inconclusive.
func (r *Results) Valid() bool { return r.Verdict == checker.Pass }

// Run performs one chaos run. It returns the results whenever the run got
// far enough to have some, even with an error (e.g. ctx cancelled). Faults
// are always healed, iptables rules removed and nodes stopped before it
// returns, also on SIGINT/SIGTERM; in Docker mode the containers and the
// network are removed too (the image is kept for the next run).
func Run(ctx context.Context, opts Options) (*Results, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	kinds, err := nemesis.Expand(opts.Nemeses)
	if err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	if opts.Docker {
		if err := cluster.DockerAvailable(ctx, "", nil); err != nil {
			return nil, fmt.Errorf("chaos: --docker given but %w", err)
		}
	}
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	start := time.Now()
	dir := filepath.Join(opts.Store, opts.Name, start.Format("20060102T150405.000"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	latest := filepath.Join(opts.Store, opts.Name, "latest")
	_ = os.Remove(latest)
	_ = os.Symlink(filepath.Base(dir), latest)

	logger := opts.Logger
	if logger == nil {
		lf, err := os.Create(filepath.Join(dir, "harness.log"))
		if err != nil {
			return nil, fmt.Errorf("chaos: %w", err)
		}
		defer lf.Close()
		logger = slog.New(slog.NewTextHandler(io.MultiWriter(os.Stderr, lf), nil))
	}
	res := &Results{Name: opts.Name, Dir: dir, Start: start, Options: opts}

	// Docker mode needs no lock: its network, containers and chain are
	// named after the run.
	if !opts.Docker {
		unlock, err := lock(opts.BaseHost)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}

	r := &run{opts: opts, res: res, logger: logger, dir: dir, kinds: kinds}
	runErr := r.execute(ctx)
	res.Duration = time.Since(start)
	if runErr != nil {
		res.Errors = append(res.Errors, runErr.Error())
	}
	if err := r.finish(); err != nil {
		res.Errors = append(res.Errors, err.Error())
		if res.Verdict == checker.Pass {
			res.Verdict = checker.Inconclusive
		}
		runErr = errors.Join(runErr, err)
	}
	return res, runErr
}

// lock makes sure one run at a time uses an address range (and iptables).
func lock(baseHost int) (func(), error) {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("sluice-chaos-%d.lock", baseHost))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("chaos: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("chaos: another chaos run holds %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

type run struct {
	opts   Options
	res    *Results
	logger *slog.Logger
	dir    string
	kinds  []string

	cl  *cluster.Cluster
	ipt *nemesis.Iptables
	rec *history.Recorder
	hf  *os.File
	// restoreBridge undoes a change of the bridge netfilter sysctl.
	restoreBridge func() error
}

// teardownCtx is for cleanup that must happen even when the run's context
// has ended.
func teardownCtx(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}

func (r *run) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.res.Notes = append(r.res.Notes, msg)
	r.logger.Warn(msg)
}

func (r *run) execute(ctx context.Context) (err error) {
	opts := r.opts
	var netw nemesis.Network
	if opts.Docker {
		netw, err = r.setupDocker(ctx)
	} else {
		netw, err = r.setupProcesses(ctx)
	}
	r.res.Kinds = r.kinds
	if err != nil {
		return err
	}
	r.logger.Info("starting cluster", "dir", r.dir, "nodes", opts.Nodes, "binary", opts.Binary, "docker", opts.Docker)
	lctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = r.cl.Launch(lctx)
	cancel()
	if err != nil {
		return fmt.Errorf("chaos: cluster did not start: %w", err)
	}
	r.logger.Info("cluster up", "nodes", r.cl.Describe())
	return r.drive(ctx, netw)
}

// setupProcesses prepares process mode: iptables partitions (on INPUT,
// when root and iptables allow) and the cluster of loopback processes.
func (r *run) setupProcesses(ctx context.Context) (nemesis.Network, error) {
	opts := r.opts
	// Partitions need root and iptables; without them run the rest.
	var netw nemesis.Network
	needNet := false
	for _, k := range r.kinds {
		needNet = needNet || nemesis.NeedsNetwork(k)
	}
	if needNet {
		bin, why := nemesis.IptablesAvailable(ctx, nil)
		if bin == "" {
			r.note("network partitions disabled (%s): running the other faults only; scripts/ensure-iptables.sh installs iptables", why)
			r.kinds = nemesis.WithoutNetwork(r.kinds)
		} else {
			ipt, err := nemesis.NewIptables(ctx, bin, opts.Chain, nil, r.logger)
			if err != nil {
				r.note("network partitions disabled (%v)", err)
				r.kinds = nemesis.WithoutNetwork(r.kinds)
			} else {
				r.ipt = ipt
				netw = ipt
			}
		}
	}
	lazy := r.powerLossPossible()
	cl, err := cluster.New(cluster.Config{
		Binary: opts.Binary, Nodes: opts.Nodes, Spares: spares(r.kinds), BaseHost: opts.BaseHost, Dir: r.dir,
		ExtraArgs: opts.NodeArgs, Logger: r.logger, Env: opts.NodeEnv,
		LazyFS: lazy, LazyFSOptions: lazyfs.Options{Torn: opts.TornWrites, Strict: opts.StrictDirs, Seed: opts.Seed},
	})
	if err != nil {
		return netw, err
	}
	r.cl = cl
	return netw, nil
}

// drive runs the workload and the nemesis on the running cluster, heals
// everything and does the final reads.
func (r *run) drive(ctx context.Context, netw nemesis.Network) error {
	opts := r.opts
	clientLog := r.logger.With("component", "client")
	open := func() (workload.Store, error) {
		c, err := openClient(r.cl.RPCAddrs(), opts.ClientHost, opts.OpTimeout, clientLog)
		if err != nil {
			return nil, err
		}
		return clientStore{c}, nil
	}
	if err := r.createTopic(ctx); err != nil {
		return err
	}

	hf, err := os.Create(filepath.Join(r.dir, "history.jsonl"))
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	r.hf = hf
	r.rec = history.NewRecorder(time.Now(), hf)

	wl, err := workload.New(workload.Config{
		Topic: opts.Topic, Partitions: opts.Partitions, Producers: opts.Producers, Rate: opts.Rate,
		OpTimeout: opts.OpTimeout, Seed: opts.Seed, Open: open, Unknown: client.IsUnknownOutcome,
		Gone:     func(err error) bool { return transport.CodeOf(err) == transport.ErrUnknownTopic },
		Recorder: r.rec, Logger: r.logger,
	})
	if err != nil {
		return err
	}
	env := nemesis.NewEnv(r.cl, netw, opts.Seed)
	admin := newLifecycleAdmin(r.cl.RPCAddrs(), opts.ClientHost, opts.OpTimeout, r.logger.With("component", "lifecycle-client"))
	defer admin.Close()
	env.Admin = admin
	mover := newMoverAdmin(opts.Topic, r.cl.RPCAddrs(), opts.ClientHost, opts.OpTimeout, r.logger.With("component", "membership-client"))
	defer mover.Close()
	env.Mover = mover
	if r.cl.CanPowerLoss() {
		env.Power = r.cl
	}
	plan := nemesis.Plan(r.kinds, opts.Interval, opts.TimeLimit, rand.New(rand.NewSource(opts.Seed)))
	sched := &nemesis.Scheduler{Env: env, Recorder: r.rec, Logger: r.logger}

	r.logger.Info("workload and nemesis start", "time_limit", opts.TimeLimit, "faults", len(plan), "kinds", r.kinds, "rate", opts.Rate)
	wctx, wcancel := context.WithTimeout(ctx, opts.TimeLimit+opts.Recovery)
	defer wcancel()
	werr := make(chan error, 1)
	go func() { werr <- wl.Run(wctx) }()

	var errs []error
	if err := sched.Run(ctx, plan); err != nil {
		errs = append(errs, fmt.Errorf("nemesis: %w", err))
	}
	// Whatever happened, heal everything before the recovery period.
	if ctx.Err() == nil {
		t := time.NewTimer(time.Until(r.rec.Start().Add(opts.TimeLimit)))
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	if err := r.healAll(ctx, netw); err != nil {
		errs = append(errs, err)
	}
	r.logger.Info("faults healed; recovery period", "recovery", opts.Recovery)
	if err := <-werr; err != nil {
		errs = append(errs, fmt.Errorf("workload: %w", err))
	}
	if ctx.Err() != nil {
		return errors.Join(append(errs, fmt.Errorf("chaos: run interrupted: %w", ctx.Err()))...)
	}

	r.logger.Info("final reads")
	fctx, fcancel := context.WithTimeout(ctx, opts.FinalReadTimeout)
	defer fcancel()
	if err := wl.FinalReads(fctx, min(opts.Recovery, 15*time.Second)); err != nil {
		// Not a harness failure: the checker reports the missing reads as
		// inconclusive.
		r.note("final reads incomplete: %v", err)
	}
	return errors.Join(errs...)
}

func (r *run) healAll(ctx context.Context, netw nemesis.Network) error {
	hctx, cancel := teardownCtx(ctx, 60*time.Second)
	defer cancel()
	inv := r.rec.Now()
	err := nemesis.HealAll(hctx, r.cl, netw)
	op := history.Op{Process: history.NemesisProcess, F: history.FHeal, Type: history.OK, Invoke: inv, Complete: r.rec.Now(), Fault: "heal-all"}
	if err != nil {
		op.Type, op.Error = history.Info, err.Error()
	}
	r.rec.Add(op)
	if err != nil {
		return fmt.Errorf("heal all: %w", err)
	}
	return nil
}

// createTopic creates the workload's topic, retrying while the cluster
// settles, and waits for every partition to have a leader.
func (r *run) createTopic(ctx context.Context) error {
	opts := r.opts
	c, err := openClient(r.cl.RPCAddrs(), opts.ClientHost, opts.OpTimeout, r.logger.With("component", "client"))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		err := c.CreateTopic(ctx, transport.CreateTopicRequest{Name: opts.Topic, Partitions: opts.Partitions, ReplicationFactor: opts.ReplicationFactor})
		if err == nil || transport.CodeOf(err) == transport.ErrTopicExists {
			break
		}
		r.logger.Info("create topic: retrying", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("chaos: create topic %s: %w", opts.Topic, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err := c.WaitForLeaders(ctx, opts.Topic); err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	return nil
}

// finish tears everything down, checks the history and writes the results.
func (r *run) finish() error {
	var errs []error
	tctx, cancel := teardownCtx(context.Background(), 90*time.Second)
	defer cancel()
	if r.cl != nil {
		// Resume before stopping: a stopped process cannot shut down.
		for _, n := range r.cl.Nodes() {
			_ = r.cl.Resume(n)
		}
		r.res.Crashes = r.cl.Crashes()
	}
	if r.ipt != nil {
		if err := r.ipt.Close(tctx); err != nil {
			errs = append(errs, err)
		}
	}
	if r.cl != nil {
		if err := r.cl.Shutdown(tctx); err != nil {
			errs = append(errs, fmt.Errorf("stop cluster: %w", err))
		}
	}
	if r.restoreBridge != nil {
		if err := r.restoreBridge(); err != nil {
			errs = append(errs, err)
		}
	}
	if r.rec == nil {
		return errors.Join(errs...)
	}
	if err := r.rec.Flush(); err != nil {
		errs = append(errs, err)
	}
	if r.hf != nil {
		r.hf.Close()
	}

	ops := r.rec.Ops()
	r.logger.Info("checking history", "ops", len(ops))
	check := checker.Check(ops, checker.Config{LinearizabilityTimeout: r.opts.LinearizabilityTimeout, VisualizeDir: r.dir})
	for i := range check.Linearizability {
		if v := check.Linearizability[i].Visualization; v != "" {
			check.Linearizability[i].Visualization = filepath.Base(v)
		}
	}
	r.res.Check = check
	r.res.Verdict = check.Verdict
	if len(r.res.Crashes) > 0 {
		r.res.Verdict = checker.Fail
	}
	if len(r.res.Errors) > 0 && r.res.Verdict == checker.Pass {
		r.res.Verdict = checker.Inconclusive
	}
	r.res.Faults = report.FaultWindows(ops)

	if err := r.writeResults(); err != nil {
		errs = append(errs, err)
	}
	if r.res.Verdict == checker.Pass && !r.opts.KeepData {
		_ = os.RemoveAll(filepath.Join(r.dir, "data"))
	}
	return errors.Join(errs...)
}

func (r *run) writeResults() error {
	b, err := json.MarshalIndent(r.res, "", "  ")
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(r.dir, "results.json"), b, 0o644); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	o := r.opts
	facts := [][2]string{
		{"started", r.res.Start.Format(time.RFC3339)},
		{"nodes", fmt.Sprint(o.Nodes)},
		{"faults for", fmt.Sprintf("%s, then %s of recovery", o.TimeLimit, o.Recovery)},
		{"nemesis", fmt.Sprintf("%s every %s", strings.Join(r.kinds, ", "), o.Interval)},
		{"workload", fmt.Sprintf("topic %s: %d partitions, RF %d, %d producers at %.0f sends/s", o.Topic, o.Partitions, o.ReplicationFactor, o.Producers, o.Rate)},
		{"seed", fmt.Sprint(o.Seed)},
		{"nodes run as", r.res.runtime()},
	}
	notes := append([]string(nil), r.res.Notes...)
	for _, c := range r.res.Crashes {
		notes = append(notes, fmt.Sprintf("node %s crashed at %s: %s", c.Node, c.At.Format(time.RFC3339), c.Err))
	}
	notes = append(notes, r.res.Errors...)
	links := [][2]string{{"history.jsonl", "history.jsonl"}, {"results.json", "results.json"}, {"harness.log", "harness.log"}}
	if r.cl != nil {
		for _, n := range r.cl.Nodes() {
			links = append(links, [2]string{n + ".log", n + ".log"})
		}
	}
	return report.Write(report.Input{
		Title: "Sluice chaos: " + r.res.Name, Dir: r.dir, Ops: r.rec.Ops(), Check: r.res.Check,
		Facts: facts, Notes: notes, Links: links, Faults: r.res.Faults,
	})
}

// runtime says how the nodes ran, in one line.
func (r *Results) runtime() string {
	if d := r.Docker; d != nil {
		s := fmt.Sprintf("Docker containers of %s on network %s (%s)", d.Image, d.Network.Name, d.Network.Subnet)
		if d.Partitions != "" {
			s += ", partitions by " + d.Partitions
		}
		return s
	}
	if r.Options.Docker {
		return "Docker containers (set-up failed)"
	}
	return fmt.Sprintf("processes on 127.0.0.%d and up", r.Options.BaseHost)
}

// Summary is a short human-readable account of the run.
func (r *Results) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "chaos %s: %s\n", r.Name, strings.ToUpper(string(r.Verdict)))
	fmt.Fprintf(&b, "  results: %s (index.html, history.jsonl, results.json)\n", r.Dir)
	fmt.Fprintf(&b, "  %d nodes, %s of faults (%s) + %s recovery, %d faults injected\n",
		r.Options.Nodes, r.Options.TimeLimit, strings.Join(r.Kinds, ","), r.Options.Recovery, len(r.Faults))
	fmt.Fprintf(&b, "  nodes run as %s\n", r.runtime())
	if len(r.Faults) > 0 {
		perKind := map[string]int{}
		for _, f := range r.Faults {
			perKind[f.Fault]++
		}
		kinds := make([]string, 0, len(perKind))
		for k, n := range perKind {
			kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
		}
		sort.Strings(kinds)
		fmt.Fprintf(&b, "  faults per kind: %s\n", strings.Join(kinds, " "))
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(&b, "  SKIPPED faults (not tested, not passed): %s\n", strings.Join(r.Skipped, ", "))
	}
	c := r.Check
	if c != nil {
		fs := make([]string, 0, len(c.Ops))
		for f := range c.Ops {
			fs = append(fs, f)
		}
		sort.Strings(fs)
		for _, f := range fs {
			m := c.Ops[f]
			fmt.Fprintf(&b, "  %-13s ok %d, info %d, fail %d\n", f, m[history.OK], m[history.Info], m[history.Fail])
		}
		if n := c.AnomalyCount(); n > 0 {
			kinds := make([]string, 0, len(c.Counts))
			for k, v := range c.Counts {
				kinds = append(kinds, fmt.Sprintf("%s=%d", k, v))
			}
			sort.Strings(kinds)
			fmt.Fprintf(&b, "  ANOMALIES: %s\n", strings.Join(kinds, " "))
			for i, a := range c.Anomalies {
				if i == 10 {
					fmt.Fprintf(&b, "    ... (see results.json)\n")
					break
				}
				fmt.Fprintf(&b, "    %s %s/%d: %s\n", a.Kind, a.Topic, a.Partition, a.Detail)
			}
		} else {
			fmt.Fprintf(&b, "  no anomalies\n")
		}
		var lin []string
		for _, l := range c.Linearizability {
			lin = append(lin, fmt.Sprintf("%s/%d %s", l.Topic, l.Partition, l.Result))
		}
		fmt.Fprintf(&b, "  linearizability: %s\n", strings.Join(lin, ", "))
		var worst checker.Window
		var worstP string
		for _, p := range c.Partitions {
			if p.LongestUnavailable.Duration() > worst.Duration() {
				worst, worstP = p.LongestUnavailable, fmt.Sprintf("%s/%d", p.Topic, p.Partition)
			}
		}
		if worstP != "" {
			fmt.Fprintf(&b, "  longest unavailability: %s on %s (from %.1fs)\n", worst.Duration().Round(time.Millisecond), worstP, time.Duration(worst.Start).Seconds())
		}
		var maxRec time.Duration
		unrecovered := 0
		for _, rc := range c.Recoveries {
			if rc.Max < 0 {
				unrecovered++
			} else if rc.Max > maxRec {
				maxRec = rc.Max
			}
		}
		if len(c.Recoveries) > 0 {
			fmt.Fprintf(&b, "  recovery after heals: slowest %s", maxRec.Round(time.Millisecond))
			if unrecovered > 0 {
				fmt.Fprintf(&b, ", %d heals not recovered before the next fault", unrecovered)
			}
			b.WriteString("\n")
		}
		for _, s := range c.Inconclusive {
			fmt.Fprintf(&b, "  INCONCLUSIVE: %s\n", s)
		}
	}
	for _, cr := range r.Crashes {
		fmt.Fprintf(&b, "  NODE CRASH: %s: %s\n", cr.Node, cr.Err)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "  error: %s\n", e)
	}
	return b.String()
}

// spares is how many nodes the cluster keeps aside for the membership
// nemesis to add: one when it runs.
func spares(kinds []string) int {
	for _, k := range kinds {
		if k == nemesis.Membership {
			return 1
		}
	}
	return 0
}

// powerLossPossible drops the power-loss kinds, noting them as skipped,
// when lazy filesystems cannot be mounted (no root or no FUSE); it reports
// whether the cluster should mount them.
func (r *run) powerLossPossible() bool {
	power := nemesis.PowerKinds(r.kinds)
	if len(power) == 0 {
		return false
	}
	why := lazyfs.Available()
	if r.opts.Docker {
		why = "Docker mode"
	}
	if why == "" {
		return true
	}
	r.note("power-loss faults SKIPPED (%s): they need root and FUSE (/dev/fuse; scripts/ensure-fuse.sh)", why)
	r.res.Skipped = append(r.res.Skipped, power...)
	r.kinds = nemesis.WithoutPower(r.kinds)
	return false
}
