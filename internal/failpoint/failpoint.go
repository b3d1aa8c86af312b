// Package failpoint holds deliberate bugs for the chaos suite's self-test
// (make chaos-selftest): each, when switched on, breaks one of Sluice's
// promises, so that the suite can show its checker catches the break.
//
// They exist only in builds with the failpoints tag
// (go build -tags failpoints); there SLUICE_FAILPOINTS=name,name,...
// switches them on per process. In every other build Enabled is a constant
// false that the compiler folds away with the code it guards: production
// binaries contain no failpoint (TestProductionBinaryHasNoFailpoints).
package failpoint

// Failpoint names, each after what it breaks.
const (
	// SkipRaftFsync opens the Raft log store without fsync (bolt NoSync):
	// an entry counts toward a commit before it is durable.
	SkipRaftFsync = "skip-raft-fsync"
	// AckBeforeCommit acknowledges a produce as soon as the leader has
	// handed it to Raft, with a predicted offset, without waiting for the
	// commit.
	AckBeforeCommit = "ack-before-commit"
	// DropAppliedBatch makes this replica skip storing one in every
	// DropEvery committed batches while reporting it stored.
	DropAppliedBatch = "drop-applied-batch"
	// ServeBeyondCommit makes fetches also return the batches of Raft
	// entries this replica holds but has not seen committed.
	ServeBeyondCommit = "serve-beyond-commit"
	// ForgetGroupOffset drops the consumer-group offset commits a replica
	// replays in the first seconds after it starts (a restart forgets them).
	ForgetGroupOffset = "forget-group-offset"
	// SkipIdempotence turns off the idempotent-producer check: a retried
	// batch is appended again.
	SkipIdempotence = "skip-idempotence"
)

// Names lists every failpoint.
var Names = []string{SkipRaftFsync, AckBeforeCommit, DropAppliedBatch, ServeBeyondCommit, ForgetGroupOffset, SkipIdempotence}

// EnvVar is the environment variable a failpoints build reads.
const EnvVar = "SLUICE_FAILPOINTS"

// DropEvery is how often DropAppliedBatch drops a batch (by Raft index).
const DropEvery = 16
