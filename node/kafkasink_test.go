package node

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/agent"
	"github.com/sluice-io/sluice/agent/config"
	"github.com/sluice-io/sluice/agent/flow"
	"github.com/sluice-io/sluice/agent/sink"
	"github.com/sluice-io/sluice/client"
)

// flumeKafkaSinkConf is a Flume configuration as Flume users write it for
// its Kafka sink; the test fills in the Kafka listener addresses. The
// regex extractor makes the body the key header, so events spread over
// the partitions by key.
const flumeKafkaSinkConf = `
a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = org.apache.flume.source.SequenceGeneratorSource
a1.sources.r1.totalEvents = 300
a1.sources.r1.batchSize = 20
a1.sources.r1.channels = c1
a1.sources.r1.interceptors = i1 i2
a1.sources.r1.interceptors.i1.type = org.apache.flume.interceptor.StaticInterceptor$Builder
a1.sources.r1.interceptors.i1.key = host
a1.sources.r1.interceptors.i1.value = web1
a1.sources.r1.interceptors.i2.type = org.apache.flume.interceptor.RegexExtractorInterceptor$Builder
a1.sources.r1.interceptors.i2.regex = ^([0-9]+)$
a1.sources.r1.interceptors.i2.serializers = s1
a1.sources.r1.interceptors.i2.serializers.s1.name = key
a1.channels.c1.type = org.apache.flume.channel.MemoryChannel
a1.channels.c1.capacity = 10000
a1.channels.c1.transactionCapacity = 1000
a1.sinks.k1.type = org.apache.flume.sink.kafka.KafkaSink
a1.sinks.k1.channel = c1
a1.sinks.k1.kafka.bootstrap.servers = BOOTSTRAP
a1.sinks.k1.kafka.topic = flume
a1.sinks.k1.flumeBatchSize = 50
a1.sinks.k1.kafka.producer.acks = 1
a1.sinks.k1.kafka.producer.linger.ms = 1
`

func TestFlumeKafkaSinkConfigOverKafkaListener(t *testing.T) {
	skipShort(t)
	c := newKafkaTestCluster(t, 3)
	cl := c.client()
	const parts = 3
	c.createTopic(cl, "flume", parts, 3)

	// The writer alone: partition counts from Kafka metadata, and no topic
	// is created by asking.
	w, err := sink.NewKafkaWriter(c.kafkaAddrs())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := w.Partitions(ctx, "flume")
	require.NoError(t, err)
	require.Equal(t, parts, n)
	_, err = w.Partitions(ctx, "no-such-topic")
	require.ErrorContains(t, err, "no such topic")
	w.Close()

	text := strings.Replace(flumeKafkaSinkConf, "BOOTSTRAP", strings.Join(c.kafkaAddrs(), ","), 1)
	reg := agent.DefaultRegistry(nil)
	cfg, probs, err := config.Load(strings.NewReader(text), "a1", reg.Catalog(), config.Options{})
	require.NoError(t, err)
	require.Empty(t, probs)
	// No RPC servers: the sink can only have written over the Kafka
	// protocol.
	a, bprobs, err := agent.Build(cfg, reg, flow.Deps{Agent: "a1", Logger: testLogger(t)},
		agent.Options{BackoffStep: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, ErrorBackoff: 100 * time.Millisecond}, nil)
	require.NoError(t, err)
	require.Empty(t, bprobs)
	require.NoError(t, a.Start(context.Background()))
	t.Cleanup(func() { a.Stop(context.Background()) })

	const total = 300
	got := map[int][]client.Record{}
	require.Eventually(t, func() bool {
		seen := map[string]bool{}
		for p := range int32(parts) {
			recs, err := tryReadAll(cl, "", "flume", p)
			if err != nil {
				return false
			}
			got[int(p)] = recs
			for _, r := range recs {
				seen[string(r.Value)] = true
			}
		}
		return len(seen) == total
	}, 60*time.Second, 100*time.Millisecond, "events missing")

	seen := map[int]bool{}
	for p, recs := range got {
		last := -1
		for _, r := range recs {
			v, err := strconv.Atoi(string(r.Value))
			require.NoError(t, err)
			if seen[v] {
				continue // an at-least-once retry
			}
			seen[v] = true
			require.Greater(t, v, last, "partition %d keeps the sequence's order", p)
			last = v
			require.Equal(t, string(r.Value), string(r.Key), "the key header is the record key")
			require.Equal(t, client.KeyPartition(r.Key, parts), int32(p), "key %s landed on the partition the sink chose", r.Key)
			hdr := map[string]string{}
			for _, h := range r.Headers {
				hdr[h.Key] = string(h.Value)
			}
			require.Equal(t, map[string]string{"host": "web1", "key": string(r.Value)}, hdr, "event headers are record headers")
			require.False(t, r.Timestamp.IsZero())
		}
	}
	require.Len(t, seen, total)
}
