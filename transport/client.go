package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Call outcome classes. Every error from Conn.Call, DialConn and Pool.Call
// that is not a reply's *Error wraps one of these, or is a problem decoding
// a reply that did arrive.
var (
	// ErrNotSent: the request certainly did not reach the server (dial
	// failure, connection closed before the write, write failed before the
	// whole frame was out). Retrying cannot duplicate it.
	ErrNotSent = errors.New("request not sent")
	// ErrNoReply: the request was sent but no reply arrived (context done,
	// connection lost). The outcome is unknown: the server may have acted.
	ErrNoReply = errors.New("no reply")
)

// errConnClosed is the cause recorded when Close is called on a Conn.
var errConnClosed = fmt.Errorf("transport: connection closed: %w", net.ErrClosed)

// defaultHandshakeTimeout bounds sending the protocol byte when
// DialOptions.Timeout is not set.
const defaultHandshakeTimeout = 10 * time.Second

// DialOptions configures client connections.
type DialOptions struct {
	// LocalHost is the source IP of outgoing connections ("" lets the
	// kernel choose); see Dialer.
	LocalHost string
	// MaxFrameBytes bounds frames in both directions; <= 0 means
	// DefaultMaxFrameBytes.
	MaxFrameBytes int
	// Timeout bounds connecting (0: only the context bounds it).
	Timeout time.Duration
	// TLS, when set, runs every connection over TLS with this client
	// configuration (RootCAs: the cluster's CA; Certificates: the client's
	// own when the nodes require one). ServerName defaults to the dialled
	// host, so node certificates need the addresses clients use as SANs.
	TLS *tls.Config
}

// Conn is one client connection to a node, multiplexing concurrent calls.
// It is safe for concurrent use. Once broken it stays broken: dial again
// (Pool does that).
type Conn struct {
	nc       net.Conn
	addr     string
	maxFrame int
	nextID   atomic.Uint64
	// lastUsed is when a call last started or ended (unix nanoseconds).
	lastUsed atomic.Int64
	// wlock is a one-slot semaphore serialising frame writes; a channel so
	// that waiting for it honours the caller's context.
	wlock chan struct{}
	done  chan struct{} // closed when the read loop has exited

	mu      sync.Mutex
	pending map[uint64]chan Frame // nil once broken
	err     error                 // why the connection broke; nil while healthy
}

// DialConn connects to a node's port and starts the client protocol.
// Errors wrap ErrNotSent.
func DialConn(ctx context.Context, addr string, opts DialOptions) (*Conn, error) {
	nc, err := Dialer(opts.LocalHost, opts.Timeout).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: dial %s: %w: %w", addr, ErrNotSent, err)
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = defaultHandshakeTimeout
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if opts.TLS != nil {
		tc := tls.Client(nc, clientTLS(opts.TLS, addr))
		hctx, cancel := context.WithDeadline(ctx, deadline)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("transport: dial %s: TLS handshake: %w: %w", addr, ErrNotSent, err)
		}
		nc = tc
	}
	_ = nc.SetWriteDeadline(deadline)
	if _, err := nc.Write([]byte{protoClient}); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("transport: dial %s: send protocol byte: %w: %w", addr, ErrNotSent, err)
	}
	_ = nc.SetWriteDeadline(time.Time{})

	maxFrame := opts.MaxFrameBytes
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrameBytes
	}
	c := &Conn{
		nc:       nc,
		addr:     addr,
		maxFrame: maxFrame,
		wlock:    make(chan struct{}, 1),
		done:     make(chan struct{}),
		pending:  make(map[uint64]chan Frame),
	}
	c.lastUsed.Store(time.Now().UnixNano())
	go c.readLoop()
	return c, nil
}

// clientIdleTimeout is how long a pooled connection may sit unused before
// the pool replaces it rather than reuse it: well under the server's
// DefaultIdleTimeout, so the client, not the server, closes idle
// connections, and a request never meets a connection the server is
// closing (its outcome would be unknown).
const clientIdleTimeout = DefaultIdleTimeout / 2

// idle reports whether the connection has no call in progress and has
// carried none for d.
func (c *Conn) idle(d time.Duration) bool {
	c.mu.Lock()
	busy := len(c.pending) > 0
	c.mu.Unlock()
	return !busy && time.Since(time.Unix(0, c.lastUsed.Load())) > d
}

// Addr returns the address the connection was dialled to.
func (c *Conn) Addr() string { return c.addr }

