package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

// lifecycleAdmin gives the topic-lifecycle nemesis its client. It opens
// the client lazily: runs without that nemesis never connect it.
type lifecycleAdmin struct {
	open func() (*client.Client, error)
	c    *client.Client
}

func newLifecycleAdmin(servers []string, localHost string, opTimeout time.Duration, logger *slog.Logger) *lifecycleAdmin {
	return &lifecycleAdmin{open: func() (*client.Client, error) { return openClient(servers, localHost, opTimeout, logger) }}
}

func (a *lifecycleAdmin) client() (*client.Client, error) {
	if a.c == nil {
		c, err := a.open()
		if err != nil {
			return nil, err
		}
		a.c = c
	}
	return a.c, nil
}

// Close closes the client if it was opened.
func (a *lifecycleAdmin) Close() error {
	if a.c == nil {
		return nil
	}
	return a.c.Close()
}

func (a *lifecycleAdmin) CreateTopic(ctx context.Context, topic string, rf int) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	return c.CreateTopic(ctx, transport.CreateTopicRequest{Name: topic, Partitions: 1, ReplicationFactor: rf})
}

func (a *lifecycleAdmin) DeleteTopic(ctx context.Context, topic string) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	if err := c.DeleteTopic(ctx, topic); err != nil && transport.CodeOf(err) != transport.ErrUnknownTopic {
		return err
	}
	return nil
}

func (a *lifecycleAdmin) Produce(ctx context.Context, topic, value string) (int64, error) {
	c, err := a.client()
	if err != nil {
		return 0, err
	}
	return c.ProduceBatch(ctx, topic, 0, []client.Record{{Value: []byte(value)}})
}

func (a *lifecycleAdmin) Replicas(ctx context.Context, topic string) ([]string, error) {
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	md, err := c.Metadata(ctx, topic)
	if err != nil {
		return nil, err
	}
	for _, t := range md.Topics {
		if t.Name == topic && len(t.Partitions) > 0 {
			return append([]string(nil), t.Partitions[0].Replicas...), nil
		}
	}
	return nil, fmt.Errorf("topic %q not in metadata", topic)
}

func (a *lifecycleAdmin) ReadReplica(ctx context.Context, node, topic string) ([]string, error) {
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	var out []string
	offset := int64(0)
	for {
		res, err := c.FetchFromNode(ctx, node, transport.FetchRequest{Topic: topic, Partition: 0, Offset: offset, MaxBytes: 1 << 20})
		if err != nil {
			return nil, err
		}
		for _, r := range res.Records {
			out = append(out, string(r.Value))
		}
		if len(res.Records) > 0 {
			offset = res.Records[len(res.Records)-1].Offset + 1
		}
		if offset >= res.HighWatermark || len(res.Records) == 0 {
			return out, nil
		}
	}
}
