package source

import (
	"errors"

	"github.com/sluice-io/sluice/agent/flow"
)

func newSluice(string, *flow.Props, flow.Processor, flow.Deps) (flow.Source, error) {
	return nil, errNotYet
}

var errNotYet = errors.New("source type not implemented yet")
