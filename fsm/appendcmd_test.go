package fsm

import (
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

func TestAppendedBatch(t *testing.T) {
	b := []byte("batch bytes")
	got, ok := AppendedBatch(&raft.Log{Type: raft.LogCommand, Data: EncodeAppend(b)})
	require.True(t, ok)
	require.Equal(t, b, got)

	got, ok = AppendedBatch(&raft.Log{Type: raft.LogCommand, Data: append([]byte{cmdAppend}, b...)})
	require.True(t, ok)
	require.Equal(t, b, got)

	for _, l := range []raft.Log{
		{Type: raft.LogCommand, Data: EncodeOffsetCommit("g", 1, "")},
		{Type: raft.LogNoop},
		{Type: raft.LogCommand},
		{Type: raft.LogCommand, Data: []byte{cmdAppendAt, 1, 2}},
	} {
		_, ok := AppendedBatch(&l)
		require.False(t, ok, "%+v", l)
	}
}
