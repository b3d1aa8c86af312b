package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

// procIndex turns "n3" into 2.
func procIndex(t *testing.T, id string) int {
	t.Helper()
	i, err := strconv.Atoi(strings.TrimPrefix(id, "n"))
	require.NoError(t, err, "node id %q", id)
	return i - 1
}

// runErr runs the CLI and returns its stderr; the command must fail.
func (c *procCluster) runErr(args ...string) string {
	c.t.Helper()
	cmd := exec.Command(c.bin, append(args, "--server", strings.Join(c.rpc, ","))...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	require.Error(c.t, cmd.Run(), "sluice %v should fail", args)
	return errb.String()
}

// TestReassignSurvivesKills interrupts a replica move by kill -9 of the
// controller and of the node the new replica joins on, under a steady
// produce load. After both restart the move resumes (or rolls back), and
// every final replica holds every acknowledged record exactly once, in
// order.
func TestReassignSurvivesKills(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	c := startProcCluster(t, 4)
	cl, err := client.New(client.Config{Servers: c.rpc, RequestTimeout: 3 * time.Second})
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	require.NoError(t, cl.CreateTopic(ctx, transport.CreateTopicRequest{Name: "crash", Partitions: 1, ReplicationFactor: 3}))
	require.NoError(t, cl.WaitForLeaders(ctx, "crash"))

	// The load: one record at a time, as fast as acknowledged.
	var (
		mu       sync.Mutex
		acked    []string
		maybe    []string
		loadDone = make(chan struct{})
	)
	lctx, lcancel := context.WithCancel(ctx)
	go func() {
		defer close(loadDone)
		for i := 0; lctx.Err() == nil; i++ {
			v := "v" + strconv.Itoa(i)
			pctx, pcancel := context.WithTimeout(lctx, 30*time.Second)
			_, err := cl.ProduceBatch(pctx, "crash", 0, []client.Record{{Value: []byte(v)}})
			pcancel()
			mu.Lock()
			if err == nil {
				acked = append(acked, v)
			} else {
				maybe = append(maybe, v)
			}
			mu.Unlock()
		}
	}()
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	require.Eventually(t, func() bool { return ackedCount() >= 300 }, 30*time.Second, 20*time.Millisecond)

	md, err := cl.Metadata(ctx, "crash")
	require.NoError(t, err)
	controller := md.MetadataLeader
	require.NotEmpty(t, controller)
	st, err := cl.MoveStatus(ctx, "crash", 0)
	require.NoError(t, err)
	if !slices.Contains(st.Replicas, controller) {
		// Make the controller a replica, so that the move below changes
		// a group it is a member of.
		_, err := cl.Reassign(ctx, "crash", 0, append([]string{controller}, st.Replicas[1:]...))
		require.NoError(t, err)
		st, err = cl.WaitMove(ctx, "crash", 0)
		require.NoError(t, err)
	}
	origin := st.Replicas
	var joiner string
	for _, id := range []string{"n1", "n2", "n3", "n4"} {
		if !slices.Contains(origin, id) {
			joiner = id
		}
	}
	// The joiner becomes the preferred leader and one replica other than
	// the controller leaves.
	target := []string{joiner}
	dropped := false
	for _, id := range origin {
		if id != controller && !dropped {
			dropped = true
			continue
		}
		target = append(target, id)
	}
	t.Logf("controller %s, moving %v -> %v", controller, origin, target)
	before := ackedCount()
	_, err = cl.Reassign(ctx, "crash", 0, target)
	require.NoError(t, err)
	c.kill(procIndex(t, controller))
	c.kill(procIndex(t, joiner))
	c.start(procIndex(t, controller))
	c.start(procIndex(t, joiner))

	final, err := cl.WaitMove(ctx, "crash", 0)
	require.NoError(t, err)
	switch {
	case slices.Equal(final.Replicas, target):
		t.Log("the move resumed and finished")
	case slices.Equal(final.Replicas, origin):
		t.Log("the move rolled back")
	default:
		t.Fatalf("replicas %v are neither the origin %v nor the target %v", final.Replicas, origin, target)
	}
	require.Eventually(t, func() bool { return ackedCount() >= before+300 }, 60*time.Second, 20*time.Millisecond, "writes did not resume")
	lcancel()
	<-loadDone

	for _, id := range final.Replicas {
		var vals []string
		require.Eventually(t, func() bool {
			vals = vals[:0]
			off := int64(0)
			for {
				res, err := cl.FetchFromNode(ctx, id, transport.FetchRequest{Topic: "crash", Partition: 0, Offset: off, MaxBytes: 1 << 20})
				if err != nil {
					return false
				}
				for _, r := range res.Records {
					vals = append(vals, string(r.Value))
				}
				if len(res.Records) > 0 {
					off = res.Records[len(res.Records)-1].Offset + 1
				}
				if off >= res.HighWatermark || len(res.Records) == 0 {
					break
				}
			}
			return len(vals) >= len(acked)
		}, 30*time.Second, 100*time.Millisecond, "replica %s did not catch up", id)
		seen := map[string]bool{}
		var onlyAcked []string
		for _, v := range vals {
			require.False(t, seen[v], "%s holds %q twice", id, v)
			seen[v] = true
			if slices.Contains(maybe, v) {
				continue // outcome unknown to the producer: may or may not be stored
			}
			onlyAcked = append(onlyAcked, v)
		}
		require.Equal(t, acked, onlyAcked, "replica %s: acknowledged records lost or out of order", id)
	}

	// The CLI around moves: bad input is refused with a reason, a
	// balanced cluster plans nothing, listings have --json.
	require.Contains(t, c.runErr("topic", "reassign", "crash", "0", "--replicas", "n1,n1,n2"), "listed twice")
	require.Contains(t, c.runErr("topic", "reassign", "crash", "0", "--replicas", "n1,n2,n9"), "unknown node n9")
	require.Contains(t, c.runErr("topic", "reassign", "nope", "0", "--replicas", "n1,n2,n3"), "does not exist")
	require.Contains(t, c.runErr("topic", "reassign", "crash", "0", "--replicas", "n1,n2"), "replication factor")
	require.Equal(t, "[]\n", c.run("cluster", "moves", "--json"))
	out := c.run("topic", "reassign", "crash", "0", "--replicas", strings.Join(final.Replicas, ","), "--json")
	require.Contains(t, out, `"in_progress": false`)
	require.Contains(t, c.run("cluster", "rebalance", "--dry-run", "--json"), `"moves": []`)
	fmt.Fprintln(testWriter{t}, c.run("cluster", "rebalance"))
}

// testWriter logs what is written to it.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
