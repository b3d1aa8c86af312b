// Package agent runs a Flume-style agent: it builds the components of a
// validated configuration (dropping, with a warning, the ones whose build
// fails), connects sources to their channels through a channel processor
// (interceptors, then the selector, then one transaction per channel),
// drives every sink group with a runner that backs off as Flume's
// SinkRunner does, and stops, starts and reloads the whole.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sluice-io/sluice/agent/config"
	"github.com/sluice-io/sluice/agent/flow"
	"github.com/sluice-io/sluice/agent/processor"
	"github.com/sluice-io/sluice/agent/selector"
)

// Registry holds the builders of every component type, keyed by type
// alias and Flume class name.
type Registry struct {
	Sources      map[string]flow.SourceBuilder
	Interceptors map[string]flow.InterceptorBuilder
	Channels     map[string]flow.ChannelBuilder
	Sinks        map[string]flow.SinkBuilder
}

// lookup finds typ exactly, then case-insensitively (Flume aliases are
// case-insensitive; class names are matched the same way for simplicity).
func lookup[T any](m map[string]T, typ string) (T, bool) {
	typ = strings.TrimSpace(typ)
	if v, ok := m[typ]; ok {
		return v, true
	}
	if v, ok := m[strings.ToLower(typ)]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, typ) {
			return v, true
		}
	}
	var zero T
	return zero, false
}

// Catalog is the validator's view of the registry.
func (r Registry) Catalog() config.Catalog {
	has := func(f func(string) bool) func(string) bool { return f }
	return config.Catalog{
		Source:      has(func(t string) bool { _, ok := lookup(r.Sources, t); return ok }),
		Channel:     has(func(t string) bool { _, ok := lookup(r.Channels, t); return ok }),
		Sink:        has(func(t string) bool { _, ok := lookup(r.Sinks, t); return ok }),
		Interceptor: has(func(t string) bool { _, ok := lookup(r.Interceptors, t); return ok }),
		Processor:   processor.Known,
		Selector:    selector.Known,
		TxCapacity:  TxCapacity,
	}
}

// TxCapacity is a channel's transactionCapacity as its builder will read
// it (Flume's defaults: memory 100, file 10,000); 0 for channels without
// a limit.
func TxCapacity(typ string, p *flow.Props) int64 {
	switch strings.ToLower(strings.TrimSpace(typ)) {
	case "memory", "org.apache.flume.channel.memorychannel":
		return p.Int("transactionCapacity", 100)
	case "file", "org.apache.flume.channel.file.filechannel":
		return p.Int("transactionCapacity", 10_000)
	}
	return 0
}

// Options tunes the runtime. Zero values take Flume's.
type Options struct {
	// BackoffStep and MaxBackoff: an idle sink runner sleeps
	// min(consecutive × step, max) (1 s, 5 s), or until its channel gets
	// events.
	BackoffStep, MaxBackoff time.Duration
	// ErrorBackoff is the sleep after a failed Process (5 s).
	ErrorBackoff time.Duration
	// ProcessorClock drives failover and load_balance penalties (tests).
	ProcessorClock processor.Clock
	// VolatileDrain bounds how long a stop lets sinks empty the channels
	// that do not survive the process (memory) after the sources stopped
	// (10 s; negative: no draining).
	VolatileDrain time.Duration
}

