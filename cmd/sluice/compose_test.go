package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

// composeCmd finds the Compose tool: the docker plugin or the standalone v1.
func composeCmd() ([]string, bool) {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}, true
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}, true
	}
	return nil, false
}

// publishedPorts are the host ports docker-compose.yml publishes.
var publishedPorts = []int{7071, 7072, 7073, 8081, 8082, 8083, 9092, 9093, 9094}

// TestDockerComposeQuickstart runs the README's Docker quick start: the
// cluster of docker-compose.yml accepts writes through its published
// ports, survives `restart n2` without losing an acknowledged record, and
// `down -v` leaves no container, network or volume behind.
func TestDockerComposeQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts containers")
	}
	t.Parallel()
	if exec.Command("docker", "info").Run() != nil {
		t.Skip("no Docker engine answers")
	}
	compose, ok := composeCmd()
	if !ok {
		t.Skip("neither `docker compose` nor docker-compose is installed (make deps installs docker-compose)")
	}
	for _, p := range publishedPorts {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Skipf("port %d is taken (a local cluster running?): the compose file publishes fixed ports", p)
		}
		l.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	tag := fmt.Sprintf("sluice-compose-test:%d", os.Getpid())
	project := fmt.Sprintf("sluicetest%d", os.Getpid())
	buildImage(ctx, t, root, tag)

	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, compose[0], append(append(compose[1:], "-p", project, "-f", filepath.Join(root, "docker-compose.yml")), args...)...)
		cmd.Env = append(os.Environ(), "SLUICE_IMAGE="+tag)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s %s: %s", strings.Join(compose, " "), strings.Join(args, " "), out)
		return string(out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			cmd := exec.Command(compose[0], append(append(compose[1:], "-p", project, "-f", filepath.Join(root, "docker-compose.yml")), "logs", "--no-color", "--tail", "60")...)
			cmd.Env = append(os.Environ(), "SLUICE_IMAGE="+tag)
			out, _ := cmd.CombinedOutput()
			t.Logf("compose logs:\n%s", out)
		}
		cmd := exec.Command(compose[0], append(append(compose[1:], "-p", project, "-f", filepath.Join(root, "docker-compose.yml")), "down", "-v", "--remove-orphans", "-t", "5")...)
		cmd.Env = append(os.Environ(), "SLUICE_IMAGE="+tag)
		_ = cmd.Run()
		_ = exec.Command("docker", "rmi", "-f", tag).Run()
	})

	run("up", "-d")
	cl, err := client.New(client.Config{Servers: []string{"127.0.0.1:7071", "127.0.0.1:7072", "127.0.0.1:7073"}})
	require.NoError(t, err)
	defer cl.Close()

	require.Eventually(t, func() bool {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		err := cl.CreateTopic(rctx, transport.CreateTopicRequest{Name: "quickstart", Partitions: 1, ReplicationFactor: 3})
		return err == nil || strings.Contains(err.Error(), "exists")
	}, 90*time.Second, 500*time.Millisecond, "the compose cluster never accepted a topic")
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	require.NoError(t, cl.WaitForLeaders(wctx, "quickstart"))
	wcancel()

	produce := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			pctx, pcancel := context.WithTimeout(ctx, 60*time.Second)
			_, err := cl.ProduceBatch(pctx, "quickstart", 0, []client.Record{{Value: []byte(fmt.Sprintf("v%d", i))}})
			pcancel()
			require.NoError(t, err, "record %d", i)
		}
	}
	produce(0, 50)
	run("restart", "-t", "10", "n2")
	produce(50, 50)

	var got []string
	require.Eventually(t, func() bool {
		fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
		defer fcancel()
		res, err := cl.Fetch(fctx, transport.FetchRequest{Topic: "quickstart", Partition: 0, Offset: int64(len(got)), MaxRecords: 1000})
		if err != nil {
			return false
		}
		for _, r := range res.Records {
			got = append(got, string(r.Value))
		}
		return len(got) >= 100
	}, 60*time.Second, 200*time.Millisecond)
	for i, v := range got {
		require.Equal(t, fmt.Sprintf("v%d", i), v)
	}
	require.Len(t, got, 100)

	run("down", "-v", "-t", "10")
	for _, kind := range [][]string{{"ps", "-aq"}, {"network", "ls", "-q"}, {"volume", "ls", "-q"}} {
		args := append(kind, "--filter", "label=com.docker.compose.project="+project)
		out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
		require.NoError(t, err, "docker %v: %s", args, out)
		require.Empty(t, strings.TrimSpace(string(out)), "docker %v left behind", args)
	}
}

// buildImage builds the image `make image` builds, under tag.
func buildImage(ctx context.Context, t *testing.T, root, tag string) {
	t.Helper()
	dir := t.TempDir()
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, "sluice-static"), ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "static build: %s", out)
	args := []string{"build", "-q", "-t", tag, "-f", filepath.Join(root, "Dockerfile"), dir}
	if out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput(); err != nil {
		cmd := exec.CommandContext(ctx, "docker", args...)
		cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
		out2, err2 := cmd.CombinedOutput()
		require.NoError(t, err2, "docker build: %s / %s", out, out2)
	}
}
