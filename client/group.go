package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/sluice-io/sluice/transport"
)

// GroupConsumerConfig configures a GroupConsumer.
type GroupConsumerConfig struct {
	Group string
	Topic string
	// ClientID names this member in `sluice group describe`.
	ClientID string
	// Start is where a partition without a committed offset starts (see
	// ConsumerConfig.Start).
	Start int64
	// SessionTimeout: the coordinator drops a member that has not
	// heartbeated for this long; default 10s. Heartbeats go every
	// SessionTimeout/5.
	SessionTimeout time.Duration
	// RebalanceTimeout bounds how long a rebalance waits for members to
	// rejoin; default 30s.
	RebalanceTimeout time.Duration
	MaxWait          time.Duration // see ConsumerConfig
	MaxBytes         int32         // see ConsumerConfig
	Logger           *slog.Logger
}

// GroupConsumer is a member of a consumer group: the group's coordinator
// shares the topic's partitions out among its members (Kafka's range
// assignment, computed by the group's leader member), and a rebalance
// moves them when members come and go. Positions are committed to the
// group before every rebalance and on Commit and Close, so a partition's
// next owner resumes where the last one stopped. Poll is not safe for
// concurrent use.
type GroupConsumer struct {
	c      *Client
	cfg    GroupConsumerConfig
	logger *slog.Logger

	mu         sync.Mutex
	memberID   string
	generation int32
	assigned   []int32
	cons       *Consumer
	rejoin     bool
	closed     bool

	hbStop chan struct{}
	hbDone chan struct{}
}

