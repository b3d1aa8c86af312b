package flow

import (
	"encoding/json"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is the component kind, as Flume prefixes its JMX names.
type Kind string

const (
	KindSource  Kind = "SOURCE"
	KindChannel Kind = "CHANNEL"
	KindSink    Kind = "SINK"
)

// Counter names Flume uses (MonitoredCounterGroup and its subclasses).
const (
	EventReceivedCount       = "EventReceivedCount"
	EventAcceptedCount       = "EventAcceptedCount"
	AppendReceivedCount      = "AppendReceivedCount"
	AppendAcceptedCount      = "AppendAcceptedCount"
	AppendBatchReceivedCount = "AppendBatchReceivedCount"
	AppendBatchAcceptedCount = "AppendBatchAcceptedCount"
	OpenConnectionCount      = "OpenConnectionCount"
	EventReadFail            = "EventReadFail"
	ChannelWriteFail         = "ChannelWriteFail"
	GenericProcessingFail    = "GenericProcessingFail"

	ChannelSize           = "ChannelSize"
	ChannelCapacity       = "ChannelCapacity"
	EventPutAttemptCount  = "EventPutAttemptCount"
	EventPutSuccessCount  = "EventPutSuccessCount"
	EventTakeAttemptCount = "EventTakeAttemptCount"
	EventTakeSuccessCount = "EventTakeSuccessCount"

	BatchEmptyCount        = "BatchEmptyCount"
	BatchUnderflowCount    = "BatchUnderflowCount"
	BatchCompleteCount     = "BatchCompleteCount"
	EventDrainAttemptCount = "EventDrainAttemptCount"
	EventDrainSuccessCount = "EventDrainSuccessCount"
	ConnectionCreatedCount = "ConnectionCreatedCount"
	ConnectionClosedCount  = "ConnectionClosedCount"
	ConnectionFailedCount  = "ConnectionFailedCount"
	EventWriteFail         = "EventWriteFail"
	ChannelFillPercentage  = "ChannelFillPercentage"
	StartTime              = "StartTime"
	StopTime               = "StopTime"
	componentTypeAttribute = "Type"
)

// Counters is one component's counter group. Counters are created on first
// use; Add and Set are safe for concurrent use.
type Counters struct {
	Kind Kind
	Name string

	mu   sync.RWMutex
	vals map[string]*atomic.Int64
	// fill, when set, reports ChannelFillPercentage (a float in Flume).
	fill func() float64
}

// NewCounters returns an empty group for the named component.
func NewCounters(kind Kind, name string) *Counters {
	return &Counters{Kind: kind, Name: name, vals: map[string]*atomic.Int64{}}
}

func (c *Counters) get(name string) *atomic.Int64 {
	c.mu.RLock()
	v := c.vals[name]
	c.mu.RUnlock()
	if v != nil {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v = c.vals[name]; v == nil {
		v = new(atomic.Int64)
		c.vals[name] = v
	}
	return v
}

// Add adds d to counter name and returns the new value.
func (c *Counters) Add(name string, d int64) int64 { return c.get(name).Add(d) }

// Set sets counter name (gauges such as ChannelSize).
func (c *Counters) Set(name string, v int64) { c.get(name).Store(v) }

// Get returns counter name (0 when never touched).
func (c *Counters) Get(name string) int64 { return c.get(name).Load() }

// SetFill installs the ChannelFillPercentage gauge.
func (c *Counters) SetFill(f func() float64) {
	c.mu.Lock()
	c.fill = f
	c.mu.Unlock()
}

// MarkStart and MarkStop record StartTime and StopTime (ms since epoch).
func (c *Counters) MarkStart() { c.Set(StartTime, time.Now().UnixMilli()) }
func (c *Counters) MarkStop()  { c.Set(StopTime, time.Now().UnixMilli()) }

// Snapshot returns every counter as Flume's JSON reporter writes it: all
// values as strings, plus "Type".
func (c *Counters) Snapshot() map[string]string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make(map[string]string, len(c.vals)+2)
	for k, v := range c.vals {
		out[k] = strconv.FormatInt(v.Load(), 10)
	}
	if c.fill != nil {
		out[ChannelFillPercentage] = strconv.FormatFloat(c.fill(), 'f', -1, 64)
	}
	out[componentTypeAttribute] = string(c.Kind)
	return out
}

// Key is the group's name in Flume's JSON ("CHANNEL.c1").
func (c *Counters) Key() string { return string(c.Kind) + "." + c.Name }

// Report renders groups as Flume's HTTP monitoring JSON:
// {"CHANNEL.c1":{"ChannelSize":"5",...},...}.
func Report(groups []*Counters) ([]byte, error) {
	m := make(map[string]map[string]string, len(groups))
	for _, g := range groups {
		m[g.Key()] = g.Snapshot()
	}
	return json.Marshal(m)
}

// SortedNames returns the counter names of a snapshot in order (for
// Prometheus output that is stable).
func SortedNames(snap map[string]string) []string {
	names := make([]string, 0, len(snap))
	for k := range snap {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
