// Package client is the Go client of Sluice: metadata and leader discovery,
// idempotent produce (single batches and a batching Producer), fetch, a
// simple partition Consumer and consumer-group offsets.
//
// Every call that must reach a partition leader follows leadership changes
// on its own: it uses the leader hint carried by a NotLeader reply, refreshes
// metadata on unknown leaders and unreachable nodes, and retries with
// backoff until its context ends. Give contexts a deadline: without one a
// call against an unavailable cluster keeps retrying.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/sluice-io/sluice/transport"
)

// DefaultServer is the seed used when Config.Servers is empty.
const DefaultServer = "127.0.0.1:7071"

// Config configures a Client. The zero value talks to DefaultServer.
type Config struct {
	// Servers are seed RPC addresses; any one reachable node is enough.
	Servers []string
	// LocalHost, when set, is the source IP of every connection (the chaos
	// harness gives each client its own 127.0.0.x).
	LocalHost string
	// DialTimeout bounds connection set-up; default 3s.
	DialTimeout time.Duration
	// RequestTimeout bounds one attempt of one RPC (long-poll fetches get
	// their wait on top); default 10s. Retries have their own attempts.
	RequestTimeout time.Duration
	// MaxFrameBytes caps one RPC frame; 0 keeps the transport's default.
	MaxFrameBytes int
	// TLS, when set, connects to the nodes over TLS 1.3: RootCAs holds the
	// cluster's CA and Certificates the client's own, which nodes started
	// with --tls-* require. transport.ClientTLS builds one from PEM files.
	TLS *tls.Config
	// UnknownTopicWait is how long partition calls keep retrying a topic or
	// partition the cluster does not know yet (metadata lags briefly behind
	// a create on some nodes); default 2s, negative fails at once.
	UnknownTopicWait time.Duration
	// Logger receives debug logs of retries; default slog.Default().
	Logger *slog.Logger
}

func (cfg *Config) setDefaults() {
	if len(cfg.Servers) == 0 {
		cfg.Servers = []string{DefaultServer}
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 3 * time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.UnknownTopicWait == 0 {
		cfg.UnknownTopicWait = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
}

// Header is one record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is one record. Topic, Partition and Offset are set on records read
// back and on produce results; a nil Key is a null key (no key).
type Record struct {
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp time.Time

	Topic     string
	Partition int32
	Offset    int64
}

type partKey struct {
	topic string
	part  int32
}

// Client talks to a Sluice cluster. It is safe for concurrent use.
type Client struct {
	cfg  Config
	log  *slog.Logger
	pool *transport.Pool

	// base ends on Close; background metadata refreshes run under it.
	base   context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	brokers  map[string]transport.Broker // by node id
	topics   map[string]transport.TopicMeta
	hints    map[partKey]string   // leader RPC address learnt from NotLeader
	lastGood string               // last address that answered an any-node call
	bad      map[string]time.Time // address -> until when it is tried last
	rotation int                  // spreads metadata refreshes over nodes
	flights  map[string]*flight   // metadata refreshes in progress
	streams  map[partKey][]*stream
}

// New returns a client for cfg. It does no I/O: connections are made on
// first use.
func New(cfg Config) (*Client, error) {
	cfg.setDefaults()
	for _, s := range cfg.Servers {
		if s == "" {
			return nil, errors.New("client: empty server address")
		}
	}
	base, cancel := context.WithCancel(context.Background())
	c := &Client{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "client"),
		base:    base,
		cancel:  cancel,
		brokers: map[string]transport.Broker{},
		topics:  map[string]transport.TopicMeta{},
		hints:   map[partKey]string{},
		bad:     map[string]time.Time{},
		flights: map[string]*flight{},
		streams: map[partKey][]*stream{},
	}
	c.pool = transport.NewPool(transport.DialOptions{
		LocalHost:     cfg.LocalHost,
		MaxFrameBytes: cfg.MaxFrameBytes,
		Timeout:       cfg.DialTimeout,
		TLS:           cfg.TLS,
	})
	return c, nil
}

// Close closes every connection. Calls in progress fail.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.bg.Wait()
	c.pool.Close()
	return nil
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// attempt makes one RPC to addr, bounded by RequestTimeout plus extra.
func (c *Client) attempt(ctx context.Context, addr string, method transport.Method, req, resp any, extra time.Duration) error {
	if c.isClosed() {
		return ErrClosed
	}
	actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout+extra)
	defer cancel()
	err := c.pool.Call(actx, addr, method, req, resp)
	if ctx.Err() == nil || err == nil {
		// The caller giving up says nothing about the node.
		c.noteAddr(addr, err)
	}
	if err != nil {
		return fmt.Errorf("%s to %s: %w", method, addr, err)
	}
	return nil
}