// Done is closed once the connection is broken or closed and its reader
// has stopped.
func (c *Conn) Done() <-chan struct{} { return c.done }

// broken reports whether the connection can no longer carry calls.
func (c *Conn) broken() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil
}

// Close closes the connection; pending calls fail with ErrNoReply. It waits
// for the reader goroutine to exit.
func (c *Conn) Close() error {
	c.fail(errConnClosed)
	<-c.done
	return nil
}

// Call sends req (msgpack-encoded) as method and waits for the reply, which
// it decodes into resp unless resp is nil. A failed call returns the
// reply's *Error as is, or an error wrapping ErrNotSent or ErrNoReply (with
// the cause, e.g. ctx.Err(), also in the chain), or a decoding error.
func (c *Conn) Call(ctx context.Context, method Method, req, resp any) error {
	p, err := c.Start(ctx, method, req)
	if err != nil {
		return err
	}
	return p.Wait(ctx, resp)
}

// Pending is a request written to its connection whose reply is awaited.
type Pending struct {
	c      *Conn
	id     uint64
	method Method
	ch     chan Frame
}

// Start writes req as method and returns at once, the reply to be taken
// with Wait. Requests started one after another on a Conn reach the node
// in that order (a node can then keep them in order: see OrderedMethods).
// An error wraps ErrNotSent: the request did not reach the node.
func (c *Conn) Start(ctx context.Context, method Method, req any) (*Pending, error) {
	body, err := msgpack.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("transport: %s to %s: encode request: %w: %w", method, c.addr, ErrNotSent, err)
	}
	c.lastUsed.Store(time.Now().UnixNano())
	id := c.nextID.Add(1)
	buf, err := appendFrame(nil, Frame{ID: id, Method: method, Kind: KindRequest, Body: body})
	if err == nil && len(buf)-4 > c.maxFrame {
		err = fmt.Errorf("%w: request of %d bytes, limit %d", ErrFrameTooLarge, len(buf)-4, c.maxFrame)
	}
	if err != nil {
		return nil, fmt.Errorf("transport: %s to %s: %w: %w", method, c.addr, ErrNotSent, err)
	}

	// Register before writing so that a fast reply finds its waiter.
	ch := make(chan Frame, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, fmt.Errorf("transport: %s to %s: %w: %w", method, c.addr, ErrNotSent, err)
	}
	c.pending[id] = ch
	c.mu.Unlock()

	if err := c.send(ctx, buf); err != nil {
		c.forget(id)
		return nil, fmt.Errorf("transport: %s to %s: %w: %w", method, c.addr, ErrNotSent, err)
	}
	return &Pending{c: c, id: id, method: method, ch: ch}, nil
}

// Wait waits for the reply of a started request and decodes it into resp
// unless resp is nil. Errors are classified as for Call (never ErrNotSent:
// the request was sent).
func (p *Pending) Wait(ctx context.Context, resp any) error {
	c := p.c
	defer c.lastUsed.Store(time.Now().UnixNano())
	select {
	case f, ok := <-p.ch:
		if !ok {
			return fmt.Errorf("transport: %s to %s: %w: %w", p.method, c.addr, ErrNoReply, c.cause())
		}
		if f.Err != nil {
			return f.Err
		}
		if resp != nil {
			if err := msgpack.Unmarshal(f.Body, resp); err != nil {
				return fmt.Errorf("transport: %s to %s: decode response: %w", p.method, c.addr, err)
			}
		}
		return nil
	case <-ctx.Done():
		c.forget(p.id)
		return fmt.Errorf("transport: %s to %s: %w: %w", p.method, c.addr, ErrNoReply, ctx.Err())
	}
}

// send writes one whole frame. An error means the server cannot have
// received the complete frame, hence cannot act on it.
func (c *Conn) send(ctx context.Context, buf []byte) error {
	select {
	case c.wlock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return c.cause()
	}
	defer func() { <-c.wlock }()
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.broken() {
		return c.cause()
	}

	// A write blocks while the server applies backpressure; let the
	// caller's context interrupt it through the write deadline.
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = c.nc.SetWriteDeadline(time.Unix(1, 0))
		close(fired)
	})
	n, err := c.nc.Write(buf)
	if !stop() {
		<-fired
		_ = c.nc.SetWriteDeadline(time.Time{})
	}
	if err == nil {
		return nil
	}
	if n > 0 || ctx.Err() == nil {
		// A partial frame desynchronises the stream, and any other write
		// error means the socket is dead: either way the connection is done.
		c.fail(fmt.Errorf("write: %w", err))
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	return err
}

