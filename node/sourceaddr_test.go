package node

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/client"
)

// TestEveryConnectionLeavesFromOwnAddress runs three nodes on 127.0.0.41,
// .42 and .43 and watches the kernel's TCP table while they bootstrap,
// replicate, fail over and forward metadata requests: every connection to
// a node's port must come from one of the nodes' own addresses (or the
// test client's), never from 127.0.0.1, which the kernel would pick for a
// dialer that does not bind. A leak here lets traffic through the chaos
// suite's iptables partitions.
func TestEveryConnectionLeavesFromOwnAddress(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node test")
	}
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp")
	}
	const clientHost = "127.0.0.40"
	host := func(i int) string { return fmt.Sprintf("127.0.0.%d", 41+i) }
	for i := range 3 {
		l, err := net.Listen("tcp", net.JoinHostPort(host(i), "0"))
		if err != nil {
			t.Skipf("cannot bind %s: %v", host(i), err)
		}
		l.Close()
	}
	rehost := func(addr, h string) string {
		_, port, err := net.SplitHostPort(addr)
		require.NoError(t, err)
		return net.JoinHostPort(h, port)
	}

	var (
		mu         sync.Mutex
		leaks      = map[string]bool{}
		nodeToNode int
	)
	// The join list is built before tweak sees a config: node j's gossip
	// address is its j-th entry.
	ports := map[uint16]bool{}
	tweak := func(cfg *Config) {
		i, err := strconv.Atoi(strings.TrimPrefix(cfg.ID, "n"))
		require.NoError(t, err)
		cfg.Addr = rehost(cfg.Addr, host(i-1))
		cfg.GossipAddr = rehost(cfg.GossipAddr, host(i-1))
		join := make([]string, len(cfg.Join))
		for j, a := range cfg.Join {
			join[j] = rehost(a, host(j))
		}
		cfg.Join = join
		mu.Lock()
		defer mu.Unlock()
		for _, a := range []string{cfg.Addr, cfg.GossipAddr} {
			ports[netip.MustParseAddrPort(a).Port()] = true
		}
	}

	allowed := map[netip.Addr]bool{netip.MustParseAddr(clientHost): true}
	nodeHosts := map[netip.Addr]bool{}
	for i := range 3 {
		allowed[netip.MustParseAddr(host(i))] = true
		nodeHosts[netip.MustParseAddr(host(i))] = true
	}

	sample := func() {
		conns, err := readTCPTable("/proc/net/tcp")
		if err != nil {
			t.Errorf("read tcp table: %v", err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		isNodePort := func(a netip.AddrPort) bool { return nodeHosts[a.Addr()] && ports[a.Port()] }
		for _, c := range conns {
			// A connection to one of the nodes' ports, seen from either
			// side; the other end is the dialer.
			server, dialer := c.remote, c.local
			if isNodePort(c.local) {
				server, dialer = c.local, c.remote
			} else if !isNodePort(c.remote) {
				continue
			}
			if !allowed[dialer.Addr()] {
				leaks[dialer.String()+" -> "+server.String()] = true
			} else if nodeHosts[dialer.Addr()] {
				nodeToNode++
			}
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			sample()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	stopSampling := sync.OnceFunc(func() { close(stop); <-done })
	defer stopSampling()

	c := newTestCluster(t, 3, tweak)
	cl, err := client.New(client.Config{Servers: c.addrs(), LocalHost: clientHost, RequestTimeout: 5 * time.Second, Logger: testLogger(t)})
	require.NoError(t, err)
	defer cl.Close()
	c.createTopic(cl, "src", 3, 3)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	produce := func(n int) {
		for i := range n {
			_, err := cl.ProduceBatch(ctx, "src", int32(i%3), []client.Record{{Value: []byte(strconv.Itoa(i))}})
			require.NoError(t, err)
		}
	}
	produce(30)
	// A failover makes the survivors dial each other anew (votes, new
	// replication streams) and report leaders to the metadata group.
	c.stop(c.leaderIndex("src", 0))
	produce(30)
	time.Sleep(time.Second)
	stopSampling()

	mu.Lock()
	defer mu.Unlock()
	assert.Positive(t, nodeToNode, "no node-to-node connection was seen: the check saw nothing")
	assert.Empty(t, leaks, "connections to nodes from an address that is no node's own")
}

type tcpConn struct {
	local, remote netip.AddrPort
}

// readTCPTable parses the connections of a /proc/net/tcp file, listeners
// left out. Closed connections linger there in TIME_WAIT, so short-lived
// ones (memberlist's push/pull) are seen too.
func readTCPTable(path string) ([]tcpConn, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []tcpConn
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] == "0A" { // LISTEN
			continue
		}
		local, err := parseProcAddr(fields[1])
		if err != nil {
			return nil, err
		}
		remote, err := parseProcAddr(fields[2])
		if err != nil {
			return nil, err
		}
		out = append(out, tcpConn{local: local, remote: remote})
	}
	return out, sc.Err()
}

// parseProcAddr parses "0100007F:1F90": an IPv4 address as a host-order
// (little-endian here) hex word and a hex port.
func parseProcAddr(s string) (netip.AddrPort, error) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	if !ok || len(ipHex) != 8 {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	b, err := hex.DecodeString(ipHex)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad address %q: %w", s, err)
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port %q: %w", s, err)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{b[3], b[2], b[1], b[0]}), uint16(port)), nil
}
