package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluice-io/sluice/transport"
)

// CreateTopic creates a topic through any node (it forwards to the
// controller). If an earlier attempt got no reply and the retry finds the
// topic existing, the create is taken as done.
func (c *Client) CreateTopic(ctx context.Context, req transport.CreateTopicRequest) error {
	if req.Name == "" {
		return transport.Errorf(transport.ErrInvalidTopic, "empty topic name")
	}
	maybe, err := c.callAny(ctx, transport.MethodCreateTopic, &req, &transport.Empty{})
	if err != nil && !(maybe && transport.CodeOf(err) == transport.ErrTopicExists) {
		return fmt.Errorf("create topic %q: %w", req.Name, err)
	}
	c.forget(req.Name)
	return nil
}

// DeleteTopic deletes a topic through any node. If an earlier attempt got
// no reply and the retry finds the topic gone, the delete is taken as done.
func (c *Client) DeleteTopic(ctx context.Context, name string) error {
	maybe, err := c.callAny(ctx, transport.MethodDeleteTopic, &transport.DeleteTopicRequest{Name: name}, &transport.Empty{})
	if err != nil && !(maybe && transport.CodeOf(err) == transport.ErrUnknownTopic) {
		return fmt.Errorf("delete topic %q: %w", name, err)
	}
	c.forget(name)
	return nil
}

// forget drops a topic's cached metadata and leader hints.
func (c *Client) forget(topic string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.topics, topic)
	for k := range c.hints {
		if k.topic == topic {
			delete(c.hints, k)
		}
	}
}

// Metadata asks the cluster for brokers and the given topics (all when none
// are named) and refreshes the cache with the answer. Topics the cluster
// does not know are simply missing from the response.
func (c *Client) Metadata(ctx context.Context, topics ...string) (*transport.MetadataResponse, error) {
	var resp transport.MetadataResponse
	if _, err := c.callAny(ctx, transport.MethodMetadata, &transport.MetadataRequest{Topics: topics}, &resp); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	c.absorb(&resp, topics)
	return &resp, nil
}

// Status asks one node for its status; addr "" asks any reachable node.
func (c *Client) Status(ctx context.Context, addr string) (*transport.StatusResponse, error) {
	var resp transport.StatusResponse
	if addr == "" {
		if _, err := c.callAny(ctx, transport.MethodStatus, &transport.Empty{}, &resp); err != nil {
			return nil, fmt.Errorf("status: %w", err)
		}
		return &resp, nil
	}
	if err := c.callNode(ctx, addr, transport.MethodStatus, &transport.Empty{}, &resp, 0); err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	return &resp, nil
}

// nodeAttempts bounds retries of calls aimed at one given node: a pooled
// connection to a restarted node fails once before it is redialled.
const nodeAttempts = 3

// callNode sends a read-only request to one node, retrying transport
// failures and retriable codes a few times.
func (c *Client) callNode(ctx context.Context, addr string, method transport.Method, req, resp any, extra time.Duration) error {
	var bo backoff
	var err error
	for i := 0; i < nodeAttempts; i++ {
		if err = c.attempt(ctx, addr, method, req, resp, extra); err == nil {
			return nil
		}
		if errors.Is(err, ErrClosed) || ctx.Err() != nil {
			return err
		}
		if code := transport.CodeOf(err); code != 0 && !code.Retriable() && code != transport.ErrTimeout {
			return err
		}
		if i < nodeAttempts-1 && bo.wait(ctx) != nil {
			return err
		}
	}
	return err
}

// Partitions returns the topic's partition count (cached metadata).
func (c *Client) Partitions(ctx context.Context, topic string) (int, error) {
	t, err := c.topicMeta(ctx, topic, false)
	if err != nil {
		return 0, err
	}
	return len(t.Partitions), nil
}

// partitionCount is Partitions, retrying a topic unknown for up to
// UnknownTopicWait: a topic just created may not have reached every node.
func (c *Client) partitionCount(ctx context.Context, topic string) (int, error) {
	var bo backoff
	var since time.Time
	for {
		n, err := c.Partitions(ctx, topic)
		if err == nil || transport.CodeOf(err) != transport.ErrUnknownTopic || c.cfg.UnknownTopicWait < 0 {
			return n, err
		}
		if since.IsZero() {
			since = time.Now()
		}
		if time.Since(since) >= c.cfg.UnknownTopicWait || bo.wait(ctx) != nil {
			return n, err
		}
	}
}

// LeaderAddr asks the cluster for a partition's current leader and returns
// its node id and RPC address. An unknown leader is a *transport.Error with
// ErrUnavailable.
func (c *Client) LeaderAddr(ctx context.Context, topic string, partition int32) (nodeID, addr string, err error) {
	t, err := c.topicMeta(ctx, topic, true)
	if err != nil {
		return "", "", err
	}
	p, ok := findPartition(t, partition)
	if !ok {
		return "", "", transport.Errorf(transport.ErrUnknownPartition, "%s/%d", topic, partition)
	}
	if p.Leader == "" {
		return "", "", transport.Errorf(transport.ErrUnavailable, "%s/%d has no leader", topic, partition)
	}
	c.mu.Lock()
	b, ok := c.brokers[p.Leader]
	c.mu.Unlock()
	if !ok {
		return p.Leader, "", transport.Errorf(transport.ErrUnavailable, "%s/%d: no address for leader %s", topic, partition, p.Leader)
	}
	return p.Leader, b.RPCAddr, nil
}

// BrokerAddr returns the RPC address of a node id, refreshing metadata when
// the node is not known yet.
func (c *Client) BrokerAddr(ctx context.Context, nodeID string) (string, error) {
	c.mu.Lock()
	b, ok := c.brokers[nodeID]
	c.mu.Unlock()
	if ok && b.RPCAddr != "" {
		return b.RPCAddr, nil
	}
	resp, err := c.refresh(ctx)
	if err != nil {
		return "", err
	}
	for _, b := range resp.Brokers {
		if b.ID == nodeID && b.RPCAddr != "" {
			return b.RPCAddr, nil
		}
	}
	return "", fmt.Errorf("client: unknown node %q", nodeID)
}

// WaitForLeaders polls metadata until every partition of the topic has a
// leader (handy right after CreateTopic) or ctx ends.
func (c *Client) WaitForLeaders(ctx context.Context, topic string) error {
	var bo backoff
	for {
		t, err := c.topicMeta(ctx, topic, true)
		if err == nil && len(t.Partitions) > 0 {
			ready := true
			for _, p := range t.Partitions {
				ready = ready && p.Leader != ""
			}
			if ready {
				return nil
			}
		}
		if errors.Is(err, ErrClosed) {
			return err
		}
		if bo.wait(ctx) != nil {
			return fmt.Errorf("wait for leaders of %q: %w", topic, ctx.Err())
		}
	}
}
