package fsm

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/transport"
)

func TestStoredGroupsFollowGenerations(t *testing.T) {
	h := newMetaHarness(t)
	require.NoError(t, h.apply(EncodeGroupState(StoredGroup{Group: "g", Generation: 3, State: []byte("gen3")})))
	require.NoError(t, h.apply(EncodeGroupState(StoredGroup{Group: "g", Generation: 2, State: []byte("gen2")})), "a late older generation is ignored, not an error")
	require.Equal(t, []StoredGroup{{Group: "g", Generation: 3, State: []byte("gen3")}}, h.m.StoredGroups())

	require.NoError(t, h.apply(EncodeGroupState(StoredGroup{Group: "g", Generation: 2})), "an older forget is ignored")
	require.Len(t, h.m.StoredGroups(), 1)
	require.NoError(t, h.apply(EncodeGroupState(StoredGroup{Group: "h", Generation: 1, State: []byte("h1")})))

	// Groups survive a snapshot; forgetting one removes it.
	other := newMetaHarness(t)
	require.NoError(t, other.m.Restore(io.NopCloser(bytes.NewReader(persist(t, h.m)))))
	assert.Equal(t, h.m.StoredGroups(), other.m.StoredGroups())
	require.NoError(t, other.apply(EncodeGroupState(StoredGroup{Group: "g", Generation: 4})))
	require.Equal(t, []StoredGroup{{Group: "h", Generation: 1, State: []byte("h1")}}, other.m.StoredGroups())
}

func TestStoredGroupsAreBounded(t *testing.T) {
	h := newMetaHarness(t)
	err := h.apply(EncodeGroupState(StoredGroup{Group: strings.Repeat("x", MaxGroupNameBytes+1), Generation: 1, State: []byte("s")}))
	assert.Equal(t, transport.ErrInvalidRequest, transport.CodeOf(err))
	err = h.apply(EncodeGroupState(StoredGroup{Group: "big", Generation: 1, State: make([]byte, MaxGroupStateBytes+1)}))
	assert.Equal(t, transport.ErrRecordTooLarge, transport.CodeOf(err))

	// The total is bounded too: fill it with the largest states allowed.
	n := MaxStoredGroupBytes / (MaxGroupStateBytes + 64)
	for i := range n {
		require.NoError(t, h.apply(EncodeGroupState(StoredGroup{Group: "g" + string(rune('a'+i%26)) + strings.Repeat("z", i/26), Generation: 1, State: make([]byte, MaxGroupStateBytes)})))
	}
	err = h.apply(EncodeGroupState(StoredGroup{Group: "one-more", Generation: 1, State: make([]byte, MaxGroupStateBytes)}))
	assert.Equal(t, transport.ErrRecordTooLarge, transport.CodeOf(err))
	// Replacing a stored group by one of the same size still fits.
	require.NoError(t, h.apply(EncodeGroupState(StoredGroup{Group: "ga", Generation: 2, State: make([]byte, MaxGroupStateBytes)})))
}
