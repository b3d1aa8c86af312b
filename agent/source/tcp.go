package source

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/sluice-io/sluice/agent/flow"
)

// tcpServer accepts connections on one or more listeners and serves each
// in its own goroutine; Stop closes the listeners and makes blocked
// reads return, so handlers finish their current batch and exit.
type tcpServer struct {
	b     *base
	addrs []string
	lns   []net.Listener
	serve func(c net.Conn, port int)

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// listen binds every address (all or nothing).
func (s *tcpServer) listen() error {
	s.conns = map[net.Conn]struct{}{}
	for _, a := range s.addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("source %s: listen on %s: %w", s.b.name, a, err)
		}
		s.lns = append(s.lns, ln)
	}
	for _, ln := range s.lns {
		s.b.spawn(func() { s.accept(ln) })
	}
	return nil
}

func (s *tcpServer) accept(ln net.Listener) {
	port := ln.Addr().(*net.TCPAddr).Port
	wait := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.b.stopping() {
				return
			}
			// EMFILE and the like: back off instead of spinning.
			s.b.log.Warn("accept failed", "err", err)
			if !s.b.sleep(wait) {
				return
			}
			wait = min(2*wait, time.Second)
			continue
		}
		wait = 5 * time.Millisecond
		s.mu.Lock()
		if s.b.stopping() {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.b.c.Add(flow.OpenConnectionCount, 1)
		s.b.spawn(func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
				s.b.c.Add(flow.OpenConnectionCount, -1)
			}()
			s.serve(c, port)
		})
	}
}

func (s *tcpServer) closeListeners() {
	for _, ln := range s.lns {
		ln.Close()
	}
}

// unblock is the Stop hook: no new connections, and reads in progress
// return at once (a handler in the middle of delivering a batch finishes
// it, acks it, and then sees the error).
func (s *tcpServer) unblock() {
	s.closeListeners()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.SetReadDeadline(time.Now())
	}
}

// Addrs returns the bound addresses (the real ports when port 0 asked the
// kernel).
func (s *tcpServer) Addrs() []net.Addr {
	out := make([]net.Addr, len(s.lns))
	for i, ln := range s.lns {
		out[i] = ln.Addr()
	}
	return out
}