// giveUp builds the error of a retry loop whose context ended. The last
// attempt's error is kept in the message only, so IsRetriable does not
// mistake the end of the caller's context for a retriable failure.
func giveUp(ctx context.Context, what string, lastErr error, maybe bool) error {
	switch {
	case maybe && lastErr != nil:
		return fmt.Errorf("%s: %w: %w (last error: %v)", what, ErrUnknownOutcome, ctx.Err(), lastErr)
	case maybe:
		return fmt.Errorf("%s: %w: %w", what, ErrUnknownOutcome, ctx.Err())
	case lastErr != nil:
		return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), lastErr)
	}
	return fmt.Errorf("%s: %w", what, ctx.Err())
}

// backoff is a capped exponential backoff with jitter.
type backoff struct {
	next time.Duration
}

const (
	backoffMin = 10 * time.Millisecond
	backoffMax = 500 * time.Millisecond
)

// wait sleeps for the next backoff step or until ctx ends.
func (b *backoff) wait(ctx context.Context) error {
	if b.next == 0 {
		b.next = backoffMin
	}
	d := b.next/2 + rand.N(b.next/2+1)
	b.next = min(2*b.next, backoffMax)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// badFor is how long an unreachable address is tried after the others.
const badFor = 2 * time.Second

// candidates lists the addresses to try for an any-node call: reachable
// ones first, starting with the last one that worked (or, with rotate, with
// the next one in turn, so repeated metadata refreshes do not keep asking
// one node whose view may lag), then those that recently failed.
func (c *Client) candidates(rotate bool) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	all := make([]string, 0, len(c.cfg.Servers)+len(c.brokers))
	add := func(a string) {
		if a != "" && !slices.Contains(all, a) {
			all = append(all, a)
		}
	}
	for _, s := range c.cfg.Servers {
		add(s)
	}
	ids := make([]string, 0, len(c.brokers))
	for id := range c.brokers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		add(c.brokers[id].RPCAddr)
	}
	start := 0
	if rotate {
		start = c.rotation % len(all)
		c.rotation++
	} else if i := slices.Index(all, c.lastGood); i >= 0 {
		start = i
	}
	now := time.Now()
	good := make([]string, 0, len(all))
	var bad []string
	for i := range all {
		a := all[(start+i)%len(all)]
		if until, ok := c.bad[a]; ok && now.Before(until) {
			bad = append(bad, a)
		} else {
			good = append(good, a)
		}
	}
	return append(good, bad...)
}

// noteAddr records whether addr just answered (err == nil or a server
// error) or could not be reached.
func (c *Client) noteAddr(addr string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil || transport.CodeOf(err) != 0 {
		delete(c.bad, addr)
		return
	}
	c.bad[addr] = time.Now().Add(badFor)
	if c.lastGood == addr {
		c.lastGood = ""
	}
}

// callAny sends a request that any node can answer, trying nodes in turn
// and retrying with backoff until one gives a definite answer or ctx ends.
// maybe reports whether some attempt may have taken effect.
func (c *Client) callAny(ctx context.Context, method transport.Method, req, resp any) (maybe bool, err error) {
	return c.callAnyFrom(ctx, false, method, req, resp)
}

func (c *Client) callAnyFrom(ctx context.Context, rotate bool, method transport.Method, req, resp any) (maybe bool, err error) {
	var bo backoff
	var lastErr error
	for {
		for _, addr := range c.candidates(rotate) {
			err := c.attempt(ctx, addr, method, req, resp, 0)
			if errors.Is(err, ErrClosed) {
				return maybe, err
			}
			if err == nil {
				c.mu.Lock()
				c.lastGood = addr
				c.mu.Unlock()
				return maybe, nil
			}
			if attemptOutcome(err) == maybeApplied {
				maybe = true
			}
			if ctx.Err() != nil {
				return maybe, giveUp(ctx, method.String(), lastErr, maybe)
			}
			code := transport.CodeOf(err)
			if code != 0 && !code.Retriable() && code != transport.ErrTimeout {
				return maybe, err
			}
			lastErr = err
			c.log.Debug("retrying on another node", "method", method, "addr", addr, "err", err)
		}
		if bo.wait(ctx) != nil {
			return maybe, giveUp(ctx, method.String(), lastErr, maybe)
		}
	}
}

// flight is one metadata refresh that concurrent callers share.
type flight struct {
	done chan struct{}
	resp *transport.MetadataResponse
	err  error
}

