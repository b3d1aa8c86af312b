package failpoint

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBuildTag(t *testing.T) {
	if !Build {
		for _, n := range Names {
			require.False(t, Enabled(n))
		}
		require.False(t, Starting())
	}
	require.Len(t, Names, 6)
}

// TestProductionBinaryHasNoFailpoints builds sluice without and with the
// failpoints tag and looks at the symbols and strings: the production
// binary has no failpoint code and no failpoint name.
func TestProductionBinaryHasNoFailpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the sluice binary twice")
	}
	root, err := exec.Command("go", "env", "GOMOD").Output()
	require.NoError(t, err)
	dir := t.TempDir()
	build := func(name string, args ...string) string {
		bin := filepath.Join(dir, name)
		cmd := exec.Command("go", append(append([]string{"build", "-o", bin}, args...), "./cmd/sluice")...)
		cmd.Dir = filepath.Dir(strings.TrimSpace(string(root)))
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return bin
	}
	prod := build("prod")
	test := build("test", "-tags", "failpoints")
	syms := func(bin string) string {
		out, err := exec.Command("go", "tool", "nm", bin).CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	// The failpoint code (the environment parser and the node's faulty
	// paths) is linked only into the test build. The failpoint names may
	// appear in production too: the chaos harness names them to switch
	// them on in a test build's nodes.
	prodSyms, testSyms := syms(prod), syms(test)
	for _, sym := range []string{"internal/failpoint.parse", "node.ackBeforeCommit", "node.beyondCommit"} {
		require.Contains(t, testSyms, sym, "the test build has the failpoints")
		require.NotContains(t, prodSyms, sym, "the production build has failpoint code")
	}
	raw, err := os.ReadFile(prod)
	require.NoError(t, err)
	require.NotContains(t, string(raw), "FAILPOINTS ACTIVE", "the production binary can announce active failpoints")
	raw, err = os.ReadFile(test)
	require.NoError(t, err)
	require.Contains(t, string(raw), "FAILPOINTS ACTIVE")
}
