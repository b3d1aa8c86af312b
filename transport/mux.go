package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Protocol bytes: the first byte of every connection to a node's port.
const (
	// protoRaft is followed by a 2-byte big-endian length and the Raft
	// group's name; the rest of the stream belongs to hashicorp/raft.
	protoRaft byte = 'R'
	// protoClient is followed by client RPC frames (see frame.go).
	protoClient byte = 'C'
)

const (
	// headerTimeout bounds reading a connection's protocol header, so idle
	// or slow connections cannot pin goroutines.
	headerTimeout = 5 * time.Second
	// writeTimeout bounds writing one response frame, so a client that
	// stops reading cannot block the handlers of its connection forever.
	writeTimeout = 30 * time.Second
	// maxInFlight bounds concurrent requests per client connection. When it
	// is reached the server stops reading that connection, which pushes
	// back on the client through TCP flow control.
	maxInFlight = 256
	// maxAcceptDelay caps the back-off after a failed Accept (e.g. EMFILE).
	maxAcceptDelay = time.Second
)

// ErrMuxClosed is returned by operations on a closed Mux.
var ErrMuxClosed = errors.New("transport: mux closed")

// Config configures a Mux.
type Config struct {
	// Addr is the TCP address to listen on, e.g. "127.0.0.12:7071". Its
	// host, when it is a specific IP, is also the source address of every
	// outgoing Raft connection (see LocalHost).
	Addr string
	// AdvertiseAddr is the address peers are told to dial, when it is not
	// Addr (e.g. a proxy in front of the port); Raft groups advertise it
	// as this node's address. Default: the bound address.
	AdvertiseAddr string
	// MaxFrameBytes bounds client RPC frames in both directions; <= 0 means
	// DefaultMaxFrameBytes.
	MaxFrameBytes int
	// Logger receives connection-level problems; nil means slog.Default().
	Logger *slog.Logger
	// AllowRaft, when set, decides from a connection's remote IP whether it
	// may talk Raft: connections it refuses are closed after their group
	// header. Nodes pass a check against the cluster's member addresses.
	// It is called for every incoming Raft connection, so keep it cheap.
	AllowRaft func(remote netip.Addr) bool
	// TLS, when set, makes every accepted connection a TLS server
	// connection: the handshake comes before the protocol byte. Set
	// ClientAuth to tls.RequireAndVerifyClientCert for mutual TLS.
	TLS *tls.Config
	// Node-wide bounds against flooding; zero values take the defaults.
	// MaxConns caps open client connections (and accepted connections
	// that have not yet said what they are); Raft connections of members
	// do not count. Excess connections are closed at once.
	MaxConns int
	// MaxInFlightBytes caps the bytes of requests read and not yet answered
	// across all connections; a connection whose next request does not fit
	// waits (and is not read) until others finish.
	MaxInFlightBytes int64
	// HeaderTimeout bounds a new connection's TLS handshake and protocol
	// header; FrameTimeout bounds reading one request once its first byte
	// arrived; IdleTimeout closes a client connection without requests in
	// progress that sent nothing for that long.
	HeaderTimeout, FrameTimeout, IdleTimeout time.Duration
	// MethodMaxBytes caps the frame size of single methods below
	// MaxFrameBytes. The cap is checked against the frame's length prefix
	// and the method in its first bytes, before the frame is read: the
	// request is answered with an error (ErrRecordTooLarge for produce,
	// ErrInvalidRequest otherwise) and its bytes skipped unbuffered.
	MethodMaxBytes map[Method]int
	// OrderedMethods are the methods whose requests on one connection pass
	// their ordered section (see InOrder) in the order they were sent.
	OrderedMethods []Method
	// DialTLS, when set, is the client configuration of the Raft
	// connections this Mux dials (its certificate and the CA that signed
	// the peers'). ServerName defaults to the dialled host.
	DialTLS *tls.Config
}

// Handler serves one client RPC. body is the request's raw msgpack value;
// the returned value is msgpack-encoded as the response body. An error that
// is (or wraps) a *Error goes back to the client as is; any other error is
// sent as ErrUnknown with its text. ctx is cancelled when the client's
// connection or the Mux closes. The handler may keep body.
type Handler func(ctx context.Context, method Method, body []byte) (any, error)