func (o *Options) setDefaults() {
	if o.BackoffStep <= 0 {
		o.BackoffStep = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.ErrorBackoff <= 0 {
		o.ErrorBackoff = 5 * time.Second
	}
	if o.VolatileDrain == 0 {
		o.VolatileDrain = 10 * time.Second
	}
}

// Durable is implemented by channels whose events survive the process
// (file, sluice); a stop does not wait for sinks to empty them.
type Durable interface {
	Durable() bool
}

func volatile(c flow.Channel) bool {
	d, ok := c.(Durable)
	return !ok || !d.Durable()
}

// drainVolatile waits, after the sources stopped, until the sinks emptied
// the volatile channels that are not handed to a successor, so a clean
// stop of an agent with a memory channel loses nothing it accepted.
func (a *Agent) drainVolatile(ctx context.Context, keep map[flow.Channel]bool) {
	if a.opt.VolatileDrain < 0 || len(a.runners) == 0 {
		return
	}
	var chans []flow.Channel
	for _, c := range a.channels {
		if !keep[c.ch] && volatile(c.ch) {
			chans = append(chans, c.ch)
		}
	}
	if len(chans) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, a.opt.VolatileDrain)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		left := int64(0)
		for _, c := range chans {
			if p, ok := c.(interface{ Pending() int64 }); ok {
				left += p.Pending() // queued and taken but not committed
			} else {
				left += c.Counters().Get(flow.ChannelSize)
			}
		}
		if left == 0 {
			return
		}
		select {
		case <-ctx.Done():
			a.log.Warn("stopping with events left in volatile channels", "events", left)
			return
		case <-t.C:
		}
	}
}

// Agent is one built agent.
type Agent struct {
	name string
	log  *slog.Logger
	opt  Options

	channels []*channelEntry
	sources  []flow.Source
	runners  []*runner
	sinks    []flow.Sink
	started  []*channelEntry // channels this agent started (not reused)
	mu       sync.Mutex
	running  bool
}

type channelEntry struct {
	name, fingerprint string
	ch                flow.Channel
	reused            bool
}

// Build builds cfg's components. A component whose build fails is dropped
// with a warning, as are the components that depend on it; the returned
// problems list them. prev, when set, is the agent being replaced: its
// channels whose type and properties are unchanged are taken over with
// their events (Flume's reload does the same).
func Build(cfg *config.Agent, reg Registry, d flow.Deps, opt Options, prev *Agent) (*Agent, []error, error) {
	opt.setDefaults()
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	d.Agent = cfg.Name
	a := &Agent{name: cfg.Name, log: d.Logger.With("agent", cfg.Name), opt: opt}
	var probs []error
	warn := func(err error) {
		probs = append(probs, err)
		a.log.Warn("component dropped", "err", err)
	}
	old := map[string]*channelEntry{}
	if prev != nil {
		for _, ce := range prev.channels {
			old[ce.name] = ce
		}
	}
	chans := map[string]flow.Channel{}
	for _, cc := range cfg.Channels {
		fp := fingerprint(cc.Props)
		if ce, ok := old[cc.Name]; ok && ce.fingerprint == fp {
			a.channels = append(a.channels, &channelEntry{name: cc.Name, fingerprint: fp, ch: ce.ch, reused: true})
			chans[cc.Name] = ce.ch
			continue
		}
		b, _ := lookup(reg.Channels, cc.Type)
		ch, err := b(cc.Name, cc.Props, d)
		if err != nil {
			warn(fmt.Errorf("channel %s: %w", cc.Name, err))
			continue
		}
		a.channels = append(a.channels, &channelEntry{name: cc.Name, fingerprint: fp, ch: ch})
		chans[cc.Name] = ch
	}
	if len(chans) == 0 {
		return nil, probs, fmt.Errorf("agent %s: %w: no channel could be built", cfg.Name, config.ErrNothingValid)
	}
	for _, sc := range cfg.Sources {
		src, err := a.buildSource(sc, reg, chans, d)
		if err != nil {
			warn(fmt.Errorf("source %s: %w", sc.Name, err))
			continue
		}
		a.sources = append(a.sources, src)
	}
	sinks := map[string]flow.Sink{}
	sinkChan := map[string]flow.Channel{}
	for _, kc := range cfg.Sinks {
		ch, ok := chans[kc.Channel]
		if !ok {
			warn(fmt.Errorf("sink %s: %s.sinks.%s.channel: channel %q could not be built", kc.Name, cfg.Name, kc.Name, kc.Channel))
			continue
		}
		b, _ := lookup(reg.Sinks, kc.Type)
		s, err := b(kc.Name, kc.Props, ch, d)
		if err != nil {
			warn(fmt.Errorf("sink %s: %w", kc.Name, err))
			continue
		}
		sinks[kc.Name], sinkChan[kc.Name] = s, ch
		a.sinks = append(a.sinks, s)
	}
	grouped := map[string]bool{}
	for _, gc := range cfg.SinkGroups {
		var members []flow.Sink
		var mchans []flow.Channel
		for _, n := range gc.Sinks {
			if s, ok := sinks[n]; ok {
				members = append(members, s)
				mchans = append(mchans, sinkChan[n])
			}
		}
		if len(members) == 0 {
			warn(fmt.Errorf("sink group %s: none of its sinks could be built", gc.Name))
			continue
		}
		p, err := processor.New(gc.Processor, members, opt.ProcessorClock)
		if err != nil {
			warn(fmt.Errorf("sink group %s: %w", gc.Name, err))
			continue
		}
		for _, s := range members {
			grouped[s.Name()] = true
		}
		a.runners = append(a.runners, a.newRunner("group "+gc.Name, p, mchans))
	}
	for _, s := range a.sinks {
		if grouped[s.Name()] {
			continue
		}
		p, _ := processor.New(flow.NewProps(cfg.Name+".sinks."+s.Name(), nil), []flow.Sink{s}, nil)
		a.runners = append(a.runners, a.newRunner("sink "+s.Name(), p, []flow.Channel{sinkChan[s.Name()]}))
	}
	if len(a.sources) == 0 && len(a.runners) == 0 {
		return nil, probs, fmt.Errorf("agent %s: %w: no source or sink could be built", cfg.Name, config.ErrNothingValid)
	}
	return a, probs, nil
}

