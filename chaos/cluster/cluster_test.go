package cluster

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/transport"
)

// TestMain doubles as a fake `sluice node` when SLUICE_FAKE_NODE is set: it
// serves /healthz and /v1/status on --http-addr until SIGTERM, and exits 3
// on GET /crash.
func TestMain(m *testing.M) {
	if os.Getenv("SLUICE_FAKE_NODE") == "1" {
		fakeNode()
		return
	}
	os.Exit(m.Run())
}

func fakeNode() {
	fs := flag.NewFlagSet("node", flag.ExitOnError)
	id := fs.String("id", "", "")
	httpAddr := fs.String("http-addr", "", "")
	fs.String("data-dir", "", "")
	fs.String("addr", "", "")
	fs.String("gossip-addr", "", "")
	fs.String("join", "", "")
	fs.Int("bootstrap-expect", 0, "")
	if err := fs.Parse(os.Args[2:]); err != nil {
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "fake node %s up\n", *id)
	term := map[string]uint64{"n1": 1, "n2": 2, "n3": 1}[*id]
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"status":"ok"}`) })
	mux.HandleFunc("/v1/status", func(w http.ResponseWriter, r *http.Request) {
		st := transport.StatusResponse{Node: *id}
		if *id != "n3" {
			st.Partitions = []transport.PartitionStatus{{Topic: "t", Partition: 0, Role: "leader", Term: term}}
		}
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("/crash", func(w http.ResponseWriter, r *http.Request) { os.Exit(3) })
	go func() { _ = http.ListenAndServe(*httpAddr, mux) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
}

func newTestCluster(t *testing.T) *Cluster {
	t.Helper()
	c, err := New(Config{Binary: os.Args[0], Nodes: 3, BaseHost: 201, Dir: t.TempDir(), Env: map[string][]string{"*": {"SLUICE_FAKE_NODE=1"}}, StopTimeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Shutdown(context.Background()) })
	return c
}

func TestClusterLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := newTestCluster(t)
	require.Equal(t, []string{"n1", "n2", "n3"}, c.Nodes())
	assert.Equal(t, "127.0.0.202", c.Host("n2"))
	assert.True(t, strings.HasPrefix(c.Node("n3").RPCAddr, "127.0.0.203:"))
	require.NoError(t, c.Launch(ctx))

	leaders, err := c.Leaders(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"t/0": "n2"}, leaders, "highest term wins")

	require.NoError(t, c.Pause("n2"))
	assert.True(t, c.Paused("n2"))
	assert.False(t, c.Healthy(ctx, "n2"))
	leaders, err = c.Leaders(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"t/0": "n1"}, leaders, "paused nodes are not asked")
	require.NoError(t, c.Resume("n2"))
	require.NoError(t, c.WaitHealthy(ctx, "n2"))

	require.NoError(t, c.Kill(ctx, "n1"))
	assert.False(t, c.Running("n1"))
	require.NoError(t, c.Kill(ctx, "n1"), "killing a dead node is a no-op")
	require.NoError(t, c.Start(ctx, "n1"))
	require.NoError(t, c.Start(ctx, "n1"), "starting a running node is a no-op")
	require.NoError(t, c.WaitHealthy(ctx, "n1"))

	// A paused node can be killed, and restarted.
	require.NoError(t, c.Pause("n3"))
	require.NoError(t, c.Restart(ctx, "n3"))
	assert.False(t, c.Paused("n3"))
	require.NoError(t, c.WaitHealthy(ctx, "n3"))
	assert.Empty(t, c.Crashes(), "harness-made exits are not crashes")

	// A crash is noticed.
	resp, err := http.Get("http://" + c.Node("n2").HTTPAddr + "/crash")
	if err == nil {
		resp.Body.Close()
	}
	require.Eventually(t, func() bool { return len(c.Crashes()) == 1 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, "n2", c.Crashes()[0].Node)
	assert.False(t, c.Running("n2"))
	require.Error(t, c.WaitHealthy(ctx, "n2"))

	// Shutdown resumes paused nodes and stops everyone.
	require.NoError(t, c.Pause("n1"))
	require.NoError(t, c.Shutdown(ctx))
	for _, id := range c.Nodes() {
		assert.False(t, c.Running(id), id)
	}
	assert.Len(t, c.Crashes(), 1)

	log, err := os.ReadFile(c.Node("n1").LogPath)
	require.NoError(t, err)
	assert.Contains(t, string(log), "start #2")
	assert.Contains(t, string(log), "fake node n1 up")
	assert.Contains(t, string(log), "exited")
}

func TestNewValidates(t *testing.T) {
	_, err := New(Config{Binary: "/nonexistent/sluice", Dir: t.TempDir()})
	require.Error(t, err)
	_, err = New(Config{Binary: os.Args[0], Nodes: 5, BaseHost: 252, Dir: t.TempDir()})
	require.Error(t, err)
}
