package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/sluice-io/sluice/transport"
)

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	Topic string
	// Partitions to read; nil means all of the topic's partitions.
	Partitions []int32
	// Group, when set, starts each partition from the group's committed
	// offset, and Commit stores positions for it.
	Group string
	// Start is where a partition without a committed offset starts:
	// transport.OffsetEarliest, transport.OffsetLatest or an offset. With
	// OffsetEarliest the consumer also skips ahead to the log start when
	// retention has removed its position.
	Start int64
	// MaxWait is how long a poll waits on the server for new records when
	// every partition is caught up; default 500ms.
	MaxWait time.Duration
	// MaxBytes caps one partition fetch; default 1 MiB.
	MaxBytes int32
}

// Consumer reads a fixed set of partitions of one topic, by position. It is
// safe for concurrent use, but Polls run one at a time.
type Consumer struct {
	c   *Client
	cfg ConsumerConfig

	pollMu sync.Mutex

	mu    sync.Mutex
	parts []int32
	pos   map[int32]int64
	hw    map[int32]int64 // last seen high watermark; -1 unknown
}

// NewConsumer resolves the partitions and their starting positions (the
// group's committed offsets, else cfg.Start).
func (c *Client) NewConsumer(ctx context.Context, cfg ConsumerConfig) (*Consumer, error) {
	if cfg.Topic == "" {
		return nil, errors.New("client: consumer needs a topic")
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 500 * time.Millisecond
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 1 << 20
	}
	if cfg.Start < transport.OffsetEarliest {
		return nil, fmt.Errorf("client: invalid start offset %d", cfg.Start)
	}
	n, err := c.partitionCount(ctx, cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", cfg.Topic, err)
	}
	parts := slices.Clone(cfg.Partitions)
	if parts == nil {
		for p := range int32(n) {
			parts = append(parts, p)
		}
	}
	slices.Sort(parts)
	parts = slices.Compact(parts)
	for _, p := range parts {
		if p < 0 || p >= int32(n) {
			return nil, transport.Errorf(transport.ErrUnknownPartition, "%s/%d (topic has %d partitions)", cfg.Topic, p, n)
		}
	}
	cn := &Consumer{c: c, cfg: cfg, parts: parts, pos: map[int32]int64{}, hw: map[int32]int64{}}
	starts := make([]int64, len(parts))
	err = forEach(ctx, parts, func(ctx context.Context, i int, p int32) error {
		off := int64(-1)
		if cfg.Group != "" {
			var err error
			if off, err = c.FetchOffset(ctx, cfg.Group, cfg.Topic, p); err != nil {
				return fmt.Errorf("committed offset of %s/%d: %w", cfg.Topic, p, err)
			}
		}
		if off < 0 {
			off = cfg.Start
		}
		if off < 0 {
			res, err := cn.resolve(ctx, p, off)
			if err != nil {
				return err
			}
			off = res.NextOffset
		}
		starts[i] = off
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", cfg.Topic, err)
	}
	for i, p := range parts {
		cn.pos[p] = starts[i]
		cn.hw[p] = -1
	}
	return cn, nil
}

// forEach runs fn for every partition concurrently and returns the first
// error.
func forEach(ctx context.Context, parts []int32, fn func(ctx context.Context, i int, p int32) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = fn(ctx, i, p); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return errors.Join(errs...)
}

// resolve turns OffsetEarliest / OffsetLatest into an offset (NextOffset)
// with a fetch that waits for nothing.
func (cn *Consumer) resolve(ctx context.Context, p int32, special int64) (*FetchResult, error) {
	res, err := cn.c.Fetch(ctx, transport.FetchRequest{
		Topic: cn.cfg.Topic, Partition: p, Offset: special, MaxBytes: 1, MaxRecords: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("resolve offset %d of %s/%d: %w", special, cn.cfg.Topic, p, err)
	}
	if special == transport.OffsetEarliest {
		res.NextOffset = res.LogStartOffset
	} else {
		res.NextOffset = res.HighWatermark
	}
	return res, nil
}

// pollResult is one partition's share of a poll.
type pollResult struct {
	res *FetchResult
	err error
}

// Poll fetches from every partition concurrently and returns the records
// in partition order, offset order within each, advancing positions past
// them. When every partition is caught up it long-polls (MaxWait) and
// returns as soon as one partition has records. A partition whose leader
// cannot be reached within the poll is skipped this time; when nothing at
// all could be read Poll returns that (retriable) error. A fatal error
// (e.g. an offset out of range that cannot be reset) comes back together
// with the records read from the other partitions.
func (cn *Consumer) Poll(ctx context.Context) ([]Record, error) {
	cn.pollMu.Lock()
	defer cn.pollMu.Unlock()

	cn.mu.Lock()
	pos := maps.Clone(cn.pos)
	caughtUp := true
	for _, p := range cn.parts {
		if hw := cn.hw[p]; hw < 0 || pos[p] < hw {
			caughtUp = false
		}
	}
	cn.mu.Unlock()

	wait := time.Duration(0)
	if caughtUp {
		wait = cn.cfg.MaxWait
	}
	// One partition's trouble must not stall the others for long.
	pctx, cancel := context.WithTimeout(ctx, wait+cn.c.cfg.RequestTimeout)
	defer cancel()
	results := make([]pollResult, len(cn.parts))
	var wg sync.WaitGroup
	for i, p := range cn.parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := cn.c.Fetch(pctx, transport.FetchRequest{
				Topic: cn.cfg.Topic, Partition: p, Offset: pos[p],
				MaxBytes: cn.cfg.MaxBytes, MaxWaitMs: wait.Milliseconds(),
			})
			if err == nil && len(res.Records) > 0 && wait > 0 {
				cancel() // the others are idle: return what we have now
			}
			results[i] = pollResult{res, err}
		}()
	}
	wg.Wait()

	var (
		out       []Record
		fatal     error
		transient error
		reset     []int32
	)
	cn.mu.Lock()
	for i, p := range cn.parts {
		r := results[i]
		if r.err == nil {
			out = append(out, r.res.Records...)
			if cn.pos[p] == pos[p] { // not moved by Seek meanwhile
				cn.pos[p] = r.res.NextOffset
			}
			cn.hw[p] = r.res.HighWatermark
			continue
		}
		switch {
		case transport.CodeOf(r.err) == transport.ErrOffsetOutOfRange:
			reset = append(reset, p)
		case ctx.Err() == nil && pctx.Err() != nil && errors.Is(r.err, context.Canceled):
			// Cancelled because another partition answered: try again
			// next poll.
		case ctx.Err() != nil || IsRetriable(r.err) || errors.Is(r.err, context.DeadlineExceeded):
			transient = r.err
		case fatal == nil:
			fatal = fmt.Errorf("consumer %s/%d: %w", cn.cfg.Topic, p, r.err)
		}
	}
	cn.mu.Unlock()
	for _, p := range reset {
		if err := cn.reset(ctx, p, pos[p], results[slices.Index(cn.parts, p)].err); err != nil && fatal == nil {
			fatal = err
		}
	}
	if fatal != nil {
		return out, fatal
	}
	if len(out) == 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if transient != nil {
			return nil, transient
		}
	}
	return out, nil
}