// NewGroupConsumer joins the group and returns once this member has its
// first assignment.
func (c *Client) NewGroupConsumer(ctx context.Context, cfg GroupConsumerConfig) (*GroupConsumer, error) {
	if cfg.Group == "" || cfg.Topic == "" {
		return nil, errors.New("client: group consumer needs a group and a topic")
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 10 * time.Second
	}
	if cfg.RebalanceTimeout <= 0 {
		cfg.RebalanceTimeout = 30 * time.Second
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "sluice"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	g := &GroupConsumer{c: c, cfg: cfg, logger: cfg.Logger, hbStop: make(chan struct{}), hbDone: make(chan struct{})}
	if err := g.join(ctx); err != nil {
		return nil, err
	}
	go g.heartbeatLoop()
	return g, nil
}

// coordinatorCall sends a group RPC to the metadata leader, following
// not-leader answers.
func (c *Client) coordinatorCall(ctx context.Context, method transport.Method, req, resp any, extra time.Duration) error {
	var bo backoff
	addr := ""
	for {
		if addr == "" {
			md, err := c.Metadata(ctx)
			if err != nil {
				return err
			}
			for _, b := range md.Brokers {
				if b.ID == md.MetadataLeader {
					addr = b.RPCAddr
				}
			}
		}
		var err error
		if addr == "" {
			err = transport.Errorf(transport.ErrUnavailable, "no group coordinator (metadata leader) yet")
		} else {
			err = c.callNode(ctx, addr, method, req, resp, extra)
		}
		if err == nil {
			return nil
		}
		// Group answers (rebalance, unknown member, ...) and bad requests
		// go back to the caller; a coordinator that is gone or moved is
		// looked up again.
		code := transport.CodeOf(err)
		if ctx.Err() != nil || errors.Is(err, ErrClosed) || (code != 0 && !code.Retriable() && code != transport.ErrTimeout) {
			return err
		}
		addr = ""
		var te *transport.Error
		if errors.As(err, &te) && te.Code == transport.ErrNotLeader {
			addr = te.Leader
		}
		if bo.wait(ctx) != nil {
			return err
		}
	}
}

// join runs one rebalance: join, (as leader) assign, sync, and start
// consuming the assigned partitions.
func (g *GroupConsumer) join(ctx context.Context) error {
	for {
		g.mu.Lock()
		member := g.memberID
		g.mu.Unlock()
		var jr transport.GroupJoinResponse
		err := g.c.coordinatorCall(ctx, transport.MethodGroupJoin, transport.GroupJoinRequest{
			Group: g.cfg.Group, MemberID: member, ClientID: g.cfg.ClientID, Topics: []string{g.cfg.Topic},
			SessionTimeoutMs: g.cfg.SessionTimeout.Milliseconds(), RebalanceTimeoutMs: g.cfg.RebalanceTimeout.Milliseconds(),
		}, &jr, g.cfg.RebalanceTimeout+5*time.Second)
		switch transport.CodeOf(err) {
		case 0:
		case transport.ErrUnknownMember:
			g.setMember("", -1)
			continue
		case transport.ErrRebalanceInProgress, transport.ErrIllegalGeneration:
			continue
		default:
			return fmt.Errorf("join group %s: %w", g.cfg.Group, err)
		}
		g.setMember(jr.MemberID, jr.Generation)
		var assignments map[string][]transport.TopicPartitions
		if jr.Leader == jr.MemberID {
			if assignments, err = g.assign(ctx, jr.Members); err != nil {
				return err
			}
		}
		var sr transport.GroupSyncResponse
		err = g.c.coordinatorCall(ctx, transport.MethodGroupSync, transport.GroupSyncRequest{
			Group: g.cfg.Group, MemberID: jr.MemberID, Generation: jr.Generation, Assignments: assignments,
		}, &sr, g.cfg.RebalanceTimeout+5*time.Second)
		switch transport.CodeOf(err) {
		case 0:
		case transport.ErrUnknownMember:
			g.setMember("", -1)
			continue
		case transport.ErrRebalanceInProgress, transport.ErrIllegalGeneration:
			continue
		default:
			return fmt.Errorf("sync group %s: %w", g.cfg.Group, err)
		}
		var parts []int32
		for _, tp := range sr.Assignment {
			if tp.Topic == g.cfg.Topic {
				parts = append(parts, tp.Partitions...)
			}
		}
		slices.Sort(parts)
		var cons *Consumer
		if len(parts) > 0 {
			cons, err = g.c.NewConsumer(ctx, ConsumerConfig{
				Topic: g.cfg.Topic, Partitions: parts, Group: g.cfg.Group, Start: g.cfg.Start,
				MaxWait: g.cfg.MaxWait, MaxBytes: g.cfg.MaxBytes,
			})
			if err != nil {
				return err
			}
		}
		g.mu.Lock()
		g.assigned, g.cons, g.rejoin = parts, cons, false
		g.mu.Unlock()
		g.logger.Info("group assignment", "group", g.cfg.Group, "member", jr.MemberID, "generation", jr.Generation, "partitions", parts)
		return nil
	}
}

func (g *GroupConsumer) setMember(id string, gen int32) {
	g.mu.Lock()
	g.memberID, g.generation = id, gen
	g.mu.Unlock()
}

// assign is the leader's range assignment: per topic, the members that
// subscribe to it in id order get consecutive runs of partitions, the
// first ones one more when they do not divide evenly (Kafka's range).
func (g *GroupConsumer) assign(ctx context.Context, members []transport.GroupMember) (map[string][]transport.TopicPartitions, error) {
	byTopic := map[string][]string{}
	for _, m := range members {
		for _, t := range m.Topics {
			byTopic[t] = append(byTopic[t], m.ID)
		}
	}
	out := map[string][]transport.TopicPartitions{}
	for topic, ids := range byTopic {
		n, err := g.c.partitionCount(ctx, topic)
		if err != nil {
			return nil, fmt.Errorf("assign %s: %w", topic, err)
		}
		slices.Sort(ids)
		per, extra := n/len(ids), n%len(ids)
		next := 0
		for i, id := range ids {
			k := per
			if i < extra {
				k++
			}
			tp := transport.TopicPartitions{Topic: topic}
			for p := next; p < next+k; p++ {
				tp.Partitions = append(tp.Partitions, int32(p))
			}
			next += k
			out[id] = append(out[id], tp)
		}
	}
	return out, nil
}

func (g *GroupConsumer) heartbeatLoop() {
	defer close(g.hbDone)
	t := time.NewTicker(g.cfg.SessionTimeout / 5)
	defer t.Stop()
	for {
		select {
		case <-g.hbStop:
			return
		case <-t.C:
		}
		g.mu.Lock()
		req := transport.GroupHeartbeatRequest{Group: g.cfg.Group, MemberID: g.memberID, Generation: g.generation}
		pending := g.rejoin
		g.mu.Unlock()
		if pending || req.MemberID == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.SessionTimeout/2)
		err := g.c.coordinatorCall(ctx, transport.MethodGroupHeartbeat, req, nil, 0)
		cancel()
		switch transport.CodeOf(err) {
		case transport.ErrRebalanceInProgress, transport.ErrIllegalGeneration:
			g.mu.Lock()
			g.rejoin = true
			g.mu.Unlock()
		case transport.ErrUnknownMember:
			g.mu.Lock()
			g.rejoin, g.memberID = true, ""
			g.mu.Unlock()
		}
	}
}