func fingerprint(p *flow.Props) string {
	var b strings.Builder
	for _, k := range p.Keys() {
		b.WriteString(k + "=" + p.Values[k] + "\n")
	}
	return b.String()
}

func (a *Agent) buildSource(sc *config.Source, reg Registry, chans map[string]flow.Channel, d flow.Deps) (flow.Source, error) {
	var cs []flow.Channel
	for _, n := range sc.Channels {
		ch, ok := chans[n]
		if !ok {
			return nil, fmt.Errorf("%s.channels: channel %q could not be built", sc.Props.Prefix, n)
		}
		cs = append(cs, ch)
	}
	sel, err := selector.New(sc.Selector, cs)
	if err != nil {
		return nil, err
	}
	cp := &ChannelProcessor{Selector: sel, Logger: a.log.With("source", sc.Name)}
	for _, ic := range sc.Interceptors {
		b, _ := lookup(reg.Interceptors, ic.Type)
		in, err := b(ic.Props, d)
		if err != nil {
			return nil, fmt.Errorf("interceptor %s: %w", ic.Name, err)
		}
		cp.Interceptors = append(cp.Interceptors, in)
	}
	b, _ := lookup(reg.Sources, sc.Type)
	return b(sc.Name, sc.Props, cp, d)
}

// Name is the agent's name.
func (a *Agent) Name() string { return a.name }

// Counters returns every component's counters: sources, channels, sinks.
func (a *Agent) Counters() []*flow.Counters {
	var out []*flow.Counters
	for _, s := range a.sources {
		out = append(out, s.Counters())
	}
	for _, c := range a.channels {
		out = append(out, c.ch.Counters())
	}
	for _, s := range a.sinks {
		out = append(out, s.Counters())
	}
	return out
}

// Channel returns the named channel (tests, reload).
func (a *Agent) Channel(name string) flow.Channel {
	for _, c := range a.channels {
		if c.name == name {
			return c.ch
		}
	}
	return nil
}

