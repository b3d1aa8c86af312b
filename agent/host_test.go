package agent

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/agent/flow"
)

func TestHostReloadsWhenTheFileChanges(t *testing.T) {
	h := newHarness()
	path := filepath.Join(t.TempDir(), "a.properties")
	require.NoError(t, os.WriteFile(path, []byte(runConf+"a1.sinks.k1.fail = true\n"), 0o644))
	host, err := StartHost(context.Background(), HostConfig{
		Path: path, Name: "a1", Registry: h.reg, Poll: 10 * time.Millisecond,
		Deps:    flow.Deps{Logger: slog.New(slog.DiscardHandler)},
		Options: Options{BackoffStep: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, ErrorBackoff: 5 * time.Millisecond},
	})
	require.NoError(t, err)
	defer host.Close(context.Background())
	require.NoError(t, h.sources["r1"].proc.Process(context.Background(), events("a", "b")))

	// A broken file is refused; the running agent stays.
	require.NoError(t, os.WriteFile(path, []byte("a1.channels = c1\n"), 0o644))
	require.Error(t, host.Reload(context.Background()))
	require.Equal(t, 0, host.Reloads())

	// A good change is picked up by polling; the channel and its events
	// carry over to the new sink.
	require.NoError(t, os.WriteFile(path, []byte(runConf), 0o644))
	require.Eventually(t, func() bool { return host.Reloads() == 1 }, 10*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return strings.Join(h.sinks["k1"].delivered(), ",") == "a,b" }, 10*time.Second, 5*time.Millisecond)
	rep, err := flow.Report(host.Counters())
	require.NoError(t, err)
	require.Contains(t, string(rep), `"SINK.k1"`)
}