// reset handles an out-of-range position: with Start = OffsetEarliest a
// position below the log start moves to it; anything else is returned.
func (cn *Consumer) reset(ctx context.Context, p int32, at int64, cause error) error {
	if cn.cfg.Start != transport.OffsetEarliest {
		return fmt.Errorf("consumer %s/%d at %d: %w", cn.cfg.Topic, p, at, cause)
	}
	res, err := cn.resolve(ctx, p, transport.OffsetEarliest)
	if err != nil {
		return err
	}
	if at >= res.LogStartOffset {
		return fmt.Errorf("consumer %s/%d at %d (log %d..%d): %w", cn.cfg.Topic, p, at, res.LogStartOffset, res.HighWatermark, cause)
	}
	cn.c.log.Info("consumer position below log start, skipping ahead",
		"topic", cn.cfg.Topic, "partition", p, "position", at, "log_start", res.LogStartOffset)
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.pos[p] == at {
		cn.pos[p] = res.LogStartOffset
	}
	cn.hw[p] = res.HighWatermark
	return nil
}

// Positions returns the next offset to read per partition.
func (cn *Consumer) Positions() map[int32]int64 {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return maps.Clone(cn.pos)
}

// HighWatermarks returns the high watermark last seen per partition (-1
// before the first fetch).
func (cn *Consumer) HighWatermarks() map[int32]int64 {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return maps.Clone(cn.hw)
}

// AtEnd reports whether every partition's position has reached its last
// seen high watermark.
func (cn *Consumer) AtEnd() bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	for _, p := range cn.parts {
		if hw := cn.hw[p]; hw < 0 || cn.pos[p] < hw {
			return false
		}
	}
	return true
}

// Seek sets a partition's position.
func (cn *Consumer) Seek(partition int32, offset int64) error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if _, ok := cn.pos[partition]; !ok {
		return fmt.Errorf("client: partition %d is not assigned", partition)
	}
	cn.pos[partition] = offset
	return nil
}

// Commit stores the current positions as the group's committed offsets.
func (cn *Consumer) Commit(ctx context.Context) error {
	if cn.cfg.Group == "" {
		return errors.New("client: commit needs a consumer group")
	}
	pos := cn.Positions()
	return forEach(ctx, cn.parts, func(ctx context.Context, _ int, p int32) error {
		if err := cn.c.CommitOffset(ctx, cn.cfg.Group, cn.cfg.Topic, p, pos[p]); err != nil {
			return fmt.Errorf("commit %s/%d: %w", cn.cfg.Topic, p, err)
		}
		return nil
	})
}
