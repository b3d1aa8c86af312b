// Package netproxy is a userspace TCP proxy for the chaos harness: one
// listener in front of each node's port (the node advertises the proxy's
// address), forwarding every connection to the node and shaping each
// direction by the link it travels on, from node to node: latency, jitter
// and one-way blackholes, as etcd's robustness tests do with their proxy
// (tc netem is not available on these machines). Bytes are forwarded as
// they are, never parsed.
//
// A link is an ordered pair of nodes. A connection that node A opened to
// node B carries A→B bytes one way and B→A bytes the other; each direction
// is shaped by its own link, so "A→B blackholed" stalls what A says to B on
// every connection between them, whoever opened it. The proxy tells the
// source node by the connection's source address (each node dials from its
// own 127.0.0.x), and dials the node from that same address, so iptables
// rules by source and destination still apply behind the proxy.
package netproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Link is how one direction between two nodes behaves. The zero Link
// forwards at once.
type Link struct {
	// Delay is added to every byte's trip.
	Delay time.Duration
	// Jitter adds a random extra delay in [0, Jitter) per chunk read;
	// bytes are never reordered (a TCP stream cannot be).
	Jitter time.Duration
	// Blackhole stalls the direction: nothing is forwarded (and, once the
	// buffers are full, nothing is read) until it is lifted, as when a
	// network drops every packet and TCP retransmits later. Connections
	// made meanwhile are accepted but hear nothing.
	Blackhole bool
}

func (l Link) String() string {
	switch {
	case l.Blackhole:
		return "blackhole"
	case l.Jitter > 0:
		return fmt.Sprintf("%s±%s", l.Delay, l.Jitter)
	default:
		return l.Delay.String()
	}
}

// Pair names a link: bytes from From to To.
type Pair struct{ From, To string }

func (p Pair) String() string { return p.From + "→" + p.To }

// Endpoint is one node behind the proxy.
type Endpoint struct {
	// ID names the node in links.
	ID string
	// Listen is the proxy's address for the node (the one it advertises).
	Listen string
	// Target is the node's own listening address.
	Target string
	// Host is the IP the node dials from: connections from it are the
	// node's.
	Host string
}

// Proxy runs one listener per endpoint and applies the links.
type Proxy struct {
	logger *slog.Logger
	hosts  map[netip.Addr]string // source IP → node id
	lns    []net.Listener
	// chunk is the read size; also the unit that gets one jitter draw.
	chunk int

	mu      sync.Mutex
	links   map[Pair]Link
	changed chan struct{} // closed and replaced whenever links change
	conns   map[net.Conn]struct{}
	rng     *rand.Rand
	closed  bool
	wg      sync.WaitGroup
}

// Start listens on every endpoint's Listen address and forwards to its
// Target until Close. seed makes the jitter repeatable.
func Start(endpoints []Endpoint, seed int64, logger *slog.Logger) (*Proxy, error) {
	if logger == nil {
		logger = slog.Default()
	}
	p := &Proxy{
		logger:  logger,
		hosts:   map[netip.Addr]string{},
		chunk:   32 << 10,
		links:   map[Pair]Link{},
		changed: make(chan struct{}),
		conns:   map[net.Conn]struct{}{},
		rng:     rand.New(rand.NewSource(seed)),
	}
	for _, e := range endpoints {
		ip, err := netip.ParseAddr(e.Host)
		if err != nil {
			return nil, fmt.Errorf("netproxy: host of %s: %w", e.ID, err)
		}
		p.hosts[ip] = e.ID
	}
	for _, e := range endpoints {
		ln, err := net.Listen("tcp", e.Listen)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("netproxy: listen for %s: %w", e.ID, err)
		}
		p.lns = append(p.lns, ln)
		p.wg.Add(1)
		go p.serve(ln, e)
	}
	return p, nil
}

// Addrs lists the proxy's listening addresses, in endpoint order.
func (p *Proxy) Addrs() []string {
	out := make([]string, len(p.lns))
	for i, ln := range p.lns {
		out[i] = ln.Addr().String()
	}
	return out
}

