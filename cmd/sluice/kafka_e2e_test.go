package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/transport"
)

// kafkaProcCluster is a procCluster whose nodes also listen for Kafka
// clients.
type kafkaProcCluster struct {
	*procCluster
}

func startKafkaProcCluster(t *testing.T, size int) *kafkaProcCluster {
	t.Helper()
	return &kafkaProcCluster{startProcClusterWith(t, size, true)}
}

func (c *kafkaProcCluster) kgo(opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(c.kafka...), kgo.RetryTimeout(60 * time.Second)}, opts...)
	cl, err := kgo.NewClient(opts...)
	require.NoError(c.t, err)
	c.t.Cleanup(cl.Close)
	return cl
}

// nodeIndex maps a Kafka broker id (n1 -> 1) to the node's index.
func nodeIndex(id int32) int { return int(id) - 1 }

// partitionLeader asks Metadata for the partition's leader broker id.
func kafkaPartitionLeader(t *testing.T, cl *kgo.Client, topic string, p int32) int32 {
	t.Helper()
	var leader int32 = -1
	require.Eventually(t, func() bool {
		req := kmsg.NewPtrMetadataRequest()
		tn := topic
		req.Topics = []kmsg.MetadataRequestTopic{{Topic: &tn}}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || len(resp.Topics) != 1 || int(p) >= len(resp.Topics[0].Partitions) {
			return false
		}
		leader = resp.Topics[0].Partitions[p].Leader
		return leader >= 0
	}, 30*time.Second, 50*time.Millisecond)
	return leader
}

func coordinatorIndex(t *testing.T, cl *kgo.Client, group string) int {
	t.Helper()
	var idx int
	require.Eventually(t, func() bool {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey = group
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || resp.ErrorCode != 0 {
			return false
		}
		idx = nodeIndex(resp.NodeID)
		return true
	}, 30*time.Second, 50*time.Millisecond)
	return idx
}

// TestKafkaKillNine runs franz-go clients through kill -9 of a partition
// leader (idempotent produce: every acknowledged record exactly once, in
// order) and of the group coordinator (committed offsets survive).
func TestKafkaKillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	c := startKafkaProcCluster(t, 3)
	admin := c.kgo()
	ctx := context.Background()
	create := kmsg.NewPtrCreateTopicsRequest()
	for _, name := range []string{"idem", "grp"} {
		ct := kmsg.NewCreateTopicsRequestTopic()
		ct.Topic, ct.NumPartitions, ct.ReplicationFactor = name, 1, 3
		if name == "grp" {
			ct.NumPartitions = 3
		}
		create.Topics = append(create.Topics, ct)
	}
	create.TimeoutMillis = 30000
	cresp, err := create.RequestWith(ctx, admin)
	require.NoError(t, err)
	for _, ct := range cresp.Topics {
		require.Zero(t, ct.ErrorCode, "create %s: %v", ct.Topic, ct.ErrorMessage)
	}

	t.Run("idempotent produce across leader kill -9", func(t *testing.T) {
		p := c.kgo(kgo.DefaultProduceTopic("idem"), kgo.MaxBufferedRecords(200))
		var mu sync.Mutex
		acked := map[string]int64{}
		var wg sync.WaitGroup
		const total = 3000
		killed := make(chan struct{})
		leader := nodeIndex(kafkaPartitionLeader(t, admin, "idem", 0))
		for i := range total {
			if i == total/3 {
				go func() {
					c.kill(leader)
					close(killed)
				}()
			}
			wg.Add(1)
			p.Produce(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}, func(r *kgo.Record, err error) {
				defer wg.Done()
				if err == nil {
					mu.Lock()
					acked[string(r.Value)] = r.Offset
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		<-killed
		c.start(leader)
		require.NotEmpty(t, acked)

		cons := c.kgo(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"idem": {0: kgo.NewOffset().AtStart()}}))
		var got []string
		deadline := time.Now().Add(60 * time.Second)
		for len(got) < len(acked) && time.Now().Before(deadline) {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			for _, r := range cons.PollFetches(pctx).Records() {
				got = append(got, string(r.Value))
			}
			cancel()
		}
		seen := map[string]int{}
		last := -1
		for _, v := range got {
			seen[v]++
			n, _ := strconv.Atoi(v)
			assert.Greater(t, n, last, "record %s out of order", v)
			last = n
		}
		for v := range acked {
			assert.Equal(t, 1, seen[v], "acknowledged record %s present %d times", v, seen[v])
		}
		for v, k := range seen {
			assert.Equal(t, 1, k, "record %s stored %d times", v, k)
		}
		t.Logf("%d acknowledged, %d stored", len(acked), len(got))
	})

	t.Run("group consumer survives coordinator kill -9", func(t *testing.T) {
		p := c.kgo(kgo.DefaultProduceTopic("grp"))
		produce := func(from, n int) {
			var recs []*kgo.Record
			for i := from; i < from+n; i++ {
				recs = append(recs, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))})
			}
			require.NoError(t, p.ProduceSync(ctx, recs...).FirstErr())
		}
		produce(0, 300)
		newMember := func() *kgo.Client {
			return c.kgo(kgo.ConsumerGroup("survivor"), kgo.ConsumeTopics("grp"),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
				kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(300*time.Millisecond))
		}
		seen := map[string]bool{}
		consume := func(cl *kgo.Client, until int) {
			deadline := time.Now().Add(60 * time.Second)
			for len(seen) < until && time.Now().Before(deadline) {
				pctx, cancel := context.WithTimeout(ctx, time.Second)
				fs := cl.PollFetches(pctx)
				cancel()
				for _, r := range fs.Records() {
					seen[string(r.Value)] = true
				}
				if len(fs.Records()) > 0 {
					// Commit what was polled; a failure during the
					// failover is retried with the next poll.
					_ = cl.CommitUncommittedOffsets(ctx)
				}
			}
			require.Len(t, seen, until)
		}
		m := newMember()
		consume(m, 300)
		require.NoError(t, m.CommitUncommittedOffsets(ctx))
		coord := coordinatorIndex(t, admin, "survivor")
		c.kill(coord)
		produce(300, 100)
		consume(m, 400)
		require.Eventually(t, func() bool { return m.CommitUncommittedOffsets(ctx) == nil }, 30*time.Second, 200*time.Millisecond)
		m.Close()
		c.start(coord)

		// A new member resumes from the committed offsets: nothing before
		// them comes back.
		produce(400, 50)
		seen = map[string]bool{}
		m2 := newMember()
		consume(m2, 50)
		for v := range seen {
			n, _ := strconv.Atoi(v)
			assert.GreaterOrEqual(t, n, 400, "record %s was committed before the restart but delivered again", v)
		}
	})
}

