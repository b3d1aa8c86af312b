package client

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/sluice-io/sluice/batch"
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
		// Walk checks the header before the first record is visited.
		h, _ := batch.ParseHeader(raw)
		full := false
		_, err := batch.Walk(raw, 0, func(kr batch.Record) error {
			off := h.BaseOffset + int64(kr.OffsetDelta)
			switch {
			case full || off < from || h.Attributes.Control():
			case req.MaxRecords > 0 && len(res.Records) >= int(req.MaxRecords):
				full = true
			default:
				res.Records = append(res.Records, toRecord(h, kr, off, req))
				res.NextOffset = off + 1
			}
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("fetch %s/%d: %w", req.Topic, req.Partition, err)
		}
		if full {
			return res, nil
		}
		// Skip what the batch covers even when it returned nothing (a
		// control batch), so a reader never gets stuck on it.
		if end := h.NextOffset(); end > res.NextOffset {
			res.NextOffset = end
		}
	}
	return res, nil
}

// toRecord converts one walked record; key, value and header values alias
// the fetched bytes.
func toRecord(h batch.Header, kr batch.Record, off int64, req *transport.FetchRequest) Record {
	ts := h.FirstTimestamp + kr.TimestampDelta
	if h.Attributes.LogAppendTime() {
		ts = h.MaxTimestamp
	}
	r := Record{
		Key:       kr.Key,
		Value:     kr.Value,
		Timestamp: time.UnixMilli(ts),
		Topic:     req.Topic,
		Partition: req.Partition,
		Offset:    off,
	}
	if kr.NumHeaders > 0 {
		r.Headers = make([]Header, 0, kr.NumHeaders)
		for k, v := range kr.Headers() {
			r.Headers = append(r.Headers, Header{Key: string(k), Value: v})
		}
	}
	return r
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