// forget drops the waiter of a call that gave up.
func (c *Conn) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// cause returns why the connection broke.
func (c *Conn) cause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		return errConnClosed
	}
	return c.err
}

// fail marks the connection broken with err (the first cause wins), closes
// the socket and wakes every pending call.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()

	_ = c.nc.Close()
	for _, ch := range pending {
		close(ch)
	}
}

// readLoop delivers reply frames to their waiters until the connection
// breaks.
func (c *Conn) readLoop() {
	defer close(c.done)
	br := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		f, err := ReadFrame(br, c.maxFrame)
		if err != nil {
			c.fail(fmt.Errorf("read: %w", err))
			return
		}
		if f.Kind != KindResponse {
			c.fail(fmt.Errorf("%w: server sent a %s frame", ErrMalformedFrame, f.Kind))
			return
		}
		c.mu.Lock()
		ch := c.pending[f.ID]
		delete(c.pending, f.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- f // buffered: never blocks
		}
	}
}

// Pool keeps one Conn per address and redials broken ones. It is safe for
// concurrent use.
type Pool struct {
	opts DialOptions
	idle time.Duration

	mu     sync.Mutex
	closed bool
	slots  map[string]*poolSlot
}

// poolSlot holds one address's connection.
type poolSlot struct {
	conn atomic.Pointer[Conn]
	// dial is a one-slot semaphore so that only one caller dials an
	// address at a time; the others wait for its connection.
	dial chan struct{}
}

// NewPool returns an empty pool dialling with opts.
func NewPool(opts DialOptions) *Pool {
	return &Pool{opts: opts, idle: clientIdleTimeout, slots: make(map[string]*poolSlot)}
}

// Call is Conn.Call on the pool's connection to addr, dialling it if needed.
// Errors are classified as for Conn.Call; a dial failure wraps ErrNotSent.
// A request that could not be written on a connection found dead is retried
// once on a fresh connection (safe: it was not sent).
func (p *Pool) Call(ctx context.Context, addr string, method Method, req, resp any) error {
	pd, err := p.Start(ctx, addr, method, req)
	if err != nil {
		return err
	}
	return pd.Wait(ctx, resp)
}

// Start is Conn.Start on the pool's connection to addr: requests started
// one after another to one address go out in that order on one connection.
func (p *Pool) Start(ctx context.Context, addr string, method Method, req any) (*Pending, error) {
	for attempt := 0; ; attempt++ {
		c, fresh, err := p.conn(ctx, addr)
		if err != nil {
			return nil, err
		}
		pd, err := c.Start(ctx, method, req)
		if err != nil && attempt == 0 && !fresh && c.broken() && ctx.Err() == nil {
			continue
		}
		return pd, err
	}
}

// conn returns a healthy connection to addr; fresh tells whether it was
// just dialled.
func (p *Pool) conn(ctx context.Context, addr string) (c *Conn, fresh bool, err error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, false, fmt.Errorf("transport: pool closed: %w", ErrNotSent)
	}
	s := p.slots[addr]
	if s == nil {
		s = &poolSlot{dial: make(chan struct{}, 1)}
		p.slots[addr] = s
	}
	p.mu.Unlock()

	if c := s.conn.Load(); c != nil && !c.broken() && !c.idle(p.idle) {
		return c, false, nil
	}
	select {
	case s.dial <- struct{}{}:
	case <-ctx.Done():
		return nil, false, fmt.Errorf("transport: dial %s: %w: %w", addr, ErrNotSent, ctx.Err())
	}
	defer func() { <-s.dial }()
	old := s.conn.Load()
	if old != nil && !old.broken() && !old.idle(p.idle) {
		return old, false, nil // another caller redialled meanwhile
	}
	if old != nil {
		_ = old.Close()
	}
	c, err = DialConn(ctx, addr, p.opts)
	if err != nil {
		return nil, false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return nil, false, fmt.Errorf("transport: pool closed: %w", ErrNotSent)
	}
	s.conn.Store(c)
	return c, true, nil
}

// Close closes every pooled connection; later calls fail with ErrNotSent.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	var conns []*Conn
	for _, s := range p.slots {
		if c := s.conn.Load(); c != nil {
			conns = append(conns, c)
		}
	}
	p.slots = map[string]*poolSlot{}
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return nil
}
