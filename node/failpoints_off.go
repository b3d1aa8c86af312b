//go:build !failpoints

package node

import (
	"time"

	"github.com/sluice-io/sluice/transport"
)

// The failpoints' behaviour exists in failpoints builds only
// (failpoints_on.go); these stand-ins are never called.

func ackBeforeCommit(*replica, []byte, time.Duration) (*transport.ProduceResponse, error) {
	return nil, nil
}

func beyondCommit(_ *replica, _ int64, batches [][]byte) [][]byte { return batches }
