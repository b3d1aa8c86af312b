package channel

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-io/sluice/agent/flow"
)

// Memory is Flume's memory channel: capacity is enforced at commit
// (waiting keep-alive for space), put and take lists are bounded by
// transactionCapacity, byteCapacity counts bodies. Events are lost when
// the agent dies.
type Memory struct{ *core }

// NewMemory builds a memory channel from Flume's properties: capacity
// (100), transactionCapacity (100), keep-alive (3 s), byteCapacity (bytes
// of bodies; 0 or unset: unbounded, as there is no JVM heap to take 80%
// of), byteCapacityBufferPercentage (20).
func NewMemory(name string, p *flow.Props, _ flow.Deps) (flow.Channel, error) {
	capacity := p.Int("capacity", 100)
	txCap := p.Int("transactionCapacity", 100)
	keepAlive := p.Seconds("keep-alive", 3*time.Second)
	byteCap := p.Int("byteCapacity", 0)
	bufPct := p.Int("byteCapacityBufferPercentage", 20)
	if err := p.Err(); err != nil {
		return nil, err
	}
	if capacity < 1 {
		return nil, fmt.Errorf("%s.capacity: must be at least 1, got %d", p.Prefix, capacity)
	}
	if txCap < 1 || txCap > capacity {
		return nil, fmt.Errorf("%s.transactionCapacity: must be between 1 and capacity (%d), got %d", p.Prefix, capacity, txCap)
	}
	if bufPct < 0 || bufPct >= 100 {
		return nil, fmt.Errorf("%s.byteCapacityBufferPercentage: must be 0..99, got %d", p.Prefix, bufPct)
	}
	if byteCap > 0 {
		byteCap = byteCap * (100 - bufPct) / 100
	}
	return &Memory{newCore(name, capacity, int(txCap), byteCap, keepAlive)}, nil
}

func (m *Memory) Start(context.Context) error {
	m.counters.MarkStart()
	return nil
}

func (m *Memory) Stop(ctx context.Context) error {
	m.counters.MarkStop()
	return m.drain(ctx)
}
