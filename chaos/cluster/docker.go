package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Labels on everything Docker mode creates, so that leftovers of a harness
// that died can be found (and nothing else is ever touched).
const (
	LabelSuite = "io.sluice.chaos"
	LabelRun   = "io.sluice.chaos.run"
	LabelOwner = "io.sluice.chaos.owner-pid"
	// LabelHost is the harness's host name: pids are only compared on the
	// host (pid namespace, really) that made the objects.
	LabelHost = "io.sluice.chaos.owner-host"
)

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}

// Fixed ports inside each container: every container has its own address.
const (
	DockerRPCPort    = 7071
	DockerGossipPort = 7946
	DockerHTTPPort   = 8081
)

// Runner runs one command and returns its standard output; the error
// carries the standard error. Tests replace it.
type Runner func(ctx context.Context, name string, args ...string) (string, error)

// ExecRunner runs the command for real, bounded by ctx.
func ExecRunner(ctx context.Context, name string, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = &out
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// dockerTimeout bounds every docker command but the blocking ones.
const dockerTimeout = 60 * time.Second

// DockerConfig describes Docker mode.
type DockerConfig struct {
	// CLI is the docker client ["docker"].
	CLI string
	// Image the nodes run (see BuildImage); required.
	Image string
	// RunID names the network (sluice-chaos-RUNID) and the containers
	// (sluice-chaos-nN-RUNID) [<pid>-<random hex>].
	RunID string
	// Subnet is the network's IPv4 subnet [a free 172.28.X.0/24].
	Subnet string
	// User runs the nodes as uid:gid [the harness's own, so that it owns
	// and can remove what the nodes write to their bind-mounted data].
	User string
	// Run executes docker commands [ExecRunner].
	Run Runner

	// attach replaces `docker start --attach` in tests.
	attach func(name string, out io.Writer) (attached, error)
}

// attached follows one run of a container until it ends.
type attached interface {
	wait() error
	pid() int
}

// DockerAvailable checks that a Docker engine answers; the error says why
// not.
func DockerAvailable(ctx context.Context, cli string, run Runner) error {
	if cli == "" {
		cli = "docker"
	}
	if run == nil {
		if _, err := exec.LookPath(cli); err != nil {
			return fmt.Errorf("docker client not found: %w", err)
		}
		run = ExecRunner
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := run(ctx, cli, "info", "--format", "{{.ServerVersion}}")
	if err != nil {
		return fmt.Errorf("no Docker engine answers: %w", err)
	}
	if strings.TrimSpace(out) == "" {
		return errors.New("no Docker engine answers: docker info gave no server version")
	}
	return nil
}

// IsStatic reports whether the ELF executable at path needs no dynamic
// loader, i.e. runs in an image FROM scratch.
func IsStatic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	return len(libs) == 0, nil
}

// Dockerfile is the whole image: the static binary and nothing else, so
// nothing is ever pulled.
const Dockerfile = "FROM scratch\nCOPY sluice /sluice\nENTRYPOINT [\"/sluice\"]\n"

// ImageTag names the image of a binary by its content:
// sluice-chaos:<first 12 hex digits of its SHA-256>.
func ImageTag(binary string) (string, error) {
	f, err := os.Open(binary)
	if err != nil {
		return "", fmt.Errorf("image tag: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("image tag: %w", err)
	}
	return "sluice-chaos:" + hex.EncodeToString(h.Sum(nil))[:12], nil
}

// BuildImage builds (or finds, when one of that tag exists) the image of a
// static sluice binary, FROM scratch, and returns its tag. The image is
// kept: it is small, and the next run of the same binary reuses it.
func BuildImage(ctx context.Context, cli, binary string, run Runner) (string, error) {
	if cli == "" {
		cli = "docker"
	}
	if run == nil {
		run = ExecRunner
	}
	static, err := IsStatic(binary)
	if err != nil {
		return "", fmt.Errorf("build image: %w", err)
	}
	if !static {
		return "", fmt.Errorf("build image: %s is dynamically linked; an image FROM scratch needs a static binary (CGO_ENABLED=0 go build ./cmd/sluice)", binary)
	}
	tag, err := ImageTag(binary)
	if err != nil {
		return "", err
	}
	ictx, cancel := context.WithTimeout(ctx, dockerTimeout)
	_, err = run(ictx, cli, "image", "inspect", "--format", "{{.Id}}", tag)
	cancel()
	if err == nil {
		return tag, nil
	}
	dir, err := os.MkdirTemp("", "sluice-chaos-image-")
	if err != nil {
		return "", fmt.Errorf("build image: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := copyFile(binary, filepath.Join(dir, "sluice"), 0o755); err != nil {
		return "", fmt.Errorf("build image: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(Dockerfile), 0o644); err != nil {
		return "", fmt.Errorf("build image: %w", err)
	}
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	args := []string{"build", "--quiet", "--label", LabelSuite + "=1", "--tag", tag, dir}
	if _, err := run(bctx, cli, args...); err != nil {
		// A client whose BuildKit plugin is missing still has the classic
		// builder, which handles FROM scratch without pulling either.
		_, err2 := run(bctx, "env", append([]string{"DOCKER_BUILDKIT=0", cli}, args...)...)
		if err2 != nil {
			return "", fmt.Errorf("build image: %w", errors.Join(err, err2))
		}
	}
	return tag, nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// NewRunID makes a run id: the harness's pid and a random suffix.
func NewRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%d-%s", os.Getpid(), hex.EncodeToString(b[:]))
}

// NetworkName and ContainerName name what a run creates.
func NetworkName(runID string) string         { return "sluice-chaos-" + runID }
func ContainerName(runID, node string) string { return "sluice-chaos-" + node + "-" + runID }

// chooseSubnet picks the first 172.28.X.0/24, X counting up from start
// (mod 256), that overlaps none of taken.
func chooseSubnet(taken []netip.Prefix, start int) (netip.Prefix, error) {
	for k := 0; k < 256; k++ {
		x := (start + k) % 256
		if x < 0 {
			x += 256
		}
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 28, byte(x), 0}), 24)
		free := true
		for _, t := range taken {
			if t.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, errors.New("no free 172.28.X.0/24 subnet")
}

// nodeIP is node i's (1-based) address: .11, .12, ... of the subnet; .1 is
// the bridge (the host's side, and the harness's source address).
func nodeIP(subnet netip.Prefix, i int) (netip.Addr, error) {
	b := subnet.Masked().Addr().As4()
	last := 10 + i
	if last > 254 {
		return netip.Addr{}, fmt.Errorf("node %d does not fit in %s", i, subnet)
	}
	b[3] = byte(last)
	return netip.AddrFrom4(b), nil
}

func gatewayIP(subnet netip.Prefix) netip.Addr {
	b := subnet.Masked().Addr().As4()
	b[3] = 1
	return netip.AddrFrom4(b)
}

// parsePrefixes reads the subnets in a whitespace-separated list, ignoring
// what is not an IPv4 prefix.
func parsePrefixes(s string) []netip.Prefix {
	var out []netip.Prefix
	for _, f := range strings.Fields(s) {
		if p, err := netip.ParsePrefix(f); err == nil && p.Addr().Is4() {
			out = append(out, p.Masked())
		}
	}
	return out
}

// takenSubnets lists the subnets of every Docker network and of the host's
// interfaces.
func takenSubnets(ctx context.Context, cli string, run Runner) ([]netip.Prefix, error) {
	ids, err := run(ctx, cli, "network", "ls", "--quiet")
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	var taken []netip.Prefix
	if f := strings.Fields(ids); len(f) > 0 {
		out, err := run(ctx, cli, append([]string{"network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"}, f...)...)
		if err != nil {
			return nil, fmt.Errorf("inspect networks: %w", err)
		}
		taken = parsePrefixes(out)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
				taken = append(taken, p.Masked())
			}
		}
	}
	return taken, nil
}

// dockerRuntime runs each node as a container on the run's own network.
type dockerRuntime struct {
	c       *Cluster
	cli     string
	run     Runner
	runID   string
	network string
	subnet  netip.Prefix
	attach  func(name string, out io.Writer) (attached, error)

	mu         sync.Mutex
	netCreated bool
	containers []string // created, in order
	closed     bool
}

func (r *dockerRuntime) docker(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	defer cancel()
	return r.run(ctx, r.cli, args...)
}

func (r *dockerRuntime) labels() []string {
	return []string{
		"--label", LabelSuite + "=1",
		"--label", LabelRun + "=" + r.runID,
		"--label", LabelOwner + "=" + strconv.Itoa(os.Getpid()),
		"--label", LabelHost + "=" + hostname(),
	}
}

// createNetwork creates the run's bridge network on a free subnet; when
// another network grabs the subnet first it tries the next one.
func (r *dockerRuntime) createNetwork(ctx context.Context, fixed string) error {
	var taken []netip.Prefix
	if fixed == "" {
		var err error
		if taken, err = takenSubnets(ctx, r.cli, r.run); err != nil {
			return err
		}
	}
	var errs []error
	for try := 0; try < 8; try++ {
		var subnet netip.Prefix
		if fixed != "" {
			p, err := netip.ParsePrefix(fixed)
			if err != nil || !p.Addr().Is4() || p.Bits() > 24 {
				return fmt.Errorf("subnet %q: want an IPv4 prefix of /24 or wider", fixed)
			}
			subnet = p.Masked()
		} else {
			p, err := chooseSubnet(taken, os.Getpid())
			if err != nil {
				return errors.Join(append(errs, err)...)
			}
			subnet = p
		}
		args := append([]string{"network", "create", "--driver", "bridge",
			"--subnet", subnet.String(), "--gateway", gatewayIP(subnet).String()}, r.labels()...)
		_, err := r.docker(ctx, append(args, r.network)...)
		if err == nil {
			r.mu.Lock()
			r.netCreated, r.subnet = true, subnet
			r.mu.Unlock()
			return nil
		}
		errs = append(errs, err)
		if fixed != "" || !strings.Contains(strings.ToLower(err.Error()), "overlap") {
			break
		}
		taken = append(taken, subnet)
	}
	return fmt.Errorf("create network %s: %w", r.network, errors.Join(errs...))
}

// createArgs is the `docker create` command line of a node.
func (r *dockerRuntime) createArgs(n *Node, image, user string) []string {
	args := []string{"create",
		"--name", n.Container,
		"--hostname", n.ID,
		"--network", r.network,
		"--ip", n.Host,
		"--user", user,
		"--volume", n.DataDir + ":/data",
		"--tmpfs", "/tmp",
	}
	args = append(args, r.labels()...)
	for _, e := range append(append([]string(nil), r.c.cfg.Env["*"]...), r.c.cfg.Env[n.ID]...) {
		args = append(args, "--env", e)
	}
	args = append(args, image)
	return append(args, r.c.args(n, "/data")...)
}

func (r *dockerRuntime) start(n *Node, out *os.File) (instance, error) {
	a, err := r.attach(n.Container, out)
	if err != nil {
		return nil, err
	}
	return &containerInstance{rt: r, name: n.Container, attached: a}, nil
}

// attachCLI starts `docker start --attach`: it streams the container's
// output and ends when the container does, like a child process would.
func (r *dockerRuntime) attachCLI(name string, out io.Writer) (attached, error) {
	cmd := exec.Command(r.cli, "start", "--attach", name)
	cmd.Stdout = out
	cmd.Stderr = out
	// Own process group, so a ^C reaches the harness only (the client
	// would forward it to the container).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &cliAttach{rt: r, name: name, cmd: cmd}, nil
}

// close removes the containers, then the network (it cannot go while
// containers are attached). Idempotent.
func (r *dockerRuntime) close(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	var errs []error
	if len(r.containers) > 0 {
		if _, err := r.docker(ctx, append([]string{"rm", "--force", "--volumes"}, r.containers...)...); err != nil {
			errs = append(errs, fmt.Errorf("remove containers: %w", err))
		}
	}
	if r.netCreated {
		if _, err := r.docker(ctx, "network", "rm", r.network); err != nil {
			errs = append(errs, fmt.Errorf("remove network: %w", err))
		}
	}
	return errors.Join(errs...)
}

// containerInstance is one run of a node's container.
type containerInstance struct {
	rt   *dockerRuntime
	name string
	attached
}

// ignorable reports docker errors that mean "already in the wanted state".
func ignorable(err error, phrases ...string) bool {
	if err == nil {
		return true
	}
	msg := strings.ToLower(err.Error())
	for _, p := range phrases {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

func (ci *containerInstance) signal(sig syscall.Signal) error {
	ctx := context.Background()
	var err error
	switch sig {
	case syscall.SIGSTOP:
		// The freezer cgroup stops every process of the container at once.
		_, err = ci.rt.docker(ctx, "pause", ci.name)
	case syscall.SIGCONT:
		_, err = ci.rt.docker(ctx, "unpause", ci.name)
		if ignorable(err, "is not paused", "is not running") {
			err = nil
		}
	case syscall.SIGKILL, syscall.SIGTERM:
		s := "KILL"
		if sig == syscall.SIGTERM {
			s = "TERM"
		}
		_, err = ci.rt.docker(ctx, "kill", "--signal", s, ci.name)
		if ignorable(err, "is not running") {
			err = nil
		}
	default:
		err = fmt.Errorf("signal %s not supported in Docker mode", sig)
	}
	return err
}

// cliAttach is a `docker start --attach` client.
type cliAttach struct {
	rt   *dockerRuntime
	name string
	cmd  *exec.Cmd
}

func (ci *cliAttach) wait() error {
	werr := ci.cmd.Wait()
	// The client also ends when its connection to the engine breaks: ask
	// the engine whether the container really stopped.
	ctx := context.Background()
	state, err := ci.rt.docker(ctx, "inspect", "--format", "{{.State.Running}} {{.State.ExitCode}} {{.State.Error}}", ci.name)
	if err != nil {
		return errors.Join(werr, fmt.Errorf("inspect %s: %w", ci.name, err))
	}
	f := strings.Fields(state)
	if len(f) > 0 && f[0] == "true" {
		// Block until it does stop (no timeout: like a process's Wait).
		out, err := ci.rt.run(ctx, ci.rt.cli, "wait", ci.name)
		if err != nil {
			return fmt.Errorf("wait %s: %w", ci.name, err)
		}
		f = []string{"false", strings.TrimSpace(out)}
	}
	if len(f) >= 2 && f[1] != "0" {
		msg := "container exit code " + f[1]
		if len(f) > 2 {
			msg += ": " + strings.Join(f[2:], " ")
		}
		return errors.New(msg)
	}
	return werr
}

func (ci *cliAttach) pid() int { return ci.cmd.Process.Pid }

// NewDocker prepares a cluster whose nodes run in Docker containers of
// d.Image, each with a fixed address on a bridge network of the run's own
// and its data directory (Dir/data/nN) bind-mounted at /data. It creates
// the network and the containers, but starts nothing; Shutdown removes
// them. On error it removes what it made. cfg.Binary and cfg.BaseHost are
// not used.
func NewDocker(ctx context.Context, cfg Config, d DockerConfig) (*Cluster, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if d.Image == "" {
		return nil, errors.New("cluster: docker mode needs an image")
	}
	if cfg.Nodes > 244 {
		return nil, fmt.Errorf("cluster: %d nodes do not fit a /24", cfg.Nodes)
	}
	if d.CLI == "" {
		d.CLI = "docker"
	}
	if d.Run == nil {
		d.Run = ExecRunner
	}
	if d.RunID == "" {
		d.RunID = NewRunID()
	}
	if d.User == "" {
		d.User = fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
	}
	// Bind mounts need absolute paths.
	if cfg.Dir, err = filepath.Abs(cfg.Dir); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c := newCluster(cfg)
	rt := &dockerRuntime{c: c, cli: d.CLI, run: d.Run, runID: d.RunID, network: NetworkName(d.RunID), attach: d.attach}
	if rt.attach == nil {
		rt.attach = rt.attachCLI
	}
	c.rt = rt
	if err := rt.createNetwork(ctx, d.Subnet); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	fail := func(err error) (*Cluster, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dockerTimeout)
		defer cancel()
		return nil, errors.Join(fmt.Errorf("cluster: %w", err), rt.close(cctx))
	}
	for i := 1; i <= cfg.Nodes; i++ {
		ip, err := nodeIP(rt.subnet, i)
		if err != nil {
			return fail(err)
		}
		host := ip.String()
		id := fmt.Sprintf("n%d", i)
		n := &Node{
			ID:         id,
			Host:       host,
			RPCAddr:    net.JoinHostPort(host, strconv.Itoa(DockerRPCPort)),
			GossipAddr: net.JoinHostPort(host, strconv.Itoa(DockerGossipPort)),
			HTTPAddr:   net.JoinHostPort(host, strconv.Itoa(DockerHTTPPort)),
			DataDir:    filepath.Join(cfg.Dir, "data", id),
			LogPath:    filepath.Join(cfg.Dir, id+".log"),
			Container:  ContainerName(d.RunID, id),
		}
		if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
			return fail(err)
		}
		c.nodes = append(c.nodes, n)
		c.byID[id] = n
	}
	for _, n := range c.nodes {
		if _, err := rt.docker(ctx, rt.createArgs(n, d.Image, d.User)...); err != nil {
			return fail(fmt.Errorf("create container of %s: %w", n.ID, err))
		}
		rt.mu.Lock()
		rt.containers = append(rt.containers, n.Container)
		rt.mu.Unlock()
	}
	return c, nil
}

// DockerNetwork describes the run's network in Docker mode.
type DockerNetwork struct {
	Name    string `json:"name"`
	Subnet  string `json:"subnet"`
	Gateway string `json:"gateway"`
}

// Network returns the Docker network; ok is false in process mode.
func (c *Cluster) Network() (DockerNetwork, bool) {
	rt, ok := c.rt.(*dockerRuntime)
	if !ok {
		return DockerNetwork{}, false
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return DockerNetwork{Name: rt.network, Subnet: rt.subnet.String(), Gateway: gatewayIP(rt.subnet).String()}, true
}

// Disconnect takes a node's container off the run's network: it can reach
// no one and no one reaches it (Docker mode only).
func (c *Cluster) Disconnect(ctx context.Context, id string) error {
	rt, n, err := c.dockerNode(id)
	if err != nil {
		return err
	}
	_, err = rt.docker(ctx, "network", "disconnect", "--force", rt.network, n.Container)
	if ignorable(err, "is not connected") {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("disconnect %s: %w", id, err)
	}
	return nil
}

// Connect puts a disconnected node back on the network at its address
// (Docker mode only). Connecting a connected node is a no-op.
func (c *Cluster) Connect(ctx context.Context, id string) error {
	rt, n, err := c.dockerNode(id)
	if err != nil {
		return err
	}
	_, err = rt.docker(ctx, "network", "connect", "--ip", n.Host, rt.network, n.Container)
	if ignorable(err, "already exists in network", "already attached") {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("connect %s: %w", id, err)
	}
	return nil
}

func (c *Cluster) dockerNode(id string) (*dockerRuntime, *Node, error) {
	rt, ok := c.rt.(*dockerRuntime)
	if !ok {
		return nil, nil, errors.New("cluster: not in Docker mode")
	}
	n, err := c.node(id)
	return rt, n, err
}

// RemoveStale removes the containers and networks (labelled as the suite's)
// of harness processes that no longer exist, e.g. killed with SIGKILL
// before their teardown. It returns what it removed.
func RemoveStale(ctx context.Context, cli string, run Runner) ([]string, error) {
	if cli == "" {
		cli = "docker"
	}
	if run == nil {
		run = ExecRunner
	}
	ctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	defer cancel()
	host := "label=" + LabelHost + "=" + hostname()
	format := `{{.Names}} {{.Label "` + LabelOwner + `"}}`
	cs, err := run(ctx, cli, "ps", "--all", "--filter", "label="+LabelSuite, "--filter", host, "--format", format)
	if err != nil {
		return nil, fmt.Errorf("list stale containers: %w", err)
	}
	var removed []string
	var errs []error
	if names := deadOwners(cs); len(names) > 0 {
		if _, err := run(ctx, cli, append([]string{"rm", "--force", "--volumes"}, names...)...); err != nil {
			errs = append(errs, err)
		} else {
			removed = append(removed, names...)
		}
	}
	ns, err := run(ctx, cli, "network", "ls", "--filter", "label="+LabelSuite, "--filter", host, "--format", `{{.Name}} {{.Label "`+LabelOwner+`"}}`)
	if err != nil {
		return removed, errors.Join(append(errs, fmt.Errorf("list stale networks: %w", err))...)
	}
	for _, name := range deadOwners(ns) {
		if _, err := run(ctx, cli, "network", "rm", name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

// deadOwners picks, from "name pid" lines, the names whose pid is gone.
func deadOwners(lines string) []string {
	var out []string
	for _, l := range strings.Split(lines, "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		pid, err := strconv.Atoi(f[1])
		if err != nil || pid <= 0 || PidAlive(pid) {
			continue
		}
		out = append(out, f[0])
	}
	return out
}

// PidAlive reports whether a process of that id exists.
func PidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
