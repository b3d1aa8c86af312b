package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/chaos/checker"
	"github.com/sluice-io/sluice/chaos/cluster"
)

func TestOptionsDefaultsDocker(t *testing.T) {
	o := Options{Binary: "x", Docker: true}
	require.NoError(t, o.defaults())
	assert.Equal(t, DockerPartitionsAuto, o.DockerPartitions)
	assert.Equal(t, fmt.Sprintf("SLUICE-CHAOS-D%d", os.Getpid()), o.Chain)
	assert.Empty(t, o.ClientHost, "the kernel picks the bridge's address")
	assert.LessOrEqual(t, len(o.Chain), 28, "iptables chain names are short")

	o = Options{Binary: "x", Docker: true, DockerPartitions: "carrier-pigeon"}
	require.Error(t, o.defaults())

	o = Options{Binary: "x"}
	require.NoError(t, o.defaults())
	assert.Equal(t, "SLUICE-CHAOS", o.Chain, "process mode unchanged")
	assert.Equal(t, "127.0.0.10", o.ClientHost)
}

func TestStaleChainPattern(t *testing.T) {
	m := staleChain.FindStringSubmatch("-A DOCKER-USER -j SLUICE-CHAOS-D1234")
	require.NotNil(t, m)
	assert.Equal(t, []string{"SLUICE-CHAOS-D1234", "1234"}, m[1:])
	for _, s := range []string{"-A DOCKER-USER -j RETURN", "-A DOCKER-USER -j SLUICE-CHAOS", "-A INPUT -j SLUICE-CHAOS-D12", "-A DOCKER-USER -j SLUICE-CHAOS-D12x"} {
		assert.Nil(t, staleChain.FindStringSubmatch(s), s)
	}
}

func TestResultsSayHowNodesRan(t *testing.T) {
	r := &Results{Name: "x", Verdict: checker.Pass, Options: Options{BaseHost: 11}}
	assert.Contains(t, r.Summary(), "processes on 127.0.0.11")
	r.Options.Docker = true
	r.Docker = &DockerInfo{Image: "sluice-chaos:abc", Network: cluster.DockerNetwork{Name: "sluice-chaos-1-a", Subnet: "172.28.3.0/24"}, Partitions: "iptables chain X"}
	s := r.Summary()
	assert.Contains(t, s, "Docker containers of sluice-chaos:abc on network sluice-chaos-1-a (172.28.3.0/24)")
	assert.Contains(t, s, "partitions by iptables chain X")
}

func TestDockerRequiresEngine(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no docker client at all
	_, err := Run(context.Background(), Options{Binary: "x", Docker: true, Store: t.TempDir()})
	require.ErrorContains(t, err, "--docker given but")
}

// TestChaosDockerShort runs about a minute of faults on three nodes in
// Docker containers (a killed leader, a paused node, an isolated node),
// then checks the history and that nothing of the run is left behind. It
// fails on any anomaly and on an inconclusive check.
func TestChaosDockerShort(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: skipped with -short")
	}
	if os.Getenv("SLUICE_SKIP_DOCKER") == "1" {
		t.Skip("chaos: SLUICE_SKIP_DOCKER=1")
	}
	if err := cluster.DockerAvailable(context.Background(), "", nil); err != nil {
		t.Skipf("chaos: %v", err)
	}
	opts := shortRun(t, "docker-short", "CGO_ENABLED=0")
	opts.Docker = true
	opts.TimeLimit = 60 * time.Second
	res := runShort(t, opts, 6*time.Minute)
	require.NotNil(t, res.Docker)
	assert.Regexp(t, `^sluice-chaos:[0-9a-f]{12}$`, res.Docker.Image)
	assert.Len(t, res.Faults, 3)
	log, err := os.ReadFile(filepath.Join(res.Dir, "n1.log"))
	require.NoError(t, err)
	assert.Contains(t, string(log), "level=INFO", "the node's own output is in its log")

	// Nothing of the run is left: containers, network, iptables chain.
	ps, err := exec.Command("docker", "ps", "--all", "--quiet", "--filter", fmt.Sprintf("label=%s=%d", cluster.LabelOwner, os.Getpid())).Output()
	require.NoError(t, err)
	assert.Empty(t, strings.TrimSpace(string(ps)), "containers left")
	require.Error(t, exec.Command("docker", "network", "inspect", res.Docker.Network.Name).Run(), "network left")
	if strings.HasPrefix(res.Docker.Partitions, "iptables") {
		require.Error(t, exec.Command("iptables", "-w", "5", "-n", "-L", res.Options.Chain).Run(), "chain left")
	}
}
