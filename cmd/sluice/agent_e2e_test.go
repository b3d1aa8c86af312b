package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

// agentProc is a `sluice agent` process.
type agentProc struct {
	t    *testing.T
	c    *procCluster
	conf string
	name string
	log  string
	cmd  *exec.Cmd
	http string
}

func (a *agentProc) start() {
	a.t.Helper()
	logf, err := os.OpenFile(a.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(a.t, err)
	a.cmd = exec.Command(a.c.bin, "agent", "--conf", a.conf, "--name", a.name, "--http-addr", a.http,
		"--server", strings.Join(a.c.rpc, ","), "--log-level", "debug")
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	require.NoError(a.t, a.cmd.Start())
	logf.Close()
}

func (a *agentProc) kill9() {
	if a.cmd != nil {
		a.cmd.Process.Signal(syscall.SIGKILL)
		a.cmd.Wait()
		a.cmd = nil
	}
}

// term stops the agent with SIGTERM and checks it exits cleanly.
func (a *agentProc) term() {
	a.t.Helper()
	if a.cmd != nil {
		require.NoError(a.t, a.cmd.Process.Signal(syscall.SIGTERM))
		require.NoError(a.t, a.cmd.Wait(), "agent %s exits 0 after SIGTERM", a.name)
		a.cmd = nil
	}
}

// sendAcked sends numbered lines to the netcat source, each waiting for
// its "OK"; it returns the numbers acknowledged (accepted) before stop
// closes or the connection broke.
func sendAcked(t *testing.T, addr string, from, n int, afterEach func(i int)) []int {
	t.Helper()
	var conn net.Conn
	require.Eventually(t, func() bool {
		var err error
		conn, err = net.Dial("tcp", addr)
		return err == nil
	}, 30*time.Second, 50*time.Millisecond, "netcat source did not come up")
	defer conn.Close()
	r := bufio.NewReader(conn)
	var acked []int
	for i := from; i < from+n; i++ {
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := fmt.Fprintf(conn, "event-%06d\n", i); err != nil {
			break
		}
		line, err := r.ReadString('\n')
		if err != nil {
			break
		}
		require.Equal(t, "OK\n", line)
		acked = append(acked, i)
		if afterEach != nil {
			afterEach(i)
		}
	}
	return acked
}

// TestAgentProcesses runs `sluice agent` processes against a cluster of
// `sluice node` processes.
func TestAgentProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	c := startProcCluster(t, 3)
	t.Run("FileChannelSurvivesKill9", func(t *testing.T) { testFileChannelSurvivesKill9(t, c) })
	t.Run("ChainWithReceiverRestart", func(t *testing.T) { testChainWithReceiverRestart(t, c) })
}