// peerKey is the context key of the remote address of a request's connection.
type peerKey struct{}

type peer struct {
	addr net.Addr
	node bool
}

// PeerAddr returns the remote address of the connection a Handler's request
// arrived on, or nil outside a handler.
func PeerAddr(ctx context.Context) net.Addr {
	p, _ := ctx.Value(peerKey{}).(peer)
	return p.addr
}

// PeerMayBeNode reports whether a Handler's request may come from a node:
// without TLS any peer may; with TLS only one whose certificate is valid
// for server auth, as node certificates are and client ones are not.
func PeerMayBeNode(ctx context.Context) bool {
	p, _ := ctx.Value(peerKey{}).(peer)
	return p.node
}

// nodeCert reports whether the peer of a TLS connection presented a node
// certificate: one usable for server auth (nodes serve with the same
// certificate they dial with). Client certificates carry clientAuth only,
// so a client of the cluster cannot speak Raft even from a member's host.
func nodeCert(c *tls.Conn) bool {
	certs := c.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return false
	}
	eku := certs[0].ExtKeyUsage
	if len(eku) == 0 && len(certs[0].UnknownExtKeyUsage) == 0 {
		return true // no EKU extension: any usage
	}
	for _, u := range eku {
		if u == x509.ExtKeyUsageServerAuth || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

// Mux owns a node's single TCP port. It routes each incoming connection by
// its first byte to a Raft group's stream layer or to the client RPC server.
type Mux struct {
	ln            net.Listener
	advertise     string
	maxFrame      int
	log           *slog.Logger
	localHost     string
	allowRaft     func(netip.Addr) bool
	tls           *tls.Config
	dialTLS       *tls.Config
	headerTimeout time.Duration
	frameTimeout  time.Duration
	idleTimeout   time.Duration
	maxConns      int
	methodMax     map[Method]int
	ordered       map[Method]bool
	// inflight holds the bytes of requests read and not yet answered.
	inflight *byteSem

	// ctx is the parent of every handler's context; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool
	serving bool
	groups  map[string]*RaftLayer
	// conns holds every open connection (client and Raft, accepted and
	// dialled), keyed by the raw net.Conn, so Close can close them all.
	conns map[net.Conn]struct{}
	// open counts the accepted connections that are not Raft's (client
	// connections and those still in their header), against maxConns.
	open int
	// refused and refusedLog rate-limit the log of connections refused
	// at the cap.
	refused    int
	refusedLog time.Time

	// wg counts per-connection goroutines; Close waits for them.
	wg sync.WaitGroup
}

// Listen opens the node's port. Call Serve to start accepting connections.
func Listen(cfg Config) (*Mux, error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen on %q: %w", cfg.Addr, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	maxFrame := cfg.MaxFrameBytes
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrameBytes
	}
	maxConns := cfg.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	maxInFlight := cfg.MaxInFlightBytes
	if maxInFlight <= 0 {
		maxInFlight = DefaultMaxInFlightBytes
	}
	methodMax := make(map[Method]int, len(cfg.MethodMaxBytes))
	for meth, n := range cfg.MethodMaxBytes {
		if n > 0 && n < maxFrame {
			methodMax[meth] = n
		}
	}
	ordered := make(map[Method]bool, len(cfg.OrderedMethods))
	for _, meth := range cfg.OrderedMethods {
		ordered[meth] = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mux{
		ln:            ln,
		advertise:     cfg.AdvertiseAddr,
		maxFrame:      maxFrame,
		log:           log.With("component", "transport", "addr", ln.Addr().String()),
		localHost:     hostOf(ln.Addr()),
		allowRaft:     cfg.AllowRaft,
		tls:           cfg.TLS,
		dialTLS:       cfg.DialTLS,
		headerTimeout: orDefault(cfg.HeaderTimeout, headerTimeout),
		frameTimeout:  orDefault(cfg.FrameTimeout, DefaultFrameTimeout),
		idleTimeout:   orDefault(cfg.IdleTimeout, DefaultIdleTimeout),
		maxConns:      maxConns,
		methodMax:     methodMax,
		ordered:       ordered,
		inflight:      newByteSem(maxInFlight),
		ctx:           ctx,
		cancel:        cancel,
		groups:        make(map[string]*RaftLayer),
		conns:         make(map[net.Conn]struct{}),
	}
	return m, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// hostOf returns the IP a listener is bound to, or "" when it listens on
// every address.
func hostOf(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta.IP == nil || ta.IP.IsUnspecified() {
		return ""
	}
	return ta.AddrPort().Addr().Unmap().String()
}

// remoteIP returns the IP a connection comes from.
func remoteIP(c net.Conn) (netip.Addr, bool) {
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	return ta.AddrPort().Addr().Unmap(), true
}

// Addr returns the address the Mux listens on (with the real port when
// Config.Addr asked for port 0).
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

// AdvertisedAddr is the address peers dial: Config.AdvertiseAddr, else the
// bound address.
func (m *Mux) AdvertisedAddr() net.Addr {
	if m.advertise == "" {
		return m.ln.Addr()
	}
	return advertisedAddr(m.advertise)
}

// advertisedAddr is a host:port given by configuration, not bound here.
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

// LocalHost returns the IP that outgoing connections are bound to, taken
// from the listening address; "" when the Mux listens on all addresses.
func (m *Mux) LocalHost() string { return m.localHost }

// Serve accepts connections until Close, then returns nil. Client RPCs go
// to h; with a nil h client connections are refused (Raft only). Raft
// connections are only routed while Serve runs, so start it early.
func (m *Mux) Serve(h Handler) error {
	m.mu.Lock()
	switch {
	case m.closed:
		m.mu.Unlock()
		return ErrMuxClosed
	case m.serving:
		m.mu.Unlock()
		return errors.New("transport: Serve called twice")
	}
	m.serving = true
	m.mu.Unlock()

	var delay time.Duration
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if m.isClosed() {
				return nil
			}
			// Most Accept errors are transient (out of file descriptors,
			// aborted handshakes): back off and keep serving.
			delay = min(max(2*delay, 5*time.Millisecond), maxAcceptDelay)
			m.log.Warn("accept failed", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
				continue
			case <-m.ctx.Done():
				return nil
			}
		}
		delay = 0
		if !m.admit() {
			_ = c.Close()
			continue
		}
		if m.tls != nil {
			// No I/O yet: handleConn runs the handshake under its deadline.
			c = tls.Server(c, m.tls)
		}
		if !m.track(c, nil) {
			_ = c.Close()
			continue
		}
		m.wg.Add(1)
		go m.handleConn(c, h)
	}
}

