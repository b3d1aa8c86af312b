package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/sluice-io/sluice/client"
)

// moverAdmin gives the membership nemesis its client, opened lazily like
// the lifecycle nemesis's (runs without that nemesis never connect it).
type moverAdmin struct {
	topic string
	open  func() (*client.Client, error)
	c     *client.Client
}

func newMoverAdmin(topic string, servers []string, localHost string, opTimeout time.Duration, logger *slog.Logger) *moverAdmin {
	return &moverAdmin{topic: topic, open: func() (*client.Client, error) { return openClient(servers, localHost, opTimeout, logger) }}
}

func (a *moverAdmin) client() (*client.Client, error) {
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
func (a *moverAdmin) Close() error {
	if a.c == nil {
		return nil
	}
	return a.c.Close()
}

func (a *moverAdmin) Placement(ctx context.Context) (string, [][]string, error) {
	c, err := a.client()
	if err != nil {
		return "", nil, err
	}
	md, err := c.Metadata(ctx, a.topic)
	if err != nil {
		return "", nil, err
	}
	for _, t := range md.Topics {
		if t.Name != a.topic {
			continue
		}
		out := make([][]string, len(t.Partitions))
		for _, p := range t.Partitions {
			if int(p.ID) < len(out) {
				out[p.ID] = slices.Clone(p.Replicas)
			}
		}
		return a.topic, out, nil
	}
	return "", nil, fmt.Errorf("topic %q not in metadata", a.topic)
}

func (a *moverAdmin) Alive(ctx context.Context) ([]string, error) {
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	md, err := c.Metadata(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, b := range md.Brokers {
		if b.State == "alive" {
			out = append(out, b.ID)
		}
	}
	return out, nil
}

func (a *moverAdmin) Reassign(ctx context.Context, topic string, partition int32, replicas []string) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	_, err = c.Reassign(ctx, topic, partition, replicas)
	return err
}

func (a *moverAdmin) WaitMove(ctx context.Context, topic string, partition int32) ([]string, error) {
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	st, err := c.WaitMove(ctx, topic, partition)
	if err != nil {
		return nil, err
	}
	return st.Replicas, nil
}

func (a *moverAdmin) Decommission(ctx context.Context, node string) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	if _, err := c.Decommission(ctx, node, false); err != nil {
		return err
	}
	if _, err := c.RunMoves(ctx, client.RunMovesOptions{MaxMoves: 2, Touching: node}); err != nil {
		return err
	}
	left, err := c.Decommission(ctx, node, false)
	if err != nil {
		return err
	}
	if len(left.Replicas) > 0 || len(left.Leads) > 0 {
		return fmt.Errorf("%s still hosts %v and leads %v", node, left.Replicas, left.Leads)
	}
	return nil
}

func (a *moverAdmin) Recommission(ctx context.Context, node string) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	_, err = c.Decommission(ctx, node, true)
	return err
}
