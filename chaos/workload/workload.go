// Package workload drives a log store with Jepsen-style clients and records
// every operation in a history: producers appending unique values, one
// consumer per partition following it from offset 0 through its leader, one
// per partition following each replica's own committed log, and one
// consumer-group member per partition committing its offsets and fetching
// them back. At the end it reads every partition whole, from the leader
// (linearizably) and from each replica.
package workload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-io/sluice/chaos/history"
)

// Store is what the workload needs of a client. One Store is one client
// connection state; the workload opens a fresh one for each new process.
type Store interface {
	// Produce appends one record and returns its offset.
	Produce(ctx context.Context, topic string, partition int32, key, value string) (int64, error)
	// Fetch reads from the partition leader from offset on.
	Fetch(ctx context.Context, req FetchRequest) (FetchResult, error)
	// FetchFromNode reads node's own committed log.
	FetchFromNode(ctx context.Context, node string, req FetchRequest) (FetchResult, error)
	CommitOffset(ctx context.Context, group, topic string, partition int32, offset int64) error
	// FetchOffset returns the committed offset, -1 for none.
	FetchOffset(ctx context.Context, group, topic string, partition int32) (int64, error)
	// Replicas maps each partition of topic to its replicas' node ids.
	Replicas(ctx context.Context, topic string) (map[int32][]string, error)
	Close() error
}

// FetchRequest is a read of one partition.
type FetchRequest struct {
	Topic        string
	Partition    int32
	Offset       int64
	MaxRecords   int
	MaxWait      time.Duration
	Linearizable bool
}

// FetchResult is what a read returned.
type FetchResult struct {
	Records       []history.Record
	HighWatermark int64
}

// Config tunes the workload. Zero values take defaults.
type Config struct {
	Topic      string
	Partitions int
	// Producers is the number of producer workers (default twice the
	// partitions, so appends to each partition are concurrent).
	Producers int
	// Rate is the target number of sends per second over all producers
	// (default 100).
	Rate float64
	// Group is the consumer group of the committing consumers (default
	// "chaos"); NoGroup turns them off.
	Group   string
	NoGroup bool
	// OpTimeout bounds each operation (default 5s).
	OpTimeout time.Duration
	// PollWait is a poll's long-poll wait and the pause of idle consumers
	// (default 100ms).
	PollWait time.Duration
	// MaxPollRecords per poll (default 500).
	MaxPollRecords int
	// LinearizableEvery makes every n-th poll of the following consumers a
	// linearizable read (default 4; negative: never).
	LinearizableEvery int
	// NoReplicaPolls turns off the replica followers: one process per
	// partition and replica reading that replica's committed log (the
	// store's FetchFromNode) from offset 0. They catch a replica that
	// serves what is not committed, e.g. a deposed leader cut off with
	// entries of its own term that the new leader then overwrites.
	NoReplicaPolls bool
	Seed           int64

	// Open returns a fresh client.
	Open func() (Store, error)
	// Unknown tells errors after which a write may have taken effect.
	Unknown func(error) bool
	// Gone tells errors by which the store answers that the topic does
	// not exist: a final read then counts as a read of an empty log (every
	// acknowledged record is lost), not as a failed read.
	Gone     func(error) bool
	Recorder *history.Recorder
	Logger   *slog.Logger
}

