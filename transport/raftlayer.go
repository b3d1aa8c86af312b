package transport

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// RaftLayer is one Raft group's view of the Mux: a raft.StreamLayer whose
// Accept yields the connections peers opened for this group and whose Dial
// opens connections to this group on a peer's port. Use one per group with
// raft.NewNetworkTransportWithConfig.
type RaftLayer struct {
	m     *Mux
	group string

	// accept carries routed connections to Accept; unbuffered, so the Mux's
	// routing goroutine waits for Raft to take each one.
	accept    chan net.Conn
	done      chan struct{} // closed by Close
	closeOnce sync.Once

	// Guarded by m.mu.
	closed bool
	conns  map[net.Conn]struct{} // this group's open connections, both directions
}

var _ raft.StreamLayer = (*RaftLayer)(nil)

// RaftLayer registers a Raft group on the Mux. Connections whose header
// names the group are handed to the returned layer. It fails if the group
// is already registered (and not yet closed).
func (m *Mux) RaftLayer(group string) (*RaftLayer, error) {
	if group == "" || len(group) > math.MaxUint16 {
		return nil, fmt.Errorf("transport: raft group name must be 1..%d bytes, got %d", math.MaxUint16, len(group))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrMuxClosed
	}
	if _, ok := m.groups[group]; ok {
		return nil, fmt.Errorf("transport: raft group %q already registered", group)
	}
	l := &RaftLayer{
		m:      m,
		group:  group,
		accept: make(chan net.Conn),
		done:   make(chan struct{}),
		conns:  make(map[net.Conn]struct{}),
	}
	m.groups[group] = l
	return l, nil
}

// Group returns the Raft group name.
func (l *RaftLayer) Group() string { return l.group }

// Accept waits for the next connection a peer opened for this group. It
// fails with an error wrapping net.ErrClosed once the layer or Mux closes.
func (l *RaftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.accept:
		return c, nil
	case <-l.done:
		return nil, fmt.Errorf("transport: raft group %q: layer closed: %w", l.group, net.ErrClosed)
	case <-l.m.ctx.Done():
		return nil, fmt.Errorf("transport: raft group %q: mux closed: %w", l.group, net.ErrClosed)
	}
}

// Close unregisters the group (it may then be registered again), makes
// Accept fail and closes every connection of the group, in both directions.
// raft.NetworkTransport.Close calls it.
func (l *RaftLayer) Close() error {
	l.closeOnce.Do(func() {
		l.m.mu.Lock()
		if l.m.groups[l.group] == l {
			delete(l.m.groups, l.group)
		}
		l.closed = true
		conns := make([]net.Conn, 0, len(l.conns))
		for c := range l.conns {
			conns = append(conns, c)
		}
		l.m.mu.Unlock()

		close(l.done)
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return nil
}

// Addr returns the Mux's advertised address (its listening address unless
// configured otherwise). raft.NetworkTransport advertises it as this
// node's address unless a ServerAddressProvider is configured, so listen
// on a specific IP rather than 0.0.0.0.
func (l *RaftLayer) Addr() net.Addr { return l.m.AdvertisedAddr() }

// Dial connects to the peer's port from the Mux's LocalHost and writes the
// Raft header for this group. timeout bounds both connecting and writing
// the header.
func (l *RaftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	select {
	case <-l.done:
		return nil, fmt.Errorf("transport: raft group %q: dial %s: layer closed: %w", l.group, address, net.ErrClosed)
	default:
	}
	d := Dialer(l.m.localHost, timeout)
	// The Mux context aborts a slow connect when the node shuts down.
	c, err := d.DialContext(l.m.ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("transport: raft group %q: dial %s: %w", l.group, address, err)
	}
	if l.m.dialTLS != nil {
		c = tls.Client(c, clientTLS(l.m.dialTLS, string(address)))
	}
	if !l.m.track(c, l) {
		_ = c.Close()
		return nil, fmt.Errorf("transport: raft group %q: dial %s: %w", l.group, address, net.ErrClosed)
	}
	tc := l.wrap(c)
	if t, ok := c.(*tls.Conn); ok {
		ctx, cancel := l.m.ctx, context.CancelFunc(func() {})
		if timeout > 0 {
			ctx, cancel = context.WithTimeout(ctx, timeout)
		}
		err := t.HandshakeContext(ctx)
		cancel()
		if err != nil {
			_ = tc.Close()
			return nil, fmt.Errorf("transport: raft group %q: TLS handshake with %s: %w", l.group, address, err)
		}
	}

	hdr := make([]byte, 0, 3+len(l.group))
	hdr = append(hdr, protoRaft)
	hdr = binary.BigEndian.AppendUint16(hdr, uint16(len(l.group)))
	hdr = append(hdr, l.group...)
	if timeout > 0 {
		_ = c.SetWriteDeadline(time.Now().Add(timeout))
	}
	_, err = c.Write(hdr)
	_ = c.SetWriteDeadline(time.Time{})
	if err != nil {
		_ = tc.Close()
		return nil, fmt.Errorf("transport: raft group %q: send header to %s: %w", l.group, address, err)
	}
	return tc, nil
}

// wrap returns c with a Close that also untracks it from the Mux and l.
func (l *RaftLayer) wrap(c net.Conn) net.Conn {
	return &trackedConn{Conn: c, m: l.m, l: l}
}

// trackedConn is a Raft connection whose Close keeps the Mux's and the
// layer's connection sets accurate.
type trackedConn struct {
	net.Conn
	m    *Mux
	l    *RaftLayer
	once sync.Once
}

func (c *trackedConn) Close() error {
	var err error
	c.once.Do(func() {
		c.m.untrack(c.Conn, c.l)
		err = c.Conn.Close()
	})
	return err
}
