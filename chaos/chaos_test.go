package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/chaos/checker"
	"github.com/sluice-io/sluice/chaos/nemesis"
	"github.com/sluice-io/sluice/chaos/report"
)

// moduleRoot is the folder holding go.mod.
func moduleRoot(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	require.NoError(t, err)
	mod := strings.TrimSpace(string(out))
	require.NotEmpty(t, mod)
	return filepath.Dir(mod)
}

// TestChaosShort builds the binary and runs about two minutes of faults on
// three nodes: a killed leader, a paused node, an isolated node (when
// iptables is usable), a membership change and a topic lifecycle, each
// healed, then checks the history. It fails on
// any anomaly, and on an inconclusive check too.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: skipped with -short")
	}
	if os.Getenv("SLUICE_SKIP_CHAOS") == "1" {
		t.Skip("chaos: SLUICE_SKIP_CHAOS=1")
	}
	opts := shortRun(t, "short")
	opts.TimeLimit = 100 * time.Second
	opts.BaseHost = 21 // apart from a CLI run's 127.0.0.11+
	// One membership fault at least: a spare node joins, a partition
	// moves onto it while a node taking part is killed, the node leaves.
	// And one topic lifecycle fault (issue #7): a topic deleted and
	// re-created while a node is down or cut off; the checker finds no
	// acknowledged record of the new incarnation lost and none of the old
	// one served. Five kinds in five windows: each runs once.
	opts.Nemeses = append(opts.Nemeses, nemesis.Membership, nemesis.TopicLifecycle)
	res := runShort(t, opts, 8*time.Minute)
	require.Len(t, res.Faults, 5)
	for _, kind := range []string{nemesis.Membership, nemesis.TopicLifecycle} {
		require.True(t, slices.ContainsFunc(res.Faults, func(f report.FaultWindow) bool { return f.Fault == kind }), "no %s fault ran", kind)
	}
}

// shortRun gives the options both short runs share: three nodes, a killed
// leader, a paused node and an isolated node at 100 sends/s, results in a
// folder that stays behind when the test fails.
func shortRun(t *testing.T, name string, buildEnv ...string) Options {
	t.Helper()
	return Options{
		Name:       name,
		Store:      resultsStore(t, "sluice-chaos-"+name+"-"),
		Binary:     buildSluice(t, buildEnv...),
		Nodes:      3,
		Interval:   10 * time.Second,
		Recovery:   10 * time.Second,
		Nemeses:    []string{"kill-leader", "pause-random", "partition-one"},
		Rate:       100,
		Partitions: 3,
		Seed:       1,
	}
}

// runShort runs opts within limit and requires a passing verdict and the
// run folder's files.
func runShort(t *testing.T, opts Options, limit time.Duration) *Results {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	res, err := Run(ctx, opts)
	if res != nil {
		t.Log("\n" + res.Summary())
	}
	require.NoError(t, err)
	require.NotNil(t, res.Check)
	require.Equal(t, checker.Pass, res.Verdict, "see %s", res.Dir)
	for _, f := range []string{"history.jsonl", "results.json", "index.html", "n1.log", "n2.log", "n3.log"} {
		require.FileExists(t, filepath.Join(res.Dir, f))
	}
	return res
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{Binary: "bin/sluice"}
	require.NoError(t, o.defaults())
	require.True(t, filepath.IsAbs(o.Binary))
	require.Equal(t, 3, o.Nodes)
	require.Equal(t, 3, o.ReplicationFactor)
	require.Equal(t, []string{"partition", "kill", "pause"}, o.Nemeses)
	require.NotZero(t, o.Seed)

	o = Options{Binary: "x", Faults: 3, Interval: time.Second}
	require.NoError(t, o.defaults())
	require.Equal(t, 7*time.Second, o.TimeLimit)

	o = Options{Binary: "x", Nodes: 1}
	require.NoError(t, o.defaults())
	require.Equal(t, 1, o.ReplicationFactor)

	require.Error(t, (&Options{}).defaults())
	_, err := Run(context.Background(), Options{Binary: "x", Nemeses: []string{"earthquake"}})
	require.Error(t, err)
}

func TestSummaryMentionsAnomalies(t *testing.T) {
	r := &Results{Name: "x", Verdict: checker.Fail, Check: &checker.Result{
		Verdict: checker.Fail,
		Counts:  map[checker.Kind]int{checker.LostWrite: 2},
		Anomalies: []checker.Anomaly{
			{Kind: checker.LostWrite, Topic: "t", Partition: 1, Detail: "value \"7\" is missing"},
		},
	}, Notes: []string{"network partitions disabled"}}
	s := r.Summary()
	require.Contains(t, s, "FAIL")
	require.Contains(t, s, "lost-write=2")
	require.Contains(t, s, "value \"7\" is missing")
	require.Contains(t, s, "network partitions disabled")
	require.Equal(t, 2, r.AnomalyCount())
}

// builds caches the binaries the tests build, one per build set-up, for
// the whole test binary's life: the short runs share them.
var builds struct {
	sync.Mutex
	dir  string
	bins map[string]string
}

// buildSluice builds the sluice binary, with env added to the build's
// environment (a leading "-tags=..." element is a build flag instead),
// once per test binary.
func buildSluice(t *testing.T, env ...string) string {
	t.Helper()
	builds.Lock()
	defer builds.Unlock()
	key := strings.Join(env, " ")
	if bin, ok := builds.bins[key]; ok {
		return bin
	}
	if builds.bins == nil {
		dir, err := os.MkdirTemp("", "sluice-chaos-bin-")
		require.NoError(t, err)
		builds.dir, builds.bins = dir, map[string]string{}
	}
	bin := filepath.Join(builds.dir, fmt.Sprintf("sluice-%d", len(builds.bins)))
	args := []string{"build", "-o", bin}
	if len(env) > 0 && strings.HasPrefix(env[0], "-tags=") {
		args = append(args, env[0])
		env = env[1:]
	}
	build := exec.Command("go", append(args, "./cmd/sluice")...)
	build.Dir = moduleRoot(t)
	build.Env = append(os.Environ(), env...)
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	builds.bins[key] = bin
	return bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
	os.Exit(code)
}

// resultsStore makes a results folder that stays behind when the test
// fails, for the post-mortem.
func resultsStore(t *testing.T, prefix string) string {
	t.Helper()
	store, err := os.MkdirTemp("", prefix)
	require.NoError(t, err)
	t.Cleanup(func() {
		if !t.Failed() {
			_ = os.RemoveAll(store)
		}
	})
	return store
}
