package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-io/sluice/chaos/cluster"
	"github.com/sluice-io/sluice/chaos/nemesis"
)

// How Docker mode makes partitions (Options.DockerPartitions).
const (
	// DockerPartitionsAuto uses iptables when it can filter traffic between
	// containers, else disconnects.
	DockerPartitionsAuto = "auto"
	// DockerPartitionsIptables drops packets by address in a chain of the
	// run's own jumped to from DOCKER-USER; fails the run when unusable.
	DockerPartitionsIptables = "iptables"
	// DockerPartitionsDisconnect takes isolated nodes off the network
	// (docker network disconnect), which can only isolate single nodes.
	DockerPartitionsDisconnect = "disconnect"
)

// modulePath is Sluice's Go module, whose ./cmd/sluice is built when the
// given binary is not static.
const modulePath = "github.com/sluice-io/sluice"

// DockerInfo is what a Docker-mode run ran on.
type DockerInfo struct {
	Image   string                `json:"image"`
	Network cluster.DockerNetwork `json:"network"`
	// Binary is the static binary in the image.
	Binary string `json:"binary"`
	// Partitions says how partitions were made.
	Partitions string `json:"partitions"`
}

func dockerChain() string { return fmt.Sprintf("%s-D%d", nemesis.DefaultChain, os.Getpid()) }

// staleChain matches the jumps to chains of earlier Docker-mode runs.
var staleChain = regexp.MustCompile(`^-A ` + nemesis.DockerHook + ` -j (` + nemesis.DefaultChain + `-D(\d+))$`)

// removeStaleChains deletes the chains of Docker-mode runs whose harness
// died before its teardown.
func (r *run) removeStaleChains(ctx context.Context, bin string) {
	out, err := exec.CommandContext(ctx, bin, "-w", "5", "-S", nemesis.DockerHook).Output()
	if err != nil {
		return
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		m := staleChain.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil || m[1] == r.opts.Chain {
			continue
		}
		if pid, err := strconv.Atoi(m[2]); err != nil || cluster.PidAlive(pid) {
			continue
		}
		ipt, err := nemesis.NewIptablesHooked(ctx, bin, m[1], nemesis.DockerHook, nil, r.logger)
		if err == nil {
			err = ipt.Close(ctx)
		}
		if err != nil {
			r.logger.Warn("stale iptables chain not removed", "chain", m[1], "err", err)
			continue
		}
		r.logger.Info("removed the iptables chain of a dead run", "chain", m[1])
	}
}

// sluiceModuleRoot finds the Sluice source tree the harness runs in.
func sluiceModuleRoot(ctx context.Context) (string, error) {
	if _, err := exec.LookPath("go"); err != nil {
		return "", errors.New("no go toolchain")
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module")
	}
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	if strings.TrimSpace(first) != "module "+modulePath {
		return "", fmt.Errorf("%s is not %s", gomod, modulePath)
	}
	return filepath.Dir(gomod), nil
}

// staticBinary returns a static sluice binary for the image: opts.Binary
// when it is one, else a CGO_ENABLED=0 build of ./cmd/sluice of the module
// the harness runs in, made in tmp.
func (r *run) staticBinary(ctx context.Context, tmp string) (string, error) {
	ok, err := cluster.IsStatic(r.opts.Binary)
	if err != nil {
		return "", fmt.Errorf("chaos: %w", err)
	}
	if ok {
		return r.opts.Binary, nil
	}
	root, err := sluiceModuleRoot(ctx)
	if err != nil {
		return "", fmt.Errorf("chaos: %s is dynamically linked, which cannot run in an image FROM scratch, and there is no Sluice source here to build a static one (%v): build it with `CGO_ENABLED=0 go build -o sluice ./cmd/sluice` and pass --binary", r.opts.Binary, err)
	}
	out := filepath.Join(tmp, "sluice")
	r.logger.Info("binary is dynamically linked: building a static one", "binary", r.opts.Binary, "module", root)
	bctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(bctx, "go", "build", "-o", out, "./cmd/sluice")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("chaos: static build of %s: %w: %s", root, err, strings.TrimSpace(string(b)))
	}
	return out, nil
}

