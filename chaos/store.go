package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/sluice-io/sluice/chaos/history"
	"github.com/sluice-io/sluice/chaos/workload"
	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

// clientStore adapts the Sluice client to the workload's Store.
type clientStore struct {
	c *client.Client
}

func openClient(servers []string, localHost string, opTimeout time.Duration, logger *slog.Logger) (*client.Client, error) {
	return client.New(client.Config{
		Servers:        servers,
		LocalHost:      localHost,
		DialTimeout:    min(time.Second, opTimeout),
		RequestTimeout: opTimeout,
		Logger:         logger,
	})
}

func (s clientStore) Produce(ctx context.Context, topic string, partition int32, key, value string) (int64, error) {
	return s.c.ProduceBatch(ctx, topic, partition, []client.Record{{Key: []byte(key), Value: []byte(value)}})
}

func convert(res *client.FetchResult) workload.FetchResult {
	out := workload.FetchResult{HighWatermark: res.HighWatermark, Records: make([]history.Record, 0, len(res.Records))}
	for _, r := range res.Records {
		out.Records = append(out.Records, history.Record{Offset: r.Offset, Key: string(r.Key), Value: string(r.Value)})
	}
	return out
}

func fetchReq(req workload.FetchRequest) transport.FetchRequest {
	return transport.FetchRequest{
		Topic: req.Topic, Partition: req.Partition, Offset: req.Offset,
		MaxBytes: 8 << 20, MaxRecords: int32(req.MaxRecords),
		MaxWaitMs: req.MaxWait.Milliseconds(), Linearizable: req.Linearizable,
	}
}

func (s clientStore) Fetch(ctx context.Context, req workload.FetchRequest) (workload.FetchResult, error) {
	res, err := s.c.Fetch(ctx, fetchReq(req))
	if err != nil {
		return workload.FetchResult{}, err
	}
	return convert(res), nil
}

func (s clientStore) FetchFromNode(ctx context.Context, node string, req workload.FetchRequest) (workload.FetchResult, error) {
	res, err := s.c.FetchFromNode(ctx, node, fetchReq(req))
	if err != nil {
		return workload.FetchResult{}, err
	}
	return convert(res), nil
}

func (s clientStore) CommitOffset(ctx context.Context, group, topic string, partition int32, offset int64) error {
	return s.c.CommitOffset(ctx, group, topic, partition, offset)
}

func (s clientStore) FetchOffset(ctx context.Context, group, topic string, partition int32) (int64, error) {
	return s.c.FetchOffset(ctx, group, topic, partition)
}

func (s clientStore) Replicas(ctx context.Context, topic string) (map[int32][]string, error) {
	md, err := s.c.Metadata(ctx, topic)
	if err != nil {
		return nil, err
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		out := map[int32][]string{}
		for _, p := range t.Partitions {
			out[p.ID] = append([]string(nil), p.Replicas...)
		}
		return out, nil
	}
	return nil, fmt.Errorf("topic %q not in metadata", topic)
}

func (s clientStore) Close() error { return s.c.Close() }