// Poll returns the next records of the partitions assigned to this member.
// When the group rebalances it first commits the positions reached, then
// rejoins and continues with the new assignment.
func (g *GroupConsumer) Poll(ctx context.Context) ([]Record, error) {
	g.mu.Lock()
	rejoin, cons, closed := g.rejoin, g.cons, g.closed
	g.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if rejoin {
		if err := g.commit(ctx, cons); err != nil && ctx.Err() == nil {
			g.logger.Warn("commit before rebalance", "group", g.cfg.Group, "err", err)
		}
		if err := g.join(ctx); err != nil {
			return nil, err
		}
		g.mu.Lock()
		cons = g.cons
		g.mu.Unlock()
	}
	if cons == nil {
		// Nothing assigned (more members than partitions): wait a poll's
		// worth and look again.
		wait := g.cfg.MaxWait
		if wait <= 0 {
			wait = 500 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		return nil, nil
	}
	return cons.Poll(ctx)
}

func (g *GroupConsumer) commit(ctx context.Context, cons *Consumer) error {
	if cons == nil {
		return nil
	}
	return cons.Commit(ctx)
}

// Commit stores the positions of the assigned partitions for the group.
func (g *GroupConsumer) Commit(ctx context.Context) error {
	g.mu.Lock()
	cons := g.cons
	g.mu.Unlock()
	return g.commit(ctx, cons)
}

// Assigned is the partitions this member currently owns.
func (g *GroupConsumer) Assigned() []int32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.assigned)
}

// AtEnd reports whether every assigned partition has been read to its high
// watermark (true when nothing is assigned).
func (g *GroupConsumer) AtEnd() bool {
	g.mu.Lock()
	cons := g.cons
	g.mu.Unlock()
	return cons == nil || cons.AtEnd()
}

// Seek moves an assigned partition's position (see Consumer.Seek), e.g.
// back to the first record a caller polled but did not process, so that
// the commit on Close or before a rebalance does not pass it.
func (g *GroupConsumer) Seek(partition int32, offset int64) error {
	g.mu.Lock()
	cons := g.cons
	g.mu.Unlock()
	if cons == nil {
		return fmt.Errorf("partition %d is not assigned to this member", partition)
	}
	return cons.Seek(partition, offset)
}

// Close commits the positions and leaves the group, so the others
// rebalance at once instead of after the session timeout.
func (g *GroupConsumer) Close(ctx context.Context) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	cons, member := g.cons, g.memberID
	g.mu.Unlock()
	close(g.hbStop)
	<-g.hbDone
	err := g.commit(ctx, cons)
	if member != "" {
		lerr := g.c.coordinatorCall(ctx, transport.MethodGroupLeave, transport.GroupLeaveRequest{Group: g.cfg.Group, MemberID: member}, nil, 0)
		if lerr != nil && transport.CodeOf(lerr) != transport.ErrUnknownMember {
			err = errors.Join(err, lerr)
		}
	}
	return err
}

// DescribeGroup reports a group's members, assignments, committed offsets
// and lag.
func (c *Client) DescribeGroup(ctx context.Context, group string) (*transport.GroupDescription, error) {
	var d transport.GroupDescription
	if err := c.coordinatorCall(ctx, transport.MethodGroupDescribe, transport.GroupDescribeRequest{Group: group}, &d, 10*time.Second); err != nil {
		return nil, err
	}
	return &d, nil
}

// ListGroups lists the groups the coordinator knows.
func (c *Client) ListGroups(ctx context.Context) ([]transport.GroupSummary, error) {
	var r transport.GroupListResponse
	if err := c.coordinatorCall(ctx, transport.MethodGroupList, transport.Empty{}, &r, 0); err != nil {
		return nil, err
	}
	return r.Groups, nil
}

// DeleteGroup forgets an empty group's membership state.
func (c *Client) DeleteGroup(ctx context.Context, group string) error {
	return c.coordinatorCall(ctx, transport.MethodGroupDelete, transport.GroupDeleteRequest{Group: group}, nil, 0)
}
