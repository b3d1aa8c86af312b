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