func (c *Config) defaults() error {
	if c.Topic == "" || c.Partitions <= 0 {
		return errors.New("workload: topic and partitions are required")
	}
	if c.Open == nil || c.Unknown == nil || c.Recorder == nil {
		return errors.New("workload: Open, Unknown and Recorder are required")
	}
	if c.Producers <= 0 {
		c.Producers = 2 * c.Partitions
	}
	if c.Rate <= 0 {
		c.Rate = 100
	}
	if c.Group == "" {
		c.Group = "chaos"
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = 5 * time.Second
	}
	if c.PollWait <= 0 {
		c.PollWait = 100 * time.Millisecond
	}
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = 500
	}
	if c.LinearizableEvery == 0 {
		c.LinearizableEvery = 4
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Workload runs the clients.
type Workload struct {
	cfg    Config
	procs  atomic.Int64
	values atomic.Int64
	rec    *history.Recorder
	logger *slog.Logger
	// gate is held shared by every operation and exclusively by Quiesce,
	// so a soak can end a window with nothing in flight.
	gate sync.RWMutex
}

// Quiesce waits for the operations in flight to end and holds new ones
// until resume is called: a window of the history then ends with no
// operation open across its boundary.
func (w *Workload) Quiesce() (resume func()) {
	w.gate.Lock()
	return w.gate.Unlock
}

// op runs one store call inside the gate.
func (w *Workload) op(f func()) {
	w.gate.RLock()
	defer w.gate.RUnlock()
	f()
}

// New checks cfg and prepares a workload.
func New(cfg Config) (*Workload, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return &Workload{cfg: cfg, rec: cfg.Recorder, logger: cfg.Logger}, nil
}

func (w *Workload) newProcess() int { return int(w.procs.Add(1) - 1) }

// worker owns one logical process at a time and its client.
type worker struct {
	w     *Workload
	name  string
	proc  int
	store Store
}

func (w *Workload) newWorker(name string) (*worker, error) {
	wk := &worker{w: w, name: name}
	if err := wk.renew(); err != nil {
		return nil, err
	}
	return wk, nil
}

// renew retires the current process (and client) and starts a new one.
func (wk *worker) renew() error {
	if wk.store != nil {
		_ = wk.store.Close()
		wk.store = nil
	}
	s, err := wk.w.cfg.Open()
	if err != nil {
		return fmt.Errorf("workload: open client: %w", err)
	}
	wk.store = s
	wk.proc = wk.w.newProcess()
	return nil
}

func (wk *worker) close() {
	if wk.store != nil {
		_ = wk.store.Close()
	}
}

// outcome classifies an error: nil ok; unknown outcome info; else fail.
func (w *Workload) outcome(err error) history.Type {
	switch {
	case err == nil:
		return history.OK
	case w.cfg.Unknown(err) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		// A write whose call ended by timeout may still be in flight.
		return history.Info
	default:
		return history.Fail
	}
}

// Run runs every worker until ctx ends and waits for them.
func (w *Workload) Run(ctx context.Context) error {
	cfg := w.cfg
	var wg sync.WaitGroup
	errc := make(chan error, cfg.Producers+3*cfg.Partitions)
	launch := func(name string, fn func(context.Context, *worker)) {
		wk, err := w.newWorker(name)
		if err != nil {
			errc <- err
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer wk.close()
			fn(ctx, wk)
		}()
	}
	for i := 0; i < cfg.Producers; i++ {
		rng := rand.New(rand.NewSource(cfg.Seed + int64(i)))
		home := homePartitions(i, cfg.Producers, cfg.Partitions)
		launch(fmt.Sprintf("producer-%d", i), func(ctx context.Context, wk *worker) { w.produce(ctx, wk, rng, home) })
	}
	for p := 0; p < cfg.Partitions; p++ {
		part := int32(p)
		launch(fmt.Sprintf("poller-%d", p), func(ctx context.Context, wk *worker) { w.follow(ctx, wk, part) })
		if !cfg.NoReplicaPolls {
			launch(fmt.Sprintf("replica-poller-%d", p), func(ctx context.Context, wk *worker) { w.followReplicas(ctx, wk, part) })
		}
		if !cfg.NoGroup {
			launch(fmt.Sprintf("group-%d", p), func(ctx context.Context, wk *worker) { w.groupMember(ctx, wk, part) })
		}
	}
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (w *Workload) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, w.cfg.OpTimeout)
}

