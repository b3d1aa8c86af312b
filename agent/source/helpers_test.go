package source

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/agent/flow"
)

// fakeProc stands in for the runtime's channel processor: it collects
// committed batches and, while full is set, refuses them as a full
// channel would.
type fakeProc struct {
	mu      sync.Mutex
	batches [][]flow.Event
	full    bool
	refused int
	// failWith, when set, is returned instead of committing.
	failWith error
	// capacity > 0: a batch that would take the total past it is refused
	// as by a full channel.
	capacity int
	total    int
}

func (f *fakeProc) Process(_ context.Context, evs []flow.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failWith != nil {
		return f.failWith
	}
	if f.full || (f.capacity > 0 && f.total+len(evs) > f.capacity) {
		f.refused++
		return fmt.Errorf("fake channel: %w", flow.ErrChannelFull)
	}
	cp := make([]flow.Event, len(evs))
	for i, e := range evs {
		cp[i] = e.Clone()
	}
	f.batches = append(f.batches, cp)
	f.total += len(cp)
	return nil
}

func (f *fakeProc) setFull(v bool) {
	f.mu.Lock()
	f.full = v
	f.mu.Unlock()
}

func (f *fakeProc) refusals() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refused
}

func (f *fakeProc) events() []flow.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []flow.Event
	for _, b := range f.batches {
		out = append(out, b...)
	}
	return out
}

func (f *fakeProc) bodies() []string {
	var out []string
	for _, e := range f.events() {
		out = append(out, string(e.Body))
	}
	return out
}

// waitEvents waits until n events were committed and returns them.
func (f *fakeProc) waitEvents(t *testing.T, n int) []flow.Event {
	t.Helper()
	require.Eventually(t, func() bool { return len(f.events()) >= n }, 20*time.Second, 5*time.Millisecond,
		"want %d events, have %d", n, len(f.events()))
	return f.events()
}

// startSource builds and starts a source of type typ with props; it is
// stopped when the test ends.
func startSource(t *testing.T, typ string, props map[string]string, proc flow.Processor) flow.Source {
	t.Helper()
	s, err := buildSource(t, typ, props, proc)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
	})
	return s
}

func buildSource(t *testing.T, typ string, props map[string]string, proc flow.Processor) (flow.Source, error) {
	t.Helper()
	b, ok := Builders()[typ]
	require.True(t, ok, "no builder for %q", typ)
	return b("r1", flow.NewProps("a1.sources.r1", props), proc, flow.Deps{Agent: "a1", DataDir: t.TempDir()})
}

type addrser interface{ Addrs() []net.Addr }

func portOf(t *testing.T, s flow.Source, i int) string {
	t.Helper()
	a, ok := s.(addrser)
	require.True(t, ok)
	_, port, err := net.SplitHostPort(a.Addrs()[i].String())
	require.NoError(t, err)
	return port
}

// needTool skips the test when a client it drives is not installed
// (`make deps` installs them).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (make deps installs it): skipping", name)
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	require.NoError(t, err, "%s %v: %s", name, args, out)
	return string(out)
}
