package node

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/batch"
	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

// hostileBatches are CRC-valid batches a hostile client can send.
func hostileBatches() map[string][]byte {
	seal := func(b []byte) []byte {
		binary.BigEndian.PutUint32(b[batch.OffCRC:], crc32.Checksum(b[batch.OffAttributes:], crc32.MakeTable(crc32.Castagnoli)))
		return b
	}
	one := func() []byte {
		return batch.NewBatch([]kmsg.Record{{Value: []byte("x")}}, -1, 0, 0, time.Now())
	}
	// Issue #7 defect 1: 69 bytes claiming 2^31-1 records.
	forged := one()
	binary.BigEndian.PutUint32(forged[batch.OffLastOffsetDelta:], 1<<31-2)
	binary.BigEndian.PutUint32(forged[batch.OffNumRecords:], 1<<31-1)
	control := one()
	binary.BigEndian.PutUint16(control[batch.OffAttributes:], batch.AttrControl)
	txn := one()
	binary.BigEndian.PutUint16(txn[batch.OffAttributes:], batch.AttrTransactional)
	return map[string][]byte{"forged count": seal(forged), "control": seal(control), "transactional": seal(txn)}
}

func TestHostileProduceKeepsNodeServing(t *testing.T) {
	skipShort(t)
	c := newTestCluster(t, 1, nil)
	cl := c.client()
	c.createTopic(cl, "h", 1, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := map[string]transport.ErrorCode{"forged count": transport.ErrCorruptBatch, "control": transport.ErrInvalidRequest, "transactional": transport.ErrInvalidRequest}
	for name, b := range hostileBatches() {
		require.Len(t, b, 69)
		var resp transport.ProduceResponse
		err := c.nodes[0].pool.Call(ctx, c.nodes[0].Addr(), transport.MethodProduce,
			transport.ProduceRequest{Topic: "h", Partition: 0, Batch: b}, &resp)
		assert.Equal(t, want[name], transport.CodeOf(err), "%s: %v", name, err)
	}
	base, err := cl.ProduceBatch(ctx, "h", 0, []client.Record{{Value: []byte("still serving")}})
	require.NoError(t, err)
	assert.Equal(t, int64(0), base, "rejected batches used no offsets")
	recs := readAll(t, cl, "n1", "h", 0)
	require.Len(t, recs, 1)
	assert.Equal(t, "still serving", string(recs[0].Value))

	// Offset commits are bounded before they reach the Raft log.
	err = cl.CommitOffset(ctx, strings.Repeat("g", 256), "h", 0, 1)
	assert.Equal(t, transport.ErrInvalidRequest, transport.CodeOf(err), "%v", err)
	var empty transport.Empty
	err = c.nodes[0].pool.Call(ctx, c.nodes[0].Addr(), transport.MethodOffsetCommit,
		transport.OffsetCommitRequest{Group: "g", Topic: "h", Partition: 0, Offset: 1, Metadata: strings.Repeat("m", 4097)}, &empty)
	assert.Equal(t, transport.ErrRecordTooLarge, transport.CodeOf(err), "%v", err)
	require.NoError(t, cl.CommitOffset(ctx, strings.Repeat("g", 255), "h", 0, 1))
}