// Start starts channels, then sink runners, then sources, so nothing is
// accepted before it can be stored.
func (a *Agent) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.channels {
		if c.reused {
			continue
		}
		if err := c.ch.Start(ctx); err != nil {
			a.stopLocked(ctx, nil)
			return fmt.Errorf("agent %s: start channel %s: %w", a.name, c.name, err)
		}
		a.started = append(a.started, c)
	}
	for _, r := range a.runners {
		if err := r.start(ctx); err != nil {
			a.stopLocked(ctx, nil)
			return fmt.Errorf("agent %s: start %s: %w", a.name, r.name, err)
		}
	}
	for i, s := range a.sources {
		if err := s.Start(ctx); err != nil {
			// A source that cannot start (port in use) is dropped, as
			// Flume's lifecycle supervisor keeps the rest running.
			a.log.Error("source failed to start; dropped", "source", s.Name(), "err", err)
			a.sources[i] = nil
		}
	}
	a.sources = compact(a.sources)
	a.running = true
	a.log.Info("agent started", "sources", len(a.sources), "channels", len(a.channels), "sinks", len(a.sinks))
	return nil
}

func compact(s []flow.Source) []flow.Source {
	out := s[:0]
	for _, x := range s {
		if x != nil {
			out = append(out, x)
		}
	}
	return out
}

// Stop stops sources first (they finish what they were handing to the
// channels), then the sink runners (each finishes its batch), then the
// channels, except those in keep (taken over by a reload).
func (a *Agent) Stop(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stopLocked(ctx, nil)
}

func (a *Agent) stopLocked(ctx context.Context, keep map[flow.Channel]bool) error {
	var errs []error
	for _, s := range a.sources {
		if err := s.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop source %s: %w", s.Name(), err))
		}
	}
	if a.running {
		a.drainVolatile(ctx, keep)
	}
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, r := range a.runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.stop(ctx); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, c := range a.channels {
		if keep[c.ch] {
			continue
		}
		// A channel this agent took over from its predecessor is stopped
		// here too: it is this agent's now.
		if err := c.ch.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop channel %s: %w", c.name, err))
		}
	}
	if a.running {
		a.log.Info("agent stopped")
	}
	a.running = false
	return errors.Join(errs...)
}

// Replace stops a (keeping the channels next takes over) and starts
// next: a reload that loses no event in flight, since sources stop only
// after their channel transactions committed and sinks only after their
// batch was acknowledged or rolled back.
func (a *Agent) Replace(ctx context.Context, next *Agent) error {
	keep := map[flow.Channel]bool{}
	for _, c := range next.channels {
		if c.reused {
			keep[c.ch] = true
		}
	}
	a.mu.Lock()
	err := a.stopLocked(ctx, keep)
	a.mu.Unlock()
	if err != nil {
		a.log.Warn("stopping the previous configuration", "err", err)
	}
	return next.Start(ctx)
}

// ChannelProcessor is the flow.Processor a source writes through: Flume's
// ChannelProcessor.processEventBatch.
type ChannelProcessor struct {
	Interceptors []flow.Interceptor
	Selector     flow.Selector
	Logger       *slog.Logger
}

// Process runs the interceptors, then puts the events into each required
// channel in a transaction of its own, then into each optional channel
// (whose failures are only logged). A failed required channel rolls its
// own transaction back and fails the call; channels already committed
// stay committed (fan-out is not atomic, as in Flume).
func (cp *ChannelProcessor) Process(ctx context.Context, events []flow.Event) error {
	for _, in := range cp.Interceptors {
		events = in.Intercept(events)
	}
	if len(events) == 0 {
		return nil
	}
	var reqOrder, optOrder []flow.Channel
	req := map[flow.Channel][]flow.Event{}
	opt := map[flow.Channel][]flow.Event{}
	for _, ev := range events {
		r, o := cp.Selector.Select(ev)
		for _, c := range r {
			if _, ok := req[c]; !ok {
				reqOrder = append(reqOrder, c)
			}
			req[c] = append(req[c], ev)
		}
		for _, c := range o {
			if _, ok := opt[c]; !ok {
				optOrder = append(optOrder, c)
			}
			opt[c] = append(opt[c], ev)
		}
	}
	for _, c := range reqOrder {
		if err := putAll(c, req[c]); err != nil {
			return err
		}
	}
	for _, c := range optOrder {
		if err := putAll(c, opt[c]); err != nil && cp.Logger != nil {
			cp.Logger.Warn("optional channel refused events", "channel", c.Name(), "err", err)
		}
	}
	return nil
}

