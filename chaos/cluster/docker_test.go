package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeDocker records docker commands and keeps just enough state: which
// containers are attached (running) and paused.
type fakeDocker struct {
	mu       sync.Mutex
	cmds     []string
	fail     map[string]int // command prefix → failures left (-1: always)
	failMsg  string
	networks string // `network ls` ids
	subnets  string // `network inspect` output
	running  map[string]chan struct{}
	paused   map[string]bool
}

func newFakeDocker() *fakeDocker {
	return &fakeDocker{fail: map[string]int{}, running: map[string]chan struct{}{}, paused: map[string]bool{}}
}

func (f *fakeDocker) run(_ context.Context, bin string, args ...string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if bin != "docker" {
		return "", fmt.Errorf("unexpected binary %s", bin)
	}
	cmd := strings.Join(args, " ")
	f.cmds = append(f.cmds, cmd)
	for p, n := range f.fail {
		if strings.HasPrefix(cmd, p) && n != 0 {
			f.fail[p] = n - 1
			msg := f.failMsg
			if msg == "" {
				msg = "injected failure"
			}
			return "", errors.New(msg)
		}
	}
	last := args[len(args)-1]
	switch {
	case cmd == "network ls --quiet":
		return f.networks, nil
	case strings.HasPrefix(cmd, "network inspect"):
		return f.subnets, nil
	case args[0] == "create":
		return "id-" + args[2] + "\n", nil
	case args[0] == "kill":
		ch := f.running[last]
		if ch == nil {
			return "", errors.New("Error response from daemon: Container " + last + " is not running")
		}
		delete(f.running, last)
		delete(f.paused, last)
		close(ch)
	case args[0] == "pause":
		f.paused[last] = true
	case args[0] == "unpause":
		if !f.paused[last] {
			return "", errors.New("Error response from daemon: Container " + last + " is not paused")
		}
		delete(f.paused, last)
	case args[0] == "rm":
		for _, name := range args[3:] {
			if ch := f.running[name]; ch != nil {
				delete(f.running, name)
				close(ch)
			}
		}
	case args[0] == "inspect":
		return "false 137 \n", nil
	}
	return "", nil
}

type fakeAttached struct{ done chan struct{} }

func (a fakeAttached) wait() error { <-a.done; return errors.New("container exit code 137") }
func (a fakeAttached) pid() int    { return 0 }

func (f *fakeDocker) attach(name string, out io.Writer) (attached, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, "start --attach "+name)
	ch := make(chan struct{})
	f.running[name] = ch
	fmt.Fprintf(out, "fake %s up\n", name)
	return fakeAttached{ch}, nil
}

// crash ends a container as if its process died on its own.
func (f *fakeDocker) crash(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.running[name])
	delete(f.running, name)
}

func (f *fakeDocker) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

func newFakeDockerCluster(t *testing.T, f *fakeDocker, subnet string) *Cluster {
	t.Helper()
	c, err := NewDocker(context.Background(), Config{Nodes: 3, Dir: t.TempDir(), StopTimeout: 2 * time.Second},
		DockerConfig{Image: "sluice-chaos:abc", RunID: "42-x", Subnet: subnet, User: "7:8", Run: f.run, attach: f.attach})
	require.NoError(t, err)
	return c
}

func TestChooseSubnet(t *testing.T) {
	pfx := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	p, err := chooseSubnet(nil, 5)
	require.NoError(t, err)
	assert.Equal(t, pfx("172.28.5.0/24"), p)

	p, err = chooseSubnet([]netip.Prefix{pfx("172.28.5.0/24"), pfx("172.28.6.128/25")}, 5)
	require.NoError(t, err)
	assert.Equal(t, pfx("172.28.7.0/24"), p, "skips overlapping subnets, /25 included")

	p, err = chooseSubnet(nil, 4100)
	require.NoError(t, err)
	assert.Equal(t, pfx("172.28.4.0/24"), p, "start wraps around 256")

	p, err = chooseSubnet([]netip.Prefix{pfx("172.28.255.0/24")}, 255)
	require.NoError(t, err)
	assert.Equal(t, pfx("172.28.0.0/24"), p)

	_, err = chooseSubnet([]netip.Prefix{pfx("172.16.0.0/12")}, 0)
	require.Error(t, err, "a network covering all of 172.28/16 leaves nothing")
}

