package flow

import (
	"context"
	"errors"
)

// Errors components return; wrap them with context (%w) so callers can
// test with errors.Is.
var (
	// ErrChannelFull: the channel cannot take the put (capacity,
	// transactionCapacity, byteCapacity or a free-space floor). Sources
	// push back on their clients (HTTP 503, TCP back-pressure); nothing is
	// dropped.
	ErrChannelFull = errors.New("channel full")
	// ErrTxFull: more puts or takes in one transaction than the channel's
	// transactionCapacity.
	ErrTxFull = errors.New("transaction capacity exceeded")
	// ErrClosed: the component was stopped.
	ErrClosed = errors.New("component stopped")
)

// Lifecycle is what the agent runtime starts and stops. Start must not
// block past setting up (listeners bound, files opened); long-running work
// goes into goroutines that end when Stop is called. Stop drains in-flight
// transactions within ctx.
type Lifecycle interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Transaction is one channel transaction. Puts become visible to takers
// only at Commit; takes are removed for good only at Commit, and Rollback
// returns them to the head of the channel in order. After Commit or
// Rollback the transaction is finished and must not be used again.
// A Transaction is used by one goroutine.
type Transaction interface {
	Put(ev Event) error
	// Take returns the next event, or ok=false when the channel is empty.
	Take() (ev Event, ok bool, err error)
	Commit() error
	Rollback() error
}

// Channel buffers events between sources and sinks.
type Channel interface {
	Lifecycle
	Name() string
	// Begin starts a transaction.
	Begin() (Transaction, error)
	// Counters are the channel's Flume counters (ChannelSize, ...).
	Counters() *Counters
}

// Processor is what a source hands its events to: the runtime's channel
// processor, which runs the source's interceptors, asks its selector for
// the required and optional channels, and puts the batch into each channel
// in a transaction of its own (Flume's ChannelProcessor.processEventBatch).
// A nil error means every required channel committed the batch: only then
// may a source acknowledge the events to its client.
type Processor interface {
	Process(ctx context.Context, events []Event) error
}

// Source produces events. It is built with its Processor and reports
// into its own Counters.
type Source interface {
	Lifecycle
	Name() string
	Counters() *Counters
}

// Interceptor modifies or drops events between a source and its channels.
// Intercept returns the events to keep, in order (it may reuse the input
// slice).
type Interceptor interface {
	Intercept(events []Event) []Event
}

// Selector chooses the channels of one event: required ones must accept
// it, failures of optional ones are only logged.
type Selector interface {
	Select(ev Event) (required, optional []Channel)
}

// Status is what one Sink.Process call reports.
type Status int

const (
	// Ready: events were delivered; call again at once.
	Ready Status = iota
	// Backoff: the channel was empty; wait before calling again.
	Backoff
)

// Sink takes events from its one channel and delivers them. Process takes
// up to a batch in one transaction, delivers it, and commits only after
// the destination acknowledged it; on failure it rolls back and returns
// the error (Flume's EventDeliveryException).
type Sink interface {
	Lifecycle
	Name() string
	Process(ctx context.Context) (Status, error)
	Counters() *Counters
}

// SinkProcessor drives one group of sinks (default, failover,
// load_balance): the runtime calls Process in a loop, as Flume's
// SinkRunner does.
type SinkProcessor interface {
	Lifecycle
	Process(ctx context.Context) (Status, error)
}

// Notifier is implemented by channels that can wake an idle sink runner:
// the returned channel is closed at the next commit that adds events.
// The runner then need not sleep out its whole Flume backoff.
type Notifier interface {
	Notify() <-chan struct{}
}
