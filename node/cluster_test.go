package node

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

// testCluster runs real nodes in this process on loopback ports the kernel
// picked.
type testCluster struct {
	t     testing.TB
	cfgs  []Config
	nodes []*Node
	mu    sync.Mutex
}

// freePort asks the kernel for a port free for TCP and UDP (memberlist
// needs both) that this cluster has not handed out yet.
func freePort(t testing.TB, used map[int]bool) int {
	t.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if used[port] {
			continue
		}
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			u.Close()
			used[port] = true
			return port
		}
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newTestCluster(t testing.TB, size int, tweak func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	dir := t.TempDir()
	used := map[int]bool{}
	gossip := make([]string, size)
	for i := range size {
		gossip[i] = "127.0.0.1:" + strconv.Itoa(freePort(t, used))
	}
	for i := range size {
		cfg := Config{
			ID:              fmt.Sprintf("n%d", i+1),
			DataDir:         filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			Addr:            "127.0.0.1:" + strconv.Itoa(freePort(t, used)),
			GossipAddr:      gossip[i],
			Join:            gossip,
			BootstrapExpect: size,
			Logger:          testLogger(t).With("test-node", i+1),
		}
		if tweak != nil {
			tweak(&cfg)
		}
		c.cfgs = append(c.cfgs, cfg)
	}
	c.nodes = make([]*Node, size)
	for i := range size {
		c.start(i)
	}
	t.Cleanup(c.closeAll)
	c.waitReady(size)
	return c
}

func (c *testCluster) start(i int) {
	c.t.Helper()
	n, err := Start(context.Background(), c.cfgs[i])
	require.NoError(c.t, err)
	c.mu.Lock()
	c.nodes[i] = n
	c.mu.Unlock()
}

func (c *testCluster) stop(i int) {
	c.t.Helper()
	c.mu.Lock()
	n := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if n != nil {
		require.NoError(c.t, n.Close())
	}
}

func (c *testCluster) closeAll() {
	for i := range c.nodes {
		c.mu.Lock()
		n := c.nodes[i]
		c.nodes[i] = nil
		c.mu.Unlock()
		if n != nil {
			n.Close()
		}
	}
}

func (c *testCluster) addrs() []string {
	var out []string
	for _, cfg := range c.cfgs {
		out = append(out, cfg.Addr)
	}
	return out
}

func (c *testCluster) client() *client.Client {
	c.t.Helper()
	cl, err := client.New(client.Config{Servers: c.addrs(), RequestTimeout: 5 * time.Second, Logger: testLogger(c.t)})
	require.NoError(c.t, err)
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// waitReady waits for a metadata leader that has registered every node.
func (c *testCluster) waitReady(size int) {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		for _, n := range c.nodes {
			if n == nil {
				continue
			}
			if n.isMetaLeader() {
				return len(n.meta.Brokers()) >= size
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond, "metadata group did not form")
}

func (c *testCluster) createTopic(cl *client.Client, name string, parts, rf int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(c.t, cl.CreateTopic(ctx, transport.CreateTopicRequest{Name: name, Partitions: parts, ReplicationFactor: rf}))
	require.Eventually(c.t, func() bool {
		md, err := cl.Metadata(ctx, name)
		if err != nil || len(md.Topics) != 1 {
			return false
		}
		for _, p := range md.Topics[0].Partitions {
			if p.Leader == "" {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "partitions got no leaders")
}

// leaderIndex returns the index of the node leading topic/partition.
func (c *testCluster) leaderIndex(topic string, partition int32) int {
	c.t.Helper()
	idx := -1
	require.Eventually(c.t, func() bool {
		for i, n := range c.nodes {
			if n == nil {
				continue
			}
			if r := n.replica(topic, partition); r != nil && r.isLeader() {
				idx = i
				return true
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond, "no leader for %s/%d", topic, partition)
	return idx
}

// readAll reads a partition from offset 0 to its end from one node (the
// leader when nodeID is "").
func readAll(t testing.TB, cl *client.Client, nodeID, topic string, partition int32) []client.Record {
	t.Helper()
	recs, err := tryReadAll(cl, nodeID, topic, partition)
	require.NoError(t, err)
	return recs
}

// replicaLen is the number of records a replica serves, -1 on error.
func replicaLen(cl *client.Client, nodeID, topic string, partition int32) int {
	recs, err := tryReadAll(cl, nodeID, topic, partition)
	if err != nil {
		return -1
	}
	return len(recs)
}

func tryReadAll(cl *client.Client, nodeID, topic string, partition int32) ([]client.Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []client.Record
	offset := int64(0)
	for {
		req := transport.FetchRequest{Topic: topic, Partition: partition, Offset: offset, MaxBytes: 1 << 20}
		var res *client.FetchResult
		var err error
		if nodeID == "" {
			res, err = cl.Fetch(ctx, req)
		} else {
			res, err = cl.FetchFromNode(ctx, nodeID, req)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, res.Records...)
		if len(res.Records) > 0 {
			offset = res.Records[len(res.Records)-1].Offset + 1
		}
		if offset >= res.HighWatermark {
			return out, nil
		}
	}
}
