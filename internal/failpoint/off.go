//go:build !failpoints

package failpoint

// Build reports whether this is a failpoints build.
const Build = false

// Enabled is always false outside failpoints builds.
func Enabled(string) bool { return false }

// Starting is always false outside failpoints builds.
func Starting() bool { return false }