// setupDocker prepares Docker mode: removes what dead runs left, builds
// the image, creates the network and the containers, and picks how to
// partition. It returns the Network (nil when partitions are off).
func (r *run) setupDocker(ctx context.Context) (nemesis.Network, error) {
	opts := r.opts
	if removed, err := cluster.RemoveStale(ctx, "", nil); err != nil {
		r.logger.Warn("stale containers of dead runs not all removed", "err", err)
	} else if len(removed) > 0 {
		r.logger.Info("removed containers and networks of dead runs", "removed", removed)
	}

	tmp, err := os.MkdirTemp("", "sluice-chaos-bin-")
	if err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	defer os.RemoveAll(tmp)
	bin, err := r.staticBinary(ctx, tmp)
	if err != nil {
		return nil, err
	}
	info := &DockerInfo{Binary: bin}
	if bin != opts.Binary {
		info.Binary = "static build of " + modulePath + "/cmd/sluice (" + opts.Binary + " is dynamically linked)"
	}
	info.Image, err = cluster.BuildImage(ctx, "", bin, nil)
	if err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	r.res.Docker = info
	r.logger.Info("docker image ready", "image", info.Image)

	r.powerLossPossible() // never in Docker mode: notes the skip
	if delay := nemesis.ProxyKinds(r.kinds); len(delay) > 0 {
		r.note("delay faults SKIPPED (Docker mode): the proxies in front of the nodes run in process mode only")
		r.res.Skipped = append(r.res.Skipped, delay...)
		r.kinds = nemesis.WithoutProxy(r.kinds)
	}
	r.cl, err = cluster.NewDocker(ctx, cluster.Config{
		Nodes: opts.Nodes, Dir: r.dir, ExtraArgs: opts.NodeArgs, Logger: r.logger, Env: opts.NodeEnv,
	}, cluster.DockerConfig{Image: info.Image})
	if err != nil {
		return nil, err
	}
	info.Network, _ = r.cl.Network()
	r.logger.Info("docker network ready", "network", info.Network.Name, "subnet", info.Network.Subnet)

	needNet := false
	for _, k := range r.kinds {
		needNet = needNet || nemesis.NeedsNetwork(k)
	}
	if !needNet {
		info.Partitions = "none asked"
		return nil, nil
	}
	netw, how, err := r.dockerPartitions(ctx)
	if err != nil {
		return nil, err
	}
	info.Partitions = how
	before := r.kinds
	r.kinds = nemesis.Supported(r.kinds, netw, opts.Nodes)
	if len(r.kinds) < len(before) {
		var dropped []string
		for _, k := range before {
			if !slices.Contains(r.kinds, k) {
				dropped = append(dropped, k)
			}
		}
		r.note("partition kinds %s left out: %s", strings.Join(dropped, ", "), how)
	}
	return netw, nil
}

// dockerPartitions sets up partitions between containers: iptables rules
// in the run's chain jumped to from DOCKER-USER, with bridge netfilter on,
// or, failing that (or when asked), disconnects.
func (r *run) dockerPartitions(ctx context.Context) (nemesis.Network, string, error) {
	mode := r.opts.DockerPartitions
	if mode == DockerPartitionsDisconnect {
		r.note("partitions by docker network disconnect (asked for): only single nodes are isolated, from clients too")
		return nemesis.NewDisconnects(r.cl), "docker network disconnect (asked for)", nil
	}
	why := ""
	bin, reason := nemesis.DockerIptablesAvailable(ctx, nil)
	if bin == "" {
		why = "iptables with Docker's DOCKER-USER chain not usable: " + reason
	} else {
		r.removeStaleChains(ctx, bin)
		restore, did, err := nemesis.BridgeNetfilter(ctx, "", nil)
		if did != "" {
			r.logger.Info("bridge netfilter", "did", did)
		}
		r.restoreBridge = restore
		if err != nil {
			why = err.Error()
		} else {
			ipt, err := nemesis.NewIptablesHooked(ctx, bin, r.opts.Chain, nemesis.DockerHook, nil, r.logger)
			if err != nil {
				why = err.Error()
			} else {
				r.ipt = ipt
				return ipt, fmt.Sprintf("%s chain %s jumped to from %s", bin, r.opts.Chain, nemesis.DockerHook), nil
			}
		}
	}
	if mode == DockerPartitionsIptables {
		return nil, "", fmt.Errorf("chaos: docker partitions by iptables: %s", why)
	}
	r.note("partitions by docker network disconnect, not iptables (%s): only single nodes are isolated, from clients too", why)
	return nemesis.NewDisconnects(r.cl), "docker network disconnect (iptables unusable)", nil
}