func TestAddresses(t *testing.T) {
	s := netip.MustParsePrefix("172.28.9.0/24")
	ip, err := nodeIP(s, 1)
	require.NoError(t, err)
	assert.Equal(t, "172.28.9.11", ip.String())
	ip, err = nodeIP(s, 3)
	require.NoError(t, err)
	assert.Equal(t, "172.28.9.13", ip.String())
	_, err = nodeIP(s, 245)
	require.Error(t, err)
	assert.Equal(t, "172.28.9.1", gatewayIP(s).String())

	got := parsePrefixes("172.17.0.0/16 fd00::/64  10.1.2.3/8 junk\n")
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16"), netip.MustParsePrefix("10.0.0.0/8")}, got)

	assert.Equal(t, "sluice-chaos-7-ab", NetworkName("7-ab"))
	assert.Equal(t, "sluice-chaos-n2-7-ab", ContainerName("7-ab", "n2"))
	assert.Regexp(t, fmt.Sprintf(`^%d-[0-9a-f]{6}$`, os.Getpid()), NewRunID())
}

func TestNewDockerCommandLines(t *testing.T) {
	f := newFakeDocker()
	c := newFakeDockerCluster(t, f, "172.28.200.0/24")
	pid := fmt.Sprint(os.Getpid())
	host := hostname()
	labels := "--label io.sluice.chaos=1 --label io.sluice.chaos.run=42-x --label io.sluice.chaos.owner-pid=" + pid +
		" --label io.sluice.chaos.owner-host=" + host
	cmds := f.commands()
	require.Len(t, cmds, 4)
	assert.Equal(t, "network create --driver bridge --subnet 172.28.200.0/24 --gateway 172.28.200.1 "+labels+" sluice-chaos-42-x", cmds[0])

	n2 := c.Node("n2")
	assert.Equal(t, "172.28.200.12", n2.Host)
	assert.Equal(t, "172.28.200.12:7071", n2.RPCAddr)
	assert.Equal(t, "172.28.200.12:8081", n2.HTTPAddr)
	assert.Equal(t, "sluice-chaos-n2-42-x", n2.Container)
	assert.True(t, filepath.IsAbs(n2.DataDir))
	assert.DirExists(t, n2.DataDir)
	assert.Equal(t, "create --name sluice-chaos-n2-42-x --hostname n2 --network sluice-chaos-42-x --ip 172.28.200.12"+
		" --user 7:8 --volume "+n2.DataDir+":/data --tmpfs /tmp "+labels+" sluice-chaos:abc"+
		" node --id n2 --data-dir /data --addr 172.28.200.12:7071 --gossip-addr 172.28.200.12:7946 --http-addr 172.28.200.12:8081"+
		" --join 172.28.200.11:7946,172.28.200.13:7946 --bootstrap-expect 3", cmds[2])
	assert.Equal(t, []string{"172.28.200.11:7071", "172.28.200.12:7071", "172.28.200.13:7071"}, c.RPCAddrs())
	nw, ok := c.Network()
	require.True(t, ok)
	assert.Equal(t, DockerNetwork{Name: "sluice-chaos-42-x", Subnet: "172.28.200.0/24", Gateway: "172.28.200.1"}, nw)
	require.NoError(t, c.Shutdown(context.Background()))
}

func TestNewDockerPicksAFreeSubnet(t *testing.T) {
	f := newFakeDocker()
	want, err := chooseSubnet(nil, os.Getpid())
	require.NoError(t, err)
	// The first choice is taken by an existing network, the second is
	// grabbed by someone else between the listing and the creation.
	f.networks = "abc\ndef\n"
	f.subnets = "172.17.0.0/16 " + want.String() + "\n"
	f.fail["network create"] = 1
	f.failMsg = "Error response from daemon: Pool overlaps with other one on this address space"
	c := newFakeDockerCluster(t, f, "")
	nw, _ := c.Network()
	got := netip.MustParsePrefix(nw.Subnet)
	assert.False(t, got.Overlaps(want))
	creates := 0
	for _, cmd := range f.commands() {
		if strings.HasPrefix(cmd, "network create") {
			creates++
		}
	}
	assert.Equal(t, 2, creates)
	assert.Contains(t, f.commands(), "network inspect --format {{range .IPAM.Config}}{{.Subnet}} {{end}} abc def")
	require.NoError(t, c.Shutdown(context.Background()))
}