// python finds a Python 3 that has the given modules (Debian's packages
// install into the system interpreter).
func python(t *testing.T, modules ...string) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if _, err := exec.LookPath(py); err != nil {
			continue
		}
		args := []string{"-I", "-c", "import " + strings.Join(modules, ", ")}
		if exec.Command(py, args...).Run() == nil {
			return py
		}
	}
	t.Skipf("no python3 with %v: run `make deps` (installs python3-kafka and python3-confluent-kafka)", modules)
	return ""
}

func runPy(t *testing.T, py, script string, args ...string) string {
	t.Helper()
	cmd := exec.Command(py, append([]string{"-I", "-c", script}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	done := make(chan error, 1)
	require.NoError(t, cmd.Start())
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "python: %s", errb.String())
	case <-ctx.Done():
		cmd.Process.Kill()
		t.Fatalf("python timed out: %s", errb.String())
	}
	return out.String()
}

const kafkaPythonScript = `
import sys
from kafka import KafkaProducer, KafkaConsumer
servers, topic, mode, start, n = sys.argv[1].split(","), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
if mode == "produce":
    p = KafkaProducer(bootstrap_servers=servers, acks="all", retries=5)
    for i in range(start, start + n):
        p.send(topic, key=("k%d" % i).encode(), value=("v%d" % i).encode(), headers=[("h", b"py")])
    p.flush()
    p.close()
else:
    c = KafkaConsumer(topic, bootstrap_servers=servers, group_id="pygroup", auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=20000, session_timeout_ms=10000)
    got = 0
    for m in c:
        assert m.key.decode() == "k" + m.value.decode()[1:], m
        print(m.value.decode())
        got += 1
        if got == n:
            break
    c.commit()
    c.close()
`

const confluentScript = `
import sys
from confluent_kafka import Producer, Consumer
servers, topic, mode, start, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
if mode == "produce":
    p = Producer({"bootstrap.servers": servers, "enable.idempotence": True, "compression.type": "none"})
    errs = []
    for i in range(start, start + n):
        p.produce(topic, key=("k%d" % i).encode(), value=("v%d" % i).encode(), headers=[("h", b"ck")],
                  on_delivery=lambda err, msg: errs.append(err) if err else None)
    assert p.flush(30) == 0
    assert not errs, errs
else:
    c = Consumer({"bootstrap.servers": servers, "group.id": "ckgroup", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": 6000})
    c.subscribe([topic])
    got = 0
    import time
    deadline = time.time() + 60
    while got < n and time.time() < deadline:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        assert m.key().decode() == "k" + m.value().decode()[1:]
        assert m.headers() == [("h", b"ck")], m.headers()
        print(m.value().decode())
        got += 1
    c.commit(asynchronous=False)
    c.close()
`

