//go:build failpoints

package failpoint

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Build reports whether this is a failpoints build.
const Build = true

// The set is read once at process start and never changes after.
var (
	enabled = parse(os.Getenv(EnvVar))
	started = time.Now()
)

func parse(s string) map[string]bool {
	out := map[string]bool{}
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out[n] = true
		}
	}
	if len(out) > 0 {
		fmt.Fprintf(os.Stderr, "FAILPOINTS ACTIVE (test build): %s\n", s)
	}
	return out
}

// Enabled reports whether SLUICE_FAILPOINTS names the failpoint.
func Enabled(name string) bool { return enabled[name] }

// Starting reports whether the process started less than five seconds
// ago, when Raft replays its log.
func Starting() bool { return time.Since(started) < 5*time.Second }
