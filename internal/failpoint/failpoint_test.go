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
	require.Contains(t, syms(test), "internal/failpoint.parse", "the test build has the failpoints")
	require.NotContains(t, syms(prod), "internal/failpoint.", "the production build has no failpoint symbol")
	raw, err := os.ReadFile(prod)
	require.NoError(t, err)
	for _, n := range Names {
		require.NotContains(t, string(raw), n, "failpoint name %q in the production binary", n)
	}
	raw, err = os.ReadFile(test)
	require.NoError(t, err)
	require.Contains(t, string(raw), SkipRaftFsync)
}