// Close stops the listener, closes every open connection (including those
// handed to Raft), cancels handler contexts and waits for the connection
// goroutines and their handlers to finish. It is safe to call twice.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	conns := make([]net.Conn, 0, len(m.conns))
	for c := range m.conns {
		conns = append(conns, c)
	}
	m.mu.Unlock()

	err := m.ln.Close()
	for _, c := range conns {
		_ = c.Close()
	}
	// Cancel handlers only once their connections are closed, so what they
	// return on cancellation cannot reach a client: the client sees the
	// connection drop, an unknown outcome, which is the truth.
	m.cancel()
	m.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("transport: close listener: %w", err)
	}
	return nil
}

func (m *Mux) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// admit reports whether one more connection fits under the cap, and logs
// refusals (at most once a second, with their count).
func (m *Mux) admit() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.open < m.maxConns {
		return true
	}
	m.refused++
	if now := time.Now(); now.Sub(m.refusedLog) >= time.Second {
		m.log.Warn("closing new connections: connection limit reached", "limit", m.maxConns, "refused", m.refused)
		m.refusedLog, m.refused = now, 0
	}
	return false
}

// track registers an open connection, and with the layer l too when it
// belongs to a Raft group. It returns false when the Mux (or l) is closed;
// the caller must then close c itself.
func (m *Mux) track(c net.Conn, l *RaftLayer) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || (l != nil && l.closed) {
		return false
	}
	m.conns[c] = struct{}{}
	if l != nil {
		l.conns[c] = struct{}{}
	} else {
		m.open++
	}
	return true
}

