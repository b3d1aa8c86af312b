package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/batch"
	"github.com/sluice-io/sluice/transport"
)

// stream is one idempotent producer stream on one partition: the server
// deduplicates batches by (ProducerID, BaseSequence), and the sequence
// advances by the record count of each acknowledged batch.
type stream struct {
	id  int64
	seq int32
}

func newStream() stream { return stream{id: rand.Int64()} }

// maxIdleStreams bounds the idle streams ProduceBatch keeps per partition.
const maxIdleStreams = 8

// takeStream returns an idle ProduceBatch stream for k, or a new one.
// Concurrent ProduceBatch calls on one partition each get their own stream,
// since one stream must never have two batches in flight.
func (c *Client) takeStream(k partKey) *stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	if idle := c.streams[k]; len(idle) > 0 {
		s := idle[len(idle)-1]
		c.streams[k] = idle[:len(idle)-1]
		return s
	}
	s := newStream()
	return &s
}

func (c *Client) putStream(k partKey, s *stream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.streams[k]) < maxIdleStreams {
		c.streams[k] = append(c.streams[k], s)
	}
}

// ProduceBatch appends recs as one idempotent batch to the partition's
// leader and returns the offset of the first record. It retries (the same
// bytes, hence the same producer id and sequence, so the server never
// applies it twice) on retriable errors and lost replies, following
// leadership changes, until ctx ends. When it gives up after an attempt
// whose outcome is unknown, IsUnknownOutcome(err) is true.
func (c *Client) ProduceBatch(ctx context.Context, topic string, partition int32, recs []Record) (base int64, err error) {
	k := partKey{topic, partition}
	s := c.takeStream(k)
	base, err = c.produce(ctx, topic, partition, s, recs)
	c.putStream(k, s)
	return base, err
}

// produce sends recs as one batch on stream s. On success the sequence
// advances; on any failure s becomes a fresh stream, so a batch whose fate
// is unknown can never cause a sequence gap for the next one.
func (c *Client) produce(ctx context.Context, topic string, partition int32, s *stream, recs []Record) (int64, error) {
	if len(recs) == 0 {
		return -1, transport.Errorf(transport.ErrInvalidRequest, "produce %s/%d: no records", topic, partition)
	}
	if int64(s.seq)+int64(len(recs)) > math.MaxInt32 {
		*s = newStream() // sequences are int32: start over rather than wrap
	}
	now := time.Now()
	var resp transport.ProduceResponse
	for resets := 0; ; resets++ {
		req := transport.ProduceRequest{
			Topic:     topic,
			Partition: partition,
			Batch:     encodeBatch(recs, s.id, s.seq, now),
			TimeoutMs: (c.cfg.RequestTimeout * 8 / 10).Milliseconds(),
		}
		maybe, err := c.callLeader(ctx, leaderCall{
			topic: topic, part: partition, method: transport.MethodProduce, req: &req, resp: &resp,
		})
		if err == nil {
			if n := resp.LastOffset - resp.BaseOffset + 1; n != int64(len(recs)) {
				c.log.Warn("produce: offset range does not match the record count",
					"topic", topic, "partition", partition, "base", resp.BaseOffset, "last", resp.LastOffset, "records", len(recs))
			}
			s.seq += int32(len(recs))
			return resp.BaseOffset, nil
		}
		seq := s.seq
		*s = newStream()
		// A server that lost this producer's state (e.g. expired it) rejects
		// a non-zero sequence. When no attempt can have been applied, resend
		// once as sequence 0 of a fresh producer id.
		if resets == 0 && !maybe && seq != 0 && restartable(err) && ctx.Err() == nil {
			c.log.Debug("produce: sequence rejected, restarting producer stream", "topic", topic, "partition", partition, "err", err)
			continue
		}
		if maybe && !errors.Is(err, ErrUnknownOutcome) && !IsUnknownOutcome(err) {
			err = fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
		}
		return -1, err
	}
}

// restartable reports whether err says the server does not know this
// producer's state (ErrOutOfOrderSequence; older servers answered
// ErrInvalidRequest), which a fresh producer id at sequence 0 resolves.
func restartable(err error) bool {
	c := transport.CodeOf(err)
	return c == transport.ErrOutOfOrderSequence || c == transport.ErrInvalidRequest
}

// encodeBatch builds the Kafka v2 record batch for recs. Zero timestamps
// become now.
func encodeBatch(recs []Record, producerID int64, seq int32, now time.Time) []byte {
	first := recs[0].Timestamp
	if first.IsZero() {
		first = now
	}
	firstMs := first.UnixMilli()
	krecs := make([]kmsg.Record, len(recs))
	for i := range recs {
		r := &recs[i]
		ts := r.Timestamp
		if ts.IsZero() {
			ts = now
		}
		kr := kmsg.Record{
			TimestampDelta64: ts.UnixMilli() - firstMs,
			OffsetDelta:      int32(i),
			Key:              r.Key,
			Value:            r.Value,
		}
		kr.TimestampDelta = int32(kr.TimestampDelta64)
		if len(r.Headers) > 0 {
			kr.Headers = make([]kmsg.Header, len(r.Headers))
			for j, h := range r.Headers {
				kr.Headers[j] = kmsg.Header{Key: h.Key, Value: h.Value}
			}
		}
		krecs[i] = kr
	}
	return batch.NewBatch(krecs, producerID, 0, seq, first)
}

// batchOverhead is the size of a v2 batch header (offset .. record count).
const batchOverhead = 61

// recordSize is the encoded size of r inside a batch (an upper bound for
// the varint fields that depend on the batch: timestamp and offset deltas).
func recordSize(r *Record) int {
	body := 1 + 10 + 5 + // attributes, timestamp delta, offset delta
		varintLen(len(r.Key)) + len(r.Key) +
		varintLen(len(r.Value)) + len(r.Value) +
		varintLen(len(r.Headers))
	for _, h := range r.Headers {
		body += varintLen(len(h.Key)) + len(h.Key) + varintLen(len(h.Value)) + len(h.Value)
	}
	return varintLen(body) + body
}

// varintLen is the zigzag varint length of n.
func varintLen(n int) int {
	u := uint64(n) << 1
	l := 1
	for u >= 0x80 {
		u >>= 7
		l++
	}
	return l
}