func TestNewDockerCleansUpOnError(t *testing.T) {
	f := newFakeDocker()
	f.fail["create --name sluice-chaos-n2-"] = -1
	_, err := NewDocker(context.Background(), Config{Nodes: 3, Dir: t.TempDir()},
		DockerConfig{Image: "img", RunID: "9-y", Subnet: "172.28.201.0/24", Run: f.run, attach: f.attach})
	require.Error(t, err)
	cmds := f.commands()
	assert.Equal(t, []string{"rm --force --volumes sluice-chaos-n1-9-y", "network rm sluice-chaos-9-y"}, cmds[len(cmds)-2:])

	_, err = NewDocker(context.Background(), Config{Nodes: 3, Dir: t.TempDir()}, DockerConfig{Run: f.run})
	require.Error(t, err, "no image")
	_, err = NewDocker(context.Background(), Config{Nodes: 3, Dir: t.TempDir()}, DockerConfig{Image: "i", Subnet: "10.0.0.0/28", Run: f.run})
	require.Error(t, err, "subnet too small")
}

func TestDockerFaultsAndTeardownOrder(t *testing.T) {
	ctx := context.Background()
	f := newFakeDocker()
	c := newFakeDockerCluster(t, f, "172.28.202.0/24")
	for _, id := range c.Nodes() {
		require.NoError(t, c.Start(ctx, id))
	}
	require.NoError(t, c.Start(ctx, "n1"), "starting a running node is a no-op")
	n1, n2, n3 := c.Node("n1").Container, c.Node("n2").Container, c.Node("n3").Container

	// Kill, then start again: the same container, data kept.
	require.NoError(t, c.Kill(ctx, "n1"))
	assert.False(t, c.Running("n1"))
	assert.Contains(t, f.commands(), "kill --signal KILL "+n1)
	require.NoError(t, c.Kill(ctx, "n1"), "killing a dead node is a no-op")
	require.NoError(t, c.Start(ctx, "n1"))
	assert.True(t, c.Running("n1"))

	require.NoError(t, c.Pause("n2"))
	assert.True(t, c.Paused("n2"))
	assert.Contains(t, f.commands(), "pause "+n2)
	require.NoError(t, c.Resume("n3"), "resuming a node that is not paused is harmless")

	require.NoError(t, c.Disconnect(ctx, "n3"))
	require.NoError(t, c.Connect(ctx, "n3"))
	assert.Contains(t, f.commands(), "network disconnect --force sluice-chaos-42-x "+n3)
	assert.Contains(t, f.commands(), "network connect --ip 172.28.202.13 sluice-chaos-42-x "+n3)
	assert.Empty(t, c.Crashes(), "harness-made exits are not crashes")

	// A container that ends on its own is a crash.
	f.crash(n3)
	require.Eventually(t, func() bool { return len(c.Crashes()) == 1 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, "n3", c.Crashes()[0].Node)

	mark := len(f.commands())
	require.NoError(t, c.Shutdown(ctx))
	after := f.commands()[mark:]
	pos := func(cmd string) int {
		i := slices.Index(after, cmd)
		require.GreaterOrEqual(t, i, 0, "missing %q in %v", cmd, after)
		return i
	}
	// Paused containers are unpaused before being stopped; containers go
	// before the network.
	assert.Less(t, pos("unpause "+n2), pos("kill --signal TERM "+n2))
	rm := pos("rm --force --volumes " + n1 + " " + n2 + " " + n3)
	assert.Less(t, pos("kill --signal TERM "+n1), rm)
	assert.Less(t, rm, pos("network rm sluice-chaos-42-x"))
	assert.Equal(t, len(after)-1, pos("network rm sluice-chaos-42-x"))
	for _, id := range c.Nodes() {
		assert.False(t, c.Running(id))
	}
	assert.Len(t, c.Crashes(), 1)

	mark = len(f.commands())
	require.NoError(t, c.Shutdown(ctx))
	assert.Len(t, f.commands(), mark, "a second shutdown does nothing")

	log, err := os.ReadFile(c.Node("n1").LogPath)
	require.NoError(t, err)
	assert.Contains(t, string(log), "start #2")
	assert.Contains(t, string(log), "fake "+n1+" up")
}

func TestProcessModeHasNoDockerNetwork(t *testing.T) {
	c, err := New(Config{Binary: os.Args[0], Nodes: 1, BaseHost: 230, Dir: t.TempDir()})
	require.NoError(t, err)
	_, ok := c.Network()
	assert.False(t, ok)
	require.Error(t, c.Disconnect(context.Background(), "n1"))
	require.Error(t, c.Connect(context.Background(), "n1"))
}

func TestRemoveStale(t *testing.T) {
	dead := 1 << 30 // above any pid_max
	var cmds []string
	run := func(_ context.Context, _ string, args ...string) (string, error) {
		cmd := strings.Join(args, " ")
		cmds = append(cmds, cmd)
		switch {
		case strings.HasPrefix(cmd, "ps "):
			return fmt.Sprintf("sluice-chaos-n1-old %d\nsluice-chaos-n1-mine %d\nweird\n", dead, os.Getpid()), nil
		case strings.HasPrefix(cmd, "network ls"):
			return fmt.Sprintf("sluice-chaos-old %d\nsluice-chaos-mine %d\n", dead, os.Getpid()), nil
		}
		return "", nil
	}
	removed, err := RemoveStale(context.Background(), "", run)
	require.NoError(t, err)
	assert.Equal(t, []string{"sluice-chaos-n1-old", "sluice-chaos-old"}, removed)
	assert.Contains(t, cmds, "rm --force --volumes sluice-chaos-n1-old")
	assert.Contains(t, cmds, "network rm sluice-chaos-old")
	assert.Contains(t, cmds[0], "--filter label=io.sluice.chaos --filter label=io.sluice.chaos.owner-host=", "only this host's objects")
	assert.True(t, PidAlive(os.Getpid()))
	assert.False(t, PidAlive(dead))
}

func TestIsStaticAndImage(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	require.NoError(t, os.WriteFile(src, []byte("package main\nfunc main() {}\n"), 0o644))
	static := filepath.Join(dir, "static")
	build := exec.Command("go", "build", "-o", static, src)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	ok, err := IsStatic(static)
	require.NoError(t, err)
	assert.True(t, ok)
	if sh, err := exec.LookPath("sh"); err == nil {
		if ok, err := IsStatic(sh); err == nil {
			assert.False(t, ok, "%s is dynamically linked on this system", sh)
		}
	}
	_, err = IsStatic(src)
	require.Error(t, err, "not an ELF file")

	tag, err := ImageTag(static)
	require.NoError(t, err)
	assert.Regexp(t, `^sluice-chaos:[0-9a-f]{12}$`, tag)

	// An image already there is reused; otherwise a FROM scratch build.
	var cmds []string
	var dockerfile string
	haveImage := false
	run := func(_ context.Context, bin string, args ...string) (string, error) {
		cmds = append(cmds, bin+" "+strings.Join(args, " "))
		if args[0] == "image" && !haveImage {
			return "", errors.New("no such image")
		}
		if args[0] == "build" {
			b, err := os.ReadFile(filepath.Join(args[len(args)-1], "Dockerfile"))
			require.NoError(t, err)
			dockerfile = string(b)
			assert.FileExists(t, filepath.Join(args[len(args)-1], "sluice"))
		}
		return "", nil
	}
	got, err := BuildImage(context.Background(), "", static, run)
	require.NoError(t, err)
	assert.Equal(t, tag, got)
	assert.Equal(t, "FROM scratch\nCOPY sluice /sluice\nENTRYPOINT [\"/sluice\"]\n", dockerfile)
	require.Len(t, cmds, 2)
	assert.True(t, strings.HasPrefix(cmds[1], "docker build --quiet --label io.sluice.chaos=1 --tag "+tag+" "), cmds[1])
	haveImage = true
	cmds = nil
	_, err = BuildImage(context.Background(), "", static, run)
	require.NoError(t, err)
	assert.Len(t, cmds, 1, "no build when the image exists")

	if sh, err := exec.LookPath("sh"); err == nil {
		if ok, _ := IsStatic(sh); !ok {
			_, err := BuildImage(context.Background(), "", sh, run)
			require.ErrorContains(t, err, "dynamically linked")
		}
	}
}

func TestDockerAvailable(t *testing.T) {
	ok := func(context.Context, string, ...string) (string, error) { return "20.10.24\n", nil }
	require.NoError(t, DockerAvailable(context.Background(), "", ok))
	down := func(context.Context, string, ...string) (string, error) {
		return "", errors.New("Cannot connect to the Docker daemon")
	}
	err := DockerAvailable(context.Background(), "", down)
	require.ErrorContains(t, err, "no Docker engine answers")
	empty := func(context.Context, string, ...string) (string, error) { return "\n", nil }
	require.Error(t, DockerAvailable(context.Background(), "", empty))
	require.ErrorContains(t, DockerAvailable(context.Background(), "/nonexistent/docker", nil), "not found")
}