// untrack forgets a connection that is being closed.
func (m *Mux) untrack(c net.Conn, l *RaftLayer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.conns[c]; !ok {
		return
	}
	delete(m.conns, c)
	if l != nil {
		delete(l.conns, c)
	} else {
		m.open--
	}
}

// drop closes and forgets a connection the Mux still owns.
func (m *Mux) drop(c net.Conn) {
	m.untrack(c, nil)
	_ = c.Close()
}

// handleConn reads the protocol header and dispatches the connection.
func (m *Mux) handleConn(c net.Conn, h Handler) {
	defer m.wg.Done()
	log := m.log.With("remote", c.RemoteAddr().String())

	_ = c.SetReadDeadline(time.Now().Add(m.headerTimeout))
	if tc, ok := c.(*tls.Conn); ok {
		_ = c.SetWriteDeadline(time.Now().Add(m.headerTimeout))
		if err := tc.HandshakeContext(m.ctx); err != nil {
			log.Warn("closing connection: TLS handshake failed", "err", err)
			m.drop(c)
			return
		}
		_ = c.SetWriteDeadline(time.Time{})
	}
	var proto [1]byte
	if _, err := io.ReadFull(c, proto[:]); err != nil {
		// Port probes and health checks connect and leave: not worth a warning.
		log.Debug("connection closed before its protocol byte", "err", err)
		m.drop(c)
		return
	}
	switch proto[0] {
	case protoClient:
		if h == nil {
			log.Warn("closing client connection: this mux serves Raft only")
			m.drop(c)
			return
		}
		_ = c.SetReadDeadline(time.Time{})
		m.serveClient(c, h, log)
	case protoRaft:
		m.routeRaft(c, log)
	default:
		log.Warn("closing connection: unknown protocol byte", "byte", fmt.Sprintf("0x%02x", proto[0]))
		m.drop(c)
	}
}

// routeRaft reads the group header and hands the connection to the group's
// RaftLayer. Reads are unbuffered so no Raft bytes are swallowed.
func (m *Mux) routeRaft(c net.Conn, log *slog.Logger) {
	group, err := readRaftGroup(c)
	if err != nil {
		log.Warn("closing raft connection: bad group header", "err", err)
		m.drop(c)
		return
	}
	if tc, ok := c.(*tls.Conn); ok && !nodeCert(tc) {
		log.Warn("closing raft connection: peer certificate is not a node's (no serverAuth usage)", "group", group)
		m.drop(c)
		return
	}
	if m.allowRaft != nil {
		ip, ok := remoteIP(c)
		if !ok || !m.allowRaft(ip) {
			log.Warn("closing raft connection: peer is not a cluster member", "group", group)
			m.drop(c)
			return
		}
	}

	m.mu.Lock()
	l := m.groups[group]
	if l != nil {
		// Registered layers are open: Close unregisters before closing.
		// From here the connection is Raft's: it leaves the client cap.
		l.conns[c] = struct{}{}
		m.open--
	}
	m.mu.Unlock()
	if l == nil {
		log.Warn("closing raft connection: unknown group", "group", group)
		m.drop(c)
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	// Raft owns the connection from here; closing it untracks it.
	tc := l.wrap(c)
	select {
	case l.accept <- tc:
	case <-l.done:
		_ = tc.Close()
	case <-m.ctx.Done():
		_ = tc.Close()
	}
}

// readRaftGroup reads the group header that follows protoRaft: a 2-byte
// big-endian length and the name. It reads exactly those bytes, so the
// Raft stream that follows is left untouched.
func readRaftGroup(r io.Reader) (string, error) {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", fmt.Errorf("reading group header: %w", err)
	}
	size := binary.BigEndian.Uint16(n[:])
	if size == 0 {
		return "", errors.New("empty group name")
	}
	name := make([]byte, size)
	if _, err := io.ReadFull(r, name); err != nil {
		return "", fmt.Errorf("reading group name: %w", err)
	}
	return string(name), nil
}

