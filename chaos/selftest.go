package chaos

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sluice-io/sluice/chaos/checker"
	"github.com/sluice-io/sluice/internal/failpoint"
)

// SelfTestCase is one run of the self-test: a failpoint switched on (none
// for the clean run) under the nemeses that expose it, and the anomaly
// classes of which the checker must report at least one.
type SelfTestCase struct {
	Name string
	// Failpoint is switched on by SLUICE_FAILPOINTS in a failpoints build
	// ("" for the clean run, which must pass).
	Failpoint string
	// Node is the one node that gets the failpoint ("" for every node).
	Node    string
	Nemeses []string
	Expect  []checker.Kind
	// OpTimeout and Producers, when set, override the run's.
	OpTimeout time.Duration
	Producers int
}

// SelfTestCases lists the clean run and one case per failpoint.
func SelfTestCases() []SelfTestCase {
	return []SelfTestCase{
		{Name: "clean", Nemeses: []string{"partition-leader", "kill-leader", "power-loss-all"}},
		{Name: failpoint.SkipRaftFsync, Failpoint: failpoint.SkipRaftFsync, Nemeses: []string{"power-loss-all"},
			Expect: []checker.Kind{checker.LostWrite, checker.Unseen}},
		{Name: failpoint.AckBeforeCommit, Failpoint: failpoint.AckBeforeCommit, Nemeses: []string{"partition-leader"},
			Expect: []checker.Kind{checker.LostWrite, checker.Unseen, checker.InconsistentOffsets}},
		{Name: failpoint.DropAppliedBatch, Failpoint: failpoint.DropAppliedBatch, Node: "n1", Nemeses: []string{"kill-leader"},
			Expect: []checker.Kind{checker.Divergence, checker.LostWrite, checker.InconsistentOffsets}},
		// A cut-off leader's uncommitted tail is the sends that reach it
		// after the cut and before it steps down (its lease, ~250 ms), so
		// many producers per partition (8 for the short run's 3
		// partitions) keep some arriving then. If the client retried them
		// on the new leader they would land at the same offsets and the
		// served tail would look right; sends that give up before the
		// election ends (info; the process goes on with new values) leave
		// those offsets to other values, so reading the uncommitted tail
		// (the replica followers poll the cut-off node throughout) shows
		// as two values at one offset.
		{Name: failpoint.ServeBeyondCommit, Failpoint: failpoint.ServeBeyondCommit, Nemeses: []string{"partition-leader"},
			OpTimeout: 700 * time.Millisecond, Producers: 24,
			Expect: []checker.Kind{checker.AbortedRead, checker.PhantomRead, checker.InconsistentOffsets, checker.NonmonotonicPoll, checker.PollSkip}},
		{Name: failpoint.ForgetGroupOffset, Failpoint: failpoint.ForgetGroupOffset, Nemeses: []string{"restart-all"},
			Expect: []checker.Kind{checker.OffsetRegression}},
		{Name: failpoint.SkipIdempotence, Failpoint: failpoint.SkipIdempotence, Nemeses: []string{"partition-leader", "kill-leader"},
			Expect: []checker.Kind{checker.Duplicate}},
	}
}

// SelfTestCaseNamed returns the case of that name.
func SelfTestCaseNamed(name string) (SelfTestCase, error) {
	var names []string
	for _, c := range SelfTestCases() {
		if c.Name == name {
			return c, nil
		}
		names = append(names, c.Name)
	}
	return SelfTestCase{}, fmt.Errorf("chaos: no self-test case %q (cases: %s)", name, strings.Join(names, ", "))
}

// Apply sets the case's nemeses and failpoint environment on opts.
func (c SelfTestCase) Apply(opts *Options) {
	opts.Name = "selftest-" + c.Name
	opts.Nemeses = c.Nemeses
	if c.OpTimeout > 0 {
		opts.OpTimeout = c.OpTimeout
	}
	if c.Producers > 0 {
		opts.Producers = c.Producers
	}
	if c.Failpoint != "" {
		key := "*"
		if c.Node != "" {
			key = c.Node
		}
		opts.NodeEnv = map[string][]string{key: {failpoint.EnvVar + "=" + c.Failpoint}}
	}
}

// Judge says whether the run came out as the case wants: the clean run
// passes, a failpoint run reports one of the expected anomaly classes.
func (c SelfTestCase) Judge(res *Results) (bool, string) {
	if res == nil {
		return false, "no results"
	}
	if len(res.Skipped) > 0 {
		return false, "faults skipped: " + strings.Join(res.Skipped, ", ")
	}
	if c.Failpoint == "" {
		return res.Verdict == checker.Pass, fmt.Sprintf("clean build: %s", res.Verdict)
	}
	var found []string
	caught := false
	if res.Check != nil {
		for k, n := range res.Check.Counts {
			found = append(found, fmt.Sprintf("%s=%d", k, n))
			caught = caught || slices.Contains(c.Expect, k)
		}
	}
	sort.Strings(found)
	if caught {
		return true, fmt.Sprintf("%s caught: %s", c.Failpoint, strings.Join(found, " "))
	}
	return false, fmt.Sprintf("%s NOT caught (want one of %v; found: %s; verdict %s)", c.Failpoint, c.Expect, strings.Join(found, " "), res.Verdict)
}