// refresh fetches metadata for topics (all when empty), sharing an
// identical refresh already in progress, and updates the cache.
func (c *Client) refresh(ctx context.Context, topics ...string) (*transport.MetadataResponse, error) {
	key := fmt.Sprint(topics)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	f, ok := c.flights[key]
	if !ok {
		f = &flight{done: make(chan struct{})}
		c.flights[key] = f
		c.bg.Add(1)
		// The refresh runs on its own bounded context so one caller giving
		// up does not fail the others sharing it.
		go func() {
			defer c.bg.Done()
			rctx, cancel := context.WithTimeout(c.base, c.cfg.RequestTimeout)
			defer cancel()
			var resp transport.MetadataResponse
			_, err := c.callAnyFrom(rctx, true, transport.MethodMetadata, &transport.MetadataRequest{Topics: topics}, &resp)
			if err == nil {
				f.resp = &resp
				c.absorb(&resp, topics)
			} else {
				f.err = fmt.Errorf("metadata: %w", err)
			}
			c.mu.Lock()
			delete(c.flights, key)
			c.mu.Unlock()
			close(f.done)
		}()
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.resp, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// absorb updates the cache from a metadata response for the requested
// topics (all when empty).
func (c *Client) absorb(resp *transport.MetadataResponse, requested []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(resp.Brokers) > 0 {
		c.brokers = make(map[string]transport.Broker, len(resp.Brokers))
		for _, b := range resp.Brokers {
			c.brokers[b.ID] = b
		}
	}
	seen := make(map[string]bool, len(resp.Topics))
	for _, t := range resp.Topics {
		seen[t.Name] = true
		c.topics[t.Name] = t
	}
	if len(requested) == 0 {
		for name := range c.topics {
			if !seen[name] {
				delete(c.topics, name)
			}
		}
		return
	}
	for _, name := range requested {
		if !seen[name] {
			delete(c.topics, name)
		}
	}
}

// topicMeta returns the topic's metadata, from the cache unless fresh is
// set or the topic is not cached. An unknown topic is a *transport.Error
// with ErrUnknownTopic.
func (c *Client) topicMeta(ctx context.Context, topic string, fresh bool) (transport.TopicMeta, error) {
	if !fresh {
		c.mu.Lock()
		t, ok := c.topics[topic]
		c.mu.Unlock()
		if ok {
			return t, nil
		}
	}
	resp, err := c.refresh(ctx, topic)
	if err != nil {
		return transport.TopicMeta{}, err
	}
	for _, t := range resp.Topics {
		if t.Name == topic {
			return t, nil
		}
	}
	return transport.TopicMeta{}, transport.Errorf(transport.ErrUnknownTopic, "topic %q", topic)
}

func findPartition(t transport.TopicMeta, part int32) (transport.PartitionMeta, bool) {
	if part >= 0 && int(part) < len(t.Partitions) && t.Partitions[part].ID == part {
		return t.Partitions[part], true
	}
	for _, p := range t.Partitions {
		if p.ID == part {
			return p, true
		}
	}
	return transport.PartitionMeta{}, false
}

// leaderFor resolves the RPC address of a partition's leader: a hint from
// a NotLeader reply first, then cached metadata, then fresh metadata.
func (c *Client) leaderFor(ctx context.Context, topic string, part int32, fresh bool) (string, error) {
	k := partKey{topic, part}
	if !fresh {
		c.mu.Lock()
		if h := c.hints[k]; h != "" {
			c.mu.Unlock()
			return h, nil
		}
		c.mu.Unlock()
	}
	t, err := c.topicMeta(ctx, topic, fresh)
	if err != nil {
		return "", err
	}
	p, ok := findPartition(t, part)
	if !ok && !fresh {
		// The cache may predate a change of the topic.
		if t, err = c.topicMeta(ctx, topic, true); err != nil {
			return "", err
		}
		p, ok = findPartition(t, part)
	}
	if !ok {
		return "", transport.Errorf(transport.ErrUnknownPartition, "%s/%d (topic has %d partitions)", topic, part, len(t.Partitions))
	}
	if p.Leader == "" {
		return "", transport.Errorf(transport.ErrUnavailable, "%s/%d has no leader", topic, part)
	}
	c.mu.Lock()
	b, ok := c.brokers[p.Leader]
	c.mu.Unlock()
	if !ok || b.RPCAddr == "" {
		return "", transport.Errorf(transport.ErrUnavailable, "%s/%d: no address for leader %s", topic, part, p.Leader)
	}
	return b.RPCAddr, nil
}

func (c *Client) setHint(k partKey, addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if addr == "" {
		delete(c.hints, k)
	} else {
		c.hints[k] = addr
	}
}

// maxInternalErrs bounds attempts of a partition call that keep failing
// with ErrUnknown.
const maxInternalErrs = 3

// leaderCall is one request that must reach a partition's leader.
type leaderCall struct {
	topic     string
	part      int32
	method    transport.Method
	req, resp any
	extra     time.Duration // added to the attempt timeout (long polls)
}

// callLeader sends lc to the partition leader, following NotLeader hints
// and refreshing metadata, and retries retriable failures and lost replies
// until ctx ends. Every request sent this way must be safe to repeat
// (produce relies on the idempotent producer's sequence numbers). maybe
// reports whether some attempt may have taken effect.
func (c *Client) callLeader(ctx context.Context, lc leaderCall) (maybe bool, err error) {
	k := partKey{lc.topic, lc.part}
	what := fmt.Sprintf("%s %s/%d", lc.method, lc.topic, lc.part)
	var (
		bo           backoff
		lastErr      error
		fresh        bool
		unknownSince time.Time
		internalErrs int
	)
	// wait backs off; it reports false when ctx ended.
	wait := func() bool { return bo.wait(ctx) == nil }
	// unknownOK reports whether an unknown topic/partition is still within
	// the grace given to metadata propagation.
	unknownOK := func() bool {
		if c.cfg.UnknownTopicWait < 0 {
			return false
		}
		if unknownSince.IsZero() {
			unknownSince = time.Now()
		}
		return time.Since(unknownSince) < c.cfg.UnknownTopicWait
	}
	for {
		if ctx.Err() != nil {
			return maybe, giveUp(ctx, what, lastErr, maybe)
		}
		addr, err := c.leaderFor(ctx, lc.topic, lc.part, fresh)
		fresh = false
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return maybe, err
			}
			if ctx.Err() != nil {
				return maybe, giveUp(ctx, what, lastErr, maybe)
			}
			switch code := transport.CodeOf(err); {
			case code == transport.ErrUnknownTopic || code == transport.ErrUnknownPartition:
				if !unknownOK() {
					return maybe, err
				}
			case code != 0 && !code.Retriable():
				return maybe, err
			}
			lastErr = err
			fresh = true
			if !wait() {
				return maybe, giveUp(ctx, what, lastErr, maybe)
			}
			continue
		}

		err = c.attempt(ctx, addr, lc.method, lc.req, lc.resp, lc.extra)
		if err == nil {
			return maybe, nil
		}
		if errors.Is(err, ErrClosed) {
			return maybe, err
		}
		if attemptOutcome(err) == maybeApplied {
			maybe = true
		}
		if ctx.Err() != nil {
			return maybe, giveUp(ctx, what, err, maybe)
		}
		lastErr = err
		c.log.Debug("retrying partition call", "call", what, "addr", addr, "err", err)
		code := transport.CodeOf(err)
		switch {
		case code == transport.ErrNotLeader:
			var te *transport.Error
			errors.As(err, &te)
			if te.Leader != "" && te.Leader != addr {
				c.setHint(k, te.Leader)
				// Follow a fresh hint at once; a second hop in a row
				// suggests an election in progress, so back off.
				if bo.next == 0 {
					bo.next = backoffMin
					continue
				}
			} else {
				c.setHint(k, "")
				fresh = true
			}
		case code == transport.ErrUnknownTopic || code == transport.ErrUnknownPartition:
			if !unknownOK() {
				return maybe, err
			}
			c.setHint(k, "")
			fresh = true
		case code == transport.ErrNotEnoughReplicas && lc.method == transport.MethodProduce:
			// Quorum trouble on the leader is transient in Raft.
		case code == transport.ErrTimeout:
			// Commit pending on a leader that may be losing its term; the
			// reply may name the next leader.
			var te *transport.Error
			errors.As(err, &te)
			if te.Leader != "" && te.Leader != addr {
				c.setHint(k, te.Leader)
			} else {
				c.setHint(k, "")
				fresh = true
			}
		case code == transport.ErrUnknown:
			// An unclassified server failure: it may be transient (or may
			// even have applied the request), but do not insist forever.
			maybe = true
			if internalErrs++; internalErrs >= maxInternalErrs {
				return maybe, err
			}
			c.setHint(k, "")
			fresh = true
		case code != 0 && !code.Retriable():
			return maybe, err
		default:
			// Retriable code, or the node is unreachable: look again.
			c.setHint(k, "")
			fresh = true
		}
		if !wait() {
			return maybe, giveUp(ctx, what, lastErr, maybe)
		}
	}
}