// serveClient runs the client RPC protocol on c until it breaks or the Mux
// closes: each request runs in its own goroutine, responses are written as
// they complete (matched to requests by correlation id).
func (m *Mux) serveClient(c net.Conn, h Handler, log *slog.Logger) {
	p := peer{addr: c.RemoteAddr(), node: true}
	if tc, ok := c.(*tls.Conn); ok {
		p.node = nodeCert(tc)
	}
	ctx, cancel := context.WithCancel(context.WithValue(m.ctx, peerKey{}, p))
	var wg sync.WaitGroup
	defer func() {
		// Close first (as in Mux.Close), then cancel the handlers and wait
		// for them, so none outlives the connection and Close can wait for
		// all of them through m.wg.
		m.drop(c)
		cancel()
		wg.Wait()
	}()

	br := bufio.NewReaderSize(c, 64<<10)
	w := &frameWriter{c: c}
	slots := make(chan struct{}, maxInFlight)
	order := newOrderChain()
	for {
		f, size, err := m.readRequest(ctx, c, br, w, func() int { return len(slots) })
		if err != nil {
			switch {
			case errors.Is(err, errIdle):
				log.Info("closing idle client connection", "idle_timeout", m.idleTimeout)
			case isTimeout(err):
				log.Warn("closing client connection: frame not completed in time", "frame_timeout", m.frameTimeout)
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, context.Canceled):
				log.Debug("client connection closed")
			case errors.Is(err, ErrFrameTooLarge), errors.Is(err, ErrMalformedFrame):
				log.Warn("closing client connection: bad frame", "err", err)
			default:
				log.Debug("client connection broken", "err", err)
			}
			return
		}
		if f.Kind != KindRequest {
			m.inflight.release(size)
			log.Warn("closing client connection: expected a request frame", "kind", f.Kind, "id", f.ID)
			return
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			m.inflight.release(size)
			return
		}
		rctx, t := ctx, (*turn)(nil)
		if m.ordered[f.Method] {
			t = order.next()
			rctx = context.WithValue(ctx, turnKey{}, t)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			defer m.inflight.release(size)
			if t != nil {
				defer t.leave()
			}
			m.serveRequest(rctx, c, w, h, f, log)
		}()
	}
}

// errIdle ends a client connection that sent nothing for the idle timeout
// while none of its requests was in progress.
var errIdle = errors.New("idle connection")

// readRequest reads the next request frame under the connection deadlines
// and takes its size from the node-wide in-flight bytes (the caller
// releases them once the request is answered). busy counts the
// connection's requests in progress: while there are some, the connection
// is not idle. Requests over their method's cap are answered
// with an error and skipped here, without buffering them.
func (m *Mux) readRequest(ctx context.Context, c net.Conn, br *bufio.Reader, w *frameWriter, busy func() int) (Frame, int64, error) {
	for {
		// Idle: wait for the first byte of the next frame.
		_ = c.SetReadDeadline(time.Now().Add(m.idleTimeout))
		if _, err := br.Peek(1); err != nil {
			if isTimeout(err) {
				if busy() > 0 {
					continue
				}
				return Frame{}, 0, errIdle
			}
			if err == io.EOF {
				return Frame{}, 0, io.EOF
			}
			return Frame{}, 0, fmt.Errorf("transport: read frame length: %w", err)
		}
		// A frame has begun: it must be complete within the frame timeout.
		_ = c.SetReadDeadline(time.Now().Add(m.frameTimeout))
		n, err := readFrameLen(br, m.maxFrame)
		if err != nil {
			return Frame{}, 0, noEOF(err)
		}
		if refused, err := m.overMethodLimit(br, n); err != nil {
			return Frame{}, 0, noEOF(err)
		} else if refused != nil {
			if err := w.write(refused); err != nil {
				return Frame{}, 0, fmt.Errorf("transport: write refusal: %w", err)
			}
			if _, err := br.Discard(n); err != nil {
				return Frame{}, 0, noEOF(err)
			}
			continue
		}
		// Wait for room before buffering the body; the connection is not
		// read meanwhile, which pushes back on the client through TCP.
		if err := m.inflight.acquire(ctx, int64(n)); err != nil {
			return Frame{}, 0, err
		}
		_ = c.SetReadDeadline(time.Now().Add(m.frameTimeout))
		f, err := readFrameBody(br, n)
		if err != nil {
			m.inflight.release(int64(n))
			return Frame{}, 0, err
		}
		return f, int64(n), nil
	}
}

