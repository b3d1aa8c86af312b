package client

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/sluice-io/sluice/fsm"
	"github.com/sluice-io/sluice/transport"
)

// FetchResult is the decoded answer to a fetch.
type FetchResult struct {
	// Records are at offsets >= the requested one, in offset order.
	Records []Record
	// HighWatermark is the partition's last committed offset + 1.
	HighWatermark int64
	// LogStartOffset is the partition's first retained offset.
	LogStartOffset int64
	// NextOffset is where the next fetch should start: past the last batch
	// read, or the requested offset when nothing was read (special offsets
	// resolved to the log start or high watermark).
	NextOffset int64
}

// defaultFetchBytes is the fetch size when a request leaves MaxBytes 0.
const defaultFetchBytes = 1 << 20

// Kafka batch attribute bits.
const (
	attrLogAppendTime = 0x08
	attrControl       = 0x20
)

// Fetch reads from the partition's leader, following leadership changes
// and retrying transient failures until ctx ends. Only records at offsets
// >= req.Offset are returned, at most req.MaxRecords when it is set. An
// offset outside the log is a *transport.Error with ErrOffsetOutOfRange.
func (c *Client) Fetch(ctx context.Context, req transport.FetchRequest) (*FetchResult, error) {
	req.FromReplica = false
	if req.MaxBytes <= 0 {
		req.MaxBytes = defaultFetchBytes
	}
	var resp transport.FetchResponse
	_, err := c.callLeader(ctx, leaderCall{
		topic: req.Topic, part: req.Partition, method: transport.MethodFetch,
		req: &req, resp: &resp, extra: time.Duration(req.MaxWaitMs) * time.Millisecond,
	})
	if err != nil {
		return nil, err
	}
	return decodeFetch(&req, &resp)
}

// FetchFromNode reads a partition from one given node's own committed log
// (FromReplica), to compare replicas. Transport failures are retried a few
// times on that node only.
func (c *Client) FetchFromNode(ctx context.Context, nodeID string, req transport.FetchRequest) (*FetchResult, error) {
	addr, err := c.BrokerAddr(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	req.FromReplica = true
	if req.MaxBytes <= 0 {
		req.MaxBytes = defaultFetchBytes
	}
	var resp transport.FetchResponse
	if err := c.callNode(ctx, addr, transport.MethodFetch, &req, &resp, time.Duration(req.MaxWaitMs)*time.Millisecond); err != nil {
		return nil, fmt.Errorf("fetch %s/%d from %s: %w", req.Topic, req.Partition, nodeID, err)
	}
	return decodeFetch(&req, &resp)
}

// decodeFetch validates and decodes the batches of resp, trimming records
// before req.Offset and beyond req.MaxRecords.
func decodeFetch(req *transport.FetchRequest, resp *transport.FetchResponse) (*FetchResult, error) {
	res := &FetchResult{
		HighWatermark:  resp.HighWatermark,
		LogStartOffset: resp.LogStartOffset,
	}
	// from is the first offset the caller wants.
	from := req.Offset
	switch req.Offset {
	case transport.OffsetEarliest:
		from = math.MinInt64
		res.NextOffset = resp.LogStartOffset
	case transport.OffsetLatest:
		from = resp.HighWatermark
		res.NextOffset = resp.HighWatermark
	default:
		res.NextOffset = req.Offset
	}
	for _, raw := range resp.Batches {
		b, recs, err := fsm.ParseBatch(raw)
		if err != nil {
			return res, fmt.Errorf("fetch %s/%d: %w", req.Topic, req.Partition, err)
		}
		if b.Attributes&attrControl == 0 {
			for i := range recs {
				kr := &recs[i]
				off := b.FirstOffset + int64(kr.OffsetDelta)
				if off < from {
					continue
				}
				if req.MaxRecords > 0 && len(res.Records) >= int(req.MaxRecords) {
					return res, nil
				}
				ts := b.FirstTimestamp + kr.TimestampDelta64
				if b.Attributes&attrLogAppendTime != 0 {
					ts = b.MaxTimestamp
				}
				r := Record{
					Key:       kr.Key,
					Value:     kr.Value,
					Timestamp: time.UnixMilli(ts),
					Topic:     req.Topic,
					Partition: req.Partition,
					Offset:    off,
				}
				if len(kr.Headers) > 0 {
					r.Headers = make([]Header, len(kr.Headers))
					for j, h := range kr.Headers {
						r.Headers[j] = Header{Key: h.Key, Value: h.Value}
					}
				}
				res.Records = append(res.Records, r)
				res.NextOffset = off + 1
			}
		}
		// Skip what the batch covers even when it returned nothing (a
		// control batch), so a reader never gets stuck on it.
		if end := b.FirstOffset + int64(b.LastOffsetDelta) + 1; end > res.NextOffset {
			res.NextOffset = end
		}
	}
	return res, nil
}

// CommitOffset stores offset (the next offset to consume) for the group on
// the partition's leader.
func (c *Client) CommitOffset(ctx context.Context, group, topic string, partition int32, offset int64) error {
	req := transport.OffsetCommitRequest{Group: group, Topic: topic, Partition: partition, Offset: offset}
	_, err := c.callLeader(ctx, leaderCall{
		topic: topic, part: partition, method: transport.MethodOffsetCommit, req: &req, resp: &transport.Empty{},
	})
	return err
}

// FetchOffset returns the group's committed offset on the partition, or -1
// when it has none.
func (c *Client) FetchOffset(ctx context.Context, group, topic string, partition int32) (int64, error) {
	req := transport.OffsetFetchRequest{Group: group, Topic: topic, Partition: partition}
	var resp transport.OffsetFetchResponse
	_, err := c.callLeader(ctx, leaderCall{
		topic: topic, part: partition, method: transport.MethodOffsetFetch, req: &req, resp: &resp,
	})
	if err != nil {
		return -1, err
	}
	return resp.Offset, nil
}