// pause sleeps d unless ctx ends first.
func pause(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// homePartitions are the partitions producer i writes to. Producers are
// spread over the partitions so that an unavailable partition blocks only
// its own producers (a producer waits for each send), which keeps the
// unavailability and recovery figures of the other partitions true.
func homePartitions(i, producers, partitions int) []int32 {
	if producers >= partitions {
		return []int32{int32(i % partitions)}
	}
	var out []int32
	for p := i; p < partitions; p += producers {
		out = append(out, int32(p))
	}
	return out
}

// produce sends unique values at the producer's share of the rate, one
// record per call so each acknowledgement names its offset.
func (w *Workload) produce(ctx context.Context, wk *worker, rng *rand.Rand, home []int32) {
	cfg := w.cfg
	every := time.Duration(float64(time.Second) * float64(cfg.Producers) / cfg.Rate)
	next := time.Now().Add(time.Duration(rng.Int63n(int64(every) + 1)))
	for ctx.Err() == nil {
		if !pause(ctx, time.Until(next)) {
			return
		}
		next = next.Add(every)
		if now := time.Now(); next.Before(now) {
			next = now // behind schedule: no burst to catch up
		}
		n := w.values.Add(1)
		part := home[rng.Intn(len(home))]
		key := fmt.Sprintf("k%d", n%16)
		value := fmt.Sprintf("%d", n)
		var op history.Op
		w.op(func() {
			octx, cancel := w.opCtx(ctx)
			inv := w.rec.Now()
			off, err := wk.store.Produce(octx, cfg.Topic, part, key, value)
			cancel()
			op = history.Op{Process: wk.proc, F: history.FSend, Type: w.outcome(err), Invoke: inv, Complete: w.rec.Now(),
				Topic: cfg.Topic, Partition: part, Key: key, Value: value, Error: errText(err)}
			if err == nil {
				op.Offset = off
			}
			w.rec.Add(op)
		})
		if op.Type == history.Info {
			if err := wk.renew(); err != nil {
				w.logger.Error("workload: producer stops", "worker", wk.name, "err", err)
				return
			}
		}
	}
}

// poll reads once from offset and records it. Reads have no effect, so a
// failed read is a fail whatever the error.
func (w *Workload) poll(ctx context.Context, wk *worker, part int32, offset int64, linearizable bool) (op history.Op, ok bool) {
	w.op(func() { op, ok = w.poll1(ctx, wk, part, offset, linearizable) })
	return op, ok
}

func (w *Workload) poll1(ctx context.Context, wk *worker, part int32, offset int64, linearizable bool) (history.Op, bool) {
	cfg := w.cfg
	octx, cancel := context.WithTimeout(ctx, cfg.OpTimeout+cfg.PollWait)
	inv := w.rec.Now()
	res, err := wk.store.Fetch(octx, FetchRequest{Topic: cfg.Topic, Partition: part, Offset: offset,
		MaxRecords: cfg.MaxPollRecords, MaxWait: cfg.PollWait, Linearizable: linearizable})
	cancel()
	op := history.Op{Process: wk.proc, F: history.FPoll, Type: history.OK, Invoke: inv, Complete: w.rec.Now(),
		Topic: cfg.Topic, Partition: part, Offset: offset, Linearizable: linearizable}
	if err != nil {
		op.Type = history.Fail
		op.Error = err.Error()
		w.rec.Add(op)
		return op, false
	}
	// Records before the asked offset are a client detail, not news.
	for _, r := range res.Records {
		if r.Offset >= offset {
			op.Records = append(op.Records, r)
		}
	}
	op.HighWatermark = res.HighWatermark
	return w.rec.Add(op), true
}

// follow reads one partition from offset 0 onwards.
func (w *Workload) follow(ctx context.Context, wk *worker, part int32) {
	var pos int64
	for n := 1; ctx.Err() == nil; n++ {
		lin := w.cfg.LinearizableEvery > 0 && n%w.cfg.LinearizableEvery == 0
		op, ok := w.poll(ctx, wk, part, pos, lin)
		if !ok {
			pause(ctx, w.cfg.PollWait)
			continue
		}
		if len(op.Records) > 0 {
			pos = op.Records[len(op.Records)-1].Offset + 1
		} else {
			pause(ctx, w.cfg.PollWait)
		}
	}
}

// replicaRefresh is how often a replica follower asks for the partition's
// replicas again, so it follows replicas that move.
const replicaRefresh = 5 * time.Second

// followReplicas reads each replica's own committed log of one partition
// from offset 0 onwards, taking the replicas in turn. Each replica is read
// by a logical process of its own (its position is its own: replicas lag
// differently), so the per-consumer order rules hold per replica. A
// replica must never serve an uncommitted record; one that does (a leader
// cut off from its quorum keeps appending entries that a new leader
// overwrites) shows as two values at one offset, or as a polled value lost.
func (w *Workload) followReplicas(ctx context.Context, wk *worker, part int32) {
	type follower struct {
		proc int
		pos  int64
	}
	followers := map[string]*follower{}
	var replicas []string
	var refreshed time.Time
	for i := 0; ctx.Err() == nil; i++ {
		if time.Since(refreshed) > replicaRefresh || len(replicas) == 0 {
			octx, cancel := w.opCtx(ctx)
			all, err := wk.store.Replicas(octx, w.cfg.Topic)
			cancel()
			if err == nil {
				replicas, refreshed = all[part], time.Now()
			}
			if len(replicas) == 0 {
				pause(ctx, w.cfg.PollWait)
				continue
			}
		}
		node := replicas[i%len(replicas)]
		f := followers[node]
		if f == nil {
			f = &follower{proc: w.newProcess()}
			followers[node] = f
		}
		op, ok := w.pollReplica(ctx, wk.store, f.proc, node, part, f.pos)
		if ok && len(op.Records) > 0 {
			f.pos = op.Records[len(op.Records)-1].Offset + 1
		}
		if !ok || len(op.Records) == 0 {
			pause(ctx, w.cfg.PollWait/time.Duration(len(replicas)))
		}
	}
}

// pollReplica reads node's committed log of part once from offset and
// records it as a poll of process proc.
func (w *Workload) pollReplica(ctx context.Context, s Store, proc int, node string, part int32, offset int64) (op history.Op, ok bool) {
	w.op(func() { op, ok = w.pollReplica1(ctx, s, proc, node, part, offset) })
	return op, ok
}

func (w *Workload) pollReplica1(ctx context.Context, s Store, proc int, node string, part int32, offset int64) (history.Op, bool) {
	cfg := w.cfg
	octx, cancel := context.WithTimeout(ctx, cfg.OpTimeout+cfg.PollWait)
	inv := w.rec.Now()
	res, err := s.FetchFromNode(octx, node, FetchRequest{Topic: cfg.Topic, Partition: part, Offset: offset,
		MaxRecords: cfg.MaxPollRecords, MaxWait: cfg.PollWait})
	cancel()
	op := history.Op{Process: proc, F: history.FPoll, Type: history.OK, Invoke: inv, Complete: w.rec.Now(),
		Topic: cfg.Topic, Partition: part, Offset: offset, Node: node}
	if err != nil {
		op.Type = history.Fail
		op.Error = err.Error()
		w.rec.Add(op)
		return op, false
	}
	for _, r := range res.Records {
		if r.Offset >= offset {
			op.Records = append(op.Records, r)
		}
	}
	op.HighWatermark = res.HighWatermark
	return w.rec.Add(op), true
}

// groupMember consumes a partition for the group: it starts from the
// committed offset, commits after every poll that read something, and reads
// the committed offset back now and then. After a commit of unknown outcome
// it becomes a new process and starts over from the committed offset.
func (w *Workload) groupMember(ctx context.Context, wk *worker, part int32) {
	cfg := w.cfg
	fetchOffset1 := func() (int64, bool) {
		octx, cancel := w.opCtx(ctx)
		inv := w.rec.Now()
		off, err := wk.store.FetchOffset(octx, cfg.Group, cfg.Topic, part)
		cancel()
		op := history.Op{Process: wk.proc, F: history.FFetchOffset, Type: history.OK, Invoke: inv, Complete: w.rec.Now(),
			Topic: cfg.Topic, Partition: part, Group: cfg.Group, Offset: off}
		if err != nil {
			op.Type, op.Error, op.Offset = history.Fail, err.Error(), 0
		}
		w.rec.Add(op)
		return off, err == nil
	}
	fetchOffset := func() (off int64, ok bool) {
		w.op(func() { off, ok = fetchOffset1() })
		return off, ok
	}
	for ctx.Err() == nil {
		// (Re)join: position at the committed offset.
		start, ok := fetchOffset()
		if !ok {
			pause(ctx, cfg.PollWait)
			continue
		}
		pos := max(start, 0)
		for n := 1; ctx.Err() == nil; n++ {
			op, ok := w.poll(ctx, wk, part, pos, false)
			if !ok || len(op.Records) == 0 {
				pause(ctx, cfg.PollWait)
				continue
			}
			pos = op.Records[len(op.Records)-1].Offset + 1
			var typ history.Type
			w.op(func() {
				octx, cancel := w.opCtx(ctx)
				inv := w.rec.Now()
				err := wk.store.CommitOffset(octx, cfg.Group, cfg.Topic, part, pos)
				cancel()
				typ = w.outcome(err)
				w.rec.Add(history.Op{Process: wk.proc, F: history.FCommit, Type: typ, Invoke: inv, Complete: w.rec.Now(),
					Topic: cfg.Topic, Partition: part, Group: cfg.Group, Offset: pos, Error: errText(err)})
			})
			if typ == history.Info {
				if err := wk.renew(); err != nil {
					w.logger.Error("workload: group member stops", "worker", wk.name, "err", err)
					return
				}
				break
			}
			if n%3 == 0 {
				fetchOffset()
			}
			pause(ctx, cfg.PollWait)
		}
	}
}

// FinalReads reads every partition whole: once from its leader with
// linearizable fetches, then from each replica's committed log (waiting up
// to catchUp for lagging replicas to reach the leader's high watermark),
// and fetches each group offset once more. Each read is retried until it
// succeeds or ctx ends; the outcome is recorded either way.
func (w *Workload) FinalReads(ctx context.Context, catchUp time.Duration) error {
	return w.SegmentReads(ctx, catchUp, nil)
}

// SegmentReads is FinalReads from offset from(partition) on (from 0 when
// from is nil): a soak ends each window with the reads of what the window
// added, so no read covers the whole log.
func (w *Workload) SegmentReads(ctx context.Context, catchUp time.Duration, from func(partition int32) int64) error {
	cfg := w.cfg
	start := func(p int32) int64 {
		if from == nil {
			return 0
		}
		return from(p)
	}
	wk, err := w.newWorker("final")
	if err != nil {
		return err
	}
	defer wk.close()
	var replicas map[int32][]string
	for replicas == nil {
		octx, cancel := w.opCtx(ctx)
		replicas, err = wk.store.Replicas(octx, cfg.Topic)
		cancel()
		if err != nil && cfg.Gone != nil && cfg.Gone(err) {
			w.logger.Error("final reads: the store says the topic does not exist", "topic", cfg.Topic, "err", err)
			for p := 0; p < cfg.Partitions; p++ {
				now := w.rec.Now()
				w.rec.Add(history.Op{Process: wk.proc, F: history.FFinalRead, Type: history.OK, Invoke: now, Complete: now,
					Topic: cfg.Topic, Partition: int32(p), Linearizable: true, Error: "topic does not exist: " + err.Error()})
			}
			return nil
		}
		if err != nil {
			replicas = nil
			if !pause(ctx, 500*time.Millisecond) {
				return fmt.Errorf("final reads: replicas of %s: %w", cfg.Topic, err)
			}
		}
	}
	var errs []error
	for p := 0; p < cfg.Partitions; p++ {
		part := int32(p)
		lo := start(part)
		leaderOp := w.finalRead(ctx, wk, part, lo)
		if leaderOp.Type != history.OK {
			errs = append(errs, fmt.Errorf("final read of %s/%d failed: %s", cfg.Topic, part, leaderOp.Error))
		}
		for _, node := range replicas[part] {
			deadline := time.Now().Add(catchUp)
			for {
				op := w.readAll(ctx, wk, part, node, lo)
				if (op.Type == history.OK && (leaderOp.Type != history.OK || lo+int64(len(op.Records)) >= leaderOp.HighWatermark)) ||
					time.Now().After(deadline) || ctx.Err() != nil {
					w.rec.Add(op)
					break
				}
				pause(ctx, 500*time.Millisecond)
			}
		}
		if !cfg.NoGroup {
			octx, cancel := w.opCtx(ctx)
			inv := w.rec.Now()
			off, err := wk.store.FetchOffset(octx, cfg.Group, cfg.Topic, part)
			cancel()
			op := history.Op{Process: wk.proc, F: history.FFetchOffset, Type: history.OK, Invoke: inv, Complete: w.rec.Now(),
				Topic: cfg.Topic, Partition: part, Group: cfg.Group, Offset: off}
			if err != nil {
				op.Type, op.Error, op.Offset = history.Fail, err.Error(), 0
			}
			w.rec.Add(op)
		}
	}
	return errors.Join(errs...)
}

// finalRead performs (and records) a whole-partition read from the leader.
func (w *Workload) finalRead(ctx context.Context, wk *worker, part int32, from int64) history.Op {
	for {
		op := w.readAll(ctx, wk, part, "", from)
		if op.Type == history.OK || ctx.Err() != nil {
			return w.rec.Add(op)
		}
		w.logger.Debug("final read failed, retrying", "partition", part, "err", op.Error)
		pause(ctx, 500*time.Millisecond)
	}
}

// readAll reads [from, hw) page by page, hw being the high watermark of
// the first page: data below it is committed and immutable, so the pages
// together are one read as of the first page.
func (w *Workload) readAll(ctx context.Context, wk *worker, part int32, node string, from int64) history.Op {
	cfg := w.cfg
	op := history.Op{Process: wk.proc, F: history.FFinalRead, Type: history.OK, Invoke: w.rec.Now(),
		Topic: cfg.Topic, Partition: part, Node: node, Linearizable: node == "", Offset: from}
	hw := int64(-1)
	pos := from
	for hw < 0 || pos < hw {
		req := FetchRequest{Topic: cfg.Topic, Partition: part, Offset: pos, MaxRecords: 10000, Linearizable: node == ""}
		octx, cancel := w.opCtx(ctx)
		var res FetchResult
		var err error
		if node == "" {
			res, err = wk.store.Fetch(octx, req)
		} else {
			res, err = wk.store.FetchFromNode(octx, node, req)
		}
		cancel()
		if err != nil {
			op.Type, op.Error, op.Records = history.Fail, err.Error(), nil
			op.Complete = w.rec.Now()
			return op
		}
		if hw < 0 {
			hw = res.HighWatermark
		}
		progressed := false
		for _, r := range res.Records {
			if r.Offset < pos {
				continue
			}
			if r.Offset >= hw {
				break
			}
			op.Records = append(op.Records, r)
			pos = r.Offset + 1
			progressed = true
		}
		if !progressed && pos < hw {
			// The log has a hole below its high watermark: record what was
			// read; the checker judges it.
			op.Error = fmt.Sprintf("no records at offset %d below high watermark %d", pos, hw)
			break
		}
	}
	op.HighWatermark = max(hw, 0)
	op.Complete = w.rec.Now()
	return op
}
