// Package flow holds what every agent component shares: the Event, the
// transactional Channel, the interfaces of sources, interceptors, channel
// selectors, sinks and sink processors, the typed view of a component's
// properties, and the Flume-style counters. It imports nothing of the
// server, the client or the other agent packages, so every component
// package can depend on it and on nothing else of the agent.
package flow
