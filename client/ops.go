package client

import (
	"context"
	"fmt"

	"github.com/sluice-io/sluice/transport"
)

// RebalanceLeaders asks the controller to move every partition's
// leadership to its preferred replica (the first) where that replica is
// alive and caught up. It reports each partition considered.
func (c *Client) RebalanceLeaders(ctx context.Context) (*transport.RebalanceLeadersResponse, error) {
	var resp transport.RebalanceLeadersResponse
	if _, err := c.callAny(ctx, transport.MethodRebalanceLeaders, &transport.RebalanceLeadersRequest{All: true}, &resp); err != nil {
		return nil, fmt.Errorf("rebalance leaders: %w", err)
	}
	return &resp, nil
}

// AlterPartitions raises a topic's partition count to n. The cluster
// refuses a decrease. Records with a key are routed by hash modulo the
// count, so after a raise many keys map to another partition than before
// (as in Kafka): per-key order holds only among records produced after it.
func (c *Client) AlterPartitions(ctx context.Context, topic string, n int) error {
	_, err := c.callAny(ctx, transport.MethodAlterPartitions, &transport.AlterPartitionsRequest{Name: topic, Partitions: n}, &transport.Empty{})
	c.forget(topic)
	if err != nil {
		return fmt.Errorf("alter topic %q: %w", topic, err)
	}
	return nil
}
