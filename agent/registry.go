package agent

import (
	"maps"

	"github.com/sluice-io/sluice/agent/chain"
	"github.com/sluice-io/sluice/agent/channel"
	"github.com/sluice-io/sluice/agent/interceptor"
	"github.com/sluice-io/sluice/agent/sink"
	"github.com/sluice-io/sluice/agent/source"
)

// DefaultRegistry returns every component type of this build. local, when
// not nil, is the in-process writer of the hosting node for sluice sinks.
func DefaultRegistry(local sink.Writer) Registry {
	r := Registry{
		Sources:      source.Builders(),
		Interceptors: interceptor.Builders(),
		Channels:     channel.Builders(),
		Sinks:        sink.Builders(local),
	}
	// Agent chaining: Flume's avro source and sink over Sluice's RPC.
	maps.Copy(r.Sources, chain.SourceBuilders())
	maps.Copy(r.Sinks, chain.SinkBuilders())
	return r
}
