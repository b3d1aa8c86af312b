package channel

import "github.com/sluice-io/sluice/agent/flow"

// Builders returns the channel builders keyed by type alias and Flume
// class name (lower case).
func Builders() map[string]flow.ChannelBuilder {
	return map[string]flow.ChannelBuilder{
		"memory":                                 NewMemory,
		"org.apache.flume.channel.memorychannel": NewMemory,
		"file":                                   NewFile,
		"org.apache.flume.channel.file.filechannel": NewFile,
		"sluice": NewSluice,
		"kafka":  NewSluice,
		"org.apache.flume.channel.kafka.kafkachannel": NewSluice,
	}
}
