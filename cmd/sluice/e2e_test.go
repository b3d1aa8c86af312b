package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

// procCluster runs real `sluice node` processes, so faults are real:
// kill -9 leaves whatever the process had not fsynced behind.
type procCluster struct {
	t      *testing.T
	bin    string
	dir    string
	rpc    []string
	gossip []string
	http   []string
	kafka  []string // Kafka listeners; empty: the nodes run none
	cmds   []*exec.Cmd
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sluice")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// freeAddr asks the kernel for a port free for TCP and UDP (gossip needs
// both) that this test has not handed out yet.
func freeAddr(t *testing.T, used map[string]bool) string {
	t.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		l.Close()
		if used[addr] {
			continue
		}
		if u, err := net.ListenPacket("udp", addr); err == nil {
			u.Close()
			used[addr] = true
			return addr
		}
	}
}

func startProcCluster(t *testing.T, size int) *procCluster {
	t.Helper()
	return startProcClusterWith(t, size, false)
}

// startProcClusterWith starts size nodes, with Kafka listeners when
// withKafka is set.
func startProcClusterWith(t *testing.T, size int, withKafka bool) *procCluster {
	t.Helper()
	c := &procCluster{t: t, bin: buildBinary(t), dir: t.TempDir(), cmds: make([]*exec.Cmd, size)}
	used := map[string]bool{}
	for range size {
		c.rpc = append(c.rpc, freeAddr(t, used))
		c.gossip = append(c.gossip, freeAddr(t, used))
		c.http = append(c.http, freeAddr(t, used))
		if withKafka {
			c.kafka = append(c.kafka, freeAddr(t, used))
		}
	}
	for i := range size {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.cmds {
			c.kill(i)
		}
		if t.Failed() {
			c.dumpLogs()
		}
	})
	c.run("cluster", "wait", "--nodes", strconv.Itoa(size), "--timeout", "60s")
	return c
}