// Set replaces every link setting: links not named forward at once.
func (p *Proxy) Set(links map[Pair]Link) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.links = map[Pair]Link{}
	for k, v := range links {
		if v != (Link{}) {
			p.links[k] = v
		}
	}
	close(p.changed)
	p.changed = make(chan struct{})
}

// Reset lifts every delay and blackhole.
func (p *Proxy) Reset() { p.Set(nil) }

// Links returns the settings in force.
func (p *Proxy) Links() map[Pair]Link {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[Pair]Link, len(p.links))
	for k, v := range p.links {
		out[k] = v
	}
	return out
}

// link returns the setting of a direction and a channel closed at the
// next change.
func (p *Proxy) link(pair Pair) (Link, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.links[pair], p.changed
}

func (p *Proxy) jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Duration(p.rng.Int63n(int64(max)))
}

// Close stops listening and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	close(p.changed) // wake stalled pumps
	p.changed = make(chan struct{})
	p.mu.Unlock()
	var errs []error
	for _, ln := range p.lns {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for c := range conns {
		_ = c.Close()
	}
	p.wg.Wait()
	return errors.Join(errs...)
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

func (p *Proxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

func (p *Proxy) serve(ln net.Listener, e Endpoint) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.logger.Warn("netproxy: accept", "node", e.ID, "err", err)
			}
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.forward(c, e)
		}()
	}
}

// forward connects c to the endpoint's target from c's own source IP and
// pumps both directions until either side ends.
func (p *Proxy) forward(c net.Conn, e Endpoint) {
	defer c.Close()
	if !p.track(c) {
		return
	}
	defer p.untrack(c)
	src := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	from := p.hosts[src] // "" for a client: its links are never shaped
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IP(src.AsSlice())}}
	u, err := d.Dial("tcp", e.Target)
	if err != nil {
		// The node is down (or partitioned): the caller sees a closed
		// connection, as it would see a refused one.
		p.logger.Debug("netproxy: dial", "from", from, "to", e.ID, "err", err)
		return
	}
	defer u.Close()
	if !p.track(u) {
		return
	}
	defer p.untrack(u)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{}, 2)
	go func() { p.pump(ctx, u, c, Pair{from, e.ID}); done <- struct{}{} }()
	go func() { p.pump(ctx, c, u, Pair{e.ID, from}); done <- struct{}{} }()
	<-done
	// One side ended: end both, as a TCP proxy that does not half-close.
	cancel()
	_ = c.Close()
	_ = u.Close()
	<-done
}

type chunk struct {
	b   []byte
	due time.Time
}

// pump copies src to dst shaped by the link pair: a reader stamps each
// chunk with its due time (never earlier than the previous chunk's) and a
// writer delivers it then, unless the link is blackholed, in which case
// both wait. The queue between them is bounded, so a slow or stalled link
// pushes back on the sender as a real one would.
func (p *Proxy) pump(ctx context.Context, dst, src net.Conn, pair Pair) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := make(chan chunk, 64)
	go func() {
		defer close(q)
		var last time.Time
		for {
			buf := make([]byte, p.chunk)
			n, err := src.Read(buf)
			if n > 0 {
				l, ok := p.waitOpen(ctx, pair)
				if !ok {
					return
				}
				due := time.Now().Add(l.Delay + p.jitter(l.Jitter))
				if due.Before(last) {
					due = last
				}
				last = due
				select {
				case q <- chunk{buf[:n], due}:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		if !sleepUntil(ctx, c.due) {
			return
		}
		if _, ok := p.waitOpen(ctx, pair); !ok {
			return
		}
		if _, err := dst.Write(c.b); err != nil {
			return
		}
	}
}

// waitOpen waits while pair is blackholed; false when ctx ends or the
// proxy closes.
func (p *Proxy) waitOpen(ctx context.Context, pair Pair) (Link, bool) {
	for {
		l, changed := p.link(pair)
		if p.isClosed() {
			return l, false
		}
		if !l.Blackhole {
			return l, true
		}
		select {
		case <-ctx.Done():
			return l, false
		case <-changed:
		}
	}
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
