package agent

import (
	"testing"
	"time"

	"github.com/sluice-io/sluice/agent/flow"
	"github.com/sluice-io/sluice/agent/processor"
)

func setClock(t *testing.T, p flow.SinkProcessor, now func() time.Time) {
	t.Helper()
	switch x := p.(type) {
	case *processor.Failover:
		x.SetClock(now)
	case *processor.LoadBalance:
		x.SetClock(now)
	default:
		t.Fatalf("no clock on %T", p)
	}
}