func (c *procCluster) start(i int) {
	c.t.Helper()
	id := fmt.Sprintf("n%d", i+1)
	logf, err := os.OpenFile(filepath.Join(c.dir, id+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(c.t, err)
	args := []string{"node", "--id", id, "--data-dir", filepath.Join(c.dir, id),
		"--addr", c.rpc[i], "--gossip-addr", c.gossip[i], "--http-addr", c.http[i],
		"--join", strings.Join(c.gossip, ","), "--bootstrap-expect", strconv.Itoa(len(c.rpc))}
	if len(c.kafka) > 0 {
		args = append(args, "--kafka-addr", c.kafka[i])
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(c.t, cmd.Start())
	logf.Close()
	c.cmds[i] = cmd
}

// dumpLogs shows the end of every node's log in the test output.
func (c *procCluster) dumpLogs() {
	for i := range c.rpc {
		b, err := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("n%d.log", i+1)))
		if err != nil {
			continue
		}
		if len(b) > 8000 {
			b = b[len(b)-8000:]
		}
		c.t.Logf("--- n%d.log (tail) ---\n%s", i+1, b)
	}
}

func (c *procCluster) kill(i int) {
	if cmd := c.cmds[i]; cmd != nil {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		c.cmds[i] = nil
	}
}

// run executes the CLI against the cluster and returns its stdout.
func (c *procCluster) run(args ...string) string {
	c.t.Helper()
	return c.runIn("", args...)
}

func (c *procCluster) runIn(stdin string, args ...string) string {
	c.t.Helper()
	cmd := exec.Command(c.bin, append(args, "--server", strings.Join(c.rpc, ","))...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	require.NoError(c.t, err, "sluice %v: %s", args, errb.String())
	return out.String()
}

func (c *procCluster) leaderIndex(cl *client.Client, topic string) int {
	c.t.Helper()
	var idx int
	require.Eventually(c.t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := cl.Metadata(ctx, topic); err != nil {
			return false
		}
		id, _, err := cl.LeaderAddr(ctx, topic, 0)
		if err != nil || id == "" {
			return false
		}
		idx, err = strconv.Atoi(strings.TrimPrefix(id, "n"))
		idx--
		return err == nil && c.cmds[idx] != nil
	}, 30*time.Second, 50*time.Millisecond)
	return idx
}

func TestCLIAndKillLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	c := startProcCluster(t, 3)

	// The README's walk-through, through the CLI.
	c.run("topic", "create", "orders", "--partitions", "3", "--replicas", "3")
	var in strings.Builder
	for i := 1; i <= 5000; i++ {
		fmt.Fprintln(&in, i)
	}
	out := c.runIn(in.String(), "produce", "orders")
	require.Contains(t, out, "produced 5000 records")
	lines := strings.Fields(c.run("consume", "orders", "--from-beginning", "--max", "5000"))
	require.Len(t, lines, 5000)
	lines = strings.Fields(c.run("consume", "orders", "--group", "billing", "--from-beginning", "--max", "3000"))
	require.Len(t, lines, 3000)
	rest := strings.Fields(c.run("consume", "orders", "--group", "billing", "--from-beginning", "--end"))
	require.Len(t, rest, 2000, "the group resumes where it left off")
	seen := map[string]bool{}
	for _, l := range append(lines, rest...) {
		require.False(t, seen[l], "value %s twice", l)
		seen[l] = true
	}
	require.Contains(t, c.run("topic", "describe", "orders", "--json"), `"high_watermark"`)
	status := c.run("cluster", "status", "--json")
	require.Contains(t, status, `"metadata_leader"`)
	require.Contains(t, status, `"replica_status"`, "cluster status --json is the status page's view, with every replica's lag")

	// Concurrent producers while the leader of a partition is killed -9.
	cl, err := client.New(client.Config{Servers: c.rpc, RequestTimeout: 3 * time.Second})
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, cl.CreateTopic(ctx, transport.CreateTopicRequest{Name: "kill", Partitions: 1, ReplicationFactor: 3}))
	leader := c.leaderIndex(cl, "kill")

	var mu sync.Mutex
	acked := map[int64]string{}
	var wg sync.WaitGroup
	var killOnce sync.Once
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				v := fmt.Sprintf("w%d-%d", w, i)
				base, err := cl.ProduceBatch(ctx, "kill", 0, []client.Record{{Value: []byte(v)}})
				if err != nil {
					t.Errorf("produce %s: %v", v, err)
					return
				}
				mu.Lock()
				acked[base] = v
				n := len(acked)
				mu.Unlock()
				if n == 1000 {
					killOnce.Do(func() { c.kill(leader) })
				}
			}
		}()
	}
	wg.Wait()
	require.Len(t, acked, 3000)
	require.NotEqual(t, leader, c.leaderIndex(cl, "kill"))
	c.start(leader)

	// Every replica, the killed one included, holds every acknowledged
	// record exactly once at its acknowledged offset.
	for i := range 3 {
		id := fmt.Sprintf("n%d", i+1)
		var recs []client.Record
		require.Eventually(t, func() bool {
			recs = nil
			off := int64(0)
			for {
				res, err := cl.FetchFromNode(ctx, id, transport.FetchRequest{Topic: "kill", Partition: 0, Offset: off, MaxBytes: 1 << 20})
				if err != nil {
					return false
				}
				recs = append(recs, res.Records...)
				if len(res.Records) == 0 || off >= res.HighWatermark {
					break
				}
				off = res.Records[len(res.Records)-1].Offset + 1
			}
			return len(recs) >= 3000
		}, 60*time.Second, 200*time.Millisecond, "replica %s did not catch up", id)
		seen := map[string]bool{}
		for j, r := range recs {
			require.Equal(t, int64(j), r.Offset)
			require.False(t, seen[string(r.Value)], "duplicate %s on %s", r.Value, id)
			seen[string(r.Value)] = true
		}
		for off, v := range acked {
			require.Equal(t, v, string(recs[off].Value), "replica %s offset %d", id, off)
		}
	}
}