func putAll(c flow.Channel, evs []flow.Event) error {
	tx, err := c.Begin()
	if err != nil {
		return fmt.Errorf("channel %s: %w", c.Name(), err)
	}
	for _, ev := range evs {
		if err := tx.Put(ev); err != nil {
			tx.Rollback()
			return fmt.Errorf("unable to put batch on required channel %s: %w", c.Name(), err)
		}
	}
	if err := tx.Commit(); err != nil {
		tx.Rollback()
		return fmt.Errorf("unable to put batch on required channel %s: %w", c.Name(), err)
	}
	return nil
}

// runner is Flume's SinkRunner: it calls the processor in a loop, sleeps
// on BACKOFF (min(consecutive × step, max), cut short when a channel gets
// events) and after errors.
type runner struct {
	name  string
	proc  flow.SinkProcessor
	chans []flow.Channel
	log   *slog.Logger
	opt   Options

	stopCh chan struct{}
	done   chan struct{}
	// procCtx ends only when a stop gives up waiting for the batch.
	procCtx    context.Context
	procCancel context.CancelFunc
}

func (a *Agent) newRunner(name string, p flow.SinkProcessor, chans []flow.Channel) *runner {
	return &runner{name: name, proc: p, chans: chans, log: a.log.With("runner", name), opt: a.opt}
}

func (r *runner) start(ctx context.Context) error {
	if err := r.proc.Start(ctx); err != nil {
		return err
	}
	r.stopCh, r.done = make(chan struct{}), make(chan struct{})
	r.procCtx, r.procCancel = context.WithCancel(context.Background())
	go r.loop()
	return nil
}

func (r *runner) loop() {
	defer close(r.done)
	consecutive := 0
	for {
		select {
		case <-r.stopCh:
			return
		default:
		}
		status, err := r.proc.Process(r.procCtx)
		var wait time.Duration
		switch {
		case err != nil:
			r.log.Warn("sink delivery failed; backing off", "err", err, "backoff", r.opt.ErrorBackoff)
			wait, consecutive = r.opt.ErrorBackoff, 0
		case status == flow.Backoff:
			consecutive++
			wait = min(time.Duration(consecutive)*r.opt.BackoffStep, r.opt.MaxBackoff)
		default:
			consecutive = 0
			continue
		}
		r.sleep(wait, err == nil)
	}
}

// sleep waits d, or less when idle and a channel is notified.
func (r *runner) sleep(d time.Duration, wakeOnEvents bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	wake := make(chan struct{}, 1)
	quit := make(chan struct{})
	defer close(quit)
	if wakeOnEvents {
		for _, c := range r.chans {
			if n, ok := c.(flow.Notifier); ok {
				ch := n.Notify()
				go func() {
					select {
					case <-ch:
						select {
						case wake <- struct{}{}:
						default:
						}
					case <-quit:
					}
				}()
			}
		}
	}
	select {
	case <-t.C:
	case <-wake:
	case <-r.stopCh:
	}
}

func (r *runner) stop(ctx context.Context) error {
	if r.stopCh == nil {
		return nil
	}
	close(r.stopCh)
	select {
	case <-r.done:
	case <-ctx.Done():
		r.procCancel() // give up the batch: it rolls back and stays in the channel
		<-r.done
	}
	r.procCancel()
	r.stopCh = nil
	return r.proc.Stop(ctx)
}

// SortedCounters orders counters by their Flume key, for stable output.
func SortedCounters(cs []*flow.Counters) []*flow.Counters {
	out := append([]*flow.Counters(nil), cs...)
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}
