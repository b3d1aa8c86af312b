package nemesis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultChain is the iptables chain the suite owns. Only this chain is ever
// flushed or deleted.
const DefaultChain = "SLUICE-CHAOS"

// CommandRunner runs one iptables command; tests replace it.
type CommandRunner func(ctx context.Context, bin string, args ...string) (string, error)

func execRunner(ctx context.Context, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// Iptables installs partition rules in a chain of its own, jumped to from
// INPUT (on loopback every packet passes INPUT on its way in, so that is
// enough to drop it) or, in Docker mode, from DOCKER-USER (packets between
// containers of one bridge are forwarded, and bridge netfilter shows them
// to iptables).
type Iptables struct {
	bin    string
	chain  string
	hook   string
	run    CommandRunner
	logger *slog.Logger

	mu     sync.Mutex
	active []Rule
	closed bool
}

// IptablesAvailable tells whether partitions can be made here: root and a
// working iptables (or iptables-legacy when the nft flavour fails). It
// returns the binary to use, or why not.
func IptablesAvailable(ctx context.Context, run CommandRunner) (bin string, reason string) {
	return findIptables(ctx, run, "INPUT")
}

// findIptables returns the first iptables flavour that, run as root, can
// list chain, or why none can.
func findIptables(ctx context.Context, run CommandRunner, chain string) (bin string, reason string) {
	if run == nil {
		run = execRunner
	}
	if os.Geteuid() != 0 {
		return "", "not root"
	}
	var errs []string
	for _, b := range []string{"iptables", "iptables-legacy"} {
		if _, err := exec.LookPath(b); err != nil {
			errs = append(errs, b+" not found")
			continue
		}
		if _, err := run(ctx, b, "-w", "5", "-n", "-L", chain); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		return b, ""
	}
	return "", strings.Join(errs, "; ")
}

// NewIptables creates (or flushes) the chain and hooks it into INPUT.
// run may be nil (execute for real).
func NewIptables(ctx context.Context, bin, chain string, run CommandRunner, logger *slog.Logger) (*Iptables, error) {
	return NewIptablesHooked(ctx, bin, chain, "INPUT", run, logger)
}

// NewIptablesHooked creates (or flushes) the chain and hooks it first into
// the hook chain (INPUT, DOCKER-USER).
func NewIptablesHooked(ctx context.Context, bin, chain, hook string, run CommandRunner, logger *slog.Logger) (*Iptables, error) {
	if run == nil {
		run = execRunner
	}
	if chain == "" {
		chain = DefaultChain
	}
	if logger == nil {
		logger = slog.Default()
	}
	ipt := &Iptables{bin: bin, chain: chain, hook: hook, run: run, logger: logger}
	if _, err := ipt.ipt(ctx, "-N", chain); err != nil {
		// It may be left over from a run that died: reuse it, emptied.
		if _, ferr := ipt.ipt(ctx, "-F", chain); ferr != nil {
			return nil, fmt.Errorf("create chain %s: %w", chain, errors.Join(err, ferr))
		}
	}
	if _, err := ipt.ipt(ctx, "-C", hook, "-j", chain); err != nil {
		if _, err := ipt.ipt(ctx, "-I", hook, "1", "-j", chain); err != nil {
			_, _ = ipt.ipt(ctx, "-X", chain)
			return nil, fmt.Errorf("hook chain %s into %s: %w", chain, hook, err)
		}
	}
	return ipt, nil
}

func (i *Iptables) ipt(ctx context.Context, args ...string) (string, error) {
	return i.run(ctx, i.bin, append([]string{"-w", "5"}, args...)...)
}

// Chain is the chain's name.
func (i *Iptables) Chain() string { return i.chain }

// Active returns the rules in place.
func (i *Iptables) Active() []Rule {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]Rule(nil), i.active...)
}

// Apply replaces the chain's rules with rules.
func (i *Iptables) Apply(ctx context.Context, rules []Rule) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if _, err := i.ipt(ctx, "-F", i.chain); err != nil {
		return fmt.Errorf("flush %s: %w", i.chain, err)
	}
	i.active = nil
	for _, r := range rules {
		args := []string{"-A", i.chain, "-s", r.Src, "-d", r.Dst}
		if r.lossy() {
			args = append(args, "-m", "statistic", "--mode", "random", "--probability", strconv.FormatFloat(r.Loss, 'f', 2, 64))
		}
		if _, err := i.ipt(ctx, append(args, "-j", "DROP")...); err != nil {
			return fmt.Errorf("add rule %s: %w", r, err)
		}
		i.active = append(i.active, r)
	}
	return nil
}

// Heal removes every rule from the chain.
func (i *Iptables) Heal(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if _, err := i.ipt(ctx, "-F", i.chain); err != nil {
		return fmt.Errorf("flush %s: %w", i.chain, err)
	}
	i.active = nil
	return nil
}

// Close flushes the chain, unhooks it and deletes it. It keeps
// going after errors so as much as possible is removed, and is idempotent.
func (i *Iptables) Close(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		return nil
	}
	i.closed = true
	var errs []error
	if _, err := i.ipt(ctx, "-F", i.chain); err != nil {
		errs = append(errs, err)
	}
	i.active = nil
	// Remove every jump, in case one was added twice; bounded.
	for n := 0; n < 16; n++ {
		if _, err := i.ipt(ctx, "-D", i.hook, "-j", i.chain); err != nil {
			break
		}
	}
	if _, err := i.ipt(ctx, "-X", i.chain); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove chain %s: %w", i.chain, err)
	}
	return nil
}
