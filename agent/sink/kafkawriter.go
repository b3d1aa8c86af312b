package sink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/agent/flow"
	"github.com/sluice-io/sluice/client"
)

// KafkaWriter is the Writer over the Kafka wire protocol: what Flume's
// KafkaSink speaks, so its kafka.bootstrap.servers can be the nodes' Kafka
// listeners (or any Kafka cluster). Every produce waits for all in-sync
// replicas and is idempotent, so a partition's records keep their order
// and kgo's internal retries do not duplicate them.
type KafkaWriter struct{ c *kgo.Client }

// NewKafkaWriter builds the writer over seeds. opts come after the
// writer's own (acks=all, manual partitioning), so they may add to them
// but should not replace those two.
func NewKafkaWriter(seeds []string, opts ...kgo.Opt) (*KafkaWriter, error) {
	if len(seeds) == 0 {
		return nil, errors.New("no bootstrap servers")
	}
	base := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Write picks the partition; kgo must not re-partition.
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	}
	c, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return &KafkaWriter{c: c}, nil
}

// Close closes the client; records still buffered are failed.
func (w *KafkaWriter) Close() { w.c.Close() }

// Partitions asks the cluster for the topic's partition count. It never
// creates the topic: a typo in kafka.topic should fail loudly, as the
// native writer does.
func (w *KafkaWriter) Partitions(ctx context.Context, topic string) (int, error) {
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, t)
	req.AllowAutoTopicCreation = false
	resp, err := req.RequestWith(ctx, w.c)
	if err != nil {
		return 0, fmt.Errorf("metadata: %w", err)
	}
	for _, mt := range resp.Topics {
		if mt.Topic == nil || *mt.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(mt.ErrorCode); err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				return 0, fmt.Errorf("no such topic on the Kafka listeners: %w", err)
			}
			return 0, fmt.Errorf("metadata: %w", err)
		}
		if len(mt.Partitions) == 0 {
			return 0, errors.New("metadata lists no partitions")
		}
		return len(mt.Partitions), nil
	}
	return 0, errors.New("metadata response does not list the topic")
}

// Write produces recs to exactly topic/partition and returns once every
// record is acknowledged (or the first error).
func (w *KafkaWriter) Write(ctx context.Context, topic string, partition int32, recs []client.Record) error {
	krs := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		kr := &kgo.Record{Topic: topic, Partition: partition, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
		if len(r.Headers) > 0 {
			kr.Headers = make([]kgo.RecordHeader, len(r.Headers))
			for j, h := range r.Headers {
				kr.Headers[j] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
			}
		}
		krs[i] = kr
	}
	return w.c.ProduceSync(ctx, krs...).FirstErr()
}

// kafkaOptions maps the kafka.producer.* properties that have a plain kgo
// counterpart; the rest are logged and ignored, since a Flume
// configuration tuned for a JVM producer must still load.
func kafkaOptions(p *flow.Props, d flow.Deps, log *slog.Logger) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.WithLogger(kgoLogger{log})}
	prod := p.Sub("kafka.producer")
	for _, k := range prod.Keys() {
		v := strings.TrimSpace(prod.Values[k])
		switch k {
		case "acks":
			// Checked by NewSluice; every write waits for all replicas.
		case "compression.type":
			codec, ok := map[string]kgo.CompressionCodec{
				"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
				"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
			}[strings.ToLower(v)]
			if !ok {
				return nil, fmt.Errorf("%s.%s: %q is not none, gzip, snappy, lz4 or zstd", prod.Prefix, k, v)
			}
			opts = append(opts, kgo.ProducerBatchCompression(codec))
		case "client.id":
			opts = append(opts, kgo.ClientID(v))
		case "linger.ms":
			ms := prod.Int(k, 0)
			if err := prod.Err(); err != nil {
				return nil, err
			}
			if ms < 0 {
				return nil, fmt.Errorf("%s.%s: must not be negative", prod.Prefix, k)
			}
			opts = append(opts, kgo.ProducerLinger(time.Duration(ms)*time.Millisecond))
		case "security.protocol":
			// The agent's TLS settings are for the cluster's RPC port;
			// Sluice's Kafka listener is plaintext, so TLS is used only
			// when the configuration asks for it, as a Kafka producer's.
			switch strings.ToUpper(v) {
			case "PLAINTEXT":
			case "SSL":
				cfg := &tls.Config{MinVersion: tls.VersionTLS12}
				if d.TLS != nil {
					cfg = d.TLS.Clone()
				}
				opts = append(opts, kgo.DialTLSConfig(cfg))
			default:
				return nil, fmt.Errorf("%s.%s: %q is not supported (PLAINTEXT or SSL)", prod.Prefix, k, v)
			}
		default:
			log.Info("Kafka producer property has no counterpart here; ignored", "property", prod.Prefix+"."+k)
		}
	}
	return opts, nil
}

// kgoLogger passes kgo's warnings and errors to the sink's logger; its
// info and debug lines (every connection, every metadata refresh) would
// drown the agent's own.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelWarn
	if level == kgo.LogLevelError {
		lv = slog.LevelError
	}
	k.l.Log(context.Background(), lv, "kafka client: "+msg, keyvals...)
}
