package agent

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/agent/config"
	"github.com/sluice-io/sluice/agent/flow"
)

// loadAll validates and builds (without starting: nothing binds or
// dials) every agent of a configuration text.
func loadAll(t *testing.T, what string, text []byte) int {
	t.Helper()
	reg := DefaultRegistry(nil)
	f, err := config.Parse(bytes.NewReader(text), config.Options{})
	require.NoError(t, err, what)
	require.Empty(t, f.Warnings, what)
	for _, name := range f.AgentNames() {
		cfg, probs, err := config.Load(bytes.NewReader(text), name, reg.Catalog(), config.Options{})
		require.NoError(t, err, "%s: agent %s", what, name)
		require.Empty(t, probs, "%s: agent %s", what, name)
		a, bprobs, err := Build(cfg, reg, flow.Deps{Logger: slog.New(slog.DiscardHandler), DataDir: t.TempDir(), Servers: []string{"127.0.0.1:1"}}, Options{}, nil)
		require.NoError(t, err, "%s: agent %s", what, name)
		require.Empty(t, bprobs, "%s: agent %s", what, name)
		require.NotEmpty(t, a.Counters())
	}
	return len(f.AgentNames())
}

func TestExampleConfigurationsLoad(t *testing.T) {
	files, err := filepath.Glob("../conf/*.properties")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, path := range files {
		text, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Positive(t, loadAll(t, path, text), path)
	}
}

var propertiesBlock = regexp.MustCompile("(?s)```properties\n(.*?)```")

func TestReadmeConfigurationsLoad(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	blocks := propertiesBlock.FindAllSubmatch(readme, -1)
	require.NotEmpty(t, blocks, "README shows agent configurations in ```properties blocks")
	for i, b := range blocks {
		loadAll(t, "README block "+strings.Repeat("#", i+1), b[1])
	}
}

func TestFlumeClassNamesLoad(t *testing.T) {
	conf := `
a1.sources = r1
a1.channels = c1 c2
a1.sinks = k1 k2
a1.sinkgroups = g1
a1.sources.r1.type = org.apache.flume.source.SyslogTcpSource
a1.sources.r1.host = 127.0.0.1
a1.sources.r1.port = 5140
a1.sources.r1.channels = c1 c2
a1.sources.r1.selector.type = org.apache.flume.channel.ReplicatingChannelSelector
a1.sources.r1.interceptors = i1
a1.sources.r1.interceptors.i1.type = org.apache.flume.interceptor.TimestampInterceptor$Builder
a1.channels.c1.type = org.apache.flume.channel.MemoryChannel
a1.channels.c2.type = org.apache.flume.channel.file.FileChannel
a1.sinks.k1.type = org.apache.flume.sink.kafka.KafkaSink
a1.sinks.k1.kafka.bootstrap.servers = 127.0.0.1:9092
a1.sinks.k1.kafka.topic = logs
a1.sinks.k1.flumeBatchSize = 100
a1.sinks.k1.kafka.producer.acks = -1
a1.sinks.k1.channel = c1
a1.sinks.k2.type = org.apache.flume.sink.LoggerSink
a1.sinks.k2.channel = c2
a1.sinkgroups.g1.sinks = k1
a1.sinkgroups.g1.processor.type = org.apache.flume.sink.FailoverSinkProcessor
`
	loadAll(t, "FQCN configuration", []byte(conf))
}
