package flow

import (
	"crypto/tls"
	"log/slog"
)

// Deps is what the agent runtime gives every component it builds.
type Deps struct {
	// Agent is the agent's name (a1).
	Agent  string
	Logger *slog.Logger
	// Servers are the cluster's RPC seed addresses, for components that
	// talk to Sluice (sluice sink, source and channel).
	Servers []string
	// DataDir is where components keep state by default (taildir
	// position file, file channel directories) when the properties do not
	// say otherwise.
	DataDir string
	// TLS, when set, is the client TLS configuration for connections to
	// the cluster (nodes started with --tls-*).
	TLS *tls.Config
}

// Builders turn one component's properties into a component. Each
// component package exposes a function returning its builders keyed by
// type alias (lower case) and by the Flume class names it stands in for,
// e.g. "netcat" and "org.apache.flume.source.NetcatSource".
type (
	SourceBuilder      func(name string, p *Props, proc Processor, d Deps) (Source, error)
	InterceptorBuilder func(p *Props, d Deps) (Interceptor, error)
	ChannelBuilder     func(name string, p *Props, d Deps) (Channel, error)
	SinkBuilder        func(name string, p *Props, ch Channel, d Deps) (Sink, error)
)