// overMethodLimit peeks at the envelope of a frame of n bytes and, when
// its method has a cap below n, returns the encoded error reply.
func (m *Mux) overMethodLimit(br *bufio.Reader, n int) ([]byte, error) {
	if len(m.methodMax) == 0 {
		return nil, nil
	}
	var (
		id     uint64
		method Method
		err    error
	)
	for k := 1; ; k++ {
		if k > n || k > maxHeadLen {
			return nil, nil // malformed: the full decode explains it
		}
		var head []byte
		if head, err = br.Peek(k); err != nil {
			return nil, err
		}
		id, method, err = parseRequestHead(head)
		if err == nil {
			break
		}
		if !errors.Is(err, errNeedMore) {
			return nil, nil
		}
	}
	limit, ok := m.methodMax[method]
	if !ok || n <= limit {
		return nil, nil
	}
	code := ErrInvalidRequest
	if method == MethodProduce {
		code = ErrRecordTooLarge
	}
	buf, err := appendFrame(nil, Frame{ID: id, Method: method, Kind: KindResponse,
		Err: Errorf(code, "%s request of %d bytes exceeds the %d-byte limit", method, n, limit)})
	if err != nil {
		return nil, err
	}
	m.log.Debug("refusing oversized request unread", "method", method, "bytes", n, "limit", limit)
	return buf, nil
}

// serveRequest runs the handler for one request and writes its response.
func (m *Mux) serveRequest(ctx context.Context, c net.Conn, w *frameWriter, h Handler, f Frame, log *slog.Logger) {
	resp := Frame{ID: f.ID, Method: f.Method, Kind: KindResponse}
	v, err := callHandler(ctx, h, f, log)
	if err == nil {
		resp.Body, err = msgpack.Marshal(v)
		if err != nil {
			err = Errorf(ErrUnknown, "encode %s response: %v", f.Method, err)
		}
	}
	if err != nil {
		resp.Err = wireError(err)
	}

	buf, err := appendFrame(nil, resp)
	if err == nil && len(buf)-4 > m.maxFrame {
		err = fmt.Errorf("%s response of %d bytes exceeds the %d-byte frame limit", f.Method, len(buf)-4, m.maxFrame)
	}
	if err != nil {
		log.Error("cannot send response", "method", f.Method, "err", err)
		resp.Body, resp.Err = nil, Errorf(ErrUnknown, "%v", err)
		if buf, err = appendFrame(nil, resp); err != nil {
			// Only an absurdly long error message gets here.
			_ = c.Close()
			return
		}
	}
	if err := w.write(buf); err != nil {
		// A failed or partial write leaves the stream unusable.
		log.Debug("closing client connection: write failed", "err", err)
		_ = c.Close()
	}
}

// callHandler runs h, turning a panic into an ErrUnknown reply.
func callHandler(ctx context.Context, h Handler, f Frame, log *slog.Logger) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("handler panicked", "method", f.Method, "panic", r, "stack", string(debug.Stack()))
			v, err = nil, Errorf(ErrUnknown, "internal error: %s handler panicked: %v", f.Method, r)
		}
	}()
	return h(ctx, f.Method, f.Body)
}

// wireError converts a handler error to the *Error sent to the client.
func wireError(err error) *Error {
	var e *Error
	if errors.As(err, &e) && e != nil {
		return e
	}
	return &Error{Code: ErrUnknown, Message: err.Error()}
}

// frameWriter serialises whole-frame writes on a connection.
type frameWriter struct {
	mu sync.Mutex
	c  net.Conn
}

func (w *frameWriter) write(buf []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := w.c.Write(buf)
	return err
}
