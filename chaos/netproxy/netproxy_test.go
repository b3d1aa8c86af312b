package netproxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// echoServer echoes every line back and reports each line it received and
// the address each connection came from.
type echoServer struct {
	ln    net.Listener
	lines chan string
	peers chan string
}

func newEchoServer(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &echoServer{ln: ln, lines: make(chan string, 1024), peers: make(chan string, 16)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.peers <- c.RemoteAddr().(*net.TCPAddr).IP.String()
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					s.lines <- strings.TrimSpace(line)
					if _, err := io.WriteString(c, line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return s
}

// start puts a proxy in front of the echo server as node "n1"; "n2" is a
// node on 127.0.0.2 with nothing behind its proxy.
func start(t *testing.T, s *echoServer) (*Proxy, string) {
	t.Helper()
	p, err := Start([]Endpoint{
		{ID: "n1", Listen: "127.0.0.1:0", Target: s.ln.Addr().String(), Host: "127.0.0.1"},
		{ID: "n2", Listen: "127.0.0.2:0", Target: "127.0.0.2:1", Host: "127.0.0.2"},
	}, 1, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p, p.Addrs()[0]
}

// dialFrom connects to addr from host, as node n2 would.
func dialFrom(t *testing.T, host, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(host)}}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, msg string) time.Duration {
	t.Helper()
	start := time.Now()
	_, err := io.WriteString(c, msg+"\n")
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, msg, strings.TrimSpace(line))
	return time.Since(start)
}

// quiet reports whether nothing arrives on r for d (a deadline, not a
// sleep: the read returns as soon as anything comes).
func quiet(t *testing.T, c net.Conn, r *bufio.Reader, d time.Duration) bool {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(d)))
	_, err := r.ReadString('\n')
	return errors.Is(err, os.ErrDeadlineExceeded)
}

func TestForwardsFromTheCallersAddress(t *testing.T) {
	s := newEchoServer(t)
	_, addr := start(t, s)
	c, r := dialFrom(t, "127.0.0.2", addr)
	roundTrip(t, c, r, "hello")
	require.Equal(t, "127.0.0.2", <-s.peers, "the node sees the caller's own address behind the proxy")
}

func TestDelayPerDirection(t *testing.T) {
	s := newEchoServer(t)
	p, addr := start(t, s)
	c, r := dialFrom(t, "127.0.0.2", addr)
	roundTrip(t, c, r, "warm")

	p.Set(map[Pair]Link{{"n2", "n1"}: {Delay: 150 * time.Millisecond}})
	require.GreaterOrEqual(t, roundTrip(t, c, r, "one way"), 150*time.Millisecond)

	p.Set(map[Pair]Link{{"n2", "n1"}: {Delay: 150 * time.Millisecond}, {"n1", "n2"}: {Delay: 100 * time.Millisecond}})
	require.GreaterOrEqual(t, roundTrip(t, c, r, "both ways"), 250*time.Millisecond)

	// Another source's link does not slow this one down: a client that is
	// no node is never shaped.
	p.Set(map[Pair]Link{{"n3", "n1"}: {Blackhole: true}})
	other, or := dialFrom(t, "127.0.0.1", addr)
	roundTrip(t, other, or, "client")
	roundTrip(t, c, r, "unshaped")
}

func TestJitterKeepsTheOrder(t *testing.T) {
	s := newEchoServer(t)
	p, addr := start(t, s)
	p.Set(map[Pair]Link{{"n2", "n1"}: {Delay: time.Millisecond, Jitter: 5 * time.Millisecond}, {"n1", "n2"}: {Jitter: 5 * time.Millisecond}})
	c, r := dialFrom(t, "127.0.0.2", addr)
	const n = 300
	go func() {
		for i := range n {
			if _, err := fmt.Fprintf(c, "%d\n", i); err != nil {
				return
			}
		}
	}()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
	for i := range n {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint(i), strings.TrimSpace(line))
	}
}

func TestOneWayBlackhole(t *testing.T) {
	s := newEchoServer(t)
	p, addr := start(t, s)
	c, r := dialFrom(t, "127.0.0.2", addr)
	roundTrip(t, c, r, "before")
	<-s.lines

	// n2→n1 cut: the node hears nothing, so nothing comes back.
	p.Set(map[Pair]Link{{"n2", "n1"}: {Blackhole: true}})
	_, err := io.WriteString(c, "lost for now\n")
	require.NoError(t, err)
	require.True(t, quiet(t, c, r, 300*time.Millisecond))
	require.Empty(t, s.lines)
	// Lifted: the stalled bytes go through, nothing is lost.
	p.Reset()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "lost for now", strings.TrimSpace(line))
	<-s.lines

	// n1→n2 cut: the node hears the request, its answer is held back.
	p.Set(map[Pair]Link{{"n1", "n2"}: {Blackhole: true}})
	_, err = io.WriteString(c, "heard\n")
	require.NoError(t, err)
	require.Equal(t, "heard", <-s.lines)
	require.True(t, quiet(t, c, r, 300*time.Millisecond))
	p.Reset()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	line, err = r.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "heard", strings.TrimSpace(line))

	// Close ends stalled connections too.
	p.Set(map[Pair]Link{{"n2", "n1"}: {Blackhole: true}})
	_, err = io.WriteString(c, "stalled\n")
	require.NoError(t, err)
	require.NoError(t, p.Close())
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = r.ReadString('\n')
	require.Error(t, err)
	require.False(t, errors.Is(err, os.ErrDeadlineExceeded), "closed, not timed out: %v", err)
}

func TestTargetDownClosesTheConnection(t *testing.T) {
	s := newEchoServer(t)
	p, _ := start(t, s)
	c, r := dialFrom(t, "127.0.0.1", p.Addrs()[1]) // n2's proxy: nothing listens behind it
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err := r.ReadString('\n')
	require.ErrorIs(t, err, io.EOF)
}