// testFileChannelSurvivesKill9 runs netcat → file channel → sluice sink in
// a `sluice agent` process, kills it with -9 twice (once while the sink
// cannot deliver at all, once while it drains) and checks that every event
// the source acknowledged reaches the topic.
func testFileChannelSurvivesKill9(t *testing.T, c *procCluster) {
	used := map[string]bool{}
	ncAddr, httpAddr := freeAddr(t, used), freeAddr(t, used)
	host, port, _ := net.SplitHostPort(ncAddr)
	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.properties")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`
a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = netcat
a1.sources.r1.bind = %s
a1.sources.r1.port = %s
a1.sources.r1.channels = c1
a1.channels.c1.type = file
a1.channels.c1.checkpointDir = %s/ckpt
a1.channels.c1.dataDirs = %s/data
a1.channels.c1.minimumRequiredSpace = 1048576
a1.sinks.k1.type = sluice
a1.sinks.k1.topic = durable
a1.sinks.k1.batchSize = 20
a1.sinks.k1.channel = c1
`, host, port, dir, dir)), 0o644))
	a := newAgentProc(t, c, conf, "a1", httpAddr)

	// Phase 1: the topic does not exist, the sink is stuck: everything
	// accepted waits in the file channel when the agent is killed.
	a.start()
	accepted := sendAcked(t, ncAddr, 0, 200, nil)
	require.Len(t, accepted, 200)
	a.kill9()

	// Phase 2: the topic exists; kill -9 again while the sink drains and
	// the source accepts.
	cl, err := client.New(client.Config{Servers: c.rpc})
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	require.NoError(t, cl.CreateTopic(ctx, transport.CreateTopicRequest{Name: "durable", Partitions: 1, ReplicationFactor: 3}))
	require.NoError(t, waitForLeaders(ctx, cl, "durable"))
	a.start()
	accepted = append(accepted, sendAcked(t, ncAddr, 200, 300, func(i int) {
		if i == 350 {
			a.kill9()
		}
	})...)
	require.GreaterOrEqual(t, len(accepted), 350)
	a.start()
	accepted = append(accepted, sendAcked(t, ncAddr, 1000, 100, nil)...)

	dups := waitDelivered(t, cl, "durable", accepted)
	t.Logf("accepted %d events, all delivered; %d duplicates (at-least-once redelivery after kill -9)", len(accepted), dups)

	resp, err := http.Get("http://" + httpAddr + "/v1/agents")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), `"SOURCE.r1":{`)
	require.Contains(t, string(body), `"SINK.k1":{`)
}

func newAgentProc(t *testing.T, c *procCluster, conf, name, httpAddr string) *agentProc {
	a := &agentProc{t: t, c: c, conf: conf, name: name, log: conf + "." + name + ".log", http: httpAddr}
	t.Cleanup(func() {
		a.kill9()
		if t.Failed() {
			b, _ := os.ReadFile(a.log)
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("--- agent %s log (tail) ---\n%s", name, b)
		}
	})
	return a
}

// waitDelivered waits until every accepted event number is in partition 0
// of topic, and returns the number of duplicates (counted, not hidden).
func waitDelivered(t *testing.T, cl *client.Client, topic string, accepted []int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	want := map[string]bool{}
	for _, i := range accepted {
		want[fmt.Sprintf("event-%06d", i)] = true
	}
	var got map[string]int
	require.Eventually(t, func() bool {
		got = map[string]int{}
		off := int64(0)
		for {
			res, err := cl.Fetch(ctx, transport.FetchRequest{Topic: topic, Partition: 0, Offset: off, MaxBytes: 1 << 20})
			if err != nil {
				return false
			}
			for _, r := range res.Records {
				got[string(r.Value)]++
				off = r.Offset + 1
			}
			if len(res.Records) == 0 || off >= res.HighWatermark {
				break
			}
		}
		for k := range want {
			if got[k] == 0 {
				return false
			}
		}
		return true
	}, 2*time.Minute, 200*time.Millisecond, "accepted events missing from topic %s", topic)
	dups := 0
	for _, n := range got {
		dups += n - 1
	}
	return dups
}

// testChainWithReceiverRestart: agent A (netcat → file channel → avro
// sink) forwards to agent B (avro source → memory channel → sluice sink);
// B is stopped (SIGTERM: it drains its memory channel) and restarted
// mid-stream, and every event A accepted reaches the topic.
func testChainWithReceiverRestart(t *testing.T, c *procCluster) {
	used := map[string]bool{}
	ncAddr, avroAddr := freeAddr(t, used), freeAddr(t, used)
	ncHost, ncPort, _ := net.SplitHostPort(ncAddr)
	avHost, avPort, _ := net.SplitHostPort(avroAddr)
	dir := t.TempDir()
	conf := filepath.Join(dir, "chain.properties")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`
a.sources = r1
a.channels = c1
a.sinks = k1
a.sources.r1.type = netcat
a.sources.r1.bind = %s
a.sources.r1.port = %s
a.sources.r1.channels = c1
a.sources.r1.interceptors = i1
a.sources.r1.interceptors.i1.type = static
a.sources.r1.interceptors.i1.key = origin
a.sources.r1.interceptors.i1.value = edge
a.channels.c1.type = file
a.channels.c1.checkpointDir = %s/a/ckpt
a.channels.c1.dataDirs = %s/a/data
a.channels.c1.minimumRequiredSpace = 1048576
a.sinks.k1.type = avro
a.sinks.k1.hostname = %s
a.sinks.k1.port = %s
a.sinks.k1.batch-size = 20
a.sinks.k1.channel = c1

b.sources = r1
b.channels = c1
b.sinks = k1
b.sources.r1.type = avro
b.sources.r1.bind = %s
b.sources.r1.port = %s
b.sources.r1.channels = c1
b.channels.c1.type = memory
b.channels.c1.capacity = 10000
b.channels.c1.transactionCapacity = 1000
b.sinks.k1.type = sluice
b.sinks.k1.topic = chained
b.sinks.k1.channel = c1
`, ncHost, ncPort, dir, dir, avHost, avPort, avHost, avPort)), 0o644))
	cl, err := client.New(client.Config{Servers: c.rpc})
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, cl.CreateTopic(ctx, transport.CreateTopicRequest{Name: "chained", Partitions: 1, ReplicationFactor: 3}))
	require.NoError(t, waitForLeaders(ctx, cl, "chained"))

	a := newAgentProc(t, c, conf, "a", freeAddr(t, used))
	b := newAgentProc(t, c, conf, "b", freeAddr(t, used))
	b.start()
	a.start()
	accepted := sendAcked(t, ncAddr, 0, 400, func(i int) {
		if i == 150 {
			b.term()
		}
		if i == 250 {
			b.start()
		}
	})
	require.Len(t, accepted, 400)
	dups := waitDelivered(t, cl, "chained", accepted)
	t.Logf("chain: accepted %d events, all delivered; %d duplicates", len(accepted), dups)
	// The interceptor's header travelled both hops and is a record header.
	out := c.run("consume", "chained", "--from-beginning", "--headers", "--end", "--max", "1")
	require.Equal(t, "{origin=edge}\tevent-000000\n", out)
	b.term()
	a.term()
}