// TestKafkaThirdPartyClients drives kcat, kafka-python and confluent-kafka
// against a cluster; each part skips when its tool is missing.
func TestKafkaThirdPartyClients(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	c := startKafkaProcCluster(t, 3)
	brokers := strings.Join(c.kafka, ",")
	values := func(out string) []string {
		var vs []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if l != "" {
				vs = append(vs, l)
			}
		}
		sort.Strings(vs)
		return vs
	}

	for _, tc := range []struct {
		name, script string
		modules      []string
	}{
		{"kafka-python", kafkaPythonScript, []string{"kafka"}},
		{"confluent-kafka", confluentScript, []string{"confluent_kafka"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			py := python(t, tc.modules...)
			topic := "py-" + tc.name
			runPy(t, py, tc.script, brokers, topic, "produce", "0", "100")
			first := values(runPy(t, py, tc.script, brokers, topic, "consume", "0", "100"))
			assert.Len(t, first, 100)
			runPy(t, py, tc.script, brokers, topic, "produce", "100", "20")
			// Restarted: resumes from the committed offsets.
			second := values(runPy(t, py, tc.script, brokers, topic, "consume", "0", "20"))
			var want []string
			for i := 100; i < 120; i++ {
				want = append(want, "v"+strconv.Itoa(i))
			}
			sort.Strings(want)
			assert.Equal(t, want, second)
		})
	}

	t.Run("kcat", func(t *testing.T) {
		if _, err := exec.LookPath("kcat"); err != nil {
			t.Skip("kcat missing: run `make deps`")
		}
		kcat := func(stdin string, args ...string) string {
			t.Helper()
			cmd := exec.Command("kcat", append([]string{"-b", brokers}, args...)...)
			cmd.Stdin = strings.NewReader(stdin)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			require.NoError(t, cmd.Run(), "kcat %v: %s", args, errb.String())
			return out.String()
		}
		var lines []string
		for i := range 500 {
			lines = append(lines, fmt.Sprintf("k%d:v%d", i, i))
		}
		kcat(strings.Join(lines, "\n")+"\n", "-P", "-t", "kc", "-K:")
		// Compressed batches are accepted and stored compressed.
		for _, codec := range []string{"gzip", "snappy", "lz4", "zstd"} {
			kcat(fmt.Sprintf("%s-1\n%s-2\n", codec, codec), "-P", "-t", "kc", "-z", codec)
		}
		md := kcat("", "-L", "-t", "kc")
		assert.Contains(t, md, "3 brokers")
		assert.Contains(t, md, `topic "kc" with 3 partitions`)
		assert.Regexp(t, `partition 0, leader [123], replicas: [123],[123],[123], isrs:`, md)
		out := kcat("", "-C", "-t", "kc", "-o", "beginning", "-e", "-q", "-f", "%k:%s\n")
		got := values(out)
		assert.Len(t, got, 508)
		assert.Contains(t, got, "k7:v7")
		assert.Contains(t, got, ":zstd-2")

		// Consumer groups: two, then three members share the partitions;
		// killing one moves its partitions.
		admin := c.kgo()
		type member struct {
			cmd *exec.Cmd
			out *syncBuffer
		}
		var members []*member
		startMember := func() *member {
			cmd := exec.Command("kcat", "-b", brokers, "-G", "kcg", "-q", "-u", "-o", "beginning",
				"-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500", "-f", "%s\n", "kc")
			m := &member{cmd: cmd, out: &syncBuffer{}}
			cmd.Stdout = m.out
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			members = append(members, m)
			return m
		}
		assignment := func() (map[int32]string, int) {
			req := kmsg.NewPtrDescribeGroupsRequest()
			req.Groups = []string{"kcg"}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			resp, err := req.RequestWith(ctx, admin)
			if err != nil || len(resp.Groups) != 1 || resp.Groups[0].State != "Stable" {
				return nil, 0
			}
			owner := map[int32]string{}
			for _, m := range resp.Groups[0].Members {
				var a kmsg.ConsumerMemberAssignment
				if a.ReadFrom(m.MemberAssignment) != nil {
					return nil, 0
				}
				for _, tp := range a.Topics {
					for _, p := range tp.Partitions {
						if prev, ok := owner[p]; ok {
							t.Errorf("partition %d assigned to %s and %s", p, prev, m.MemberID)
						}
						owner[p] = m.MemberID
					}
				}
			}
			return owner, len(resp.Groups[0].Members)
		}
		waitShared := func(want int) {
			require.Eventually(t, func() bool {
				owner, n := assignment()
				owners := map[string]bool{}
				for _, o := range owner {
					owners[o] = true
				}
				return n == want && len(owner) == 3 && len(owners) == min(want, 3)
			}, 60*time.Second, 200*time.Millisecond, "group did not settle with %d members", want)
		}
		startMember()
		startMember()
		waitShared(2)
		startMember()
		waitShared(3)
		// Every record consumed by someone.
		require.Eventually(t, func() bool {
			all := map[string]bool{}
			for _, m := range members {
				for _, l := range strings.Split(m.out.String(), "\n") {
					if l != "" {
						all[l] = true
					}
				}
			}
			return len(all) == 508
		}, 60*time.Second, 200*time.Millisecond)
		members[0].cmd.Process.Signal(syscall.SIGKILL)
		waitShared(2)

		// The same records and the same group, seen natively.
		native := values(c.run("consume", "kc", "--from-beginning", "--end", "--print-key"))
		assert.Len(t, native, 508)
		assert.Contains(t, native, "k7\tv7")
		var d transport.GroupDescription
		require.NoError(t, json.Unmarshal([]byte(c.run("group", "describe", "kcg", "--json")), &d))
		assert.Equal(t, "Stable", d.State)
		assert.Len(t, d.Members, 2)
		assert.Contains(t, c.run("group", "list"), "kcg")
	})
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
